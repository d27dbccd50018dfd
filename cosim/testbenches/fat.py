"""FAT testbench: ternary layers mapped to command streams, co-simulated, compared exactly.

Each layer goes through :func:`rtl.fat.mapper.plan` (the same configuration object
that built the RTL); the command stream is streamed from memory into the engine,
whose int8 outputs are compared with the golden ternary layer, and whose
array-operation counters are compared with the cycle model (:mod:`rtl.fat.model`),
as are its cycles when the run has no idle input and no back-pressure.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cosim.stream import StreamResult, run_stream
from golden.layer import LayerVectors, layer_vectors_from
from rtl.export import Design
from rtl.fat import mapper, model
from rtl.fat.config import Code, Op

DEPTH_LOG2 = 20  # harness memory depth (words, log2)
HARNESS_CYCLES = 2  # the harness counts from reset to the last output: the model's cycles + 2


def run(design: Design, plan: mapper.Plan, *, sim="verilator", seed=1, idle=0.0, stall=0.0, verilog=None,
        waves=False, timeout_s=300) -> StreamResult:
    """One plan through the engine: outputs compared exactly, then the RTL's counters
    with the cycle model's (and, without idle input or back-pressure, its cycles with
    the model's plus :data:`HARNESS_CYCLES`); a disagreement fails the run with
    ``extra["error"]``. ``extra["stats"]`` holds the RTL's counters plus the run's
    ``cycles`` (what :func:`rtl.fat.energy.energy` takes), ``extra["model"]`` the
    model's figures, ``extra["tiles"]`` the mapping."""
    L = plan.layer.layer
    inputs = {f: plan.cmds[f] for f in ("op", "addr", "aux", "cnt", "data")}
    statics = {"zero_point": L.output_zero_point, "act_min": L.act_min, "act_max": L.act_max}
    predicted = model.cycles(plan)
    r = run_stream(design, inputs, statics, plan.expected, sim=sim, seed=seed, idle=idle, stall=stall,
                   verilog=verilog, waves=waves, timeout_s=timeout_s, depth_log2=DEPTH_LOG2,
                   max_cycles=4 * predicted["cycles"] + 10_000)
    r.extra["layer"] = plan.name
    r.extra["model"] = predicted
    r.extra["tiles"] = plan.tiles
    if "stats" in r.extra:
        r.extra["stats"]["cycles"] = r.cycles
    if r.passed:
        bad = _disagreement(r, predicted, paced=bool(idle or stall))
        if bad:
            r.passed = False
            r.extra["error"] = bad
    return r


def _disagreement(r: StreamResult, predicted: dict, *, paced: bool) -> str | None:
    counters = {k: v for k, v in predicted.items() if k != "cycles"}
    stats = {k: v for k, v in r.extra.get("stats", {}).items() if k != "cycles"}
    if stats != counters:
        return f"RTL counters {stats} != cycle model {counters}"
    if not paced and r.cycles != predicted["cycles"] + HARNESS_CYCLES:
        return (f"RTL took {r.cycles} cycles, the cycle model {predicted['cycles']} "
                f"(+ {HARNESS_CYCLES} of harness start)")
    return None


def invalid_codes(plan: mapper.Plan, rng: np.random.Generator, n: int = 5, per_word: int = 1) -> mapper.Plan:
    """``plan`` with ``n`` of its zero weight codes (in WEIGHTS words, within their
    ``cnt``) replaced by the invalid code, which the engine must count in ``errors`` and
    process as a zero weight: the outputs stay the plan's; the cycle model (a replay of
    the changed commands) predicts every counter, ``errors`` among them. ``per_word``:
    up to that many invalid codes in one word (each one counts, not the word)."""
    cmds = {k: v.copy() for k, v in plan.cmds.items()}
    spots = {}
    for i in np.flatnonzero(cmds["op"] == Op.WEIGHTS.value):
        zeros = [j for j in range(int(cmds["cnt"][i])) if (int(cmds["data"][i, 0]) >> (2 * j)) & 3 == Code.ZERO.value]
        if zeros:
            spots[int(i)] = zeros
    if not spots:
        raise ValueError(f"{plan.name}: no zero weight to make invalid")
    # words with the most zero codes first, so that per_word codes fit in one word
    order = sorted(spots, key=lambda i: (-min(len(spots[i]), per_word), rng.random()))
    left = n
    for i in order:
        if left <= 0:
            break
        take = min(per_word, left, len(spots[i]))
        for j in rng.choice(spots[i], size=take, replace=False):
            cmds["data"][i, 0] = np.uint64(int(cmds["data"][i, 0]) | (Code.INVALID.value << (2 * int(j))))
        left -= take
    return dataclasses.replace(plan, cmds=cmds, model=model.replay(cmds, plan.config))


def partial_words(plan: mapper.Plan, rng: np.random.Generator) -> mapper.Plan:
    """``plan`` with the unused codes of its partial WEIGHTS words (``cnt`` < word
    weights) set to random nonzero codes (+1, -1 and invalid): the engine must ignore
    every code at or above ``cnt``, so outputs and counters stay the plan's."""
    cmds = {k: v.copy() for k, v in plan.cmds.items()}
    W = plan.config.word_weights
    part = [i for i in np.flatnonzero(cmds["op"] == Op.WEIGHTS.value) if int(cmds["cnt"][i]) < W]
    if not part:
        raise ValueError(f"{plan.name}: no partial weight word")
    for i in part:
        word = int(cmds["data"][i, 0])
        for j in range(int(cmds["cnt"][i]), W):
            word |= int(rng.choice([Code.PLUS.value, Code.MINUS.value, Code.INVALID.value])) << (2 * j)
        cmds["data"][i, 0] = np.uint64(word)
    replayed = model.replay(cmds, plan.config)
    assert replayed == plan.model, "codes above cnt changed the cycle model"
    return dataclasses.replace(plan, cmds=cmds)


def words(plan: mapper.Plan) -> int:
    """Harness words the plan needs: its commands in, its outputs out."""
    return max(len(plan.cmds["op"]), len(plan.expected))


def capacity(design: Design) -> int:
    """Harness memory depth in words."""
    return 1 << DEPTH_LOG2


def random_layer(rng: np.random.Generator, *, kind="conv", n=1, c=3, h=6, w=6, o=5, k=3, stride=1, padding=1,
                 sparsity=0.5, name="rand", negative=False, bias_limit=2000, multipliers=(0.002, 0.05),
                 u_span=None, act_min=None, act_max=127, output_zero_point=None) -> LayerVectors:
    """A random ternary layer with int8 activations and its golden outputs. ``negative``:
    activations over the whole int8 range with a zero point inside it, so that u = x -
    zero_point takes negative values too (down to about -200); ``bias_limit``: biases
    drawn from (-bias_limit, bias_limit); ``multipliers``: the range of the real output
    multipliers (above 1: the requantizer shifts left); ``u_span``: activations within
    ``u_span`` of the input zero point (small accumulators); ``act_min``/``act_max``: the
    clamp (``act_min`` defaults to the output zero point, a fused ReLU);
    ``output_zero_point``: fixed instead of drawn from [-128, -100)."""
    zp_in = int(rng.integers(40, 90)) if negative else int(rng.integers(-128, 0))
    shape_x = (n, c, h, w) if kind == "conv" else (n, c)
    if u_span is None:
        x = rng.integers(-128 if negative else zp_in, 128, size=shape_x)
    else:
        x = np.clip(zp_in + rng.integers(-u_span, u_span + 1, size=shape_x), -128, 127)
    shape = (o, c, k, k) if kind == "conv" else (o, c)
    wt = rng.choice([-1, 1], size=shape) * (rng.random(shape) >= sparsity)
    bias = rng.integers(-bias_limit + 1, bias_limit, size=o)
    return layer_vectors_from(name=name, kind=kind, x=x, w=wt, bias=bias, input_zero_point=zp_in,
                              real_multipliers=rng.uniform(*multipliers, size=o),
                              output_zero_point=int(rng.integers(-128, -100)) if output_zero_point is None
                              else output_zero_point, stride=stride, padding=padding,
                              act_min=act_min, act_max=act_max)


RANDOM_LAYERS = (  # kernel 1 and 3, stride 1 and 2, odd channel counts, FC
    dict(kind="conv", c=3, h=7, w=5, o=5, k=3, stride=1, padding=1, sparsity=0.5),
    dict(kind="conv", c=5, h=7, w=7, o=3, k=3, stride=2, padding=1, sparsity=0.8),
    dict(kind="conv", c=7, h=5, w=5, o=9, k=1, stride=1, padding=0, sparsity=0.3),
    dict(kind="conv", c=3, h=6, w=6, o=4, k=1, stride=2, padding=0, sparsity=0.0),
    dict(kind="linear", c=37, o=11, n=3, sparsity=0.6),
    # negative u = x - zero_point, and biases near the 20-bit accumulator's limit
    dict(kind="conv", c=3, h=6, w=6, o=4, k=3, stride=1, padding=1, sparsity=0.4, negative=True,
         bias_limit=(1 << 19) - 8192),
)


def read_params_layer(rng: np.random.Generator, *, n: int = 3, c: int = 4) -> LayerVectors:
    """A linear layer whose 32 output channels make every bit of a READ's multiplier and
    bias show in the int8 output: channel k < 31 has the raw multiplier 2**k (shift 0)
    and a bias near t * 2**(31 - k) for a random t in [-60, 60] (so that acc * 2**k / 2**31
    lands in int8 and a bit more or less in the multiplier moves it), channel 31 the
    multiplier INT32_MAX (every bit set) with a small bias."""
    o = 32
    x = rng.integers(-3, 4, size=(n, c))
    wt = rng.choice([-1, 0, 1], size=(o, c))
    lim = (1 << 31) - (1 << 21)
    bias, mult = [], []
    for k in range(31):
        t = int(rng.integers(-60, 61))
        bias.append(int(np.clip(t * (1 << (31 - k)) + int(rng.integers(0, 1 << (31 - k))) - (1 << (30 - k)),
                                -lim, lim)))
        mult.append(1 << k)
    bias.append(int(rng.integers(-100, 100)))
    mult.append((1 << 31) - 1)
    return layer_vectors_from(name="read-params", kind="linear", x=x, w=wt, bias=np.array(bias), input_zero_point=0,
                              mult=np.array(mult), shift=np.zeros(o, dtype=np.int64), output_zero_point=0,
                              act_min=-128, act_max=127)


# Corner layers (each a scenario of the suite; tests/test_suite_corners.py shows each can fail):
CORNER_LAYERS = (
    # every column and (with the reduction split in two operand tiles) nearly every row in use
    dict(name="full-array", kind="conv", c=16, h=8, w=8, o=2, k=3, stride=1, padding=1, sparsity=0.5),
    # real multipliers above 1 (the requantizer shifts left), small accumulators so that
    # outputs land inside a clamp that is not a fused ReLU
    dict(name="left-shift", kind="linear", c=24, o=12, n=4, sparsity=0.4, u_span=3, bias_limit=40,
         multipliers=(0.5, 6.0), output_zero_point=7, act_min=-100, act_max=90),
)


def cosim(design: Design, *, sim="verilator", seed=1, vectors=0, verilog=None, waves=False,
          timeout_s=300) -> list[StreamResult]:
    """Random layers (``vectors`` is ignored: the layer set is fixed, seeded), odd ones
    with idle input and back-pressure, then the corner layers, partial weight words
    with garbage above ``cnt`` and invalid weight codes (several in one word); every run
    checked against the cycle model."""
    rng = np.random.default_rng(seed)
    results = []

    def go(p, name, idx, **pace) -> bool:
        r = run(design, p, sim=sim, seed=seed + idx, verilog=verilog, waves=waves, timeout_s=timeout_s, **pace)
        r.extra["scenario"] = name + (f": {r.extra['error']}" if "error" in r.extra else "")
        results.append(r)
        return r.passed

    for idx, spec in enumerate(RANDOM_LAYERS):
        vec = random_layer(rng, name=f"rand{idx}-{spec['kind']}", **spec)
        if not go(mapper.plan(vec, design.config), vec.name, idx, idle=0.1 * (idx % 2), stall=0.2 * (idx % 2)):
            return results
    for spec in CORNER_LAYERS:
        vec = random_layer(np.random.default_rng(seed), **spec)
        if not go(mapper.plan(vec, design.config), vec.name, len(results)):
            return results
    # every bit of the READ parameters (multiplier, bias) visible in the output
    if not go(mapper.plan(read_params_layer(np.random.default_rng(seed)), design.config), "read-params", len(results)):
        return results
    # partial words: codes above cnt must be ignored
    vec = random_layer(np.random.default_rng(seed), name="partial-words", **RANDOM_LAYERS[0])
    part = partial_words(mapper.plan(vec, design.config), np.random.default_rng(seed))
    if not go(part, "partial-words (random codes above cnt in partial weight words: ignored)", len(results)):
        return results
    # the error path: invalid weight codes are counted (errors), each one, and processed as zeros
    vec = random_layer(np.random.default_rng(seed), name="invalid-codes", **RANDOM_LAYERS[0])
    bad = invalid_codes(mapper.plan(vec, design.config), np.random.default_rng(seed), n=8, per_word=3)
    go(bad, f"invalid-codes ({bad.model['errors']} invalid weight codes, up to 3 in a word: each counted in "
            "errors, processed as zeros)", len(results))
    return results
