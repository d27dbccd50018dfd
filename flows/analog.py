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

from flows.outdir import atomic_dir, check_output_dir

WHAT = ("aid",)


def analog(what: str, *, mc: int = 1000, use_spice: bool = False, out_dir: Path = Path("out/analog"),
           seed: int = 0, keep_spice: bool = False, images: int | None = None, workers: int | None = 0,
           scheduler: str | None = None) -> int:
    """``workers`` / ``scheduler``: run the ngspice columns, Monte Carlo runs and the
    network study as jobs on the executor (:mod:`flows.executor`; 0: in this process)."""
    from analog.aid import TARGETS, evaluate
    from golden.nets.digits import TEST_IMAGES
    out_dir = check_output_dir(out_dir, replace=True)
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
