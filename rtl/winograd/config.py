"""Configuration of the Winograd engine: the single source of truth.

The RTL generator (:mod:`rtl.winograd.engine`), the mapper (:mod:`rtl.winograd.mapper`),
the cycle model (:mod:`rtl.winograd.model`), the testbench (:mod:`cosim.testbenches.winograd`),
the bench and the synthesis report all read one :class:`WinogradConfig`. Every datapath width
comes from the exact worst-case analysis :func:`golden.winograd.winograd_widths`
for int8 activations, int8 zero point, int8 weights and at most
``max_in_channels`` input channels, so no stage can overflow for a layer the
mapper accepts.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from golden.winograd import integer_transforms, winograd_widths
from rtl.common.params import check_ints
from rtl.requant.config import RequantConfig, check_dsp, check_requant
from rtl.winograd import transforms as tf

ACT_BITS = 8  # int8 activations and zero point
BIAS_BITS = 32  # int32 bias and accumulator (TFLite)


@dataclass(frozen=True)
class WinogradConfig:
    """Parameters of :class:`rtl.winograd.engine.WinogradEngine`.

    m : output tile size, F(m x m, 3 x 3); 2 or 4. The input tile is ``a = m + 2``.
    channels : output channels computed in parallel (``channels * a * a`` multipliers).
    max_in_channels : largest number of input channels the accumulators are sized for.
    requant_pipeline : the requantizers' pipeline (:data:`rtl.requant.config.PIPELINES`):
        "compact" (5 stages) or "fast" (8); ``latency`` follows it.
    requant_dsp : how the fast pipeline's partial products reach the DSPs
        (:data:`rtl.requant.config.DSPS`): "inferred" or "ecp5" (instantiated ECP5
        MULT18X18D with their registers; needs requant_pipeline="fast").
    uv_dsp : how the element-wise products U*V reach the DSPs: "inferred" (Amaranth
        ``*``: Yosys maps each to an ECP5 MULT18X18D with its registers unused, fabric
        flip-flop -> DSP -> flip-flop) or "ecp5" (each an instantiated MULT18X18D whose
        input registers are a stage of their own, ``UVin``, loaded from the U and V
        registers, and whose output registers are the UV stage: one stage more).
    """

    m: int = 2
    channels: int = 2
    max_in_channels: int = 1024
    requant_pipeline: str = "compact"
    requant_dsp: str = "inferred"
    uv_dsp: str = "inferred"

    def __post_init__(self):
        if self.m not in (2, 4):
            raise ValueError(f"m must be 2 or 4 (F(2x2,3x3) or F(4x4,3x3)), not {self.m!r}")
        check_requant(self.requant_pipeline, self.requant_dsp)
        check_dsp(self.uv_dsp, "uv_dsp")
        check_ints(self, {"channels": (1, 64), "max_in_channels": (1, 1 << 16)})

    # --- transforms and widths -------------------------------------------------------

    @property
    def a(self) -> int:
        """Input tile size m + 2."""
        return self.m + 2

    @functools.cached_property
    def _transforms(self):
        bt, sg, at, s = integer_transforms(self.m)
        return tuple(map(tuple, bt.tolist())), tuple(map(tuple, sg.tolist())), tuple(map(tuple, at.tolist())), s

    @property
    def bt(self) -> tuple:
        """B^T, integer (a x a)."""
        return self._transforms[0]

    @property
    def sg(self) -> tuple:
        """s * G, integer (a x 3): the weight transform, applied offline by the mapper."""
        return self._transforms[1]

    @property
    def at(self) -> tuple:
        """A^T, integer (m x a)."""
        return self._transforms[2]

    @property
    def s(self) -> int:
        """Scale of the weight transform; the output transform result is divided by s**2."""
        return self._transforms[3]

    @functools.cached_property
    def widths(self) -> dict:
        """``{stage: (min, max, signed bits)}`` from :func:`golden.winograd.winograd_widths`."""
        return winograd_widths(self.m, self.max_in_channels)

    def bits(self, stage: str) -> int:
        return self.widths[stage][2]

    # --- performance figures -------------------------------------------------------

    @property
    def multipliers(self) -> int:
        """Physical multipliers of the element-wise stage (the Winograd multipliers)."""
        return self.channels * self.a * self.a

    @property
    def requant_lanes(self) -> int:
        """Requantizers (one 32 x 32 multiplier each), one per output of a tile group."""
        return self.channels * self.m * self.m

    @property
    def macs_per_tile(self) -> int:
        """Direct-convolution multiply-accumulates one input beat replaces."""
        return self.channels * self.m * self.m * 9

    @property
    def stages(self) -> tuple[str, ...]:
        """The transform pipeline's registered stages, in order: B^T d, V, U*V, the
        accumulators M, A^T M, A^T M A, the exact division by s**2 (two stages, ``Y0``
        and ``Y``, when its inverse takes more than two shift-adds: F(4x4,3x3)'s 576),
        + bias; with ``uv_dsp="ecp5"`` the DSPs' input registers ``UVin`` before UV."""
        div = ("Y0", "Y") if tf.exact_div_parts(self.s * self.s, self.bits("Y")) == 2 else ("Y",)
        uvin = ("UVin",) if self.uv_dsp == "ecp5" else ()
        return ("BTd", "V", *uvin, "UV", "M", "ATM", "ATMA", *div, "acc")

    @property
    def transform_stages(self) -> int:
        """Registered stages before the requantizers (:attr:`stages`): 8, + 1 for
        F(4x4,3x3), + 1 with ``uv_dsp="ecp5"``."""
        return len(self.stages)

    @property
    def latency(self) -> int:
        """Cycles from the handshake of a group's last input beat to its output valid."""
        return self.transform_stages + self.requant.latency

    @property
    def requant(self) -> RequantConfig:
        """The configuration of the engine's requantizers."""
        return RequantConfig(pipeline=self.requant_pipeline, dsp=self.requant_dsp)

    @property
    def throughput(self) -> int:
        """Input beats (one input tile x ``channels`` weight tiles) per cycle."""
        return 1

    # --- stream layouts ------------------------------------------------------------

    def in_layout(self) -> data.StructLayout:
        """One beat: an input tile of one input channel with the transformed weight tiles
        of ``channels`` output channels; bias, multiplier and shift of those channels
        (used on the ``last`` beat); ``first`` / ``last`` mark the first / last input
        channel of the accumulation."""
        n, p = self.a * self.a, self.channels
        return data.StructLayout({
            "x": data.ArrayLayout(signed(ACT_BITS), n),
            "u": data.ArrayLayout(data.ArrayLayout(signed(self.bits("U")), n), p),
            "bias": data.ArrayLayout(signed(BIAS_BITS), p),
            "mult": data.ArrayLayout(signed(BIAS_BITS), p),
            "shift": data.ArrayLayout(signed(self.requant.shift_bits), p),
            "first": unsigned(1),
            "last": unsigned(1),
        })

    def out_layout(self) -> data.ArrayLayout:
        """One beat: ``channels`` output tiles of m x m int8 values, row-major."""
        return data.ArrayLayout(data.ArrayLayout(signed(ACT_BITS), self.m * self.m), self.channels)

    def in_elements(self) -> list[tuple[str, tuple, int, int]]:
        """Every scalar of an input beat as ``(field, index, bit offset, bits)``."""
        lay = self.in_layout()
        n, p = self.a * self.a, self.channels
        out = [("x", (k,), lay["x"].offset + k * ACT_BITS, ACT_BITS) for k in range(n)]
        ub = self.bits("U")
        out += [("u", (q, k), lay["u"].offset + (q * n + k) * ub, ub) for q in range(p) for k in range(n)]
        for name, w in (("bias", BIAS_BITS), ("mult", BIAS_BITS), ("shift", self.requant.shift_bits)):
            out += [(name, (q,), lay[name].offset + q * w, w) for q in range(p)]
        out += [("first", (), lay["first"].offset, 1), ("last", (), lay["last"].offset, 1)]
        return out

    def params(self) -> dict:
        return asdict(self)
