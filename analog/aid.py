"""The AID evaluation: design both word-line DACs, transfer curves, SNR, agreement, Monte Carlo, energy.

:func:`evaluate` is what ``nnaccel analog aid`` runs; it returns plain data (numpy
arrays for the plots, JSON-able figures in ``summary``). The flow writes the files.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from analog import analysis as an
from analog import spice
from analog.circuit import A_MAX, FULL_SCALE, Adc, Circuit
from analog.energy import energies
from analog.model import ModelParams, load_params, simulate
from golden.jobs import serial

TARGETS = {"snr_gain_db": 10.77, "energy_pj_per_op": 0.523, "mc_sigma_worst": 0.086,
           "model_vs_spice_rms_fs": 0.02, "mc_1000_seconds": 120.0}
ADC_BITS = 8
SPICE_MC = 64


def spice_transfer(c: Circuit, dac, work_dir: Path | None, name: str):
    """ngspice drops (16, 16) and per-pair energies of a DAC design: one run, 256 columns."""
    A, B = an.grid()
    levels = dac.levels(A).ravel()
    pts = [spice.MacPoint(float(v), int(b)) for v, b in zip(levels, B.ravel())]
    wd = None if work_dir is None else Path(work_dir) / name
    out = spice.run(spice.mac_netlist(c, pts), work_dir=wd, name=name)
    t = out["time"]
    dv = np.array([c.vdd - np.interp(c.t_sample, t, out[f"v(blb_{k})"]) for k in range(len(pts))])
    e = energies(c, out, [float(v) for v in levels])
    return dv.reshape(A.shape), {k: v.reshape(A.shape) for k, v in e.items()}


def spice_mc_check(c: Circuit, p: ModelParams, dac, gain: float, a: int, b: int, n: int, seed: int,
                   work_dir: Path | None) -> dict:
    """The same V_th draws (access and pull-down of the 4 cells; C_BL nominal) through ngspice and
    the model, for one pair: sigma of the normalized error both ways and their per-sample rms gap."""
    rng = np.random.default_rng(seed + 99)
    s_acc = an.A_VT / np.sqrt(c.w_access * c.l)
    s_pd = an.A_VT / np.sqrt(c.w_pulldown * c.l)
    dva, dvp = rng.normal(0, s_acc, (n, 4)), rng.normal(0, s_pd, (n, 4))
    level = float(dac.levels(a))
    pts = [spice.MacPoint(level, b, tuple(map(float, x)), tuple(map(float, y))) for x, y in zip(dva, dvp)]
    out = spice.run(spice.mac_netlist(c, pts), work_dir=None if work_dir is None else Path(work_dir) / "mc",
                    name="mc")
    dv_s = np.array([c.vdd - np.interp(c.t_sample, out["time"], out[f"v(blb_{k})"]) for k in range(n)])
    dv_m = simulate(c, p, level, b, dvth_access=dva, dvth_pulldown=dvp)
    e_s, e_m = (gain * dv_s - a * b) / FULL_SCALE, (gain * dv_m - a * b) / FULL_SCALE
    return {"pair_ab": [a, b], "samples": n, "sigma_spice": float(e_s.std(ddof=1)),
            "sigma_model": float(e_m.std(ddof=1)), "rms_gap": float(np.sqrt(np.mean((e_s - e_m) ** 2))),
            "note": "same V_th draws in ngspice (delvto) and the model; C_BL nominal"}


def _adc_snr(ideal, dv, full_scale):
    return an.snr_db(ideal, Adc(full_scale, ADC_BITS).convert(dv))


def job(j: tuple):
    """One slow measurement of :func:`evaluate` (a picklable tuple)."""
    kind = j[0]
    if kind == "spice":
        return spice_transfer(*j[1:])
    if kind == "mc":
        _, c, p, dac, gain, n, seed, a_vt = j
        t = time.perf_counter()
        r = an.monte_carlo(c, p, dac, gain, n, seed=seed, **({} if a_vt is None else {"a_vt": a_vt}))
        return r, time.perf_counter() - t
    if kind == "spice_mc":
        return spice_mc_check(*j[1:])
    if kind == "network":
        from analog import network
        return network.evaluate(j[1], seed=j[2], n_images=j[3])
    raise ValueError(f"unknown analog job {kind!r}")


def evaluate(c: Circuit | None = None, *, mc: int = 1000, use_spice: bool = False, work_dir: Path | None = None,
             seed: int = 0, dv_max: float = 0.5, images: int | None = None, log=lambda msg: None,
             run=None) -> dict:
    """``images``: test images for the network-level study (None: the whole split, 0: skip).
    ``run(fn, items, labels) -> [fn(item) ...]`` runs the slow measurements (ngspice
    columns, Monte Carlo runs, the network study): one after another by default;
    ``nnaccel analog`` passes the executor's."""
    if not isinstance(mc, int) or mc < 2:
        raise ValueError(f"--mc must be an integer >= 2, not {mc!r}")
    if not 0 < dv_max < 1:
        raise ValueError(f"dv_max must be in (0, 1) V, not {dv_max!r}")
    c = c or Circuit()
    res: dict = {"circuit": dataclasses.asdict(c), "targets": TARGETS}
    t0 = time.perf_counter()
    if use_spice:
        from analog.fit import fit_all
        log("fitting the numerical model to ngspice (I-V sweeps + calibration transient)")
        p, quality = fit_all(c, None if work_dir is None else Path(work_dir) / "fit", out_file=None)
        res["fit"] = {"source": "ngspice, this run", "params": p.to_json(), "quality": quality}
    else:
        import json
        from analog.model import FIT_FILE
        shipped = json.loads(FIT_FILE.read_text())["circuit"]
        if shipped != dataclasses.asdict(c):
            diff = sorted(k for k in shipped if shipped[k] != dataclasses.asdict(c).get(k))
            raise ValueError(f"the shipped model fit is for another circuit (differs in {', '.join(diff)}); "
                             "refit with --spice")
        p = load_params()
        res["fit"] = {"source": "analog/models/aid_fit.json (shipped ngspice fit)", "params": p.to_json()}
    log("designing both word-line DACs on the model (each maximizes its own SNR)")
    table = an.LevelTable(c, p)
    base = an.design_baseline(c, p, dv_max, table)
    aid = an.design_aid(c, p, dv_max, table=table)
    A, B = an.grid()
    ideal = A * B
    designs = {"baseline": base, "aid": aid}
    arrays: dict = {"ideal": ideal}
    summ: dict = {"dv_max_V": dv_max, "adc_bits": ADC_BITS, "designs": {}}
    for name, dac in designs.items():
        dv = an.transfer(c, p, dac)
        g = an.gain_calibration(ideal, dv)
        arrays[f"{name}_model"] = dv
        d = {"dac": dac.describe(), "levels_V": [float(x) for x in dac.levels(np.arange(A_MAX + 1))],
             "full_scale_drop_V": float(dv[-1, -1]), "gain_per_V": g,
             "snr_model_db": an.snr_db(ideal, dv),
             "snr_model_adc_db": _adc_snr(ideal, dv, float(dv.max())),
             "max_abs_error_model_fs": float(np.abs(g * dv - ideal).max() / FULL_SCALE)}
        summ["designs"][name] = d
    summ["snr_gain_model_db"] = summ["designs"]["aid"]["snr_model_db"] - summ["designs"]["baseline"]["snr_model_db"]
    lv, s_or = an.oracle_dac(c, p, dv_max, table)
    summ["oracle_dac"] = {"snr_model_db": s_or, "levels_V": [float(x) for x in lv],
                          "max_gain_over_baseline_db": s_or - summ["designs"]["baseline"]["snr_model_db"],
                          "note": "best SNR any 16-level word-line DAC reaches on this column (model): "
                                  "bounds what a word-line linearization like AID can gain"}
    summ["swing_sweep"] = [{k: v for k, v in r.items() if k.endswith("db") or k == "dv_fs"}
                           for r in an.baseline_sweep(c, p, np.arange(0.1, dv_max + 1e-9, 0.1), table)]

    # the slow measurements are jobs (ngspice columns, Monte Carlo runs): `run` runs them,
    # here one after another, on the executor's workers under `nnaccel analog`
    run = run or serial(log)
    jobs = [("spice", c, dac, work_dir, name) for name, dac in designs.items() if use_spice]
    labels = [f"ngspice: 256 pairs of the {name} design" for name in designs if use_spice]
    jobs += [("mc", c, p, dac, summ["designs"][name]["gain_per_V"], mc, seed, None) for name, dac in designs.items()]
    labels += [f"Monte Carlo ({mc} samples) of the {name} design" for name in designs]
    a_vts = (2.0e-9, 2.5e-9, 3.5e-9, 4.5e-9)
    jobs += [("mc", c, p, aid, summ["designs"]["aid"]["gain_per_V"], min(200, mc), seed + 1, a_vt) for a_vt in a_vts]
    labels += [f"Monte Carlo ({min(200, mc)} samples) of the aid design, A_VT {a_vt * 1e9:.1f} mV um"
               for a_vt in a_vts]
    done = run(job, jobs, labels)
    spice_out = dict(zip(designs, done[:len(designs)])) if use_spice else {}
    mc_out = dict(zip(designs, done[len(spice_out):len(spice_out) + len(designs)]))
    sens_out = done[len(spice_out) + len(designs):]

    for name, (dv, e) in spice_out.items():
        arrays[f"{name}_spice"] = dv
        arrays[f"{name}_energy"] = e
        d = summ["designs"][name]
        mod = arrays[f"{name}_model"]
        fs = float(dv[-1, -1])
        d["snr_spice_db"] = an.snr_db(ideal, dv)
        d["snr_spice_adc_db"] = _adc_snr(ideal, dv, float(dv.max()))
        d["model_vs_spice_rms_fs"] = float(np.sqrt(np.mean((mod - dv) ** 2)) / fs)
        d["model_vs_spice_max_fs"] = float(np.abs(mod - dv).max() / fs)
        d["energy_pj_per_op"] = {k: float(v.mean() * 1e12) for k, v in e.items()}
        d["energy_pj_per_op_max"] = float(e["total"].max() * 1e12)
    if use_spice:
        summ["snr_gain_spice_db"] = (summ["designs"]["aid"]["snr_spice_db"]
                                     - summ["designs"]["baseline"]["snr_spice_db"])

    for name in designs:
        d = summ["designs"][name]
        r, dt = mc_out[name]
        arrays[f"{name}_mc_errors"] = r["errors"]
        arrays[f"{name}_mc_sigma"] = r["sigma"]
        d["mc"] = {"samples": mc, "seconds": dt, "sigma_worst": r["sigma_worst"], "worst_pair_ab": r["worst_pair"],
                   "sigma_mean": float(r["sigma"].mean()),
                   "mean_error_worst_abs": float(np.abs(r["errors"].mean(0)).max()),
                   "a_vt_mV_um": an.A_VT * 1e9, "sigma_vth_access_mV": r["sigma_vth_access_mV"],
                   "sigma_vth_pulldown_mV": r["sigma_vth_pulldown_mV"], "sigma_c_bl_rel": an.SIGMA_C_REL}
    summ["mc_a_vt_sensitivity"] = [{"a_vt_mV_um": a_vt * 1e9, "samples": min(200, mc),
                                    "aid_sigma_worst": r["sigma_worst"]} for a_vt, (r, _) in zip(a_vts, sens_out)]

    late, labels = [], []
    if use_spice:
        d = summ["designs"]["aid"]
        a_w, b_w = d["mc"]["worst_pair_ab"]
        late.append(("spice_mc", c, p, aid, d["gain_per_V"], a_w, b_w, SPICE_MC, seed, work_dir))
        labels.append(f"ngspice Monte Carlo cross-check: {SPICE_MC} samples of the aid design at a={a_w}, b={b_w}")
    if images != 0:
        tables = {}
        for name in designs:
            dv = arrays[f"{name}_model"]
            codes = Adc(float(dv.max()), ADC_BITS).convert(dv)
            ref = dv - dv[0:1, :]
            tables[name] = (an.gain_calibration(ideal, codes) * codes, arrays[f"{name}_mc_errors"],
                            an.gain_calibration(ideal, ref) * ref)
        late.append(("network", tables, seed, images))
        labels.append("network level: digits CNN with 4-bit operands through both analog designs")
    for j, out in zip(late, run(job, late, labels) if late else []):
        if j[0] == "spice_mc":
            summ["mc_spice_check"] = out
        else:
            summ["network"] = out
            summ["network"]["note"] = ("accuracy %, digits test split; analog products g*ADC8(dV) from the model; "
                                       "'mismatch' draws each product's error from its pair's Monte Carlo samples")
    res["summary"] = summ
    res["seconds"] = time.perf_counter() - t0
    res["arrays"] = arrays
    return res
