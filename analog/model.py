"""Numerical model of the AID bit-line column: vectorized device equations fitted to ngspice.

Discharge stack (access NMOS over the pull-down NMOS of a cell holding QB = 0), as a
two-terminal current ``I(V_WL, V_BL)``: a smooth alpha-power law (Sakurai-Newton,
with an EKV-style soft-plus so it runs continuously into subthreshold), drain-induced
barrier lowering, channel-length modulation and a tanh triode/saturation knee::

    v_ov  = n * phi_t * ln(1 + exp((V_WL - V_th - dV_th + eta * V_BL) / (n * phi_t)))
    I     = K * v_ov**alpha * (1 + lam * V_BL) * tanh(V_BL / (kappa * v_ov + phi_t))

Fitted by least squares to an ngspice DC sweep of the stack (:func:`fit_stack`); a
pull-down threshold shift acts as ``s_pd`` times an access threshold shift (fitted
from a sweep with the pull-down shifted). The column then integrates::

    C_BL * dV_q/dt = -sum_i b_i I(V_WL(a) * w_i(t), V_BL) - n_idle0 * I(0, V_BL)
    V_BL = V_q + (c_couple / C_BL) * sum_i V_WL(a) * w_i(t)      (word-line feed-through)

with Heun steps of ``dt`` on the word-line waveforms ``w_i(t)`` of the circuit; ``C_BL``
and ``c_couple`` are fitted to ngspice transients (:func:`fit_column`). Every array
argument broadcasts, so one call evaluates 256 pairs x 1000 Monte Carlo samples.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analog.circuit import B_BITS, Circuit

K_B_Q = 8.617333262e-5  # Boltzmann constant over the elementary charge, V/K
FIT_FILE = Path(__file__).resolve().parent / "models" / "aid_fit.json"


@dataclass(frozen=True)
class ModelParams:
    k: float = 2e-4          # A / V**alpha
    vth: float = 0.35        # V
    alpha: float = 1.5
    n: float = 1.5
    eta: float = 0.05        # DIBL coefficient
    lam: float = 0.1         # channel-length modulation, 1/V
    kappa: float = 0.5       # saturation knee, fraction of v_ov
    s_pd: float = 0.3        # pull-down dV_th as a fraction of an access dV_th
    c_bl: float = 50e-15     # effective bit-line capacitance, F
    c_couple: float = 0.2e-15  # word-line -> bit-line feed-through per row, F
    temp_c: float = 27.0

    def __post_init__(self):
        for f in ("k", "alpha", "n", "c_bl"):
            v = getattr(self, f)
            if not np.isfinite(v) or v <= 0:
                raise ValueError(f"model parameter {f} must be positive, not {v!r}")

    @property
    def phi_t(self) -> float:
        return K_B_Q * (self.temp_c + 273.15)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "ModelParams":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: float(v) for k, v in d.items() if k in names})


def load_params(path: Path = FIT_FILE) -> ModelParams:
    """The shipped fit (written by :func:`analog.fit.fit_all` from ngspice runs)."""
    d = json.loads(Path(path).read_text())
    return ModelParams.from_json(d["params"])


def stack_current(p: ModelParams, v_wl, v_bl, dvth=0.0):
    """Discharge current (A) of one cell holding QB = 0; broadcasts over all arguments."""
    nphi = p.n * p.phi_t
    x = (np.asarray(v_wl) - p.vth - dvth + p.eta * np.asarray(v_bl)) / nphi
    vov = nphi * np.logaddexp(0.0, x)
    v_bl = np.maximum(v_bl, 0.0)
    return p.k * vov ** p.alpha * (1 + p.lam * v_bl) * np.tanh(v_bl / (p.kappa * vov + p.phi_t))


def wl_shape(c: Circuit, t: float) -> np.ndarray:
    """Normalized word-line levels of the B_BITS rows at time t."""
    out = np.empty(B_BITS)
    for i in range(B_BITS):
        ts, vs = zip(*c.wl_waveform(i))
        out[i] = np.interp(t, ts, vs)
    return out


def simulate(c: Circuit, p: ModelParams, v_wl, b, dvth_access=None, dvth_pulldown=None, c_scale=None,
             dt: float = 1e-12, t_end: float | None = None, record: bool = False):
    """Bit-line drop ``VDD - V(BLB)`` at ``c.t_sample`` (or ``t_end``).

    ``v_wl`` (V) and ``b`` (0..15) broadcast to the batch shape S; ``dvth_access`` and
    ``dvth_pulldown`` have shape S + (4,) (one per compute row), ``c_scale`` shape S
    (relative bit-line capacitance). With ``record`` it also returns (times, V_BL(t)).
    """
    v_wl = np.asarray(v_wl, dtype=float)
    b = np.asarray(b)
    shape = np.broadcast_shapes(v_wl.shape, b.shape,
                                () if dvth_access is None else np.shape(dvth_access)[:-1],
                                () if dvth_pulldown is None else np.shape(dvth_pulldown)[:-1],
                                () if c_scale is None else np.shape(c_scale))
    bits = ((b[..., None] >> np.arange(B_BITS)) & 1).astype(float)        # S + (4,)
    dv = np.zeros(shape + (B_BITS,))
    if dvth_access is not None:
        dv = dv + dvth_access
    if dvth_pulldown is not None:
        dv = dv + p.s_pd * np.asarray(dvth_pulldown)
    cb = p.c_bl * (1.0 if c_scale is None else np.asarray(c_scale, dtype=float))
    cb = np.broadcast_to(cb, shape)
    vq = np.full(shape, c.vdd)
    v_row = v_wl[..., None]                                                 # S + (1,)
    t_stop = c.t_sample if t_end is None else t_end
    n_steps = max(1, int(np.ceil(t_stop / dt)))
    h = t_stop / n_steps

    def deriv(vq, t):
        w = wl_shape(c, t)
        vbl = vq + (p.c_couple * (v_wl * w.sum()))[...] / cb
        i_cells = stack_current(p, v_row * w, vbl[..., None], dv)
        i = (bits * i_cells).sum(-1) + c.n_idle_zero * stack_current(p, 0.0, vbl)
        return -i / cb

    times, trace = [], []
    t = 0.0
    for _ in range(n_steps):
        k1 = deriv(vq, t)
        k2 = deriv(vq + h * k1, t + h)
        vq = vq + h / 2 * (k1 + k2)
        t += h
        if record:
            times.append(t)
            trace.append(vq + p.c_couple * v_wl * wl_shape(c, t).sum() / cb)
    drop = c.vdd - (vq + p.c_couple * v_wl * wl_shape(c, t).sum() / cb)
    if record:
        return drop, np.array(times), np.array(trace)
    return drop
