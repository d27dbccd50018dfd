"""Phantom-2D testbench: layers mapped onto the mesh, co-simulated, compared exactly core by core.

Each layer goes through rtl.phantom.mesh_map.plan_mesh (the same configuration object
that built the mesh); the words are streamed from memory into the mesh, whose tagged
int8 outputs are sorted by core and compared with the golden layer's, each core's in
its own order. The mesh's timing-independent counters (products, chunks) must equal
the mapper's; when input and output run free, its cycles and busy counts must equal
the cycle-exact mesh model (rtl.phantom.mesh_map.mesh_sim).
"""

from __future__ import annotations

from cosim.engines import NotMapped
from cosim.phantom import _slice, depth_log2, in_batches, random_layers, settle, stream_plan
from cosim.stream import StreamResult
from rtl.export import Design
from rtl.phantom.mapper import MappingError
from rtl.phantom.mesh_map import plan_mesh


def run_plan(design: Design, plan, vec: dict, *, sim="verilator", seed=1, idle=0.0, stall=0.0, verilog=None,
             waves=False, timeout_s=300) -> StreamResult:
    cfg = design.config
    return stream_plan(design, plan.fields, plan, vec, (cfg.cores, cfg.lane_bits), sim=sim, seed=seed, idle=idle,
                       stall=stall, verilog=verilog, waves=waves, timeout_s=timeout_s)


def check_counters(r: StreamResult, plan) -> str | None:
    """The timing-independent counters must equal the mapper's; None when they do."""
    stats = r.extra.get("stats", {})
    want = {k: plan.model[k] for k in ("products", "chunks", "errors")}
    got = {k: stats.get(k) for k in want}
    return None if got == want else f"counters {got} != mapper {want}"


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
        plan = plan_mesh(vec, design.config, level2=level2)
        busy = idx % 2 == 1 and not vec["name"].startswith("digits")
        r = run_plan(design, plan, vec, sim=sim, seed=seed + idx, idle=0.1 * busy, stall=0.2 * busy,
                     verilog=verilog, waves=waves, timeout_s=timeout_s)
        r.extra["scenario"] = (vec["name"] + ("" if level2 else " (level 2 off)")
                               + (" (idle + back-pressure)" if busy else ""))
        r.extra["level2"] = level2
        bad = check_counters(r, plan)
        if not busy and not bad:  # free-running: the mesh model is cycle-exact
            want = {"cycles": plan.model["cycles"], "busy": plan.model["busy"]}
            got = {"cycles": r.cycles, "busy": r.extra.get("stats", {}).get("busy")}
            bad = None if got == want else f"{got} != mesh model {want}"
        if settle(r, bad, results):
            break
    return results


def verify_layer(design: Design, vec: dict, *, sim="verilator", seed=1, timeout_s=300) -> StreamResult:
    """One golden layer through the mesh, in image batches that fit the harness memory
    (a batch whose words or outputs would not fit is split in two)."""
    cfg = design.config
    depth = 1 << depth_log2(design)
    try:
        one = plan_mesh(_slice(vec, 0, 1), cfg)
    except MappingError as e:
        raise NotMapped(str(e)) from None

    def run(part):
        plan = plan_mesh(part, cfg)
        if max(plan.words, len(plan.expected)) > depth and len(part["x"]) > 1:
            return in_batches(part, -(-len(part["x"]) // 2), run)
        r = run_plan(design, plan, vec, sim=sim, seed=seed, timeout_s=timeout_s)
        bad = check_counters(r, plan)
        if bad:
            r.passed = False
            r.extra["error"] = bad
        return r

    return in_batches(vec, max(1, depth // max(1, one.words, len(one.expected))), run)
