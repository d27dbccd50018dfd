"""`nnaccel import`: a user's model -> integer graph, golden vectors and the measured
agreement with the model's own runtime.

Orchestration only: :func:`golden.importers.import_model` builds the graph,
:func:`golden.graph.run` runs it, :func:`golden.importers.run_source` runs the source model
(onnxruntime, qonnx's executor or PyTorch). Written atomically to DIR: ``graph.json``,
``vectors/NN_<layer>.npz`` (:meth:`golden.layer.LayerVectors.to_npz`), ``report.md`` and
``results.json``.

Agreement (on DATA): for the final output and for every graph tensor the source also holds,
the fraction of int8 values exactly equal and the largest difference in LSBs, end to end
(each side on its own inputs, so differences carry forward) and per node (nnaccel's node on
the source's own input integers: the node's arithmetic alone); top-1 agreement and, with
labels, both accuracies.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np

from flows.outdir import atomic_dir


def load_data(path) -> tuple[np.ndarray, np.ndarray | None]:
    """DATA.npz: ``x`` (N x C x H x W float) and optionally ``y`` (N labels)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such data file")
    try:
        with np.load(path) as f:
            d = {k: f[k] for k in f.files}
    except Exception as e:
        raise ValueError(f"{path}: not a readable .npz file ({type(e).__name__})") from None
    if "x" not in d:
        raise ValueError(f"{path}: no array 'x' (the model's inputs, N x C x H x W)")
    x = d["x"]
    if not np.issubdtype(x.dtype, np.number) or x.ndim < 2 or len(x) == 0:
        raise ValueError(f"{path}: x must be a non-empty numeric array N x ..., not {x.dtype} {x.shape}")
    y = d.get("y")
    if y is not None and (y.ndim != 1 or len(y) != len(x)):
        raise ValueError(f"{path}: y must hold one label per input ({len(x)}), not shape {y.shape}")
    return x.astype(np.float32), None if y is None else y.astype(np.int64)


def _agree(ours: np.ndarray, theirs: np.ndarray) -> dict:
    d = np.abs(ours.astype(np.int64) - theirs.astype(np.int64))
    return {"values": int(d.size), "exact": float((d == 0).mean()) if d.size else 1.0,
            "max_lsb": int(d.max()) if d.size else 0, "off_by_one": int((d == 1).sum()), "worse": int((d > 1).sum())}


def measure(graph, x, y=None) -> dict:
    """The golden run and the source run on float inputs ``x``, compared (see the module doc)."""
    from golden.graph import EngineNode, run
    from golden.importers import run_source

    t0 = time.perf_counter()
    xq = graph.quantize_input(x)
    ours = run(graph, xq, keep=True)
    t_golden = time.perf_counter() - t0
    t0 = time.perf_counter()
    src = run_source(graph, x)
    t_source = time.perf_counter() - t0
    out = graph.output
    final = _agree(ours[out], src[out])
    flat = lambda a: a.reshape(len(a), -1)  # noqa: E731
    float_out = src.pop("float_output", None)  # a float source: its top-1 from its own float output
    final["source_is_float"] = float_out is not None
    top_ours = flat(ours[out]).argmax(1)
    top_src = flat(src[out] if float_out is None else float_out).argmax(1)
    final["top1_agreement"] = float((top_ours == top_src).mean())
    if y is not None:
        final["accuracy_nnaccel"] = float((top_ours == y).mean())
        final["accuracy_source"] = float((top_src == y).mean())
    tensors = []
    for name, t in graph.tensors.items():
        key = "exposed:" + name
        if key in src:
            tensors.append({"tensor": name, "source": t.source, **_agree(ours[name], src[key])})
    nodes = []
    for n in graph.nodes:
        ins = ["exposed:" + i for i in n.inputs]
        if not all(k in src for k in ins) or "exposed:" + n.output not in src:
            continue
        import torch
        got = n.compute(*[torch.as_tensor(src[k]) for k in ins])
        got = (got[1] if isinstance(n, EngineNode) else got).numpy()
        nodes.append({"node": n.name, "op": type(n).__name__, **_agree(got, src["exposed:" + n.output])})
    return {"images": int(len(x)), "final": final, "tensors": tensors, "nodes": nodes,
            "seconds": {"golden_run": round(t_golden, 3), "source_run": round(t_source, 3)}, "_ours": ours}


def _file_name(k: int, name: str) -> str:
    return f"{k:02d}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', name).strip('_') or 'layer'}.npz"


def _report(graph, results: dict) -> list[str]:
    src = graph.source
    lines = [f"# nnaccel import: {graph.name}", "",
             f"Source: `{src.get('path')}` ({src.get('format')}), variant {results['variant']}.", ""]
    for note in graph.notes:
        lines.append(f"- note: {note}")
    lines += ["", "## Layers", "", "| node | op | output shape | kind | ternary | zero weights | MACs/image |",
              "|---|---|---|---|---|---|---|"]
    for n in results["graph"]["nodes"]:
        shape = "x".join(map(str, graph.tensors[n["output"]].shape))
        if n["op"] == "EngineNode":
            lines.append(f"| {n['name']} | {n['op']} | {shape} | {n['kind']} | {'yes' if n['ternary'] else 'no'} | "
                         f"{n['weight_sparsity']:.1%} | {n['macs_per_image']} |")
        else:
            lines.append(f"| {n['name']} | {n['op']} | {shape} | | | | |")
    m = results.get("agreement")
    if not m:
        lines += ["", "No DATA given: no agreement or accuracy is claimed."]
        return lines
    f = m["final"]
    lines += ["", f"## Agreement with the source runtime ({m['images']} inputs)", ""]
    if f.get("source_is_float"):
        lines += ["The source computes in float and nnaccel quantized it: the figures below are a distance, the "
                  "float values put on each tensor's int8 grid (rounded, saturated) against nnaccel's integers; "
                  "top-1 of the source is taken from its float output.", ""]
    lines += [f"- final output: {f['exact']:.2%} of int8 values exactly equal, largest difference {f['max_lsb']} LSB "
              f"({f['off_by_one']} values 1 LSB apart, {f['worse']} more), top-1 agreement {f['top1_agreement']:.2%}"]
    if "accuracy_nnaccel" in f:
        lines.append(f"- accuracy: nnaccel {f['accuracy_nnaccel']:.2%}, source {f['accuracy_source']:.2%}")
    lines += ["", "Per node, on the source's own input integers (the node's arithmetic alone):", "",
              "| node | op | exact | max LSB |", "|---|---|---|---|"]
    lines += [f"| {n['node']} | {n['op']} | {n['exact']:.3%} | {n['max_lsb']} |" for n in m["nodes"]]
    lines += ["", "End to end (each side on its own inputs, differences carry forward):", "",
              "| tensor | exact | max LSB |", "|---|---|---|"]
    lines += [f"| {t['tensor']} | {t['exact']:.3%} | {t['max_lsb']} |" for t in m["tensors"]]
    if f.get("source_is_float"):
        return lines + ["", "Where the differences come from: post-training quantization (weights and activations "
                        "rounded to int8, or pruned / ternarized by the variant) -- the price of the integer model, "
                        "not an arithmetic mismatch."]
    lines += ["", "Where the differences come from: nnaccel requantizes in integers as the engines do "
              "(golden.quant.requantize: MultiplyByQuantizedMultiplier with a 31-bit multiplier, rounded once "
              "where the multiplier is below one, see golden.importers.common.requant_multipliers; TFLite's "
              "integer add with its 20-bit left shift; pooling averages rounded half away from zero); the source "
              "runtime requantizes in float32 and rounds half to even. A value within float32 precision of a "
              "half, or exactly on one, can land one LSB apart; later layers carry such a difference forward, "
              "so end-to-end differences can exceed the per-node ones."]
    return lines


def import_command(model: str, out_dir, data=None, variant: str = "int8", sparsity: float = 0.5,
                   images: int = 32, seed: int = 0) -> dict:
    """Import ``model``, measure it on ``data`` (if given) and write ``out_dir``; returns results."""
    from golden.importers import import_model

    x = y = None
    if data is not None:
        x, y = load_data(data)
    t0 = time.perf_counter()
    graph = import_model(model, data=x, variant=variant, sparsity=sparsity)
    t_import = time.perf_counter() - t0
    shape = graph.tensors[graph.input].shape
    if x is not None and tuple(x.shape[1:]) != shape:
        raise ValueError(f"{data}: x has shape {x.shape}, the model takes N x {' x '.join(map(str, shape))}")
    gj = graph.to_json()
    results = {"model": str(model), "variant": variant, "graph": gj, "seconds": {"import": round(t_import, 3)}}
    if x is not None:
        m = measure(graph, x, y)
        ours = m.pop("_ours")
        results["agreement"] = m
        results["seconds"]["import_plus_golden_run"] = round(t_import + m["seconds"]["golden_run"], 3)
        xv = ours[graph.input][:images]
    else:
        rng = np.random.default_rng(seed)
        xv = rng.integers(-128, 128, size=(images,) + shape)
    vectors = graph.layer_vectors(xv)
    with atomic_dir(Path(out_dir)) as tmp:
        (tmp / "vectors").mkdir()
        for k, v in enumerate(vectors):
            v.to_npz(tmp / "vectors" / _file_name(k, v.name))
        (tmp / "graph.json").write_text(json.dumps(gj, indent=1) + "\n")
        (tmp / "results.json").write_text(json.dumps({k: v for k, v in results.items() if k != "graph"}, indent=1)
                                          + "\n")
        (tmp / "report.md").write_text("\n".join(_report(graph, results)) + "\n")
    return results


def summary(results: dict) -> list[str]:
    g = results["graph"]
    eng = [n for n in g["nodes"] if n["op"] == "EngineNode"]
    lines = [f"imported {results['model']}: {len(g['nodes'])} nodes, {len(eng)} engine layers "
             f"({sum(n['ternary'] for n in eng)} ternary) in {results['seconds']['import']:.1f} s"]
    lines += [f"note: {n}" for n in g["notes"]]
    m = results.get("agreement")
    if m:
        f = m["final"]
        head = (f"distance to the float source on {m['images']} inputs: {f['exact']:.2%} of final outputs on the "
                f"same int8 value" if f.get("source_is_float") else
                f"agreement on {m['images']} inputs: {f['exact']:.2%} of final int8 outputs exact")
        lines.append(f"{head}, max "
                     f"{f['max_lsb']} LSB, top-1 {f['top1_agreement']:.2%}"
                     + (f", accuracy nnaccel {f['accuracy_nnaccel']:.2%} / source {f['accuracy_source']:.2%}"
                        if "accuracy_nnaccel" in f else ""))
    else:
        lines.append("no --data: no agreement or accuracy claimed")
    return lines
