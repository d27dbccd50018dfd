"""FAT testbench: ternary layers mapped to command streams, co-simulated, compared exactly.

Each layer goes through rtl.fat.mapper.plan_layer (the same configuration object
that built the RTL); the command stream is streamed from memory into the engine,
whose int8 outputs are compared with the golden ternary layer, and whose
array-operation counters are compared with the mapper's cycle model.
"""

from __future__ import annotations

import numpy as np

from cosim.engines import NotMapped
from cosim.stream import StreamResult, run_stream
from golden.layer import layer_vectors_from
from rtl.export import Design
from rtl.fat.mapper import MappingError, plan_layer


def run_plan(design: Design, plan, vec: dict, *, sim="verilator", seed=1, idle=0.0, stall=0.0, verilog=None,
             waves=False, timeout_s=300) -> StreamResult:
    c = plan.cmds
    inputs = {"op": c["op"], "addr": c["addr"], "aux": c["aux"], "cnt": c["cnt"], "data": c["data"]}
    statics = {"zero_point": int(vec["output_zero_point"]), "act_min": int(vec["act_min"]),
               "act_max": int(vec["act_max"])}
    r = run_stream(design, inputs, statics, plan.expected, sim=sim, seed=seed, idle=idle, stall=stall,
                   verilog=verilog, waves=waves, timeout_s=timeout_s, max_cycles=4 * plan.model["cycles"] + 10_000)
    r.extra["layer"] = plan.layer
    r.extra["model"] = {k: v for k, v in plan.model.items() if k != "accumulators"}
    r.extra["tiles"] = plan.tiles
    return r


def random_layer(rng: np.random.Generator, *, kind="conv", n=1, c=3, h=6, w=6, o=5, k=3, stride=1, padding=1,
                 sparsity=0.5, name="rand") -> dict:
    """A random ternary layer with int8 activations and its golden outputs."""
    zp_in = int(rng.integers(-128, 0))
    x = rng.integers(zp_in, 128, size=(n, c, h, w) if kind == "conv" else (n, c))
    shape = (o, c, k, k) if kind == "conv" else (o, c)
    wt = rng.choice([-1, 1], size=shape) * (rng.random(shape) >= sparsity)
    bias = rng.integers(-2000, 2000, size=o)
    return layer_vectors_from(name=name, kind=kind, x=x, w=wt, bias=bias, input_zero_point=zp_in,
                              real_multipliers=rng.uniform(0.002, 0.05, size=o),
                              output_zero_point=int(rng.integers(-128, -100)), stride=stride, padding=padding)


RANDOM_LAYERS = (  # kernel 1 and 3, stride 1 and 2, odd channel counts, FC
    dict(kind="conv", c=3, h=7, w=5, o=5, k=3, stride=1, padding=1, sparsity=0.5),
    dict(kind="conv", c=5, h=7, w=7, o=3, k=3, stride=2, padding=1, sparsity=0.8),
    dict(kind="conv", c=7, h=5, w=5, o=9, k=1, stride=1, padding=0, sparsity=0.3),
    dict(kind="conv", c=3, h=6, w=6, o=4, k=1, stride=2, padding=0, sparsity=0.0),
    dict(kind="linear", c=37, o=11, n=3, sparsity=0.6),
)


def cosim(design: Design, *, sim="verilator", seed=1, vectors=0, verilog=None, waves=False,
          timeout_s=300) -> list[StreamResult]:
    """Random layers (``vectors`` is ignored: the layer set is fixed, seeded), with back-pressure."""
    rng = np.random.default_rng(seed)
    results = []
    for idx, spec in enumerate(RANDOM_LAYERS):
        vec = random_layer(rng, name=f"rand{idx}-{spec['kind']}", **spec)
        plan = plan_layer(vec, design.config)
        r = run_plan(design, plan, vec, sim=sim, seed=seed + idx, idle=0.1 * (idx % 2), stall=0.2 * (idx % 2),
                     verilog=verilog, waves=waves, timeout_s=timeout_s)
        r.extra["scenario"] = vec["name"]
        results.append(r)
        if not r.passed:
            break
    return results


def verify_layer(design: Design, vec: dict, *, sim="verilator", seed=1, timeout_s=300) -> StreamResult:
    if not np.isin(np.asarray(vec["w"]), (-1, 0, 1)).all():
        raise NotMapped(f"{vec['name']}: weights are not ternary (fat needs weights in {{-1, 0, +1}})")
    try:
        plan = plan_layer(vec, design.config)
    except MappingError as e:
        raise NotMapped(str(e)) from None
    return run_plan(design, plan, vec, sim=sim, seed=seed, timeout_s=timeout_s)
