"""Phantom-2D testbench: layers mapped onto the mesh, co-simulated, compared exactly core by core.

Each layer goes through :func:`rtl.phantom2d.mapper.plan` (the same configuration
object that built the mesh); :func:`run` streams the words from memory into the
mesh, whose tagged int8 outputs are sorted by core and compared with the golden
layer's, each core's in its own order. The mesh's timing-independent counters
(products, chunks, errors) must equal the cycle model's (:func:`check_counters`), and a
raised mask error flag fails the run, naming the chunk and the core; when input and
output run free, its cycles and busy counts must equal the cycle-exact mesh model
(:func:`rtl.phantom2d.model.cycles`). Whole layers run in image batches that fit the
harness (:func:`cosim.engines.run_layer`, with :func:`words` and :func:`capacity`).
"""

from __future__ import annotations

from cosim.stream import StreamResult
from cosim.testbenches.phantom import check_plan, capacity, random_layers, settle, stream_plan, words
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


def check_counters(r: StreamResult, model: dict) -> str | None:
    """The timing-independent counters must equal the model's; None when they do."""
    stats = r.extra.get("stats", {})
    want = {k: model[k] for k in ("products", "chunks", "errors")}
    got = {k: stats.get(k) for k in want}
    return None if got == want else f"counters {got} != cycle model {want}"


def cosim(design: Design, *, sim="verilator", seed=1, vectors=0, verilog=None, waves=False,
          timeout_s=300) -> list[StreamResult]:
    """The random sparse layers of the core's testbench (conv stride 1 / 2, FC, depthwise,
    densities 5-100 %, odd sizes), with level-2 balancing on and (every third) off, odd
    ones with idle input and back-pressure, then the sparse demo net's layers."""
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
            break
    return results
