"""`nnaccel verify`: demo nets' layers through the RTL, compared bit-exactly; report.

The flow trains (or loads from the cache) each variant of the demo net, hands
every integer layer's golden vectors (:class:`golden.layer.LayerVectors`) to
:func:`cosim.engines.run_layer` on the chosen engine and writes ``report.md``, ``results.json`` and
plots into the output directory, which appears whole or not at all.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import platform
import time
from pathlib import Path

from cosim.engines import run_layer
from cosim.runner import cache_root, tool_version
from flows.outdir import Progress, atomic_dir
from golden.errors import NotMapped
from rtl.export import generate

NETS = ("digits",)


def _load_net(net: str):
    if net == "digits":
        from golden.nets import digits
        return digits
    raise ValueError(f"unknown net {net!r} (valid: {', '.join(NETS)})")


def verify(*, net: str = "digits", variants=None, sim: str = "verilator", out_dir: Path = Path("out/verify"),
           seed: int = 0, n_images: int = 32, engine: str = "requant") -> int:
    t_start = time.perf_counter()
    module = _load_net(net)
    variants = list(dict.fromkeys(variants or module.VARIANTS))
    if n_images < 1:
        raise ValueError(f"--images must be >= 1, not {n_images}")
    design = generate(engine)

    nets = {}
    prog = Progress(len(variants))
    for v in variants:
        prog.start(f"{net} {v}: train or load")
        nets[v] = module.build(v, seed=seed, cache_dir=cache_root() / "nets")
        how = f"trained in {nets[v].train_seconds:.1f} s" if nets[v].train_seconds else "from cache"
        prog.done(f"accuracy {nets[v].accuracy:.2f}% ({how})")

    jobs = [(v, vec) for v in variants if nets[v].layers for vec in module.layer_vectors(nets[v], n_images)]
    prog = Progress(len(jobs))
    layers = []
    for v, vec in jobs:
        prog.start(f"{v} {vec.name} through {engine} on {sim}")
        entry = {"variant": v, "layer": vec.name, "kind": vec.kind.value, "input_shape": list(vec.x.shape),
                 "output_shape": list(vec.y.shape), "weights_zero": 1 - vec.weight_density}
        try:
            r = run_layer(design, vec, sim=sim, seed=seed + 1)
        except NotMapped as e:
            prog.done(f"not mapped: {e}")
            layers.append({**entry, "status": "not mapped", "reason": str(e), "vectors": 0, "outputs": 0,
                           "cycles": 0, "mismatches": 0, "first_mismatch": None, "passed": None})
            continue
        prog.done(r.summary().split(": ", 1)[1] if ": " in r.summary() else r.summary())
        layers.append({
            **entry, "status": "PASS" if r.passed else "FAIL",
            "vectors": r.vectors, "outputs": r.outputs, "cycles": r.cycles, "mismatches": r.mismatches,
            "first_mismatch": r.first_mismatch, "passed": r.passed, "build_reused": r.build_reused,
            "wall_s": round(r.wall_s, 3), "log": r.log, **r.extra,
        })

    mapped = [l for l in layers if l["status"] != "not mapped"]
    passed = bool(mapped) and all(l["passed"] for l in mapped)
    results = {
        "passed": passed,
        "net": net, "engine": engine, "simulator": sim, "seed": seed, "images": n_images,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "tools": {"python": platform.python_version(), "simulator": tool_version(sim)},
        "engine_config": dataclasses.asdict(design.config),
        "variants": [{"variant": v, "accuracy": nets[v].accuracy, "weight_sparsity": nets[v].sparsity,
                      "integer_layers": len(nets[v].layers), "train_seconds": nets[v].train_seconds}
                     for v in variants],
        "layers": layers,
        "totals": {"layers": len(mapped), "not_mapped": len(layers) - len(mapped), "vectors": sum(l["vectors"] for l in layers),
                   "cycles": sum(l["cycles"] for l in layers), "mismatches": sum(l["mismatches"] for l in layers)},
        "wall_s": round(time.perf_counter() - t_start, 2),
    }
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        for v in variants:  # each layer's integer test vectors, for other tools and engines
            module.export_vectors(nets[v], tmp / "vectors", n_images)
        (tmp / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        plots = write_plots(results, tmp)
        (tmp / "report.md").write_text(report_markdown(results, plots))
    t = results["totals"]
    word = "PASS" if passed else "FAIL"
    skipped = f", {t['not_mapped']} not mapped" if t["not_mapped"] else ""
    print(f"{word}: {t['layers']} layers of {net} ({', '.join(variants)}) through {engine} on {sim}{skipped}: "
          f"{t['vectors']} vectors, {t['cycles']} cycles, {t['mismatches']} mismatches "
          f"({results['wall_s']:.1f} s)")
    print(f"report: {out_dir / 'report.md'}")
    return 0 if passed else 1


def write_plots(results: dict, directory: Path) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    vs = results["variants"]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    bars = ax.bar([v["variant"] for v in vs], [v["accuracy"] for v in vs], color="#4a7ab5")
    ax.bar_label(bars, fmt="%.1f")
    ax.set_ylim(min(v["accuracy"] for v in vs) - 5, 100)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{results['net']}: accuracy per variant")
    fig.tight_layout()
    fig.savefig(directory / "accuracy.png", dpi=120)
    plt.close(fig)
    names.append("accuracy.png")

    layers = [l for l in results["layers"] if l["status"] != "not mapped"]
    if layers:
        labels = [f"{l['variant']}\n{l['layer']}" for l in layers]
        fig, axes = plt.subplots(3, 1, figsize=(max(6, 0.8 * len(layers)), 7), sharex=True)
        for ax, key, color in zip(axes, ("vectors", "cycles", "mismatches"), ("#4a7ab5", "#6aa84f", "#cc4125")):
            vals = [l[key] for l in layers]
            ax.bar(range(len(layers)), vals, color=color)
            ax.set_ylabel(key)
            ax.set_ylim(0, 1.15 * max(1, max(vals)))
        if not any(l["mismatches"] for l in layers):
            axes[2].text(0.5, 0.5, "0 mismatches: bit-exact", transform=axes[2].transAxes, ha="center",
                         va="center", color="#38761d")
        axes[-1].set_xticks(range(len(layers)), labels, fontsize=7)
        axes[0].set_title(f"layers through {results['engine']} on {results['simulator']}")
        fig.tight_layout()
        fig.savefig(directory / "layers.png", dpi=120)
        plt.close(fig)
        names.append("layers.png")
    return names


def report_markdown(r: dict, plots: list[str]) -> str:
    t = r["totals"]
    lines = [
        f"# nnaccel verify: {'PASS' if r['passed'] else 'FAIL'}",
        "",
        f"Net `{r['net']}`, engine `{r['engine']}`, simulator {r['tools']['simulator']}, training seed {r['seed']}, "
        f"{r['images']} test images per layer, {r['date']}.",
        "",
        f"{t['layers']} layers, {t['vectors']} vectors, {t['cycles']} cycles, **{t['mismatches']} mismatches** "
        f"(exact comparison with the golden model). Wall time {r['wall_s']:.1f} s. Each layer's integer "
        f"test vectors (input, weights, bias, requantization parameters, accumulators, output) are in "
        f"`vectors/<variant>_<index>_<layer>.npz`.",
        "",
        "## Variants",
        "",
        "| variant | test accuracy | zero weights | integer layers |",
        "|---|---:|---:|---:|",
    ]
    for v in r["variants"]:
        lines.append(f"| {v['variant']} | {v['accuracy']:.2f}% | {100 * v['weight_sparsity']:.1f}% "
                     f"| {v['integer_layers']} |")
    lines += ["", "Accuracy of the int8, sparse and ternary variants is that of the pure-integer pipeline "
              "(golden integer conv/linear + requantization).", "",
              "## Layers through the RTL", "",
              "| variant | layer | kind | in → out shape | input words | outputs | cycles | cycles/output "
              "| mismatches | result |",
              "|---|---|---|---|---:|---:|---:|---:|---:|---|"]
    for l in r["layers"]:
        shape = f"{'x'.join(map(str, l['input_shape']))} → {'x'.join(map(str, l['output_shape']))}"
        if l["status"] == "not mapped":
            lines.append(f"| {l['variant']} | {l['layer']} | {l['kind']} | {shape} | | | | | | not mapped: "
                         f"{l['reason']} |")
            continue
        cpo = l["cycles"] / l["outputs"] if l["outputs"] else 0
        lines.append(f"| {l['variant']} | {l['layer']} | {l['kind']} | {shape} | {l['vectors']} | {l['outputs']} "
                     f"| {l['cycles']} | {cpo:.2f} | {l['mismatches']} | {l['status']} |")
        if l["first_mismatch"]:
            m = l["first_mismatch"]
            lines.append(f"|  | first mismatch | | output {m['index']}, inputs {m['inputs']} | expected "
                         f"{m['expected']} | got {m['got']} | | | | |")
    if r["engine"] == "requant":
        lines += ["", "With engine `requant` each layer's accumulators come from the golden integer "
                  "convolution and its requantization runs through the RTL requantizer, streamed with 10% idle "
                  "input cycles and 10% output back-pressure (so cycles/vector > 1)."]
    lines += [""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(lines)
