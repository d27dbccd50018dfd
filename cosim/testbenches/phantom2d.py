"""Phantom-2D testbench: layers mapped onto the mesh, co-simulated, compared exactly core by core.

Each layer goes through :func:`rtl.phantom2d.mapper.plan` (the same configuration
object that built the mesh); :func:`run` streams the words from memory into the
mesh, whose tagged int8 outputs are sorted by core and compared with the golden
layer's, each core's in its own order. The mesh's timing-independent counters
(products, chunks, errors, the error flags) must equal the cycle model's and its slots
threads x its busy cycles (:func:`check_counters`), and a raised mask error flag fails
the run, naming the chunk and the core; when input and
output run free, its cycles and busy counts must equal the cycle-exact mesh model
(:func:`rtl.phantom2d.model.cycles`). Whole layers run in image batches that fit the
harness (:func:`cosim.engines.run_layer`, with :func:`words` and :func:`capacity`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cosim.stream import StreamResult
from cosim.testbenches.phantom import (capacity, check_plan, check_slots, dense_exact_layer, random_layers,
                                      requant_params_layers, settle, stream_plan, words)
from rtl.export import Design
from rtl.phantom2d import mapper
from rtl.phantom2d.model import cycles

__all__ = ["capacity", "check_counters", "cosim", "run", "words"]


def run(design: Design, plan: mapper.Plan, *, sim="verilator", seed=1, idle=0.0, stall=0.0, verilog=None,
        waves=False, timeout_s=300) -> StreamResult:
    """One plan through the mesh: outputs compared exactly core by core, the mesh's
    counters in ``extra["stats"]`` (their timing-independent ones checked against the
    model's, :func:`check_counters`), the mesh model's in ``extra["model"]``; a raised
    mask error flag fails the run, naming the chunk and the core."""
    cfg = design.config
    check_plan(plan, cfg)
    model = cycles(plan)
    r = stream_plan(design, plan.fields, plan, model, (cfg.cores, cfg.lane_bits), sim=sim, seed=seed, idle=idle,
                    stall=stall, verilog=verilog, waves=waves, timeout_s=timeout_s)
    bad = check_counters(r, model)
    if bad:
        r.passed = False
        r.extra["error"] = f"{r.extra['error']}; {bad}" if "error" in r.extra else bad
    return r


FLAGS = ("products", "chunks", "errors", "error_core", "error_chunk")  # counters that do not depend on timing


def check_counters(r: StreamResult, model: dict) -> str | None:
    """The timing-independent counters must equal the model's (products, chunks, errors,
    and the error flags ``error_core`` / ``error_chunk``: 0 unless ``model`` names a bad
    chunk), and ``stat_slots`` must be threads x ``stat_busy`` (every core offers its
    threads a slot in each of its busy cycles: :func:`cosim.testbenches.phantom.check_slots`);
    None when they do."""
    stats = r.extra.get("stats", {})
    want = {k: model.get(k, 0) for k in FLAGS}
    got = {k: stats.get(k) for k in want}
    return (f"counters {got} != cycle model {want}" if got != want else check_slots(r))


def bad_chunks(plan: mapper.Plan, rng: np.random.Generator, n: int = 3):
    """``plan`` with the packed count of ``n`` random cores' chunks (one each, picked among
    the chunks the cores receive) made to disagree with its mask, and the flags the mesh
    must then raise: ``errors`` (bad chunks, summed), ``error_core`` (the lowest such
    core, from 1) and ``error_chunk`` (its first bad chunk in its own stream, from 1).
    The counts only feed the consistency check, so the outputs stay those of the plan."""
    cfg = plan.config
    fields = dict(plan.fields)
    cores = [j for j in range(cfg.rows * cfg.cols) if len(plan.sent[j])]
    picked = sorted(rng.choice(cores, size=min(n, len(cores)), replace=False))
    first = None
    for j in picked:
        r, c = divmod(int(j), cfg.cols)
        k = int(rng.integers(len(plan.sent[j])))  # the core's k-th chunk
        key = f"r{r}c{c}_cnt"
        fields[key] = fields[key].copy()
        w = plan.sent[j][k]
        fields[key][w] = (fields[key][w] + int(rng.integers(1, cfg.values + 1))) % (cfg.values + 1)
        first = first or (int(j) + 1, k + 1)
    bad = dataclasses.replace(plan, fields=fields)
    return bad, {"errors": len(picked), "error_core": first[0], "error_chunk": first[1]}


def run_bad_chunks(design: Design, plan: mapper.Plan, rng: np.random.Generator, *, sim="verilator", seed=1,
                   verilog=None, waves=False, timeout_s=300) -> StreamResult:
    """An error-path run: :func:`bad_chunks` of ``plan`` through the mesh, which must flag
    exactly those chunks (``errors``, ``error_core``, ``error_chunk``) while its outputs
    and its products and chunks stay those of the good plan."""
    cfg = design.config
    check_plan(plan, cfg)
    bad, want = bad_chunks(plan, rng)
    model = dict(cycles(plan), **want)
    r = stream_plan(design, bad.fields, bad, model, (cfg.cores, cfg.lane_bits), sim=sim, seed=seed,
                    verilog=verilog, waves=waves, timeout_s=timeout_s, expect_errors=True)
    wrong = check_counters(r, model)
    if wrong and r.passed:
        r.passed = False
        r.extra["error"] = wrong
    r.extra["expected_flags"] = want
    return r


def cosim(design: Design, *, sim="verilator", seed=1, vectors=0, verilog=None, waves=False,
          timeout_s=300) -> list[StreamResult]:
    """The random sparse layers of the core's testbench (conv stride 1 / 2, FC, depthwise,
    densities 5-100 %, odd sizes), with level-2 balancing on and (every third) off, odd
    ones with idle input and back-pressure, then the sparse demo net's layers, the corners
    (``requant-params``: the requantizers' parameters at their extremes; ``dense-exact``:
    chunks full to ``values``, both free-running and held to the mesh model's cycles and
    busy count) and the error path (``bad-chunks``)."""
    from golden.nets import digits
    results = []
    demo = [vec.renamed(f"digits-sparse-{vec.name}") for vec in digits.layer_vectors(digits.build("sparse"), 1)]
    for idx, vec in enumerate(random_layers(seed) + demo):
        level2 = idx % 3 != 2
        plan = mapper.plan(vec, design.config, level2=level2)
        busy = idx % 2 == 1 and not vec.name.startswith("digits")
        r = run(design, plan, sim=sim, seed=seed + idx, idle=0.1 * busy, stall=0.2 * busy,
                verilog=verilog, waves=waves, timeout_s=timeout_s)
        r.extra["scenario"] = (vec.name + ("" if level2 else " (level 2 off)")
                               + (" (idle + back-pressure)" if busy else ""))
        r.extra["level2"] = level2
        model, bad = r.extra["model"], None
        if not busy and not check_counters(r, model):  # free-running: the mesh model is cycle-exact
            want = {"cycles": model["cycles"], "busy": model["busy"]}
            got = {"cycles": r.cycles, "busy": r.extra.get("stats", {}).get("busy")}
            bad = None if got == want else f"{got} != mesh model {want}"
        if settle(r, bad, results):
            return results
    # corners: the requantizers' parameters at their extremes, chunks full to ``values``
    for vec in requant_params_layers(seed) + [dense_exact_layer(design.config, np.random.default_rng(seed))]:
        r = run(design, mapper.plan(vec, design.config), sim=sim, seed=seed + len(results), verilog=verilog,
                waves=waves, timeout_s=timeout_s)
        r.extra["scenario"] = vec.name
        model, bad = r.extra["model"], None
        want = {"cycles": model["cycles"], "busy": model["busy"]}
        got = {"cycles": r.cycles, "busy": r.extra.get("stats", {}).get("busy")}
        if r.passed and got != want:  # free-running: the mesh model is cycle-exact
            bad = f"{got} != mesh model {want}"
        if settle(r, bad, results):
            return results
    # the error path: chunks whose packed counts disagree with their masks must raise the
    # flag, counted over the cores, the lowest core and its first bad chunk named
    plan = mapper.plan(random_layers(seed)[0], design.config)
    r = run_bad_chunks(design, plan, np.random.default_rng(seed), sim=sim, seed=seed + len(results),
                       verilog=verilog, waves=waves, timeout_s=timeout_s)
    want = r.extra["expected_flags"]
    r.extra["scenario"] = (f"bad-chunks ({want['errors']} cores with a wrong count, first core {want['error_core'] - 1} "
                           f"chunk {want['error_chunk'] - 1}: the error flags must name them)")
    settle(r, None, results)
    return results
