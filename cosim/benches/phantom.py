"""`nnaccel bench phantom`: RTL-measured speedup of the Phantom core and of a Phantom-2D mesh,
and the VGG16 / MobileNet-v1 study.

Part 1 (core RTL): every figure comes from co-simulating the generated RTL (outputs
checked bit-exactly on every run) and its counters: for each layer the same core runs
the sparse chunk stream and the dense-mode stream (masks all ones, zeros
multiplied). The bound is the work: dense MACs / useful (non-zero x non-zero) MACs.
The core's fast model (sampled positions) is checked against every run.

Part 2 (mesh RTL): the demo net's layers on a 4x4 Phantom-2D mesh, sparse with level-2
balancing on and off, and dense; the mesh's cycles must equal the cycle-exact mesh
model, and the fast mesh model (sampled positions) is checked against them.

Part 3 (model): the fast mesh model is checked against the exact mesh model on whole
synthetic layers at the study's mesh, then runs VGG16 / MobileNet-v1 at published
densities (golden/nets/densities.json), with each balancing level on and off
(:func:`net_study`, on masks drawn by :func:`synthetic_masks`).

The cycle models are in :mod:`rtl.phantom.model` (core: exact and fast) and
:mod:`rtl.phantom2d.model` (mesh: cycle-exact and fast); the runs go through the
testbenches :mod:`cosim.testbenches.phantom` and :mod:`cosim.testbenches.phantom2d`.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

from cosim.engines import run_layer
from cosim.testbenches import phantom2d as mesh_tb
from cosim.testbenches.phantom import random_layer
from golden.jobs import serial
from golden.nets import digits
from rtl.export import generate
from rtl.phantom2d import mapper as mesh_mapper
from rtl.phantom2d.config import Phantom2DConfig
from rtl.phantom2d.model import dense_layer, mesh_layer
from rtl.phantom.model import LayerMasks, core_layer, masks_from_vectors

DENSITIES = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)  # weight = activation density of the sweep layer
LAYER = dict(kind="conv", n=1, c=16, h=8, w=8, o=16, k=3, stride=1, padding=1)
IMAGES = 8  # demo-net images per layer
MESH_RTL = Phantom2DConfig(rows=2, cols=4, chunk=64, values=16)  # fits the harness's 4096-bit input word
STUDY = Phantom2DConfig(rows=4, cols=4, chunk=256, values=64)  # the VGG16 / MobileNet-v1 mesh (model)
MODEL_BUDGET = 4_000  # sampled mask rows x chunks when checking the fast models against RTL
STUDY_BUDGET = 60_000  # ... in the VGG16 / MobileNet-v1 study (and the mesh demo: whole layers)
WEIGHT_CV = 0.4  # per-filter weight-density spread of the synthetic VGG16 / MobileNet masks
CHECK_LAYERS = (  # whole synthetic layers on which the fast mesh model meets the exact one
    dict(name="conv 128->256 14x14", kind="conv", c=128, h=14, w=14, o=256, k=3, stride=1, padding=1, wd=0.3, ad=0.4),
    dict(name="conv 64->64 28x28", kind="conv", c=64, h=28, w=28, o=64, k=3, stride=1, padding=1, wd=0.5, ad=0.5),
    dict(name="pointwise 256->256 14x14", kind="conv", c=256, h=14, w=14, o=256, k=1, stride=1, padding=0, wd=0.5,
         ad=0.5),
    dict(name="depthwise 256 28x28", kind="depthwise", c=256, o=256, h=28, w=28, k=3, stride=1, padding=1, wd=1.0,
         ad=0.5),
    dict(name="fc 4096->1000", kind="linear", c=4096, o=1000, h=1, w=1, k=1, stride=1, padding=0, wd=0.1, ad=0.4),
)


def _pair(sparse, dense, vec) -> dict:
    rs = {name: run_layer(d, vec) for name, d in (("sparse", sparse), ("dense", dense))}
    for name, r in rs.items():
        if not r.passed:
            raise RuntimeError(f"bench run {vec.name} ({name}) failed: {r.summary()} {r.extra.get('error', '')}")
    s, d = rs["sparse"], rs["dense"]
    work = s.extra["work"]
    bound = work["dense_macs"] / max(1, work["useful_macs"])
    speedup = d.cycles / s.cycles
    st = s.extra["stats"]
    # per run the harness adds 2 cycles to the model (reset to first input)
    exact_err = {n: abs(r.cycles - (r.extra["model"]["cycles"] + 2 * r.extra.get("batches", 1))) / r.cycles
                 for n, r in rs.items()}
    # the fast model on sampled positions, as it runs on large layers
    fast = core_layer(masks_from_vectors(vec), sparse.config, budget=MODEL_BUDGET)
    fast_err = {"sparse": abs(fast["cycles"] + 2 - s.cycles) / s.cycles,
                "dense": abs(fast["dense_cycles"] + 2 - d.cycles) / d.cycles}
    return {"layer": vec.name, "dense_macs": work["dense_macs"], "useful_macs": work["useful_macs"],
            "weight_density": work["weight_density"], "act_density": work["act_density"],
            "bound": bound, "sparse_cycles": s.cycles, "dense_cycles": d.cycles, "speedup": speedup,
            "fraction_of_bound": speedup / bound, "thread_utilization": st["products"] / max(1, st["slots"]),
            "chunks": st["chunks"], "outputs": s.outputs, "exact_model_rel_error": max(exact_err.values()),
            "fast_model_cycles": {"sparse": fast["cycles"] + 2, "dense": fast["dense_cycles"] + 2},
            "fast_model_rel_error": max(fast_err.values()), "stats_sparse": st, "stats_dense": d.extra["stats"]}


def _mesh_demo(vec, sparse, dense) -> dict:
    """One demo layer on the mesh RTL: sparse with level 2 on and off, and dense."""
    runs = {}
    for name, design, level2 in (("sparse", sparse, True), ("level2_off", sparse, False), ("dense", dense, False)):
        plan = mesh_mapper.plan(vec, design.config, level2=level2)
        r = mesh_tb.run(design, plan)  # counters checked against the mesh model there
        model = r.extra["model"]
        if not r.passed or r.cycles != model["cycles"]:
            raise RuntimeError(f"mesh bench run {vec.name} ({name}) failed: {r.summary()} "
                               f"{r.extra.get('error', '')} (model {model['cycles']} cycles)")
        runs[name] = {"cycles": r.cycles, "model_cycles": model["cycles"], "words": plan.words,
                      "imbalance": model["imbalance"], "stats": r.extra["stats"],
                      "work": plan.work}
    s, off, d = runs["sparse"], runs["level2_off"], runs["dense"]
    fast = mesh_layer(masks_from_vectors(vec), sparse.config, budget=STUDY_BUDGET)
    work = s["work"]
    bound = work["dense_macs"] / max(1, work["useful_macs"])
    return {"layer": vec.name, "bound": bound, "sparse_cycles": s["cycles"], "dense_cycles": d["cycles"],
            "level2_off_cycles": off["cycles"], "speedup": d["cycles"] / s["cycles"],
            "speedup_level2_off": d["cycles"] / off["cycles"], "fraction_of_bound": d["cycles"] / s["cycles"] / bound,
            "imbalance": s["imbalance"], "imbalance_level2_off": off["imbalance"],
            "thread_utilization": s["stats"]["products"] / max(1, s["stats"]["slots"]),
            "exact_model_rel_error": max(abs(r["cycles"] - r["model_cycles"]) / r["cycles"] for r in runs.values()),
            "fast_model_cycles": fast["cycles"], "fast_model_sampled_positions": fast["sampled_positions"],
            "fast_model_rel_error": abs(fast["cycles"] - s["cycles"]) / s["cycles"], "words": s["words"]}


def _model_check(i: int) -> list[dict]:
    """The fast mesh model (the study's budget) against the exact mesh model on whole
    layer ``CHECK_LAYERS[i]``, level-2 balancing on and off."""
    layer = CHECK_LAYERS[i]
    lm = synthetic_masks(np.random.default_rng(i), layer, layer["wd"], layer["ad"], WEIGHT_CV)
    rows = []
    for level2 in (True, False):
        exact = mesh_layer(lm, STUDY, level2=level2, budget=10**12)
        fast = mesh_layer(lm, STUDY, level2=level2, budget=STUDY_BUDGET)
        rows.append({"layer": layer["name"], "level2": level2, "exact_cycles": exact["cycles"],
                     "fast_cycles": fast["cycles"], "sampled_positions": fast["sampled_positions"],
                     "positions": lm.positions,
                     "rel_error": abs(fast["cycles"] - exact["cycles"]) / exact["cycles"]})
    return rows


def synthetic_masks(rng: np.random.Generator, layer: dict, weight: float, activation: float,
                    cv: float = 0.4) -> LayerMasks:
    """Random masks of a ``golden.nets.zoo`` layer at the given densities: per-filter weight
    densities from a Beta law (mean ``weight``, coefficient of variation ``cv``), activations
    i.i.d. (conv: one mask per position, shared by all filters; depthwise: per channel)."""
    from golden.nets.zoo import out_hw, terms
    kind, k = layer["kind"], terms(layer)
    wmask = synthetic_filters(rng, layer["o"], k, weight, cv)
    oh, ow = out_hw(layer)
    seed = int(rng.integers(1 << 31))

    def act(pos, filters):
        pos, filters = np.asarray(pos), np.asarray(filters)
        r = np.random.default_rng([seed, int(pos.sum()), len(pos)])
        if kind == "depthwise":
            return r.random((len(pos) * len(filters), k)) < activation
        per_pos = r.random((len(pos), k)) < activation
        return np.repeat(per_pos, len(filters), axis=0)

    return LayerMasks(layer["name"], kind, wmask, act, 1 if kind == "linear" else oh * ow)


def synthetic_filters(rng: np.random.Generator, filters: int, k: int, density: float, cv: float) -> np.ndarray:
    """(filters, k) weight masks: per-filter densities from a Beta law with mean
    ``density`` and coefficient of variation ``cv`` (0: every filter at the mean)."""
    if density >= 1.0 or cv <= 0:
        d = np.full(filters, density)
    else:
        var = min((cv * density) ** 2, density * (1 - density) * 0.99)
        nu = density * (1 - density) / var - 1
        d = rng.beta(density * nu, (1 - density) * nu, size=filters)
    return rng.random((filters, k)) < d[:, None]


def net_study(net: str, cfg: Phantom2DConfig, *, cv: float = 0.4, seed: int = 0,
              budget: int = 12_000, progress=None) -> dict:
    """Every layer of a ``golden.nets.zoo`` net at its published densities on the mesh:
    dense and sparse cycles with level-2 balancing on and off, static threads (level 1
    off), imbalance, thread utilization, and the bound dense MACs / useful MACs."""
    from golden.nets import zoo
    dens = zoo.densities(net)
    rows = []
    for i, layer in enumerate(zoo.layers(net)):
        d = dens[layer["name"]]
        if progress:
            progress(f"{net} {layer['name']}")
        lm = synthetic_masks(np.random.default_rng([seed, i]), layer, d["weight"], d["activation"], cv)
        on = mesh_layer(lm, cfg, level2=True, seed=seed, budget=budget)
        off = mesh_layer(lm, cfg, level2=False, seed=seed, budget=budget)
        dense = dense_layer(lm, cfg)
        macs = zoo.macs(layer)
        useful = float(lm.wmask.sum() * lm.positions * d["activation"])  # expected: activations i.i.d.
        rows.append({
            "layer": layer["name"], "kind": layer["kind"], "macs": macs, "weight_density": d["weight"],
            "act_density": d["activation"], "weight_density_sampled": float(lm.wmask.mean()),
            "useful_macs": useful, "bound": macs / useful,
            "dense_cycles": dense, "cycles": on["cycles"], "cycles_level2_off": off["cycles"],
            "cycles_level1_off": on["static_cycles"], "cycles_both_off": off["static_cycles"],
            "imbalance": on["imbalance"], "imbalance_level2_off": off["imbalance"],
            "thread_utilization": on["thread_utilization"],
            "words": on["words"],
            "speedup": dense / on["cycles"],
        })
        rows[-1]["fraction_of_bound"] = rows[-1]["speedup"] / rows[-1]["bound"]
    tot = {k: sum(r[k] for r in rows) for k in ("macs", "useful_macs", "dense_cycles", "cycles", "cycles_level2_off",
                                                "cycles_level1_off", "cycles_both_off")}
    summary = {
        "speedup": tot["dense_cycles"] / tot["cycles"], "bound": tot["macs"] / tot["useful_macs"],
        "speedup_level2_off": tot["dense_cycles"] / tot["cycles_level2_off"],
        "speedup_level1_off": tot["dense_cycles"] / tot["cycles_level1_off"],
        "speedup_both_off": tot["dense_cycles"] / tot["cycles_both_off"],
        "thread_utilization": sum(r["thread_utilization"] * r["cycles"] for r in rows) / tot["cycles"],
        "imbalance": sum(r["imbalance"] * r["cycles"] for r in rows) / tot["cycles"],
        "imbalance_level2_off": sum(r["imbalance_level2_off"] * r["cycles_level2_off"] for r in rows)
        / tot["cycles_level2_off"],
        **{f"total_{k}": v for k, v in tot.items()},
    }
    summary["fraction_of_bound"] = summary["speedup"] / summary["bound"]
    return {"net": net, "mesh": [cfg.rows, cfg.cols], "cv": cv, "layers": rows, "summary": summary}


def job(j: tuple):
    """One measurement of the bench (a picklable tuple; see :func:`bench`)."""
    kind = j[0]
    if kind == "pair":
        return _pair(*j[1:])
    if kind == "mesh":
        _, msparse, mdense, vec = j
        return _mesh_demo(vec, msparse, mdense)
    if kind == "density":
        _, sparse, dense, dens = j
        vec = random_layer(np.random.default_rng(21), wd=dens, ad=dens, name=f"density{dens:.2f}", **LAYER)
        return {"density": dens, **_pair(sparse, dense, vec)}
    if kind == "check":
        return _model_check(j[1])
    if kind == "study":
        return net_study(j[1], STUDY, cv=WEIGHT_CV, budget=STUDY_BUDGET)
    raise ValueError(f"unknown bench job {kind!r}")


def _label(j: tuple) -> str:
    what = {"pair": lambda: f"core RTL {j[3].name}", "mesh": lambda: f"mesh RTL {j[3].name}",
            "density": lambda: f"core RTL density {j[3]:.2f}", "check": lambda: f"mesh model check {j[1]}",
            "study": lambda: f"{j[1]} study (model)"}
    return what[j[0]]()


def bench(out: Path, vectors: int = 0, run=None) -> tuple[dict, list[str], bool]:
    """``nnaccel bench phantom``: the result (written as phantom.json by the caller), its
    summary lines, and whether every model met its 2 % target; the plot goes to
    ``out``/phantom.png. ``vectors`` is ignored (the layer set is fixed). ``run(fn,
    items, labels)`` returns ``[fn(item) ...]`` in order (default: one after another
    here; ``nnaccel bench`` passes the executor's)."""
    def progress(label: str) -> None:
        print(f"bench phantom: {label}", file=sys.stderr, flush=True)

    sparse = generate("phantom", {})
    dense = generate("phantom", {"dense": "1"})
    msparse = generate("phantom2d", config=MESH_RTL)
    mdense = generate("phantom2d", config=dataclasses.replace(MESH_RTL, dense=True))
    vecs = list(digits.layer_vectors(digits.build("sparse"), IMAGES))
    # every measurement is a job of its own; `run` runs them (serially here, on the
    # executor's workers under `nnaccel bench`), the longest first
    jobs = ([("study", net) for net in ("vgg16", "mobilenet_v1")]
            + [("pair", sparse, dense, vec) for vec in vecs]
            + [("mesh", msparse, mdense, vec) for vec in vecs]
            + [("density", sparse, dense, dens) for dens in DENSITIES]
            + [("check", i) for i in range(len(CHECK_LAYERS))])
    results = (run or serial(progress))(job, jobs, [_label(j) for j in jobs])
    by = {}
    for j, r in zip(jobs, results):
        by.setdefault(j[0], []).append(r)
    demo, mesh_demo, sweep = by["pair"], by["mesh"], by["density"]
    check = [row for rows in by["check"] for row in rows]
    studies = dict(zip(("vgg16", "mobilenet_v1"), by["study"]))
    util = sum(r["stats_sparse"]["products"] for r in demo) / sum(r["stats_sparse"]["slots"] for r in demo)
    dense_c = sum(r["dense_cycles"] for r in demo)
    sparse_c = sum(r["sparse_cycles"] for r in demo)
    bound = sum(r["dense_macs"] for r in demo) / sum(r["useful_macs"] for r in demo)
    exact_err = max(r["exact_model_rel_error"] for r in demo + sweep)
    fast_err = max(r["fast_model_rel_error"] for r in demo + sweep)
    m_dense = sum(r["dense_cycles"] for r in mesh_demo)
    m_sparse = sum(r["sparse_cycles"] for r in mesh_demo)
    m_off = sum(r["level2_off_cycles"] for r in mesh_demo)
    mesh_exact_err = max(r["exact_model_rel_error"] for r in mesh_demo)
    mesh_fast_err = max(r["fast_model_rel_error"] for r in mesh_demo)
    study_err = max(r["rel_error"] for r in check)
    result = {
        "engine": "phantom",
        "config": dataclasses.asdict(sparse.config),
        "mesh_rtl_config": dataclasses.asdict(MESH_RTL),
        "study_config": dataclasses.asdict(STUDY),
        "mesh": [STUDY.rows, STUDY.cols],
        "images": IMAGES,
        "demo_net": demo,
        "sweep_layer": LAYER,
        "sweep": sweep,
        "mesh_demo": mesh_demo,
        "model_check": check,
        "studies": studies,
        "figures": {
            "demo_speedup_over_dense": dense_c / sparse_c, "demo_bound": bound,
            "demo_fraction_of_bound": dense_c / sparse_c / bound, "demo_thread_utilization": util,
            "demo_thread_utilization_per_layer": {r["layer"]: r["thread_utilization"] for r in demo},
            "exact_model_max_rel_error": exact_err, "fast_model_max_rel_error": fast_err,
            "mesh_demo_speedup_over_dense": m_dense / m_sparse, "mesh_demo_speedup_level2_off": m_dense / m_off,
            "mesh_demo_fraction_of_bound": m_dense / m_sparse / bound,
            "mesh_demo_imbalance": {r["layer"]: r["imbalance"] for r in mesh_demo},
            "mesh_demo_imbalance_level2_off": {r["layer"]: r["imbalance_level2_off"] for r in mesh_demo},
            "mesh_exact_model_max_rel_error": mesh_exact_err, "mesh_fast_model_max_rel_error": mesh_fast_err,
            "study_model_max_rel_error": study_err,
            **{f"{net}_{k}": st["summary"][k] for net, st in studies.items()
               for k in ("speedup", "bound", "fraction_of_bound", "speedup_level1_off", "speedup_level2_off",
                         "speedup_both_off", "imbalance", "imbalance_level2_off", "thread_utilization")},
        },
        "targets": {"thread_utilization_demo": 0.90, "fraction_of_bound_vgg16_mobilenet": 0.90,
                    "model_rel_error": 0.02},
        "paper": {"speedup_over_dense_vgg16_mobilenet": 12.0},
        "notes": (
            "Part 1: one core, RTL-measured (cocotb, Verilator), outputs exact on every run; dense = the same core "
            "fed masks of all ones with zeros packed; bound = dense MACs / useful MACs. The exact core model equals "
            "the RTL (error 0 up to the harness's 2 cycles); the fast core model samples positions. Part 2: a "
            "%dx%d Phantom-2D mesh in RTL (chunk %d, values %d: the widest mesh word the harness takes) runs the "
            "demo net; its cycles equal the cycle-exact mesh model on every run, and imbalance (busiest core / mean) "
            "comes from that model. Part 3: the fast mesh model (the exact mesh model on sampled positions) is "
            "checked against the exact model on whole synthetic layers (study_model_max_rel_error), then runs a "
            "%dx%d mesh of chunk-%d cores over VGG16 / MobileNet-v1. Their masks are drawn at the per-layer "
            "densities of golden/nets/densities.json (weights: Deep Compression / Distiller; activations: Han et "
            "al. 2015 for VGG16, assumed 0.5 for MobileNet), per-filter weight densities from a Beta law with "
            "coefficient of variation %.1f (the sparse demo net measures 0.16-0.53). The paper's 12x comes from "
            "its own, sparser, operating points; the bound here is what these densities allow. Demo conv1 (K=9) "
            "is limited to one chunk and one output per cycle per core: 2.4 useful products per output leave "
            "threads idle." % (MESH_RTL.rows, MESH_RTL.cols, MESH_RTL.chunk, MESH_RTL.values, STUDY.rows,
                                 STUDY.cols, STUDY.chunk, WEIGHT_CV)),
    }
    _plot(result, out)
    f = result["figures"]
    lines = [f"{r['layer']}: speedup {r['speedup']:.2f}x over dense (bound {r['bound']:.2f}x, "
             f"{100 * r['fraction_of_bound']:.0f}%), thread utilization {100 * r['thread_utilization']:.0f}%"
             for r in demo]
    lines += [f"demo net, one core (RTL): speedup {f['demo_speedup_over_dense']:.2f}x (bound {f['demo_bound']:.2f}x), "
              f"thread utilization {100 * f['demo_thread_utilization']:.1f}% (target 90%); exact model within "
              f"{100 * exact_err:.3f}% of RTL, fast model within {100 * fast_err:.2f}% (target 2%)"]
    lines += [f"demo net, {MESH_RTL.rows}x{MESH_RTL.cols} mesh (RTL): speedup {f['mesh_demo_speedup_over_dense']:.2f}x "
              f"(level 2 off {f['mesh_demo_speedup_level2_off']:.2f}x); imbalance "
              + ", ".join(f"{r['layer']} {r['imbalance']:.2f} (off {r['imbalance_level2_off']:.2f})" for r in mesh_demo)
              + f"; exact mesh model within {100 * mesh_exact_err:.3f}% of RTL, fast mesh model within "
              f"{100 * mesh_fast_err:.2f}%"]
    lines += [f"fast mesh model vs exact mesh model on whole layers: within {100 * study_err:.2f}% (target 2%)"]
    for net in studies:
        lines.append(f"{net} on a {STUDY.rows}x{STUDY.cols} mesh (model): speedup {f[net + '_speedup']:.2f}x, bound "
                     f"{f[net + '_bound']:.2f}x ({100 * f[net + '_fraction_of_bound']:.1f}% of bound, target 90%; "
                     f"paper 12x); level 1 off {f[net + '_speedup_level1_off']:.2f}x, level 2 off "
                     f"{f[net + '_speedup_level2_off']:.2f}x; imbalance {f[net + '_imbalance']:.3f} "
                     f"(level 2 off {f[net + '_imbalance_level2_off']:.3f})")
    ok = max(exact_err, mesh_exact_err) <= 0.02 and max(fast_err, mesh_fast_err, study_err) <= 0.02
    return result, lines, ok


def _plot(result: dict, out_dir) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    demo, sweep = result["demo_net"], result["sweep"]
    fig, axes = plt.subplots(2, 3, figsize=(17, 8))
    a1, a2, a5, a3, a4, a6 = axes.ravel()
    xs = np.arange(len(demo))
    a1.bar(xs - 0.2, [r["bound"] for r in demo], 0.4, label="bound (dense / useful MACs)")
    a1.bar(xs + 0.2, [r["speedup"] for r in demo], 0.4, label="RTL speedup over dense")
    for x, r in zip(xs, demo):
        a1.text(x + 0.2, r["speedup"], f"{100 * r['thread_utilization']:.0f}%", ha="center", va="bottom", fontsize=7)
    a1.set_xticks(xs, [r["layer"] for r in demo]), a1.set_ylabel("x"), a1.legend(fontsize=8)
    a1.set_title("sparse demo net, one core (RTL; labels: thread utilization)", fontsize=9)
    ds = [100 * r["density"] for r in sweep]
    a2.plot(ds, [r["bound"] for r in sweep], marker="o", label="bound")
    a2.plot(ds, [r["speedup"] for r in sweep], marker="o", label="RTL speedup")
    a2.plot(ds, [100 * r["thread_utilization"] / 10 for r in sweep], marker="s", ls=":",
            label="thread utilization (% / 10)")
    a2.set_xscale("log"), a2.set_yscale("log"), a2.set_xlabel("weight = activation density (%)")
    a2.legend(fontsize=8), a2.set_title("random conv 16x8x8 -> 16, 3x3 (RTL)", fontsize=9)
    for ax, net in ((a3, "vgg16"), (a4, "mobilenet_v1")):
        rows = result["studies"][net]["layers"]
        x = np.arange(len(rows))
        ax.plot(x, [r["bound"] for r in rows], marker="o", ms=3, label="bound")
        ax.plot(x, [r["speedup"] for r in rows], marker="o", ms=3, label="speedup (both levels)")
        ax.plot(x, [r["dense_cycles"] / r["cycles_level1_off"] for r in rows], ls=":", label="level 1 off")
        ax.plot(x, [r["dense_cycles"] / r["cycles_level2_off"] for r in rows], ls="--", label="level 2 off")
        ax.set_xticks(x, [r["layer"].replace("conv_", "") for r in rows], rotation=90, fontsize=6)
        ax.set_yscale("log"), ax.set_ylabel("x over dense"), ax.legend(fontsize=7)
        s = result["studies"][net]["summary"]
        ax.set_title(f"{net}, {result['mesh'][0]}x{result['mesh'][1]} mesh (model): {s['speedup']:.2f}x of bound "
                     f"{s['bound']:.2f}x", fontsize=9)
    md = result["mesh_demo"]
    xs = np.arange(len(md))
    a5.bar(xs - 0.27, [r["bound"] for r in md], 0.27, label="bound")
    a5.bar(xs, [r["speedup"] for r in md], 0.27, label="speedup, level 2 on")
    a5.bar(xs + 0.27, [r["speedup_level2_off"] for r in md], 0.27, label="speedup, level 2 off")
    for x, r in zip(xs, md):
        a5.text(x, r["speedup"], f"{r['imbalance']:.2f}/{r['imbalance_level2_off']:.2f}", ha="center", va="bottom",
                fontsize=7)
    a5.set_xticks(xs, [r["layer"] for r in md]), a5.set_ylabel("x over dense"), a5.legend(fontsize=8)
    mc = result["mesh_rtl_config"]
    a5.set_title(f"demo net, {mc['rows']}x{mc['cols']} mesh (RTL; labels: imbalance on/off)", fontsize=9)
    chk = result["model_check"]
    a6.bar(np.arange(len(chk)), [100 * r["rel_error"] for r in chk],
           color=["C0" if r["level2"] else "C1" for r in chk])
    a6.axhline(2.0, color="k", ls=":", lw=1)
    a6.set_xticks(np.arange(len(chk)), [f"{r['layer']}{'' if r['level2'] else ' (L2 off)'}" for r in chk],
                  rotation=60, ha="right", fontsize=6)
    a6.set_ylabel("|fast - exact| / exact (%)")
    a6.set_title("fast mesh model (sampled) vs exact mesh model, whole layers", fontsize=9)
    c = result["config"]
    fig.suptitle(f"Phantom core (T={c['threads']}, chunk={c['chunk']}, values={c['values']}, window={c['window']}, "
                 f"lanes={c['lanes']}) and Phantom-2D")
    fig.tight_layout()
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    fig.savefig(Path(out_dir) / "phantom.png", dpi=120)
    plt.close(fig)
