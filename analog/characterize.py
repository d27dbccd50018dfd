"""Characterize the numerical model at any cell sizing / supply: ngspice sweeps -> fitted :class:`ModelParams`.

The shipped fit (``analog/models/aid_fit.json``) holds for one circuit (65 nm access and
pull-down, 1 V). The design-space study (:mod:`analog.study`) needs the model at other
channel lengths, widths and supplies, which the fitted parameters cannot express
by themselves (their K, V_th, alpha, DIBL eta, ... all move with L). So each sizing
gets its own fit, with the same procedure as :mod:`analog.fit`, scaled to the supply:

1. I-V of the access + pull-down stack, V_WL 0..VDD, V_BL 0.2..VDD (ngspice DC), and
   a second sweep with the pull-down's threshold shifted by 20 mV -> ``fit_stack``;
2. C_BL and the word-line feed-through from an ngspice transient of calibration
   columns, at word-line levels chosen from the stack fit so the (b = 15) drop spans
   about 0.04..0.6 VDD (the fixed levels of :mod:`analog.fit` only suit 65 nm at 1 V).

The timing does not enter the device fit (the calibration transient uses the nominal
50 ps unit); the study re-uses one fit for every word-line pulse unit and checks that
with ngspice spot checks. ``analog/models/aid_study_fits.json`` holds the fits of the
study's sizings (written by ``python -m analog.characterize``; ``--all`` refits every
one), so the study runs without ngspice; with ``--spice`` it characterizes any sizing
that has no shipped fit and checks the model against ngspice transients at spot points.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from analog import spice
from analog.circuit import B_MAX, Circuit
from analog import fit
from analog.fit import fit_stack
from analog.model import ModelParams, simulate

STUDY_FITS = Path(__file__).resolve().parent / "models" / "aid_study_fits.json"
# timing fields: a fit is shared by all of them (the device and bit line do not depend on timing)
TIMING = ("t_unit", "t_edge", "t_start", "t_settle", "t_preset")
CAL_B = (1, 2, 4, 8, 5, 10, 15)


def fit_key(c: Circuit) -> str:
    """The circuit fields a fit depends on (everything but the timing), as a stable string."""
    d = {k: v for k, v in dataclasses.asdict(c).items() if k not in TIMING}
    return json.dumps({k: (float(f"{v:.6g}") if isinstance(v, float) else v) for k, v in sorted(d.items())},
                      sort_keys=True)


def iv_data(c: Circuit, work_dir=None, dvth_pulldown: float = 0.0) -> dict:
    v_wl = np.round(np.arange(0.0, c.vdd + 1e-9, 0.02), 4)
    v_bl = np.round(np.arange(0.2, c.vdd + 1e-9, 0.02), 4)
    out = spice.run(spice.iv_netlist(c, v_wl, v_bl, dvth_pulldown=dvth_pulldown), work_dir=work_dir, name="iv")
    i = -out["i(vbl)"].reshape(len(v_wl), len(v_bl))
    vbl = out["v(bl)"].reshape(len(v_wl), len(v_bl))
    return {"v_wl": np.repeat(v_wl[:, None], len(v_bl), axis=1), "v_bl": vbl, "i": i}


def c_bl_estimate(c: Circuit) -> float:
    """First guess of the bit-line capacitance (F): wire plus the shipped 65 nm fit's device part
    (20.1 fF for 128 cells of 150 nm access) scaled by access width."""
    return c.c_wire + 20.1e-15 * (c.n_cells / 128) * (c.w_access / 150e-9)


def cal_levels(c: Circuit, p: ModelParams, n: int = 7) -> list[float]:
    """Word-line levels whose (b = 15) drop under the stack fit spans ~0.04..0.6 VDD."""
    v = np.linspace(0.0, c.vdd, 201)
    drop = simulate(c, p, v, B_MAX, dt=2e-12)
    lo, hi = 0.04 * c.vdd, 0.6 * c.vdd
    ok = (drop >= lo) & (drop <= hi)
    if ok.sum() < 2:
        raise ValueError(f"no word-line level in 0..VDD gives a calibration drop of {lo:.2f}..{hi:.2f} V "
                         f"(max drop {drop.max():.3f} V)")
    return [float(round(x, 3)) for x in np.linspace(v[ok][0], v[ok][-1], n)]


def fit_column(c: Circuit, p: ModelParams, levels: list[float], work_dir=None) -> tuple[ModelParams, dict]:
    """:func:`analog.fit.fit_column` at this sizing's calibration levels, started from the
    nominal fit's bit-line capacitance."""
    pts = [spice.MacPoint(v, b) for v in levels for b in CAL_B]
    q, info = fit.fit_column(c, p, work_dir, pts=pts, x0=(p.c_bl * 1e15, 0.02), bounds=((2.0, 0.0), (1000.0, 5.0)))
    return q, dict(info, cal_levels_V=levels)


def characterize(c: Circuit, work_dir: Path | None = None) -> dict:
    """ngspice fit of the model for circuit ``c`` (timing ignored): {"params", "quality"}."""
    c = c.replace(t_unit=50e-12, t_edge=10e-12, t_start=20e-12, t_settle=20e-12)
    wd = None if work_dir is None else Path(work_dir)
    iv = iv_data(c, None if wd is None else wd / "iv")
    iv_pd = iv_data(c, None if wd is None else wd / "iv_pd", dvth_pulldown=0.02)
    p, q1 = fit_stack(c, iv, iv_pd)
    p = dataclasses.replace(p, c_bl=c_bl_estimate(c), c_couple=0.02e-15)
    levels = cal_levels(c, p)
    p, q2 = fit_column(c, p, levels, None if wd is None else wd / "cal")
    return {"params": p.to_json(), "quality": {**q1, **q2}}


def load_fits(path: Path = STUDY_FITS) -> dict:
    if not Path(path).exists():
        return {}
    return json.loads(Path(path).read_text())["fits"]


def params_for(c: Circuit, fits: dict) -> ModelParams | None:
    f = fits.get(fit_key(c))
    return None if f is None else ModelParams.from_json(f["params"])


def write_fits(fits: dict, path: Path = STUDY_FITS) -> None:
    doc = {"about": "numerical AID model fitted to ngspice (PTM 65 nm bulk, BSIM4) at each sizing of the "
                    "design-space study, by analog/characterize.py (python -m analog.characterize)",
           "fits": {k: fits[k] for k in sorted(fits)}}
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(path)


def _main() -> int:
    """Characterize every sizing of the study grid and write ``aid_study_fits.json``."""
    import sys
    import time

    from analog.study import study_circuits
    fits = load_fits()
    todo = [c for c in study_circuits() if fit_key(c) not in fits or "--all" in sys.argv]
    t0 = time.perf_counter()
    for k, c in enumerate(todo):
        fits[fit_key(c)] = characterize(c)
        q = fits[fit_key(c)]["quality"]
        print(f"[{k + 1}/{len(todo)}] L={c.l * 1e9:.0f}n Wa={c.w_access * 1e9:.0f}n Wpd={c.w_pulldown * 1e9:.0f}n "
              f"VDD={c.vdd}: iv rms {100 * q['iv_rms_rel_error']:.2f}%, transient {q['transient_rms_error_mV']:.2f} mV "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        if (k + 1) % 5 == 0:
            write_fits(fits)
    write_fits(fits)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())



