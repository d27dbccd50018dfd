"""Fit the numerical model (:mod:`analog.model`) to ngspice.

1. :func:`fit_stack` -- the stack's I-V from a DC sweep (V_WL 0..1 V, V_BL 0.2..1 V),
   least squares on the current relative to (|I| + 1 uA); then ``s_pd`` from a second
   sweep with the pull-down's threshold shifted by 20 mV.
2. :func:`fit_column` -- ``c_bl`` and ``c_couple`` from an ngspice transient of a set
   of calibration columns (word-line levels x stored b), least squares on V(BLB)
   at 12 instants of the evaluate phase.

:func:`fit_all` runs both and writes ``analog/models/aid_fit.json`` (the shipped fit
the numerical model loads without ngspice).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from analog import spice
from analog.circuit import Circuit
from analog.model import FIT_FILE, ModelParams, simulate, stack_current

V_WL_GRID = np.round(np.arange(0.0, 1.0001, 0.02), 4)
V_BL_GRID = np.round(np.arange(0.2, 1.0001, 0.02), 4)
CAL_LEVELS = (0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70)
CAL_B = (1, 2, 4, 8, 5, 10, 15)


def iv_data(c: Circuit, work_dir=None, dvth_pulldown: float = 0.0) -> dict:
    out = spice.run(spice.iv_netlist(c, V_WL_GRID, V_BL_GRID, dvth_pulldown=dvth_pulldown),
                    work_dir=work_dir, name="iv")
    n_wl, n_bl = len(V_WL_GRID), len(V_BL_GRID)
    i = -out["i(vbl)"].reshape(n_wl, n_bl)
    vbl = out["v(bl)"].reshape(n_wl, n_bl)
    vwl = np.repeat(V_WL_GRID[:, None], n_bl, axis=1)
    return {"v_wl": vwl, "v_bl": vbl, "i": i}


_FREE = ("k", "vth", "alpha", "n", "eta", "lam", "kappa")


def fit_stack(c: Circuit, iv: dict, iv_pd: dict | None = None, dvth_pd: float = 0.02) -> tuple[ModelParams, dict]:
    p0 = ModelParams(temp_c=c.temp_c)
    x0 = np.array([np.log(p0.k), p0.vth, p0.alpha, p0.n, p0.eta, p0.lam, p0.kappa])
    vwl, vbl, i = iv["v_wl"].ravel(), iv["v_bl"].ravel(), iv["i"].ravel()
    scale = np.abs(i) + 1e-6

    def params(x, **kw):
        return dataclasses.replace(p0, k=float(np.exp(x[0])), vth=x[1], alpha=x[2], n=x[3], eta=x[4], lam=x[5],
                                   kappa=x[6], **kw)

    def resid(x):
        return (stack_current(params(x), vwl, vbl) - i) / scale

    lo = [np.log(1e-7), 0.0, 1.0, 1.0, 0.0, -0.5, 0.05]
    hi = [np.log(1e-1), 0.7, 2.5, 3.0, 0.5, 2.0, 3.0]
    r = least_squares(resid, x0, bounds=(lo, hi), x_scale="jac")
    p = params(r.x)
    quality = {"iv_rms_rel_error": float(np.sqrt(np.mean(resid(r.x) ** 2))),
               "iv_max_abs_error_uA": float(np.abs(stack_current(p, vwl, vbl) - i).max() * 1e6)}
    if iv_pd is not None:
        ipd = iv_pd["i"].ravel()
        sel = ipd > 1e-7

        def resid_s(s):
            return (stack_current(p, vwl[sel], vbl[sel], s[0] * dvth_pd) - ipd[sel]) / (np.abs(ipd[sel]) + 1e-6)
        rs = least_squares(resid_s, [0.3], bounds=([0.0], [1.5]))
        p = dataclasses.replace(p, s_pd=float(rs.x[0]))
        quality["s_pd_fit_rms_rel_error"] = float(np.sqrt(np.mean(resid_s(rs.x) ** 2)))
    return p, quality


def cal_points() -> list[spice.MacPoint]:
    return [spice.MacPoint(v, b) for v in CAL_LEVELS for b in CAL_B]


def transient_samples(c: Circuit, out: dict, n_points: int, times: np.ndarray) -> np.ndarray:
    """V(BLB) of each column at the given times (interpolated), shape (n_points, len(times))."""
    t = out["time"]
    return np.stack([np.interp(times, t, out[f"v(blb_{k})"]) for k in range(n_points)])


def fit_column(c: Circuit, p: ModelParams, work_dir=None, *, pts=None, x0=(50.0, 0.2),
               bounds=((5.0, 0.0), (500.0, 5.0))) -> tuple[ModelParams, dict]:
    """The column's bit-line and coupling capacitances (fF) fitted to ngspice transients
    at ``pts`` (default :func:`cal_points`), from ``x0`` within ``bounds``."""
    pts = cal_points() if pts is None else pts
    out = spice.run(spice.mac_netlist(c, pts), work_dir=work_dir, name="cal")
    times = np.linspace(c.t_start + c.t_edge, c.t_sample, 12)
    ref = transient_samples(c, out, len(pts), times)
    v = np.array([q.v_wl for q in pts])
    b = np.array([q.b for q in pts])

    def model_trace(x):
        q = dataclasses.replace(p, c_bl=float(x[0]) * 1e-15, c_couple=float(x[1]) * 1e-15)
        _, tt, tr = simulate(c, q, v, b, record=True, dt=2e-12)
        return np.stack([np.interp(times, tt, tr[:, k]) for k in range(len(pts))])

    def resid(x):
        return (model_trace(x) - ref).ravel()

    r = least_squares(resid, list(x0), bounds=tuple(map(list, bounds)), diff_step=1e-3)
    q = dataclasses.replace(p, c_bl=float(r.x[0]) * 1e-15, c_couple=float(r.x[1]) * 1e-15)
    return q, {"transient_rms_error_mV": float(np.sqrt(np.mean(resid(r.x) ** 2)) * 1e3)}


def fit_all(c: Circuit, work_dir: Path | None = None, out_file: Path | None = FIT_FILE) -> tuple[ModelParams, dict]:
    wd = None if work_dir is None else Path(work_dir)
    iv = iv_data(c, None if wd is None else wd / "iv")
    iv_pd = iv_data(c, None if wd is None else wd / "iv_pd", dvth_pulldown=0.02)
    p, q1 = fit_stack(c, iv, iv_pd)
    p, q2 = fit_column(c, p, None if wd is None else wd / "cal")
    quality = {**q1, **q2}
    if out_file is not None:
        Path(out_file).write_text(json.dumps({
            "about": "numerical AID model fitted to ngspice (PTM 65 nm bulk, BSIM4) by analog/fit.py",
            "circuit": dataclasses.asdict(c), "params": p.to_json(), "quality": quality}, indent=2) + "\n")
    return p, quality
