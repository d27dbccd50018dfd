"""The AID multiplier circuit: one parameterized description for ngspice and the numerical model.

One bit-line column of a 6T-SRAM array computes ``a * b`` (4-bit unsigned operands)
as the discharge of its precharged complementary bit line BLB:

* **Operand b is stored** in four 6T cells of the column (rows 0..3, bit i in row i).
  A cell holding ``b_i = 1`` has ``QB = 0`` and discharges BLB through its access
  transistor and pull-down; a cell holding ``b_i = 0`` has ``QB = VDD`` and does not.
* **Binary-weighted word-line pulse widths** (the b-side weighting the issue offers;
  chosen over bit-weighted columns because it needs one column and one ADC per
  product): all four word lines rise together, row i stays high for
  ``2**i * t_unit`` (widths measured at the 50% point, edges ``t_edge``), so the
  charge row i removes is proportional to ``b_i * 2**i``.
* **Operand a sets the word-line voltage** through a DAC (:class:`LinearDac`,
  the baseline, or :class:`RootDac`, AID's root-function generator). The access
  transistor's current is roughly quadratic in its overdrive, so a linear DAC
  gives a discharge quadratic in a; AID's ``V_WL = V_th + k * a**(1/2)`` makes it
  linear. Code ``a = 0`` keeps the word lines low in both designs (the pulse
  generator is not fired), so a zero operand never leaks charge.
* The bit line carries ``n_cells`` cells (default 128): the four computing rows
  plus ``n_cells - 4`` idle cells whose word lines stay at 0 V. Its capacitance is
  the idle and active cells' drain junction and overlap capacitance, taken by
  ngspice from the BSIM4 card (drain area and perimeter below), plus a wire
  capacitance ``c_wire_per_m * n_cells * cell_pitch`` (0.2 fF/um, a typical
  intermediate-metal figure for 65 nm; 0.5 um cell pitch along the bit line).
  The idle cells hold random data: a fraction ``idle_zero_fraction`` (0.5) of them
  holds 0 on the BLB side and leaks onto BLB with its word line at 0 V.
  The true bit line BL gets the same load and precharge, so the energy counts its
  discharge too.
* Word-line driver: a source at the DAC level with linear edges of ``t_edge`` (its
  supply current is the word-line energy), loading each word line with the cell's
  access gates and ``c_wl_wire``.
* Sequence: precharge (BL, BLB at VDD) -> evaluate (word-line pulses) -> the ADC
  samples ``dV = VDD - V(BLB)`` ``t_settle`` after the last edge -> preset
  (precharge PMOS on for ``t_preset``, restoring both bit lines).

Device parameters are checked when the description is built: a value that makes
no physical sense raises ``ValueError`` naming it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

A_BITS = 4
B_BITS = 4
A_MAX = (1 << A_BITS) - 1
B_MAX = (1 << B_BITS) - 1
FULL_SCALE = A_MAX * B_MAX  # 225: the ideal product's full scale


def check_operands(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Integer operand arrays in 0..15, broadcast together; ``ValueError`` names a bad one."""
    out = []
    for name, v in (("a", a), ("b", b)):
        arr = np.asarray(v)
        if arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
                raise ValueError(f"operand {name} must be an integer 0..15, not {arr.flat[0] if arr.size == 1 else arr}")
            arr = arr.astype(np.int64)
        elif arr.dtype.kind not in "iu":
            raise ValueError(f"operand {name} must be an integer 0..15, not {v!r}")
        bad = (arr < 0) | (arr > 15)
        if np.any(bad):
            raise ValueError(f"operand {name} must be in 0..15, not {int(arr[bad].flat[0])}")
        out.append(arr.astype(np.int64))
    return tuple(np.broadcast_arrays(*out))


def _positive(obj, names):
    for n in names:
        v = getattr(obj, n)
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"{n} must be a positive finite number, not {v!r}")


@dataclass(frozen=True)
class Circuit:
    """Cell, bit line, precharge, word-line driver and timing (SI units)."""

    vdd: float = 1.0
    temp_c: float = 27.0
    l: float = 65e-9               # channel length of every cell transistor
    w_access: float = 150e-9       # access (pass-gate) NMOS
    w_pulldown: float = 300e-9     # pull-down NMOS (cell ratio 2)
    w_pullup: float = 100e-9       # pull-up PMOS
    w_precharge: float = 1e-6      # precharge PMOS per bit line
    l_diff: float = 100e-9         # drain diffusion length; one drain contact shared by two cells
    n_cells: int = 128             # cells on the bit line (4 compute rows + idle rows)
    idle_zero_fraction: float = 0.5  # idle cells holding QB = 0 (they leak onto BLB): random data
    cell_pitch: float = 0.5e-6     # bit-line length per cell
    c_wire_per_m: float = 0.2e-9   # 0.2 fF/um bit-line wire
    c_wl_wire: float = 0.2e-15     # word-line wire per cell (1 um cell width)
    t_unit: float = 50e-12         # LSB word-line pulse width (row 0); row i gets 2**i
    t_edge: float = 10e-12         # word-line rise / fall time (driver)
    t_start: float = 20e-12        # evaluate starts (word lines begin to rise)
    t_settle: float = 20e-12       # last falling edge -> ADC sample
    t_preset: float = 300e-12      # precharge (preset) phase after the sample

    def __post_init__(self):
        _positive(self, ["vdd", "l", "w_access", "w_pulldown", "w_pullup", "w_precharge", "l_diff",
                         "cell_pitch", "c_wire_per_m", "t_unit", "t_edge", "t_start", "t_settle", "t_preset"])
        if not isinstance(self.c_wl_wire, (int, float)) or not math.isfinite(self.c_wl_wire) or self.c_wl_wire < 0:
            raise ValueError(f"c_wl_wire must be a finite number >= 0, not {self.c_wl_wire!r}")
        if not isinstance(self.n_cells, int) or isinstance(self.n_cells, bool) or self.n_cells < B_BITS + 1:
            raise ValueError(f"n_cells must be an integer >= {B_BITS + 1}, not {self.n_cells!r}")
        if not isinstance(self.idle_zero_fraction, (int, float)) or not 0 <= self.idle_zero_fraction <= 1:
            raise ValueError(f"idle_zero_fraction must be in 0..1, not {self.idle_zero_fraction!r}")
        if not -55 <= self.temp_c <= 150:
            raise ValueError(f"temp_c must be in -55..150 C, not {self.temp_c!r}")
        if not 0.5 <= self.vdd <= 1.4:
            raise ValueError(f"vdd must be in 0.5..1.4 V for this 65 nm card, not {self.vdd!r}")
        for n in ("l", "w_access", "w_pulldown", "w_pullup", "w_precharge"):
            v = getattr(self, n)
            if not 60e-9 <= v <= 100e-6:
                raise ValueError(f"{n} must be in 60 nm..100 um for the 65 nm card, not {v!r}")
        if self.t_edge >= self.t_unit:
            raise ValueError(f"t_edge ({self.t_edge!r}) must be shorter than t_unit ({self.t_unit!r})")

    # derived quantities ----------------------------------------------------------------
    @property
    def n_idle(self) -> int:
        return self.n_cells - B_BITS

    @property
    def n_idle_zero(self) -> int:
        """Idle cells whose BLB-side node holds 0 and so leak onto BLB."""
        return int(round(self.n_idle * self.idle_zero_fraction))

    @property
    def c_wire(self) -> float:
        """Bit-line wire capacitance, F."""
        return self.c_wire_per_m * self.n_cells * self.cell_pitch

    def drain_geometry(self, w: float) -> tuple[float, float]:
        """(AD, PD) of a bit-line drain: half of a shared W x l_diff contact region."""
        return w * self.l_diff / 2, w + self.l_diff

    def pulse_width(self, row: int) -> float:
        return (1 << row) * self.t_unit

    @property
    def t_sample(self) -> float:
        """ADC sample time: last word line fully low + t_settle."""
        return self.t_start + self.pulse_width(B_BITS - 1) + self.t_edge / 2 + self.t_edge / 2 + self.t_settle

    @property
    def t_end(self) -> float:
        return self.t_sample + self.t_edge + self.t_preset

    def wl_waveform(self, row: int) -> list[tuple[float, float]]:
        """Normalized (0..1) word-line waveform of a row as PWL points; 50% width = pulse_width(row)."""
        t0, te, w = self.t_start, self.t_edge, self.pulse_width(row)
        return [(0.0, 0.0), (t0, 0.0), (t0 + te, 1.0), (t0 + w, 1.0), (t0 + w + te, 0.0)]

    def replace(self, **changes) -> "Circuit":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class LinearDac:
    """Baseline word-line DAC: ``V_WL = v_lo + (v_hi - v_lo) * a / 15`` for a >= 1, 0 V for a = 0."""

    v_lo: float
    v_hi: float
    name: str = "baseline"

    def __post_init__(self):
        for n in ("v_lo", "v_hi"):
            v = getattr(self, n)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 <= v <= 1.4:
                raise ValueError(f"{n} must be a word-line voltage in 0..1.4 V, not {v!r}")
        if self.v_hi <= self.v_lo:
            raise ValueError(f"v_hi ({self.v_hi!r}) must be above v_lo ({self.v_lo!r})")

    def levels(self, a) -> np.ndarray:
        a, _ = check_operands(a, 0)
        return np.where(a == 0, 0.0, self.v_lo + (self.v_hi - self.v_lo) * a / A_MAX)

    def describe(self) -> dict:
        return {"kind": "linear", "v_lo": self.v_lo, "v_hi": self.v_hi,
                "formula": "V_WL = v_lo + (v_hi - v_lo) * a / 15 (a >= 1); 0 V for a = 0"}


@dataclass(frozen=True)
class RootDac:
    """AID's root-function word-line generator: ``V_WL = v_th + k * a**exponent`` (a >= 1), 0 V for a = 0.

    ``exponent = 1/2`` is the paper's square root; ``v_th`` is the generator's
    replica threshold (a global design value, so local cell mismatch is not tracked).
    The generator is modeled as its ideal transfer function quantized to
    ``code_bits`` (its 16 levels are a code table: :meth:`codes`).
    """

    v_th: float
    k: float
    exponent: float = 0.5
    code_bits: int = 10
    v_ref: float = 1.0
    name: str = "aid"

    def __post_init__(self):
        if not isinstance(self.v_th, (int, float)) or not 0 <= self.v_th <= 1.0:
            raise ValueError(f"v_th must be in 0..1 V, not {self.v_th!r}")
        if not isinstance(self.k, (int, float)) or not math.isfinite(self.k) or self.k <= 0:
            raise ValueError(f"k must be a positive number of volts, not {self.k!r}")
        if not isinstance(self.exponent, (int, float)) or not 0 < self.exponent <= 1:
            raise ValueError(f"exponent must be in (0, 1], not {self.exponent!r}")
        if not isinstance(self.code_bits, int) or not 4 <= self.code_bits <= 16:
            raise ValueError(f"code_bits must be an integer in 4..16, not {self.code_bits!r}")
        if self.v_th + self.k * A_MAX ** self.exponent > 1.4:
            raise ValueError(f"v_th + k * 15**exponent = {self.v_th + self.k * A_MAX ** self.exponent:.3f} V "
                             "exceeds the 1.4 V word-line limit")

    def codes(self) -> list[int]:
        """DAC code per operand a (0..15): round(V_WL / v_ref * (2**code_bits - 1)); code 0 for a = 0."""
        top = (1 << self.code_bits) - 1
        a = np.arange(A_MAX + 1)
        v = self.v_th + self.k * a.astype(float) ** self.exponent
        c = np.clip(np.round(v / self.v_ref * top), 0, top).astype(int)
        c[0] = 0
        return [int(x) for x in c]

    def levels(self, a) -> np.ndarray:
        a, _ = check_operands(a, 0)
        top = (1 << self.code_bits) - 1
        return np.asarray(self.codes())[a] * self.v_ref / top

    def describe(self) -> dict:
        return {"kind": "root", "v_th": self.v_th, "k": self.k, "exponent": self.exponent,
                "code_bits": self.code_bits, "codes": self.codes(),
                "formula": "V_WL = v_th + k * a**exponent (a >= 1), quantized to code_bits; 0 V for a = 0"}


@dataclass(frozen=True)
class Adc:
    """ADC on dV_BLB: ideal (``bits=None``) or ``bits``-bit uniform, range 0..full_scale volts, mid-tread."""

    full_scale: float
    bits: int | None = None

    def __post_init__(self):
        if not isinstance(self.full_scale, (int, float)) or not self.full_scale > 0:
            raise ValueError(f"ADC full_scale must be a positive voltage, not {self.full_scale!r}")
        if self.bits is not None and (not isinstance(self.bits, int) or not 1 <= self.bits <= 16):
            raise ValueError(f"ADC bits must be an integer in 1..16 or None (ideal), not {self.bits!r}")

    def convert(self, dv) -> np.ndarray:
        """Codes (float for the ideal ADC, in units of full_scale / (2**bits - 1) otherwise)."""
        dv = np.asarray(dv, dtype=float)
        if self.bits is None:
            return dv / self.full_scale
        top = (1 << self.bits) - 1
        return np.clip(np.round(dv / self.full_scale * top), 0, top)
