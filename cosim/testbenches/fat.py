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
import torch

from cosim.stream import StreamResult, run_stream
from golden.layer import LayerVectors, layer_vectors_from
from golden.quant import requantize
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


def _hand_plan(name: str, cmds: dict, cfg, reads: list, *, zero_point=0, act_min=-128, act_max=127) -> mapper.Plan:
    """A hand-made command stream as a plan: ``reads`` holds each READ's (bias, mult,
    shift) in stream order; the expected outputs are the cycle model's replayed
    accumulators (its array contents, not the RTL's) plus bias, through the golden
    requantizer with the run's statics."""
    replayed = model.replay(cmds, cfg)
    acc = [(v, rd) for vals, rd in zip(replayed["accumulators"], reads) for v in vals]
    expected = np.zeros(0, dtype=np.int64)
    if acc:
        expected = requantize(torch.tensor([v + rd[0] for v, rd in acc], dtype=torch.int64),
                              torch.tensor([rd[1] for _, rd in acc], dtype=torch.int64),
                              torch.tensor([rd[2] for _, rd in acc], dtype=torch.int64),
                              zero_point, act_min, act_max).numpy()
    # the layer only names the plan and carries the statics (run() reads them from it)
    stub = random_layer(np.random.default_rng(0), kind="linear", c=1, o=1, name=name, output_zero_point=zero_point,
                        act_min=act_min, act_max=act_max)
    return mapper.Plan(stub, cfg, cmds, np.arange(len(expected)), expected, tiles={}, model=replayed)


EXACT_READ = (1 << 30, 1)  # (mult, shift): the requantizer passes acc through unchanged (x 2, / 2)


def _twos_rows(values: np.ndarray, bits: int) -> np.ndarray:
    """(cols,) signed values -> (bits, cols) 0/1 bit planes, two's complement."""
    return ((values.astype(np.int64)[None, :] >> np.arange(bits)[:, None]) & 1).astype(np.uint8)


def bypass_plan(cfg, rng: np.random.Generator, rounds: int = 3) -> mapper.Plan:
    """An accumulator LOADed row by row, its row 0 last, then READ at once: the READ's first
    row is the LOAD two cycles older, which the array has not yet written (the block
    RAM's bypass from the older write, ``acc_hit_q``; the mapper never reads a row it
    has just loaded). Accumulators at the top rows (from rows - 43 to the last), so the
    per-row flags of every row up there are set; values within int8, read exactly."""
    B, C = cfg.acc_bits, cfg.cols
    lim = min(120, (1 << (B - 1)) - 8)
    cmds, reads = mapper._Cmds(cfg), []
    bases = sorted({max(0, cfg.rows - 43), max(0, cfg.rows - 23), cfg.rows - B})
    for _ in range(rounds):
        for base in bases:
            planes = mapper._row_words(_twos_rows(rng.integers(-lim, lim + 1, size=C), B), cmds.limbs)
            for b in [*range(B - 1, 0, -1), 0]:
                cmds.add(Op.LOAD, addr=base + b, data=planes[b])
            bias = int(rng.integers(-7, 8))
            cmds.add(Op.READ, addr=base, aux=C, data=mapper._read_data(bias, *EXACT_READ))
            reads.append((bias, *EXACT_READ))
    return _hand_plan("bypass", cmds.arrays(), cfg, reads)


def slot_words(W: int, rng: np.random.Generator) -> list[tuple[int, list[int]]]:
    """WEIGHTS words (cnt, codes) that reach every slot of the SACU's decode: every pair
    of non-zero weights (the lowest weight's and the next one's priority encoders), every
    triple's upper pair behind a lower weight (the second weight's encoder and the rest
    of the mask), an invalid code in each slot (alone and among weights), each cnt
    from 0 to W with garbage above it (+1 / -1 codes, then invalid codes), and a lone
    weight in each slot."""
    pm = lambda: int(rng.choice([Code.PLUS.value, Code.MINUS.value]))  # noqa: E731
    words = []

    def word(cnt, spots, fill=None):
        codes = [Code.ZERO.value] * W
        for j, c in spots.items():
            codes[j] = c
        if fill is not None:
            for j in range(cnt, W):
                codes[j] = fill()
        words.append((cnt, codes))

    for a in range(W):
        for b in range(a + 1, W):
            word(W, {a: pm(), b: pm()})
    for b in range(1, W):
        for k in range(b + 1, W):
            word(W, {int(rng.integers(0, b)): pm(), b: pm(), k: pm()})
    for s in range(W):
        others = [j for j in range(W) if j != s]
        word(W, {s: Code.INVALID.value})
        word(W, {s: Code.INVALID.value, **{int(j): pm() for j in rng.choice(others, size=2, replace=False)}})
    for cnt in range(W + 1):
        below = {int(j): pm() for j in rng.choice(cnt, size=min(cnt, 2), replace=False)} if cnt else {}
        word(cnt, below, fill=lambda: int(rng.choice([Code.PLUS.value, Code.MINUS.value])))
        word(cnt, below, fill=lambda: Code.INVALID.value)
    for s in range(W):  # a lone +1 and a lone -1 in each slot (the last slot is never the lowest of a pair)
        word(W, {s: Code.PLUS.value})
        word(W, {s: Code.MINUS.value})
    return words


def alias_plan(cfg, rng: np.random.Generator, rounds: int = 4) -> mapper.Plan:
    """Operations whose operand overlaps their own accumulator, one or two rows below it:
    each step reads an operand row the step before (or the one before that) has just
    written, through the operand port's bypass (``op_hit_w``, ``op_hit_q``), which the
    mapper's streams never take (their operands are never written by steps). The cycle
    model replays the array row by row, as a combinational array reads; the accumulator
    starts within int8 and is READ divided by 8 (mult 2**30, shift -2)."""
    A, B, C = cfg.op_bits, cfg.acc_bits, cfg.cols
    cmds, reads = mapper._Cmds(cfg), []
    lim = min(60, (1 << (B - 1)) - 1)
    for _ in range(rounds):
        for d in (1, 2):
            for code in (Code.PLUS, Code.MINUS):
                slot = int(rng.integers(0, 8))
                base = slot * A + d
                if base + B > cfg.usable_rows:
                    continue
                low = rng.integers(0, 2, size=(d, C)).astype(np.uint8)
                bits = np.concatenate([low, _twos_rows(rng.integers(-lim, lim + 1, size=C), B)])
                planes = mapper._row_words(bits, cmds.limbs)
                for r in range(d + B):
                    cmds.add(Op.LOAD, addr=slot * A + r, data=planes[r])
                cmds.add(Op.WEIGHTS, addr=slot, aux=base, cnt=1, data=np.array([code.value], dtype=np.uint64))
                cmds.add(Op.READ, addr=base, aux=C, data=mapper._read_data(0, 1 << 30, -2))
                reads.append((0, 1 << 30, -2))
    return _hand_plan("alias", cmds.arrays(), cfg, reads)


SLOT_BASES = (0, 1, 2, 4, 8, 16, 32, 64)  # WEIGHTS slot addresses: every bit of the slot field up there


def slots_plan(cfg, rng: np.random.Generator) -> mapper.Plan | None:
    """:func:`slot_words` over operands of random small u in every column (each slot its
    own), at slot addresses :data:`SLOT_BASES` in turn, into accumulators READ exactly
    (all columns) whenever the next word could leave int8: a weight issued from the
    wrong slot, a garbage code taken, a valid one dropped or an invalid one miscounted
    shows in an output or in a counter. The slot addresses that fit the array (None
    when not even slot 0's do)."""
    A, B, C, W = cfg.op_bits, cfg.acc_bits, cfg.cols, cfg.word_weights
    bases = [b for b in SLOT_BASES if (b + W) * A + 4 * B <= cfg.usable_rows]
    if not bases:
        return None
    cmds, reads = mapper._Cmds(cfg), []
    n_slots = max(bases) + W
    u_lim = min(4, (1 << (A - 1)) - 1)
    lim = min(120, (1 << (B - 1)) - 8)
    u = rng.integers(-u_lim, u_lim + 1, size=(n_slots, C))
    for slot in range(n_slots):
        planes = mapper._row_words(_twos_rows(u[slot], A), cmds.limbs)
        for b in range(A):
            cmds.add(Op.LOAD, addr=slot * A + b, data=planes[b])
    acc_rows = [n_slots * A + r * B for r in range(4)]
    sign = {Code.PLUS.value: 1, Code.MINUS.value: -1}
    acc, group, k = np.zeros(C, dtype=np.int64), 0, 0

    def read():
        bias = int(rng.integers(-7, 8))
        cmds.add(Op.READ, addr=acc_rows[group % 4], aux=C, data=mapper._read_data(bias, *EXACT_READ))
        reads.append((bias, *EXACT_READ))

    cmds.add(Op.CLEAR, addr=acc_rows[0])
    for cnt, codes in slot_words(W, rng):
        base = bases[k % len(bases)]
        k += 1
        delta = sum(sign.get(c, 0) * u[base + j] for j, c in enumerate(codes[:cnt]))
        if np.abs(acc + delta).max() > lim:
            read()
            group += 1
            acc[:] = 0
            cmds.add(Op.CLEAR, addr=acc_rows[group % 4])
        acc += delta
        word = sum(c << (2 * j) for j, c in enumerate(codes))
        cmds.add(Op.WEIGHTS, addr=base, aux=acc_rows[group % 4], cnt=cnt, data=np.array([word], dtype=np.uint64))
    read()
    return _hand_plan("slots", cmds.arrays(), cfg, reads)


def requant_plan(cfg, rng: np.random.Generator, *, zero_point=-3) -> mapper.Plan:
    """The requantizer suite's edge and corner vectors through the engine's READ path:
    a cleared accumulator READ once per vector (one column), the vector's accumulator as
    the bias (saturating products, exact and near halves of both roundings, every shift,
    left shifts around the int32 wrap; :func:`cosim.testbenches.requant.half_vectors`):
    FAT's own layers reach few of them."""
    from cosim.testbenches import requant as requant_tb
    edges, halves = requant_tb.edge_vectors(rng), requant_tb.half_vectors(rng)
    vec = {f: np.concatenate([edges[f], halves[f]]) for f in edges}
    cmds, reads = mapper._Cmds(cfg), []
    base = cfg.usable_rows - cfg.acc_bits
    cmds.add(Op.CLEAR, addr=base)
    for a, m, s in zip(vec["acc"].tolist(), vec["mult"].tolist(), vec["shift"].tolist()):
        cmds.add(Op.READ, addr=base, aux=1, data=mapper._read_data(a, m, s))
        reads.append((a, m, s))
    return _hand_plan("requant-params", cmds.arrays(), cfg, reads, zero_point=zero_point)


ERROR_BURST = 4096  # all-invalid words in error_words_plan: 16 errors each, 65,536 in all (stat_errors bit 16)
READ_COLS = (31, 32, 0, 1, 0, 32)  # READ column counts of error_words_plan (every bit of the count falls)
ERROR_STATICS = dict(zero_point=-5, act_min=-32, act_max=-1)  # a clamp wholly below zero (act_max's sign bit)


def error_words_plan(cfg, rng: np.random.Generator, *, burst: int = ERROR_BURST) -> mapper.Plan:
    """Weight words that are invalid codes only, which the SACU counts and skips (one cycle
    each, no operation): the first k codes of a word invalid for k = 0..W and back down
    (every partial sum of the engine's error adder takes each of its values, up to W in
    one word: the other scenarios have at most 3), then ``burst`` words of W invalid codes
    (stat_errors past 2**16); then an accumulator READ with :data:`READ_COLS` columns
    (a count that falls in every bit, and none) under :data:`ERROR_STATICS` (act_min with
    bits 6:5 set, a negative act_max). The outputs are the READs' biases through the
    clamp: the accumulator stays cleared, since no weight is issued."""
    W, C = cfg.word_weights, cfg.cols
    inv = Code.INVALID.value
    cmds, reads = mapper._Cmds(cfg), []
    acc = cfg.usable_rows - cfg.acc_bits

    def invalid(k):
        word = sum(inv << (2 * j) for j in range(k))
        cmds.add(Op.WEIGHTS, addr=0, aux=acc, cnt=W, data=np.array([word], dtype=np.uint64))

    for _ in range(2):
        for k in [*range(W + 1), *range(W - 1, -1, -1)]:
            invalid(k)
    for _ in range(burst):
        invalid(W)
    cmds.add(Op.CLEAR, addr=acc)
    for cols in READ_COLS:
        cols = min(cols, C)
        bias = int(rng.integers(-40, 8))
        cmds.add(Op.READ, addr=acc, aux=cols, data=mapper._read_data(bias, *EXACT_READ))
        reads.append((bias, *EXACT_READ))
    return _hand_plan("error-words", cmds.arrays(), cfg, reads, **ERROR_STATICS)


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
    with garbage above ``cnt``, invalid weight codes (several in one word) and the
    hand-made streams :func:`bypass_plan`, :func:`alias_plan`, :func:`slots_plan`,
    :func:`requant_plan` and :func:`error_words_plan`;
    every run checked against the cycle model."""
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
    if not go(bad, f"invalid-codes ({bad.model['errors']} invalid weight codes, up to 3 in a word: each counted in "
                   "errors, processed as zeros)", len(results)):
        return results
    # hand-made command streams: the bypass from the older write (LOAD then READ) at the top
    # rows, operands that overlap their accumulator (the operand port's bypass), every slot
    # pattern of the SACU's decode, the requantizer's corners through READ, words of invalid codes
    # only (the error adder's every sum, stat_errors past 2**16) with READs of 31, 32, 0 and 1 columns
    for name, make in (("bypass", bypass_plan), ("alias", alias_plan), ("slots", slots_plan),
                       ("requant-params", requant_plan), ("error-words", error_words_plan)):
        p = make(design.config, np.random.default_rng(seed))
        if p is not None and not go(p, name, len(results)):
            break
    return results
