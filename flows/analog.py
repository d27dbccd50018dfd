"""`nnaccel analog aid`: run the AID evaluation (analog/aid.py) and write JSON + plots atomically."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

from flows.outdir import atomic_dir, check_output_dir, write_atomic, write_json_atomic

WHAT = ("aid",)


def analog(what: str, *, mc: int = 1000, use_spice: bool = False, out_dir: Path = Path("out/analog"),
           seed: int = 0, keep_spice: bool = False, images: int | None = None, workers: int | None = 0,
           scheduler: str | None = None, study: bool = False) -> int:
    """``workers`` / ``scheduler``: run the ngspice columns, Monte Carlo runs and the
    network study as jobs on the executor (:mod:`flows.executor`; 0: in this process).
    ``study``: the design-space study (:mod:`analog.study`) instead, into ``out_dir/aid-study.json``."""
    from analog.aid import TARGETS, evaluate
    from golden.nets.digits import TEST_IMAGES
    out_dir = check_output_dir(out_dir, replace=not study)
    if what not in WHAT:
        raise ValueError(f"unknown analog study {what!r} (valid: {', '.join(WHAT)})")
    if not isinstance(mc, int) or mc < 2:
        raise ValueError(f"--mc must be an integer >= 2, not {mc!r}")
    need, have = mc_bytes(mc), _memory_bytes()
    if have and need > have:
        raise ValueError(f"--mc {mc} needs at least {need / 1e9:.1f} GB for its Monte Carlo errors, more than this "
                         f"machine's {have / 1e9:.1f} GB of memory")
    if images is not None and not 0 <= images <= TEST_IMAGES:
        raise ValueError(f"--images must be >= 0 and at most {TEST_IMAGES} (the digits test images), not {images}")
    if not 0 <= seed < 1 << 32:
        raise ValueError(f"--seed must be an integer in 0..{(1 << 32) - 1}, not {seed}")
    log = lambda msg: print(f"analog: {msg}", file=sys.stderr, flush=True)
    if study:
        return analog_study(mc=mc, use_spice=use_spice, out_dir=Path(out_dir), seed=seed, images=images,
                            workers=workers, scheduler=scheduler, log=log)
    with atomic_dir(out_dir) as tmp, contextlib.ExitStack() as stack:
        run = None
        if workers != 0 or scheduler:
            from flows.executor import Executor
            ex = stack.enter_context(Executor(workers, scheduler, preload=("analog.aid",)))
            log(f"executor: {ex.describe()}")
            run = ex.runner("analog", resources={"ngspice": 1})
        res = evaluate(mc=mc, use_spice=use_spice, work_dir=(tmp / "spice") if keep_spice else None, seed=seed,
                       images=images, log=log, run=run)
        plots = write_plots(res, tmp)
        s = res["summary"]
        checks = _targets(s, TARGETS)
        doc = {"command": f"nnaccel analog {what}" + (" --spice" if use_spice else "") + f" --mc {mc}",
               "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "machine": platform.platform(), "seconds": res["seconds"],
               "circuit": res["circuit"], "fit": res["fit"], "summary": s, "targets": checks,
               "transfer": {k: np.asarray(v).round(6).tolist() for k, v in res["arrays"].items()
                            if k.endswith(("_model", "_spice")) or k == "ideal"},
               "mc_sigma": {k: np.asarray(v).round(5).tolist() for k, v in res["arrays"].items()
                            if k.endswith("_mc_sigma")},
               "plots": plots}
        (tmp / f"{what}.json").write_text(json.dumps(doc, indent=2, default=_jsonable) + "\n")
    out = Path(out_dir)
    for line in _lines(s, checks):
        print(line)
    print(f"wrote {out / (what + '.json')} and {len(plots)} plots in {out}")
    return 0


def mc_bytes(mc: int) -> int:
    """Memory the Monte Carlo study keeps at least: an (mc, 16, 16) float64 error array per design."""
    return 2 * mc * 16 * 16 * 8


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def _targets(s: dict, t: dict) -> dict:
    b, a = s["designs"]["baseline"], s["designs"]["aid"]
    out = {}
    gain = s.get("snr_gain_spice_db")
    out["snr_gain_db"] = {"target": f">= {t['snr_gain_db']}", "value": gain,
                          "source": "ngspice" if gain is not None else "not measured (needs --spice)",
                          "model_value": s["snr_gain_model_db"],
                          "met": None if gain is None else gain >= t["snr_gain_db"]}
    if "energy_pj_per_op" in a:
        e = max(a["energy_pj_per_op"]["total"], b["energy_pj_per_op"]["total"])
        out["energy_pj_per_op"] = {"target": f"<= {t['energy_pj_per_op']}", "value": a["energy_pj_per_op"]["total"],
                                   "baseline_value": b["energy_pj_per_op"]["total"],
                                   "met": a["energy_pj_per_op"]["total"] <= t["energy_pj_per_op"]}
    else:
        out["energy_pj_per_op"] = {"target": f"<= {t['energy_pj_per_op']}", "value": None,
                                   "source": "not measured (needs --spice)", "met": None}
    out["mc_sigma_worst"] = {"target": f"< {t['mc_sigma_worst']}", "value": a["mc"]["sigma_worst"],
                             "baseline_value": b["mc"]["sigma_worst"],
                             "met": a["mc"]["sigma_worst"] < t["mc_sigma_worst"]}
    if "model_vs_spice_rms_fs" in a:
        worst = max(a["model_vs_spice_rms_fs"], b["model_vs_spice_rms_fs"])
        out["model_vs_spice_rms_fs"] = {"target": f"<= {t['model_vs_spice_rms_fs']}", "value": worst,
                                        "met": worst <= t["model_vs_spice_rms_fs"]}
    n, sec = a["mc"]["samples"], a["mc"]["seconds"]
    per1000 = sec * 1000 / n
    out["mc_1000_seconds"] = {"target": f"<= {t['mc_1000_seconds']}", "value": per1000,
                              "met": per1000 <= t["mc_1000_seconds"]}
    return out


def _fmt(v, nd=3):
    return "-" if v is None else f"{v:.{nd}f}"


def _lines(s: dict, checks: dict) -> list[str]:
    lines = []
    for name in ("baseline", "aid"):
        d = s["designs"][name]
        lines.append(f"{name:9s} SNR model {d['snr_model_db']:.2f} dB"
                     + (f", ngspice {d['snr_spice_db']:.2f} dB (model vs ngspice rms "
                        f"{100 * d['model_vs_spice_rms_fs']:.2f}% FS)" if "snr_spice_db" in d else "")
                     + (f", energy {d['energy_pj_per_op']['total']:.4f} pJ/op" if "energy_pj_per_op" in d else "")
                     + f", MC worst sigma {d['mc']['sigma_worst']:.4f}")
    o = s["oracle_dac"]
    lines.append(f"oracle word-line DAC (upper bound, model): {o['snr_model_db']:.2f} dB, at most "
                 f"{o['max_gain_over_baseline_db']:.2f} dB over the baseline")
    if "mc_spice_check" in s:
        m = s["mc_spice_check"]
        lines.append(f"MC cross-check, {m['samples']} ngspice samples at a={m['pair_ab'][0]}, b={m['pair_ab'][1]}: "
                     f"sigma {m['sigma_spice']:.4f} (ngspice) vs {m['sigma_model']:.4f} (model), "
                     f"per-sample rms gap {m['rms_gap']:.4f}")
    if "network" in s:
        n = s["network"]
        lines.append(f"network ({n['images']} digits test images): float {n['float']:.1f}%, digital 4-bit "
                     f"{n['digital_4bit']:.1f}%, baseline {n['baseline_nominal']:.1f}% "
                     f"({n['baseline_refcol']:.1f}% with a reference column, {n['baseline_mismatch']:.1f}% with "
                     f"mismatch), AID {n['aid_nominal']:.1f}% ({n['aid_refcol']:.1f}%, {n['aid_mismatch']:.1f}%)")
    for k, v in checks.items():
        met = {True: "met", False: "NOT met", None: "not measured"}[v["met"]]
        lines.append(f"target {k}: {v['target']}, got {_fmt(v['value'])} -> {met}")
    return lines


def write_plots(res: dict, d: Path) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arr = res["arrays"]
    names = ("baseline", "aid")
    plots = []
    a = np.arange(16)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, name in zip(axes, names):
        for b in range(1, 16, 2):
            col = plt.cm.viridis(b / 15)
            ax.plot(a, 1e3 * arr[f"{name}_model"][:, b], color=col, label=f"b={b}")
            if f"{name}_spice" in arr:
                ax.plot(a, 1e3 * arr[f"{name}_spice"][:, b], "o", ms=3, color=col)
        ax.set_title(f"{name}: bit-line drop (lines: model, dots: ngspice)")
        ax.set_xlabel("operand a")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("VDD - V(BLB) at sample, mV")
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(d / "transfer.png", dpi=110)
    plt.close(fig)
    plots.append("transfer.png")

    src = "spice" if "aid_spice" in arr else "model"
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    ideal = arr["ideal"]
    from analog.analysis import gain_calibration, snr_db
    errs = {}
    for name in names:
        y = arr[f"{name}_{src}"]
        errs[name] = (gain_calibration(ideal, y) * y - ideal) / 225
    lim = max(np.abs(e).max() for e in errs.values())
    for ax, name in zip(axes, names):
        im = ax.imshow(errs[name], origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(f"{name} ({src}): (g*y - a*b)/225, SNR {snr_db(ideal, arr[f'{name}_{src}']):.1f} dB",
                     fontsize=9)
        ax.set_xlabel("operand b")
        ax.set_ylabel("operand a")
    fig.colorbar(im, ax=axes, shrink=0.8)
    fig.savefig(d / "error_heatmap.png", dpi=110)
    plt.close(fig)
    plots.append("error_heatmap.png")

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, name in zip(axes, names):
        e = arr[f"{name}_mc_errors"]
        sig = arr[f"{name}_mc_sigma"]
        wa, wb = np.unravel_index(np.argmax(sig), sig.shape)
        ax.hist(e[:, wa, wb], bins=40, alpha=0.7, label=f"worst pair a={wa}, b={wb} (sigma {sig[wa, wb]:.3f})")
        ax.hist(e[:, 15, 15], bins=40, alpha=0.5, label=f"a=b=15 (sigma {sig[15, 15]:.3f})")
        ax.set_title(f"{name}: Monte Carlo normalized output error ({e.shape[0]} samples)", fontsize=9)
        ax.set_xlabel("(g*y - a*b) / 225")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(d / "mc_hist.png", dpi=110)
    plt.close(fig)
    plots.append("mc_hist.png")

    if "aid_energy" in arr:
        fig, ax = plt.subplots(figsize=(6, 4))
        comps = ("word_line", "cell_array", "preset")
        bottom = np.zeros(2)
        for comp in comps:
            vals = np.array([arr[f"{n}_energy"][comp].mean() * 1e15 for n in names])
            ax.bar(names, vals, bottom=bottom, label=comp.replace("_", " "))
            bottom += vals
        ax.set_ylabel("energy per operation (mean of 256 pairs), fJ")
        ax.set_title("energy per multiply (ngspice, 1 V; paper: 523 fJ)", fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(d / "energy.png", dpi=110)
        plt.close(fig)
        plots.append("energy.png")
    return plots


# --- the design-space study (analog/study.py) --------------------------------------------------------

def analog_study(*, mc: int, use_spice: bool, out_dir: Path, seed: int = 0, images: int | None = None,
                 workers: int | None = 0, scheduler: str | None = None, log=lambda msg: None,
                 points: list | None = None, swing_fracs=None) -> int:
    """``nnaccel analog aid --study``: grid points, Monte Carlo checks, network and ngspice spot
    checks as executor jobs; ``out_dir/aid-study.json`` and ``out_dir/study_*.png`` each written
    atomically (the rest of ``out_dir`` is left alone)."""
    from analog.study import SWING_FRACS, evaluate_study
    with contextlib.ExitStack() as stack:
        run = None
        if workers != 0 or scheduler:
            from flows.executor import Executor
            ex = stack.enter_context(Executor(workers, scheduler, preload=("analog.study",)))
            log(f"executor: {ex.describe()}")
            run = ex.runner("analog study", resources={"ngspice": 1})
        res = evaluate_study(points=points, swing_fracs=swing_fracs or SWING_FRACS, use_spice=use_spice, mc=mc,
                             seed=seed, images=images, log=log, run=run)
    s = res["summary"]
    plots = write_study_plots(res, out_dir)
    doc = {"command": "nnaccel analog aid --study" + (" --spice" if use_spice else "") + f" --mc {mc}",
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "machine": platform.platform(), "seconds": res["seconds"], "summary": s,
           "points": res["points"], "fits": res["fits"], "plots": plots}
    write_json_atomic(out_dir / "aid-study.json", json.loads(json.dumps(doc, default=_jsonable)))
    for line in study_lines(s):
        print(line)
    print(f"wrote {out_dir / 'aid-study.json'} and {len(plots)} plots in {out_dir} ({res['seconds']:.0f} s)")
    return 0


def study_lines(s: dict) -> list[str]:
    g, p, sz, e = s["gain"], s["paper_style"], s["sizing"], s["energy"]["at_max_gain"]
    lines = [f"max AID gain over the fair baseline (model): {g['max_db']:+.2f} dB at {g['at']} "
             f"(AID {g['at_aid_snr_db']:.2f} dB, baseline {g['at_baseline_snr_db']:.2f} dB, "
             f"oracle DAC {g['at_oracle_snr_db']:.2f} dB)",
             f"largest oracle bound over the baseline: {g['bound_max_db']:+.2f} dB at {g['bound_max_at']}",
             f"paper-style baseline (linear 0..VDD): AID gains {p['at_max_gain_point']['gain_vs_paper_style_db']:+.2f} "
             f"dB there (max on the grid {p['max_gain_vs_paper_style_db']:+.2f} dB)",
             f"energy per multiply-accumulate-preset at that point: {e['aid']['total_pJ']:.3f} pJ "
             + ", ".join(f"{k} {v:.4f}" for k, v in e['aid']['parts_pJ'].items()) + " (paper: 0.523 pJ)"]
    if "chosen" in sz:
        lines.append(f"sigma < 0.086: {sz['chosen']}, MC sigma {sz['sigma_mc']:.4f}, cell {sz['cell_area_um2']:.3f} um^2 "
                     f"({sz['area_cost_x']:.2f}x nominal)")
    else:
        lines.append("sigma < 0.086: no grid sizing reaches it")
    if "network" in s:
        n = s["network"]
        lines.append(f"network at {n['at']}: digital 4-bit {n['digital_4bit']:.1f}%, AID {n['aid_nominal']:.1f}% "
                     f"(reference column {n['aid_refcol']:.1f}%, mismatch {n['aid_mismatch']:.1f}%), baseline "
                     f"{n['baseline_nominal']:.1f}% ({n['baseline_refcol']:.1f}%, {n['baseline_mismatch']:.1f}%)")
    for tag, o in s.get("spot_checks", {}).items():
        lines.append(f"ngspice spot check ({tag}, {o['label']}): gain {o['gain_spice_db']:+.2f} dB "
                     f"(AID {o['aid']['snr_spice_db']:.2f}, baseline {o['baseline']['snr_spice_db']:.2f}, "
                     f"paper-style {o['paper_style']['snr_spice_db']:.2f} dB)")
    for k, v in s["verdicts"].items():
        lines.append(f"target {k} {v['target']}: {v['statement']}")
    return lines


def _save(fig, path: Path) -> None:
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    write_atomic(path, buf.getvalue())


def write_study_plots(res: dict, d: Path) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [r for r in res["points"] if r.get("reachable")]
    s = res["summary"]
    plots = []
    ls = sorted({round(r["point"]["l"] * 1e9) for r in pts})
    fracs = s["grid"]["swing_fracs_of_vdd"]

    def grid_of(sel, key):
        m = np.full((len(ls), len(fracs)), np.nan)
        for r in sel:
            i = ls.index(round(r["point"]["l"] * 1e9))
            for sw in r["swings"]:
                if sw.get("reachable"):
                    j = fracs.index(sw["swing_frac"])
                    m[i, j] = np.nanmax([m[i, j], sw[key]])
        return m
    nom = [r for r in pts if r["point"]["vdd"] == 1.0 and r["point"]["t_unit"] == 50e-12
           and r["point"]["w_access"] == 150e-9 and r["point"]["w_pulldown"] == 300e-9]
    panels = [("gain (dB), nominal W, 1 V, 50 ps", grid_of(nom, "gain_db")),
              ("max gain (dB) over t_unit, VDD, widths", grid_of(pts, "gain_db")),
              ("oracle bound over baseline (dB), max", grid_of(pts, "bound_db"))]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), constrained_layout=True)
    vmax = np.nanmax([np.nanmax(m) for _, m in panels])
    for k, (ax, (title, m)) in enumerate(zip(axes, panels)):
        im = ax.imshow(m, origin="lower", aspect="auto", cmap="viridis", vmin=min(0, np.nanmin(m)), vmax=vmax)
        ax.set_xticks(range(len(fracs)), [f"{f:.2f}" for f in fracs])
        ax.set_yticks(range(len(ls)), [str(x) for x in ls])
        ax.set_xlabel("full-scale swing / VDD")
        if k == 0:
            ax.set_ylabel("cell channel length L, nm")
        ax.set_title(title, fontsize=9)
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                if np.isfinite(m[i, j]):
                    ax.text(j, i, f"{m[i, j]:.1f}", ha="center", va="center", fontsize=7,
                            color="k" if m[i, j] >= 10.77 else "w", fontweight="bold" if m[i, j] >= 10.77 else None)
    fig.colorbar(im, ax=axes, shrink=0.8, label="dB (bold: >= +10.77 dB, the paper's gain)")
    fig.suptitle("AID SNR gain over the fair linear-DAC baseline at a fixed swing (model)", fontsize=10)
    _save(fig, d / "study_gain_map.png")
    plt.close(fig)
    plots.append("study_gain_map.png")

    fig, ax = plt.subplots(figsize=(7, 4.6))
    cmap = plt.cm.plasma
    markers = {25: "v", 50: "o", 100: "s", 200: "D"}
    for r in pts:
        tu = round(r["point"]["t_unit"] * 1e12)
        ax.scatter(r["cell_area_um2"], r["aid"]["sigma_worst_linear"], color=cmap(ls.index(round(r["point"]["l"] * 1e9))
                   / max(1, len(ls) - 1) * 0.9), marker=markers.get(tu, "o"), s=22, alpha=0.8)
    for x in s.get("mc_checks", []):
        ax.scatter(x["cell_area_um2"], x["aid_sigma_mc"], marker="x", color="k", s=40)
    ax.axhline(0.086, color="r", ls="--", lw=1, label="paper: 0.086")
    for i, l in enumerate(ls):
        ax.scatter([], [], color=cmap(i / max(1, len(ls) - 1) * 0.9), label=f"L {l} nm")
    for tu, mk in markers.items():
        ax.scatter([], [], color="gray", marker=mk, label=f"{tu} ps")
    ax.scatter([], [], marker="x", color="k", label="Monte Carlo check")
    ax.set_xlabel("6T cell area, um^2 (footprint model)")
    ax.set_ylabel("AID worst-case sigma of normalized error")
    ax.set_yscale("log")
    ax.set_title(f"mismatch vs cell area, A_VT {s['sizing']['a_vt_mV_um']:.1f} mV um (linearized; x: MC)", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    _save(fig, d / "study_sigma_area.png")
    plt.close(fig)
    plots.append("study_sigma_area.png")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    sel = [r for r in pts if r["point"]["vdd"] == 1.0 and r["point"]["w_access"] == 150e-9
           and r["point"]["w_pulldown"] == 300e-9]
    for ax, tu in zip(axes, (50, 200)):
        rr = sorted([r for r in sel if round(r["point"]["t_unit"] * 1e12) == tu], key=lambda r: r["point"]["l"])
        x = [r["point"]["l"] * 1e9 for r in rr]
        for key, lab in (("baseline", "fair baseline"), ("aid", "AID"), ("oracle", "oracle DAC (bound)"),
                         ("paper_style", "paper-style linear 0..VDD")):
            ax.plot(x, [r[key]["snr_db"] for r in rr], "o-", label=lab)
        ax.set_title(f"SNR vs L (nominal W, 1 V, t_unit {tu} ps; best swing <= VDD/2)", fontsize=9)
        ax.set_xlabel("L, nm")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("SNR, dB (model, ideal ADC)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    _save(fig, d / "study_snr_vs_L.png")
    plt.close(fig)
    plots.append("study_snr_vs_L.png")

    en = s["energy"]
    boxes = [(k, en[k]) for k in ("nominal", "at_max_gain", "at_sizing") if k in en]
    names = [f"{k}\n{b['label'].replace(', VDD', chr(10) + 'VDD')}" for k, b in boxes]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    ax = axes[0]
    comps = ("preset", "word_line", "cell_array", "dac", "adc")
    bottom = np.zeros(len(boxes))
    for comp in comps:
        vals = np.array([b["aid"]["parts_pJ"][comp] for _, b in boxes])
        ax.bar(names, vals, bottom=bottom, label=comp.replace("_", " "))
        bottom += vals
    for i, (_, b) in enumerate(boxes):
        ax.text(i, bottom[i], f"{b['aid']['total_pJ']:.3f} pJ", ha="center", va="bottom", fontsize=8)
        col = b["aid"]["total_pJ"] - b["aid"]["parts_pJ"]["adc"]
        for key, mk in (("best", "v"), ("fast", "^")):
            ax.scatter(i, col + b["aid"]["adc_alternatives_pJ"][key], marker=mk, color="k", zorder=3,
                       label=f"ADC at {en['adc_fom'][key]['fom_fJ']} fJ/conv-step" if i == 0 else None)
    ax.axhline(0.523, color="r", ls="--", lw=1, label="paper: 0.523 pJ")
    ax.set_yscale("log")
    ax.set_ylabel("energy per multiply-accumulate-preset, pJ")
    ax.set_title(f"AID total incl. 8-bit SAR ADC ({en['adc_fom']['assumed']['fom_fJ']} fJ/conv-step)", fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(fontsize=7)
    ax = axes[1]
    bottom = np.zeros(len(boxes))
    for comp in comps[:-1]:
        vals = np.array([b["aid"]["parts_pJ"][comp] * 1e3 for _, b in boxes])
        ax.bar(names, vals, bottom=bottom, label=comp.replace("_", " "))
        bottom += vals
    ax.set_ylabel("fJ")
    ax.set_title("without the ADC: bit-line preset, word lines, cell (ngspice only), DAC share", fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, d / "study_energy.png")
    plt.close(fig)
    plots.append("study_energy.png")
    return plots
