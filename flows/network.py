"""Whole networks through the RTL: an engine chosen per layer, chained end to end, bit-exact.

A network is a :class:`golden.graph.Graph` (the digits nets, ``golden.nets.digits.to_graph``,
or a user's model, ``nnaccel import``): engine nodes (conv, depthwise, linear) and host
nodes (flatten, add, pooling: golden integer code, counted as host work). :func:`run_network` feeds each engine layer the tensor the
previous steps produced *on the hardware path*: an engine layer's output is taken from
its co-simulation only after the checker has compared every output the RTL emitted with
the golden model's for that very input and found them equal, so the tensor passed on is
the RTL's; the first layer that differs ends the chain, and the report names it with the
first differing value.

Engine choice (``auto``, :func:`choose`): the rule of issue 13 gives the default order
-- ternary weights -> fat; weight density <= 50% -> phantom; dense 3x3 stride-1
convolution -> winograd; depthwise -> phantom; any other convolution or linear layer ->
phantom in dense mode -- and the engines' models decide: when another engine that maps
the layer predicts fewer cycles than the rule's pick, the faster one runs (``objective
="cycles"``, the default), or, with ``objective="energy"``, when another predicts less
energy per image from its energy table, the thriftier one runs. With a
named engine, every layer it maps runs on it and the others on the host.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from cosim.engines import energy_counters, run_layer
from golden.conv import conv2d_int, linear_int
from golden.graph import Add, AveragePool, EngineNode, GlobalAveragePool, Graph, MaxPool
from golden.graph import run as run_graph
from golden.layer import Kind, LayerVectors
from rtl.engines import get_engine
from rtl.export import Design, generate

# (label, engine, parameters) in the rule's order of preference for auto.
CANDIDATES = (("fat", "fat", {}), ("phantom", "phantom", {}), ("winograd", "winograd", {}),
              ("phantom-dense", "phantom", {"dense": "1"}))


def host_ops(node, *xs) -> int:
    """Integer operations of a host node on a batch: adds for Add, one per window element
    for pooling, none for a reshape."""
    out = np.asarray(node.compute(*xs))
    if isinstance(node, Add):
        return int(out.size)
    if isinstance(node, (MaxPool, AveragePool)):
        return int(out.size) * node.kernel[0] * node.kernel[1]
    if isinstance(node, GlobalAveragePool):
        return int(np.asarray(xs[0]).size)
    return 0


# ----------------------------------------------------------------------------- engine choice


def rule(vec: LayerVectors) -> tuple[str, str]:
    """The default engine for a layer and why (issue 13's order)."""
    L = vec.layer
    if vec.ternary:
        return "fat", "ternary weights"
    if vec.weight_density <= 0.5:
        return "phantom", f"weight density {vec.weight_density:.0%} <= 50%"
    if L.kind is Kind.CONV and L.kernel == (3, 3) and L.stride == 1:
        return "winograd", "dense 3x3 stride-1 convolution"
    if L.kind is Kind.DEPTHWISE:
        return "phantom", "depthwise convolution"
    return "phantom-dense", f"dense {L.kind.value} layer"


@dataclass
class Choice:
    label: str  # candidate label ("phantom-dense"), or "host"
    reason: str
    model_cycles: dict = field(default_factory=dict)  # label -> model cycles for one image (None: not mapped)
    refused: dict = field(default_factory=dict)  # label -> why not
    model_energy: dict = field(default_factory=dict)  # label -> model energy, pJ for one image (None: no table)


OBJECTIVES = ("cycles", "energy")


def choose(vec: LayerVectors, designs: dict[str, Design], engine: str = "auto",
           objective: str = "cycles") -> Choice:
    """Pick the design that runs ``vec``: ``auto`` (rule, then the models decide: the
    ``objective``, fewest model cycles or least model energy per image) or the one named
    (a layer it cannot map goes to the host)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
    one = vec.select(0, 1)
    models, refused, energies = {}, {}, {}
    for label, design in designs.items():
        eng = get_engine(design.engine)
        why = eng.maps(vec, design.config)
        if why:
            refused[label] = why
            models[label] = energies[label] = None
        else:
            counters = eng.cycles(eng.plan(one, design.config))
            models[label] = int(counters["cycles"])
            energies[label] = round(eng.energy(counters, design.config)["total"], 3) if eng.has_energy else None
    mapped = [k for k, v in models.items() if v is not None]
    if engine != "auto":
        if not mapped:
            return Choice("host", f"{engine} cannot map it: {refused[engine]}", models, refused, energies)
        return Choice(engine, f"--engine {engine}", models, refused, energies)
    pick, why = rule(vec)
    if models.get(pick) is None:
        if not mapped:
            return Choice("host", "no engine maps it: " + "; ".join(f"{k}: {v}" for k, v in refused.items()),
                          models, refused, energies)
        fallback = next(k for k in designs if models[k] is not None)
        why = f"{why}, but {pick} cannot map it ({refused.get(pick, 'not configured')}) -> {fallback}"
        pick = fallback
    if objective == "cycles":
        best = min(mapped, key=lambda k: models[k])
        if models[best] < models[pick]:
            why = f"{why} -> {pick}, but {best}'s model is faster ({models[best]} vs {models[pick]} cycles/image)"
            pick = best
    else:
        rated = [k for k in mapped if energies[k] is not None]
        best = min(rated, key=lambda k: energies[k]) if rated else pick
        if energies.get(pick) is None or energies[best] < energies[pick]:
            was = "no energy table" if energies.get(pick) is None else f"{energies[pick]:.1f} pJ/image"
            why = f"{why} -> {pick}, but {best}'s model takes less energy ({energies[best]:.1f} pJ vs {was})"
            pick = best
    return Choice(pick, why, models, refused, energies)


def designs_for(engine: str) -> dict[str, Design]:
    """The designs a run may use: the auto candidates, or the one engine named."""
    if engine == "auto":
        return {label: generate(name, params) for label, name, params in CANDIDATES}
    return {engine: generate(engine)}


# ----------------------------------------------------------------------------- the chain


def useful_macs(vec: LayerVectors) -> int:
    """Products with a non-zero weight and a non-zero activation (x != input zero point)."""
    L = vec.layer
    a = torch.as_tensor((vec.x != L.input_zero_point).astype(np.int64))
    w = torch.as_tensor((vec.w != 0).astype(np.int64))
    zero = torch.zeros(L.out_channels, dtype=torch.int64)
    if L.kind is Kind.LINEAR:
        return int(linear_int(a, w, zero, 0).sum())
    return int(conv2d_int(a, w, zero, 0, L.stride, L.padding, groups=L.groups).sum())


def run_network(graph: Graph, x0: np.ndarray, designs: dict[str, Design], *, engine: str = "auto",
                objective: str = "cycles", sim: str = "verilator", seed: int = 1, timeout_s: float = 300, progress=None,
                verilog: dict[str, str] | None = None, choices: dict[str, Choice] | None = None) -> dict:
    """Run ``graph`` on the int8 batch ``x0`` through the hardware path: engine nodes on
    the chosen designs, the other nodes on the host (golden integer code). ``verilog``
    maps a design label to Verilog text that replaces its generated design (a netlist, a
    hand edit, a mutant). ``choices`` (layer name -> :class:`Choice`) fixes the engines
    instead of choosing on this batch (a batch of a larger run: :func:`choose_all`).

    Returns {"layers": [...], "output": final tensor (None when the chain broke),
    "passed": bool, "diverged": None or {"layer", "engine", first mismatch or error}}.
    """
    tensors = {graph.input: np.asarray(x0, dtype=np.int64)}
    rows = []
    for node in graph.nodes:
        xs = [tensors[name] for name in node.inputs]
        t0 = time.perf_counter()
        if not isinstance(node, EngineNode):
            out = np.asarray(node.compute(*xs), dtype=np.int64)
            rows.append({"layer": node.name, "kind": type(node).__name__, "engine": "host",
                         "why": "host operation (golden integer code)", "input_shape": list(xs[0].shape),
                         "output_shape": list(out.shape), "host_ops": host_ops(node, *xs), "status": "host",
                         "passed": True, "wall_s": round(time.perf_counter() - t0, 3)})
            tensors[node.output] = out
            continue
        vec = node.vectors(xs[0])
        if progress:
            progress.start(f"{node.name}: choose an engine and run")
        choice = choices[node.name] if choices is not None else choose(vec, designs, engine, objective)
        row = {"layer": node.name, "kind": vec.kind.value, "engine": choice.label, "why": choice.reason,
               "input_shape": list(vec.x.shape), "output_shape": list(vec.y.shape),
               "macs": vec.layer.macs_per_image * vec.images, "useful_macs": useful_macs(vec),
               "weight_density": round(vec.weight_density, 4),
               "activation_density": round(vec.activation_density, 4),
               "model_cycles_per_image": choice.model_cycles,
               "model_energy_pj_per_image": choice.model_energy, "refused": choice.refused}
        diverged = None
        if choice.label == "host":
            row.update(status="host", passed=True, host_ops=row["macs"], cycles=0, model_cycles=0)
        else:
            design = designs[choice.label]
            r = run_layer(design, vec, sim=sim, seed=seed, timeout_s=timeout_s,
                          verilog=(verilog or {}).get(choice.label))
            eng = get_engine(design.engine)
            stats = r.extra.get("stats", {})
            row.update(status="PASS" if r.passed else "FAIL", passed=r.passed, cycles=r.cycles,
                       model_cycles=int(r.extra.get("model_cycles", 0)), outputs=r.outputs, vectors=r.vectors,
                       mismatches=r.mismatches, first_mismatch=r.first_mismatch, batches=r.extra.get("batches", 1),
                       build_reused=r.build_reused, stats=stats,
                       energy=eng.energy(energy_counters(r), design.config) if eng.has_energy else None,
                       error=r.extra.get("error"), log=r.log)
            if not r.passed:
                diverged = {"layer": node.name, "engine": choice.label, **(r.first_mismatch or {}),
                            "error": r.extra.get("error")}
        row["wall_s"] = round(time.perf_counter() - t0, 3)
        if progress:
            progress.done(f"{choice.label}: {row['status']}" + (f", {row['cycles']} cycles" if row.get("cycles")
                                                                  else ""))
        rows.append(row)
        if diverged:
            return {"layers": rows, "output": None, "passed": False, "diverged": diverged}
        # The RTL's outputs: the checker compared every one it emitted with vec.y and found them equal.
        tensors[node.output] = vec.y
    return {"layers": rows, "output": tensors[graph.output], "passed": True, "diverged": None}


# ----------------------------------------------------------------------------- image batches on workers


def choose_all(graph: Graph, x0: np.ndarray, designs: dict[str, Design], engine: str = "auto",
               objective: str = "cycles") -> dict[str, Choice]:
    """The engine of every engine layer as :func:`run_network` would choose it on the
    whole batch ``x0``: :func:`choose` looks at the batch's first image only, and on the
    hardware path a layer's input is the golden one (an RTL output is passed on only
    when it equals the golden model's), so the golden tensors of image 0 decide."""
    values = run_graph(graph, np.asarray(x0)[:1], keep=True)
    return {n.name: choose(n.vectors(values[n.input]), designs, engine, objective) for n in graph.engine_nodes}


def batch_task(task: dict) -> dict:
    """One image batch of a network on a worker (:func:`run_network` with fixed choices)."""
    return run_network(task["graph"], task["x"], task["designs"], engine=task["engine"], sim=task["sim"],
                       seed=task["seed"], timeout_s=task["timeout_s"], verilog=task["verilog"],
                       choices=task["choices"])


def split(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous, nearly equal ranges covering 0..n (no empty one)."""
    parts = max(1, min(parts, n))
    edges = [round(i * n / parts) for i in range(parts + 1)]
    return [(a, b) for a, b in zip(edges, edges[1:])]


_SUMMED = ("cycles", "model_cycles", "outputs", "vectors", "mismatches", "macs", "useful_macs", "host_ops",
           "batches", "wall_s")


def merge_runs(parts: list[dict]) -> dict:
    """One :func:`run_network` result from the results of consecutive image batches (in
    order): per layer the counts and counters summed, the densities weighted by images;
    the chain breaks at the earliest layer any batch broke at (as one run over all the
    images would), and the first mismatch is the first batch's there, its output index
    shifted by the outputs of the batches before it."""
    if len(parts) == 1:
        return parts[0]
    cut = min(len(p["layers"]) for p in parts)
    rows = []
    for i in range(cut):
        rs = [p["layers"][i] for p in parts]
        row = dict(rs[0])
        images = [r["input_shape"][0] for r in rs]
        for k in _SUMMED:
            if any(k in r and r[k] is not None for r in rs):
                row[k] = sum(r.get(k) or 0 for r in rs)
        if "wall_s" in row:
            row["wall_s"] = round(row["wall_s"], 3)
        for k in ("input_shape", "output_shape"):
            row[k] = [sum(images) if k == "input_shape" else sum(r[k][0] for r in rs), *rs[0][k][1:]]
        if "activation_density" in row:
            row["activation_density"] = round(sum(r["activation_density"] * n for r, n in zip(rs, images))
                                              / max(1, sum(images)), 4)
        for k in ("stats", "energy"):
            if any(r.get(k) for r in rs):
                row[k] = {key: sum((r.get(k) or {}).get(key, 0) for r in rs) for key in rs[0].get(k) or {}}
        row["passed"] = all(r["passed"] for r in rs)
        if row.get("status") in ("PASS", "FAIL"):
            row["status"] = "PASS" if row["passed"] else "FAIL"
            row["build_reused"] = all(r.get("build_reused") for r in rs)
            offset, first = 0, None
            for r in rs:
                if not r["passed"] and first is None:
                    first = dict(r["first_mismatch"], index=r["first_mismatch"]["index"] + offset) \
                        if r.get("first_mismatch") and "index" in r["first_mismatch"] else r.get("first_mismatch")
                    row.update(error=r.get("error"), log=r.get("log"))
                offset += r.get("outputs") or 0
            row["first_mismatch"] = first
        rows.append(row)
    broken = [p for p in parts if p["diverged"] and len(p["layers"]) == cut]
    diverged = None
    if broken:
        diverged = dict(broken[0]["diverged"])
        if rows[-1].get("first_mismatch"):
            diverged.update(rows[-1]["first_mismatch"])
    return {"layers": rows, "output": None if broken else np.concatenate([p["output"] for p in parts]),
            "passed": not broken, "diverged": diverged}
