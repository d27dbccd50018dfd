"""Analyses of the AID multiplier: SNR, design of both word-line DACs, transfer curves, Monte Carlo.

SNR (the figure the paper compares): with ``x`` the ideal products ``a * b`` and ``y``
the outputs (bit-line drops or ADC codes) of all 256 pairs, one gain ``g`` is
calibrated by least squares (``g = sum(x*y) / sum(y*y)``, no offset term) and::

    SNR = 10 * log10( sum(x**2) / sum((g*y - x)**2) )   dB

Normalized output error of a pair: ``(g*y - a*b) / 225`` (225 = full-scale product),
with ``g`` the nominal design's calibration; the Monte Carlo reports its standard
deviation over the samples for each pair and the worst pair.

Design rule shared by both DACs (fair comparison): same cell, bit line, timing and
ADC, word-line levels within 0..VDD, and a full-scale swing (``VDD - V(BLB)`` at
a = b = 15, the ADC's input range) of at most ``dv_max`` (0.5 V = VDD/2, a
read-disturb margin). Within that, each DAC's range is searched to maximize its own
SNR: the baseline's ``v_lo`` and ``v_hi``, AID's ``v_th`` and ``k`` (grid of 2 mV
in the lower knob x 25 mV in swing, on a 1 mV level table of the model).
:func:`baseline_sweep` gives both designs' best SNR at each fixed swing.
"""

from __future__ import annotations

import numpy as np

from analog.circuit import A_MAX, B_MAX, FULL_SCALE, Circuit, LinearDac, RootDac, check_operands
from analog.model import ModelParams, simulate

# Pelgrom threshold-mismatch coefficient for 65 nm NMOS: A_VT = 3.5 mV*um, the value commonly
# reported for 65 nm bulk (e.g. Pelgrom et al. / ITRS-era 65 nm data: 3-4 mV*um with ~1.9 nm oxide).
A_VT = 3.5e-3 * 1e-6  # V*m
SIGMA_C_REL = 0.02    # bit-line capacitance, 1-sigma relative (wire width/spacing variation)


def grid():
    """(A, B) integer arrays of shape (16, 16): A[a, b] = a, B[a, b] = b."""
    return np.meshgrid(np.arange(A_MAX + 1), np.arange(B_MAX + 1), indexing="ij")


def gain_calibration(ideal, y) -> float:
    ideal, y = np.asarray(ideal, float).ravel(), np.asarray(y, float).ravel()
    den = float(np.dot(y, y))
    if den == 0:
        raise ValueError("outputs are all zero: no gain can be calibrated")
    return float(np.dot(ideal, y) / den)


def snr_db(ideal, y) -> float:
    """SNR after a single least-squares gain calibration (module docstring)."""
    ideal, y = np.asarray(ideal, float).ravel(), np.asarray(y, float).ravel()
    if ideal.shape != y.shape or ideal.size == 0:
        raise ValueError(f"ideal and measured must be non-empty and the same size, not {ideal.size} and {y.size}")
    g = gain_calibration(ideal, y)
    err = g * y - ideal
    sig = float(np.dot(ideal, ideal))
    noise = float(np.dot(err, err))
    if noise == 0:
        return float("inf")
    return 10 * np.log10(sig / noise)


def transfer(c: Circuit, p: ModelParams, dac, **kw) -> np.ndarray:
    """Model bit-line drop (V) for all pairs, shape (16, 16) indexed [a, b]."""
    A, B = grid()
    return simulate(c, p, dac.levels(A), B, **kw)


def multiply(c: Circuit, p: ModelParams, dac, a, b, gain: float) -> np.ndarray:
    """Analog products of operand arrays (floats, calibrated to the a*b scale)."""
    a, b = check_operands(a, b)
    return gain * simulate(c, p, dac.levels(a), b)


class LevelTable:
    """Model drop for every (word-line level, b) on a 1 mV level grid 0..VDD: designs search on it.

    The drop depends on a only through the word-line level, so any DAC's 256 outputs
    are interpolations in this table (error < 0.1 mV against a direct simulation).
    """

    def __init__(self, c: Circuit, p: ModelParams, step: float = 1e-3):
        self.v = np.linspace(0.0, c.vdd, int(round(c.vdd / step)) + 1)
        self.dv = simulate(c, p, self.v[:, None], np.arange(B_MAX + 1)[None, :])  # (levels, 16)

    def outputs(self, levels) -> np.ndarray:
        """Drops (16, 16) for DAC levels per a (length 16)."""
        return np.stack([np.interp(levels, self.v, self.dv[:, b]) for b in range(B_MAX + 1)], axis=1)

    def level_for_drop(self, dv_fs: float) -> float | None:
        """Word-line level whose (a=15, b=15)-drop is dv_fs (None if out of reach)."""
        col = np.maximum.accumulate(self.dv[:, B_MAX])
        if dv_fs > col[-1] or dv_fs <= col[0]:
            return None
        return float(np.interp(dv_fs, col + np.arange(col.size) * 1e-12, self.v))


def _best(table: LevelTable, make, knobs, swings):
    A, B = grid()
    a = np.arange(A_MAX + 1)
    best = None
    for fs in swings:
        v_top = table.level_for_drop(fs)
        if v_top is None:
            continue
        for x in knobs:
            if x >= v_top - 1e-3:
                break
            dac = make(float(round(x, 6)), v_top)
            s = snr_db(A * B, table.outputs(dac.levels(a)))
            if best is None or s > best[0]:
                best = (s, dac)
    return best


def _swings(dv_max: float, dv_fs: float | None):
    if dv_fs is not None:
        return [dv_fs]
    return np.arange(0.05, dv_max + 1e-9, 0.025)


def design_baseline(c: Circuit, p: ModelParams, dv_max: float = 0.5, table: LevelTable | None = None,
                    dv_fs: float | None = None) -> LinearDac:
    """Linear DAC maximizing its own SNR: v_lo and v_hi both free (levels within 0..VDD), full-scale
    drop at most ``dv_max`` (or exactly ``dv_fs`` if given)."""
    table = table or LevelTable(c, p)
    best = _best(table, lambda lo, top: LinearDac(lo, top), np.arange(0.0, c.vdd, 2e-3), _swings(dv_max, dv_fs))
    if best is None:
        raise ValueError(f"no linear DAC within 0..VDD reaches the full-scale drop {dv_fs or dv_max} V")
    return best[1]


def design_aid(c: Circuit, p: ModelParams, dv_max: float = 0.5, exponent: float = 0.5,
               table: LevelTable | None = None, dv_fs: float | None = None) -> RootDac:
    """Root-function DAC maximizing its SNR: v_th and k free (levels within 0..VDD), same swing limit."""
    table = table or LevelTable(c, p)
    best = _best(table, lambda vth, top: RootDac(vth, (top - vth) / A_MAX ** exponent, exponent),
                 np.arange(0.0, c.vdd, 2e-3), _swings(dv_max, dv_fs))
    if best is None:
        raise ValueError(f"no root-function DAC within 0..VDD reaches the full-scale drop {dv_fs or dv_max} V")
    return best[1]


def oracle_dac(c: Circuit, p: ModelParams, dv_max: float = 0.5, table: LevelTable | None = None,
               n_gains: int = 300) -> tuple[np.ndarray, float]:
    """Upper bound for any word-line DAC: 15 free levels (a = 1..15, within 0..v_top(dv_max)).

    For a fixed calibration gain g the best level of each a is separable (minimize
    sum_b (g*dV - a*b)^2 over the 1 mV level table); g is scanned over the range the swing
    allows and the SNR taken after re-calibration. What no DAC can fix -- the bit line's
    compression along b and the offsets -- is what remains.
    """
    table = table or LevelTable(c, p)
    v_top = table.level_for_drop(dv_max) or c.vdd
    sel = table.v <= v_top
    v, dvt = table.v[sel], table.dv[sel]                          # (L,), (L, 16)
    A, B = grid()
    b = np.arange(B_MAX + 1)
    best = (-np.inf, None)
    for g in np.geomspace(FULL_SCALE / dv_max * 0.9, FULL_SCALE / dv_max * 20, n_gains):
        levels = np.zeros(A_MAX + 1)
        for a in range(1, A_MAX + 1):
            levels[a] = v[np.argmin(((g * dvt - a * b[None, :]) ** 2).sum(1))]
        s = snr_db(A * B, table.outputs(levels))
        if s > best[0]:
            best = (s, levels)
    return best[1], float(best[0])


def baseline_sweep(c: Circuit, p: ModelParams, swings, table: LevelTable | None = None) -> list[dict]:
    """Best baseline and best AID SNR (model) at each full-scale swing: shows the chosen swing is fair."""
    table = table or LevelTable(c, p)
    A, B = grid()
    rows = []
    for fs in swings:
        try:
            bl = design_baseline(c, p, table=table, dv_fs=fs)
            ai = design_aid(c, p, table=table, dv_fs=fs)
        except ValueError:
            continue
        a = np.arange(A_MAX + 1)
        rows.append({"dv_fs": float(fs),
                     "baseline_snr_db": snr_db(A * B, table.outputs(bl.levels(a))),
                     "aid_snr_db": snr_db(A * B, table.outputs(ai.levels(a))),
                     "baseline": bl.describe(), "aid": ai.describe()})
    return rows


def monte_carlo(c: Circuit, p: ModelParams, dac, gain: float, n: int, seed: int = 0, chunk: int = 125,
                a_vt: float = A_VT, sigma_c: float = SIGMA_C_REL, dt: float = 2e-12) -> dict:
    """Pelgrom V_th mismatch (access and pull-down of the 4 compute cells) and bit-line C variation.

    sigma(V_th) = A_VT / sqrt(W L) per transistor; C_BL scaled by N(1, sigma_c).
    Returns normalized output errors ``(gain * y - a*b) / 225``, shape (n, 16, 16), and sigmas.
    """
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"Monte Carlo needs at least 2 samples, not {n!r}")
    rng = np.random.default_rng(seed)
    s_acc = a_vt / np.sqrt(c.w_access * c.l)
    s_pd = a_vt / np.sqrt(c.w_pulldown * c.l)
    A, B = grid()
    v = dac.levels(A)
    errs = np.empty((n, A_MAX + 1, B_MAX + 1))
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        dva = rng.normal(0, s_acc, (m, A_MAX + 1, B_MAX + 1, 4))
        dvp = rng.normal(0, s_pd, (m, A_MAX + 1, B_MAX + 1, 4))
        cs = rng.normal(1, sigma_c, (m, A_MAX + 1, B_MAX + 1))
        y = simulate(c, p, v, B, dvth_access=dva, dvth_pulldown=dvp, c_scale=cs, dt=dt)
        errs[start:start + m] = (gain * y - A * B) / FULL_SCALE
    sigma = errs.std(axis=0, ddof=1)
    return {"errors": errs, "sigma": sigma, "sigma_worst": float(sigma.max()),
            "worst_pair": [int(x) for x in np.unravel_index(np.argmax(sigma), sigma.shape)],
            "sigma_vth_access_mV": s_acc * 1e3, "sigma_vth_pulldown_mV": s_pd * 1e3}
