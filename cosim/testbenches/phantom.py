"""Phantom testbench: sparse int8 layers mapped to chunk streams, co-simulated, compared exactly.

Each layer goes through rtl.phantom.mapper.plan_layer (the same configuration object
that built the RTL); the chunk stream is streamed from memory into the core, whose
int8 outputs are compared with the golden layer. The core's counters are compared
with the mapper's cycle model, and a raised mask error flag fails the run with the
chunk it names.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cosim.engines import NotMapped
from cosim.harness import fit_depth_log2
from cosim.stream import StreamResult, run_stream
from golden.layer import layer_vectors_from
from rtl.export import Design
from rtl.phantom.mapper import MappingError, plan_layer, word_fields


def depth_log2(design: Design) -> int:
    """Harness memory depth for this design's (wide) chunk words."""
    return fit_depth_log2(design.port("i__payload").width)


def run_plan(design: Design, plan, vec: dict, *, sim="verilator", seed=1, idle=0.0, stall=0.0, verilog=None,
             waves=False, timeout_s=300) -> StreamResult:
    cfg = design.config
    return stream_plan(design, word_fields(plan.fields, cfg.lanes), plan, vec, (cfg.lanes, 9), sim=sim, seed=seed,
                       idle=idle, stall=stall, verilog=verilog, waves=waves, timeout_s=timeout_s)


def stream_plan(design: Design, fields: dict, plan, vec: dict, lanes: tuple[int, int], **run) -> StreamResult:
    """A plan's input words through the design (core or mesh: ``lanes`` of its output
    word), checked against the plan's expected outputs; a raised mask error flag fails
    the run, naming the chunk (and the core of a mesh)."""
    statics = {"zero_point": int(vec["output_zero_point"]), "act_min": int(vec["act_min"]),
               "act_max": int(vec["act_max"])}
    r = run_stream(design, fields, statics, plan.expected, depth_log2=depth_log2(design),
                   max_cycles=8 * plan.model["cycles"] + 10_000, lanes=lanes, **run)
    r.extra["layer"] = plan.layer
    r.extra["model"] = {k: v for k, v in plan.model.items() if k != "core_busy"}
    r.extra["work"] = dict(plan.work)
    stats = r.extra.get("stats", {})
    if stats.get("errors"):
        r.passed = False
        core = f" of core {stats['error_core'] - 1}" if "error_core" in stats else ""
        r.extra["error"] = (f"mask popcount disagrees with its packed count in chunk {stats['error_chunk'] - 1}"
                            f"{core} ({stats['errors']} bad chunk(s))")
    return r


def random_layer(rng: np.random.Generator, *, kind="conv", n=1, c=3, h=6, w=6, o=5, k=3, stride=1, padding=1,
                 wd=0.5, ad=0.5, name="rand") -> dict:
    """A random int8 layer with weight density ``wd`` and activation density ``ad``
    (fraction of x != input_zero_point), and its golden outputs."""
    zp_in = int(rng.integers(-128, 0))
    xshape = (n, c, h, w) if kind != "linear" else (n, c)
    x = rng.integers(-128, 127, size=xshape)
    x = np.where(x >= zp_in, x + 1, x)  # never the zero point ...
    x = np.where(rng.random(xshape) < ad, x, zp_in)  # ... except where made sparse
    o = c if kind == "depthwise" else o
    shape = {"conv": (o, c, k, k), "depthwise": (c, 1, k, k), "linear": (o, c)}[kind]
    wt = rng.integers(-127, 128, size=shape)
    wt = np.where(wt == 0, 1, wt) * (rng.random(shape) < wd)
    bias = rng.integers(-5000, 5000, size=o)
    return layer_vectors_from(name=name, kind=kind, x=x, w=wt, bias=bias, input_zero_point=zp_in,
                              real_multipliers=rng.uniform(0.0002, 0.004, size=o),
                              output_zero_point=int(rng.integers(-128, -100)), stride=stride, padding=padding)


RANDOM_LAYERS = (  # densities 5-100 %, stride 1 and 2, padding 0-2, FC, depthwise, odd sizes
    dict(kind="conv", c=3, h=7, w=5, o=5, k=3, stride=1, padding=1, wd=0.5, ad=0.5),
    dict(kind="conv", c=5, h=7, w=7, o=4, k=3, stride=2, padding=1, wd=0.05, ad=0.3),
    dict(kind="conv", c=7, h=5, w=5, o=3, k=1, stride=1, padding=0, wd=1.0, ad=1.0),
    dict(kind="conv", c=4, h=6, w=6, o=3, k=3, stride=2, padding=2, wd=0.3, ad=0.8),
    dict(kind="depthwise", c=6, h=7, w=7, k=3, stride=1, padding=1, wd=0.7, ad=0.6),
    dict(kind="depthwise", c=5, h=8, w=8, k=3, stride=2, padding=1, wd=0.5, ad=0.5),
    dict(kind="linear", c=70, o=9, n=3, wd=0.2, ad=0.5),
    dict(kind="linear", c=37, o=5, n=2, wd=0.05, ad=0.05),
)


def random_layers(seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [random_layer(rng, name=f"rand{i}-{spec['kind']}", **spec) for i, spec in enumerate(RANDOM_LAYERS)]


def cosim(design: Design, *, sim="verilator", seed=1, vectors=0, verilog=None, waves=False,
          timeout_s=300) -> list[StreamResult]:
    """Random sparse layers (``vectors`` is ignored: the layer set is fixed, seeded), then
    the sparse demo net's layers on one image; odd random layers run with idle input
    and back-pressure, the others are also checked counter for counter against the
    cycle model."""
    from golden.nets import digits
    results = []
    demo = [vec.renamed(f"digits-sparse-{vec.name}") for vec in digits.layer_vectors(digits.build("sparse"), 1)]
    for idx, vec in enumerate(random_layers(seed) + demo):
        plan = plan_layer(vec, design.config)
        busy = idx % 2 == 1 and idx < len(RANDOM_LAYERS)
        r = run_plan(design, plan, vec, sim=sim, seed=seed + idx, idle=0.1 * busy, stall=0.2 * busy,
                     verilog=verilog, waves=waves, timeout_s=timeout_s)
        r.extra["scenario"] = vec["name"] + (" (idle + back-pressure)" if busy else "")
        model = {k: v for k, v in plan.model.items() if k != "cycles"}
        bad = None if busy or r.extra.get("stats") == model else (
            f"counters {r.extra.get('stats')} != cycle model {model}")
        if settle(r, bad, results):
            break
    return results


def settle(r: StreamResult, bad: str | None, results: list) -> bool:
    """Record a scenario's run, failed with ``bad`` when given and named with its error;
    True when the set should stop (the run failed)."""
    if bad:
        r.passed = False
        r.extra["scenario"] += ": " + bad
    if "error" in r.extra:
        r.extra["scenario"] += ": " + r.extra["error"]
    results.append(r)
    return not r.passed


def _slice(vec: dict, lo: int, hi: int) -> dict:
    return vec.select(lo, hi)


def verify_layer(design: Design, vec: dict, *, sim="verilator", seed=1, timeout_s=300) -> StreamResult:
    """One golden layer through the core, in image batches that fit the harness memory."""
    cfg = design.config
    try:
        one = plan_layer(_slice(vec, 0, 1), cfg)
        per_image = max(-(-len(one.last) // cfg.lanes), len(one.expected))  # input words, outputs
    except MappingError as e:
        raise NotMapped(str(e)) from None
    batch = max(1, (1 << depth_log2(design)) // max(1, per_image))
    return in_batches(vec, batch, lambda v: run_plan(design, plan_layer(v, cfg), vec, sim=sim, seed=seed,
                                                     timeout_s=timeout_s))


def in_batches(vec: dict, batch: int, run) -> StreamResult:
    """``run`` on the layer's images, ``batch`` at a time; the results merged into one
    (counters and work summed; per-run indices and ratios kept from the first run)."""
    n = len(vec["x"])
    total = None
    for lo in range(0, n, batch):
        r = run(_slice(vec, lo, min(n, lo + batch)))
        if total is None:
            total = r
            total.extra["batches"] = 1
            continue
        if r.first_mismatch and total.first_mismatch is None:
            total.first_mismatch = dict(r.first_mismatch, index=r.first_mismatch["index"] + total.outputs)
        if "error" in r.extra:
            total.extra.setdefault("error", r.extra["error"])
        total = dataclasses.replace(
            total, passed=total.passed and r.passed, vectors=total.vectors + r.vectors,
            outputs=total.outputs + r.outputs, cycles=total.cycles + r.cycles,
            mismatches=total.mismatches + r.mismatches, timed_out=total.timed_out or r.timed_out,
            wall_s=total.wall_s + r.wall_s, sim_s=total.sim_s + r.sim_s)
        for key in ("stats", "model"):
            a, b = total.extra.get(key, {}), r.extra.get(key, {})
            total.extra[key] = {k: a[k] + b.get(k, 0) for k in a
                                if isinstance(a[k], int) and k not in ("error_chunk", "error_core")}
        for k, v in r.extra["work"].items():
            if isinstance(v, int) and k != "k":
                total.extra["work"][k] += v
        total.extra["batches"] += 1
    return total
