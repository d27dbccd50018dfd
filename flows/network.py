"""Whole networks through the RTL: an engine chosen per layer, chained end to end, bit-exact.

A network is a list of :class:`Step` s over named int8 tensors: engine layers (conv,
depthwise, linear: anything a :class:`golden.layer.Layer` describes, with its integer
weights and requantization) and host operations (flatten, add, pooling: golden integer
code, counted as host work). :func:`run_network` feeds each engine layer the tensor the
previous steps produced *on the hardware path*: an engine layer's output is taken from
its co-simulation only after the checker has compared every output the RTL emitted with
the golden model's for that very input and found them equal, so the tensor passed on is
the RTL's; the first layer that differs ends the chain, and the report names it with the
first differing value.

Engine choice (``auto``, :func:`choose`): the rule of issue 13 gives the default order
-- ternary weights -> fat; weight density <= 50% -> phantom; dense 3x3 stride-1
convolution -> winograd; depthwise -> phantom; any other convolution or linear layer ->
phantom in dense mode -- and the engines' cycle models decide: when another engine that
maps the layer predicts fewer cycles than the rule's pick, the faster one runs. With a
named engine, every layer it maps runs on it and the others on the host.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from cosim.engines import run_layer
from golden.conv import conv2d_int, linear_int
from golden.layer import Kind, Layer, LayerVectors, golden_outputs
from rtl.engines import get_engine
from rtl.export import Design, generate

# (label, engine, parameters) in the rule's order of preference for auto.
CANDIDATES = (("fat", "fat", {}), ("phantom", "phantom", {}), ("winograd", "winograd", {}),
              ("phantom-dense", "phantom", {"dense": "1"}))


@dataclass(frozen=True)
class EngineLayer:
    """An engine layer of a network: its description and integer parameters; the
    vectors for an input come from :meth:`vectors` (golden accumulators and outputs)."""
    layer: Layer
    w: np.ndarray
    bias: np.ndarray
    mult: np.ndarray
    shift: np.ndarray
    alpha: float | None = None

    def vectors(self, x: np.ndarray) -> LayerVectors:
        layer = self.layer
        if tuple(x.shape[1:]) != layer.in_shape:  # a batch of another size: same layer
            raise ValueError(f"{layer.name}: input {x.shape} does not match {layer.in_shape}")
        acc, y = golden_outputs(layer, x, self.w, self.bias, self.mult, self.shift)
        return LayerVectors(layer, x, self.w, self.bias, self.mult, self.shift, acc.numpy(), y.numpy(),
                            alpha=self.alpha)


@dataclass(frozen=True)
class HostOp:
    """A host operation: ``fn(*inputs) -> output`` on int64 numpy arrays, and its
    operation count per image (``ops(*inputs)``)."""
    kind: str
    fn: Callable
    ops: Callable = lambda *xs: 0


@dataclass(frozen=True)
class Step:
    name: str
    inputs: tuple[str, ...]
    output: str
    op: EngineLayer | HostOp


def flatten() -> HostOp:
    return HostOp("flatten", lambda x: x.reshape(len(x), -1))


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


def choose(vec: LayerVectors, designs: dict[str, Design], engine: str = "auto") -> Choice:
    """Pick the design that runs ``vec``: ``auto`` (rule, then the models decide) or the
    one named (a layer it cannot map goes to the host)."""
    one = vec.select(0, 1)
    models, refused = {}, {}
    for label, design in designs.items():
        eng = get_engine(design.engine)
        why = eng.maps(vec, design.config)
        if why:
            refused[label] = why
            models[label] = None
        else:
            models[label] = int(eng.cycles(eng.plan(one, design.config))["cycles"])
    mapped = [k for k, v in models.items() if v is not None]
    if engine != "auto":
        if not mapped:
            return Choice("host", f"{engine} cannot map it: {refused[engine]}", models, refused)
        return Choice(engine, f"--engine {engine}", models, refused)
    pick, why = rule(vec)
    if models.get(pick) is None:
        if not mapped:
            return Choice("host", "no engine maps it: " + "; ".join(f"{k}: {v}" for k, v in refused.items()),
                          models, refused)
        fallback = next(k for k in designs if models[k] is not None)
        why = f"{why}, but {pick} cannot map it ({refused.get(pick, 'not configured')}) -> {fallback}"
        pick = fallback
    fastest = min(mapped, key=lambda k: models[k])
    if models[fastest] < models[pick]:
        why = f"{why} -> {pick}, but {fastest}'s model is faster ({models[fastest]} vs {models[pick]} cycles/image)"
        pick = fastest
    return Choice(pick, why, models, refused)


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


def run_network(steps: list[Step], x0: np.ndarray, designs: dict[str, Design], *, engine: str = "auto",
                sim: str = "verilator", seed: int = 1, timeout_s: float = 300, progress=None) -> dict:
    """Run ``steps`` on the int8 batch ``x0`` (tensor ``"input"``) through the hardware path.

    Returns {"layers": [...], "output": final tensor (None when the chain broke),
    "passed": bool, "diverged": None or {"layer", "image", "index", "expected", "got"}}.
    """
    tensors = {"input": np.asarray(x0, dtype=np.int64)}
    rows, diverged = [], None
    for step in steps:
        xs = [tensors[name] for name in step.inputs]
        t0 = time.perf_counter()
        if isinstance(step.op, HostOp):
            out = np.asarray(step.op.fn(*xs), dtype=np.int64)
            rows.append({"layer": step.name, "kind": step.op.kind, "engine": "host", "why": "host operation",
                         "input_shape": list(xs[0].shape), "output_shape": list(out.shape),
                         "host_ops": int(step.op.ops(*xs)), "status": "host", "passed": True,
                         "wall_s": round(time.perf_counter() - t0, 3)})
            tensors[step.output] = out
            continue
        vec = step.op.vectors(xs[0])
        if progress:
            progress.start(f"{step.name}: choose an engine")
        choice = choose(vec, designs, engine)
        row = {"layer": step.name, "kind": vec.kind.value, "engine": choice.label, "why": choice.reason,
               "input_shape": list(vec.x.shape), "output_shape": list(vec.y.shape),
               "macs": vec.layer.macs_per_image * vec.images, "useful_macs": useful_macs(vec),
               "weight_density": round(vec.weight_density, 4),
               "activation_density": round(vec.activation_density, 4),
               "model_cycles_per_image": choice.model_cycles, "refused": choice.refused}
        if choice.label == "host":
            row.update(status="host", passed=True, host_ops=row["macs"], cycles=0, model_cycles=0)
            out = vec.y
        else:
            design = designs[choice.label]
            r = run_layer(design, vec, sim=sim, seed=seed, timeout_s=timeout_s)
            eng = get_engine(design.engine)
            energy = eng.energy(dict(r.extra.get("stats", {}), cycles=r.cycles), design.config) \
                if eng.has_energy else None
            row.update(status="PASS" if r.passed else "FAIL", passed=r.passed, cycles=r.cycles,
                       model_cycles=int(r.extra.get("model_cycles", 0)), outputs=r.outputs, vectors=r.vectors,
                       mismatches=r.mismatches, first_mismatch=r.first_mismatch, batches=r.extra.get("batches", 1),
                       build_reused=r.build_reused, stats=r.extra.get("stats", {}), energy=energy,
                       error=r.extra.get("error"), log=r.log)
            out = vec.y  # equal to every output the RTL emitted: the checker compared them all
            if not r.passed:
                diverged = {"layer": step.name, "engine": choice.label, **(r.first_mismatch or {}),
                            "error": r.extra.get("error")}
        row["wall_s"] = round(time.perf_counter() - t0, 3)
        if progress:
            progress.done(f"{choice.label}: {row['status']}" + (f", {row.get('cycles', 0)} cycles"
                                                                  if row.get("cycles") else ""))
        rows.append(row)
        if diverged:
            return {"layers": rows, "output": None, "passed": False, "diverged": diverged}
        tensors[step.output] = out
    return {"layers": rows, "output": tensors[steps[-1].output], "passed": True, "diverged": None}
