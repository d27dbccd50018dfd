"""Phantom testbench: sparse int8 layers mapped to chunk streams, co-simulated, compared exactly.

Each layer goes through :func:`rtl.phantom.mapper.plan` (the same configuration
object that built the RTL); :func:`run` streams the plan's input words from memory
into the core, whose int8 outputs are compared with the golden layer, and a raised
mask error flag fails the run with the chunk it names; the core's counters must equal
the cycle model's (:func:`rtl.phantom.model.cycles`, :func:`check_counters`), so every
command that runs the core (``nnaccel cosim``, ``verify``, ``sweep``) fails on a
counter the model does not predict, naming it. Whole
layers run in image batches that fit the harness (:func:`cosim.engines.run_layer`,
with :func:`words` and :func:`capacity`).
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np

from cosim.harness import fit_depth_log2
from cosim.stream import StreamResult, run_stream
from golden.layer import LayerVectors, layer_vectors_from
from rtl.export import Design
from rtl.phantom import mapper
from rtl.phantom.model import cycles


def depth_log2(design: Design) -> int:
    """Harness memory depth for this design's (wide) chunk words."""
    return fit_depth_log2(design.port("i__payload").width)


def capacity(design: Design) -> int:
    """Harness memory depth in words (input words and output words alike)."""
    return 1 << depth_log2(design)


def words(plan) -> int:
    """Harness words a plan needs: its input words or its output words, the more."""
    return max(plan.words, len(plan.expected))


def run(design: Design, plan: mapper.Plan, *, sim="verilator", seed=1, idle=0.0, stall=0.0, verilog=None,
        waves=False, timeout_s=300) -> StreamResult:
    """One plan through the core: outputs compared exactly, the core's counters in
    ``extra["stats"]``, the cycle model's in ``extra["model"]``; a raised mask error
    flag fails the run, naming the chunk; a counter that differs from the model's fails
    it, naming the counter (:func:`check_counters`)."""
    cfg = design.config
    check_plan(plan, cfg)
    r = stream_plan(design, mapper.word_fields(plan.fields, cfg.lanes), plan, cycles(plan), (cfg.lanes, 9),
                    sim=sim, seed=seed, idle=idle, stall=stall, verilog=verilog, waves=waves, timeout_s=timeout_s)
    bad = check_counters(r, paced=bool(idle or stall))
    if bad and r.passed:
        r.passed = False
        r.extra["error"] = bad
    return r


HARNESS_CYCLES = 2  # the harness counts from reset to the last output: the model's cycles + 2
TIMED = ("busy", "slots")  # counters that depend on the pacing of input and output


def check_counters(r: StreamResult, *, paced: bool) -> str | None:
    """None when the core's counters equal the cycle model's, else the first that
    differs (with the run's cycles, the model's plus :data:`HARNESS_CYCLES`). A run
    with idle input or back-pressure (``paced``) is held to the counters that do not
    depend on timing (products, chunks, errors)."""
    stats, model = r.extra.get("stats", {}), r.extra.get("model", {})
    if not stats:
        return None  # the harness read no counters (a run that failed before them)
    want = {k: v for k, v in model.items() if k in stats and not (paced and k in TIMED)}
    if not paced:
        want["cycles"] = model["cycles"] + HARNESS_CYCLES
    got = dict(stats, cycles=r.cycles)
    for k, v in want.items():
        if got.get(k) != v:
            return f"counter {k}: RTL {got.get(k)}, cycle model {v}"
    return check_slots(r)


def check_slots(r: StreamResult) -> str | None:
    """Paced or not, every busy cycle offers every thread a slot: ``stat_slots`` must be
    threads x ``stat_busy`` (of a mesh: summed over the cores, each threads x its own
    busy cycles); None when it is (or the harness read no counters)."""
    stats, threads = r.extra.get("stats", {}), r.extra.get("threads")
    if "slots" not in stats or threads is None or stats["slots"] == threads * stats.get("busy", 0):
        return None
    return f"counter slots: RTL {stats['slots']}, threads {threads} x RTL busy {stats.get('busy')}"


def check_plan(plan, cfg) -> None:
    if plan.config != cfg:
        raise ValueError(f"{plan.layer.name}: planned for {plan.config}, not for the design's {cfg}")


def stream_plan(design: Design, fields: dict, plan, model: dict, lanes: tuple[int, int], *,
                expect_errors: bool = False, **options) -> StreamResult:
    """A plan's input words through the design (core or mesh: ``lanes`` of its output
    word), checked against the plan's expected outputs; ``model`` is the plan's cycle
    model. A raised mask error flag fails the run, naming the chunk (and the core of a
    mesh), unless ``expect_errors`` (a plan with bad chunks on purpose, whose ``model``
    says which: the counters check then holds the flag to it)."""
    L = plan.layer.layer
    statics = {"zero_point": L.output_zero_point, "act_min": L.act_min, "act_max": L.act_max}
    r = run_stream(design, fields, statics, plan.expected, depth_log2=depth_log2(design),
                   max_cycles=8 * model["cycles"] + 10_000, lanes=lanes, **options)
    r.extra["layer"] = plan.layer.name
    r.extra["threads"] = plan.config.threads
    r.extra["model"] = {k: v for k, v in model.items() if k != "core_busy"}
    r.extra["work"] = dict(plan.work)
    stats = r.extra.get("stats", {})
    if stats.get("errors") and not expect_errors:
        r.passed = False
        core = f" of core {stats['error_core'] - 1}" if "error_core" in stats else ""
        r.extra["error"] = (f"mask popcount disagrees with its packed count in chunk {stats['error_chunk'] - 1}"
                            f"{core} ({stats['errors']} bad chunk(s))")
    return r


def bad_chunks(plan, cfg, rng: np.random.Generator, n: int = 3, first: int | None = None):
    """``plan`` with the packed counts of ``n`` random chunks made to disagree with their
    masks (weight or activation count, at random), and the counters the core must then
    report: ``errors`` (bad chunks) and ``error_chunk`` (the first, from 1). The counts
    only feed the consistency check, so the outputs stay those of the plan. With
    ``first``, that chunk is the first bad one and the others follow it."""
    fields = dict(plan.fields)
    chunks = len(fields["wcnt"])
    if first is None:
        picked = np.sort(rng.choice(chunks, size=min(n, chunks), replace=False))
    else:
        later = rng.choice(np.arange(first + 1, chunks), size=min(n - 1, chunks - first - 1), replace=False)
        picked = np.sort(np.r_[first, later]).astype(np.int64)
    for c in picked:
        key = "wcnt" if rng.random() < 0.5 else "acnt"
        fields[key] = fields[key].copy()
        fields[key][c] = (fields[key][c] + int(rng.integers(1, cfg.values + 1))) % (cfg.values + 1)
    bad = dataclasses.replace(plan, fields=fields)
    return bad, {"errors": len(picked), "error_chunk": int(picked[0]) + 1}


def run_bad_chunks(design: Design, plan: mapper.Plan, rng: np.random.Generator, *, sim="verilator", seed=1,
                   verilog=None, waves=False, timeout_s=300, first: int | None = None) -> StreamResult:
    """An error-path run: :func:`bad_chunks` of ``plan`` through the core, which must flag
    exactly those chunks (``errors``, ``error_chunk``) while its outputs and every other
    counter stay those of the good plan."""
    cfg = design.config
    check_plan(plan, cfg)
    bad, want = bad_chunks(plan, cfg, rng) if first is None else bad_chunks(plan, cfg, rng, first=first)
    model = dict(cycles(plan), **want)
    r = stream_plan(design, mapper.word_fields(bad.fields, cfg.lanes), bad, model, (cfg.lanes, 9), sim=sim,
                    seed=seed, verilog=verilog, waves=waves, timeout_s=timeout_s, expect_errors=True)
    wrong = check_counters(r, paced=False)
    if wrong and r.passed:
        r.passed = False
        r.extra["error"] = wrong
    r.extra["expected_flags"] = want
    return r


def first_bad_chunk(chunks: int, lanes: int, lane: int) -> int:
    """The first bad chunk of ``bad-chunks``' run for input lane ``lane``: the chunk i of
    that lane (i mod ``lanes``) below 2**b - 1, the largest such bound within ``chunks``,
    so that the flag's index i + 1 = stat_chunks + 1 + lane sets every bit below b but
    what the lane fixes (each lane has its own adder)."""
    top = (1 << (chunks.bit_length() - 1)) - 1
    return top - 1 - (top - 1 - lane) % lanes


def random_layer(rng: np.random.Generator, *, kind="conv", n=1, c=3, h=6, w=6, o=5, k=3, stride=1, padding=1,
                 wd=0.5, ad=0.5, name="rand") -> LayerVectors:
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


def random_layers(seed: int) -> list[LayerVectors]:
    rng = np.random.default_rng(seed)
    return [random_layer(rng, name=f"rand{i}-{spec['kind']}", **spec) for i, spec in enumerate(RANDOM_LAYERS)]


# ---- corner layers (tests/test_suite_corners_sparse.py shows each kills a mutant the random layers miss) ----

def params_layer(name: str, acc, mult, shift, statics: dict, rng: np.random.Generator, *,
                 input_zero_point: int = 127, c: int = 4, lanes: int = 1, threads: int = 1,
                 cores: int = 1) -> LayerVectors:
    """A linear layer (one image) whose output channels requantize exactly the
    accumulators ``acc[j]`` with ``mult[j]`` and ``shift[j]`` under ``statics``
    (zero_point, act_min, act_max): its bias is acc[j] minus a small dot product of
    int8 weights (-128 among them) and u = x - ``input_zero_point`` (127: every u in
    [-255, 0], so the packed activations are negative; -128: positive, up to 255). A
    channel whose accumulator lies within 2**18 of the int32 limits has no weights, so
    its bias is the accumulator itself.

    With ``lanes`` > 1 (a core's requantizer lanes), every vector reaches every lane:
    vector j is output channels j * lanes .. (j + 1) * lanes - 1, each channel one chunk
    with at most ``threads // lanes`` useful products, so each input word's ``lanes``
    chunks all close in the cycle the word enters the window, channel i in lane
    i mod lanes (one word a cycle; :func:`output_lanes` replays it on the cycle model).
    Mutation samples the lanes' requantizers alike, and a vector that reaches only one
    lane leaves the other lanes' faults alive.

    With ``cores`` > 1 (a mesh's cores), every vector reaches every core's requantizer:
    vector j is output channels j * cores .. (j + 1) * cores - 1, each with exactly one
    non-zero weight (at a column of u = 0 when the accumulator is near the int32 limits),
    so that the mesh mapper's longest-work-first balancing, on equal work, deals channel i
    to core i mod cores (:func:`rtl.phantom2d.mapper.assign`)."""
    if lanes > 1 and cores > 1:
        raise ValueError("params_layer: lanes (a core's) and cores (a mesh's) do not combine")
    copies = max(lanes, cores)
    acc, mult, shift = (np.repeat(np.asarray(a, dtype=np.int64), copies) for a in (acc, mult, shift))
    o = len(acc)
    x = rng.integers(-128, 128, size=(1, c))
    x[0, :2] = (-128, 127)  # u at both ends: +-255 and 0
    extreme = np.abs(acc) > (1 << 31) - (1 << 18)
    if cores > 1:  # one weight a channel: equal work
        wt = np.zeros((o, c), dtype=np.int64)
        col = np.where(extreme, int(np.flatnonzero(x[0] == input_zero_point)[0]), rng.integers(0, c, size=o))
        wt[np.arange(o), col] = np.where(np.arange(o) % 7 == 0, -128, rng.choice([-1, 1], size=o) * rng.integers(1, 128, size=o))
    else:
        wt = rng.integers(-128, 128, size=(o, c)) * (rng.random((o, c)) < 0.6)
        wt[::7, 0] = -128
        if lanes > 1:  # keep each channel's first threads // lanes useful products
            useful = (wt != 0) & (x[0] != input_zero_point)
            wt[useful & (np.cumsum(useful, axis=1) > threads // lanes)] = 0
        wt[extreme] = 0
    bias = acc - wt @ (x[0] - input_zero_point)
    return layer_vectors_from(name=name, kind="linear", x=x, w=wt, bias=bias, input_zero_point=input_zero_point,
                              mult=mult, shift=shift, output_zero_point=statics["zero_point"],
                              act_min=statics["act_min"], act_max=statics["act_max"])


def requant_params_layers(seed: int, *, lanes: int = 1, threads: int = 1, cores: int = 1) -> list[LayerVectors]:
    """``requant-params``: the requantizer's parameters at their extremes through the core.

    The first layer carries :func:`cosim.testbenches.requant.params_vectors`: the
    requantizer suite's edge and corner vectors (multipliers INT32_MIN / INT32_MAX /
    0 / -1, every shift from -31 to 30, the saturating and near-saturating products,
    exact and near halves of both roundings, left shifts around the int32 wrap, the high
    multiply's truncation bit by bit) plus,
    per multiplier bit k, the raw multiplier 2**k with an accumulator near t * 2**(31 - k)
    (so that bit k of mult moves the int8 output) and with products exactly at and 2**k
    either side of a half of the high multiply (t * 2**31 + 2**30 + e * 2**k, small t: the
    rounding shows in int8 at shift 0), all as biases of up to the int32 limits
    over negative u; the others sweep the outputs across the clamp under the requantizer
    suite's other static settings (its second scenario's and
    :data:`cosim.testbenches.requant.STATIC_SWEEP`: with the first, every bit of the zero
    point and of both clamp bounds at both values), over positive and negative u. Every
    vector goes to every one of a core's ``lanes`` requantizers (:func:`params_layer`,
    with the core's ``threads``), or of a mesh's ``cores``."""
    from cosim.testbenches import requant as rq

    rng = np.random.default_rng(seed)
    v = rq.params_vectors(rng)
    acc, mult, shift = v["acc"], v["mult"], v["shift"]
    base = rq.SCENARIOS[0]
    fan = dict(lanes=lanes, threads=threads, cores=cores)
    out = [params_layer(f"requant-params zp={base.zero_point} [{base.act_min}, {base.act_max}]", acc, mult, shift,
                        base.statics(), rng, **fan)]
    for k, sc in enumerate(rq.SCENARIOS[1:] + rq.STATIC_SWEEP):
        v = rq.sweep_vectors(sc)
        out.append(params_layer(f"requant-params zp={sc.zero_point} [{sc.act_min}, {sc.act_max}]", v["acc"],
                                v["mult"], v["shift"], sc.statics(), rng,
                                input_zero_point=-128 if k % 2 == 0 else 127, **fan))
    return out


def window_replay(useful, last, cfg) -> tuple[list[int], collections.Counter]:
    """A free-running core's window over a chunk stream (per chunk: its useful products
    and whether it closes its output), one cycle at a time on the exact cycle model
    (:func:`rtl.phantom.model.schedule`): the requantizer lane of each output, in order
    (the outputs closed in one cycle take lanes 0, 1, ... in stream order), and how
    often each scheduling event occurs: ``("take", s, j, more)``, threads take from
    window slot s behind j closing chunks, in a cycle that closes more than j outputs
    (``more``) or not; ``("first", j)``, thread 0 takes behind j closing chunks."""
    from rtl.phantom.model import schedule
    T, L, NL = cfg.threads, cfg.window, cfg.lanes
    lanes, events, slots, i, n = [], collections.Counter(), [], 0, len(last)
    while i < n or slots:
        takes, d, closed = schedule(slots, T, NL)
        lanes += range(closed)
        before, first = 0, True
        for s, (slot, take) in enumerate(zip(slots, takes)):
            if take:
                events["take", s, before, closed > before] += 1
                if first:
                    events["first", before] += 1
                    first = False
            before += slot[1]
            slot[0] -= take
        del slots[:d]
        if i < n and len(slots) <= L - NL:
            for _ in range(min(NL, n - i)):
                slots.append([int(useful[i]), bool(last[i])])
                i += 1
    return lanes, events


def output_lanes(plan: mapper.Plan) -> list[int]:
    """The requantizer lane of each of ``plan``'s outputs (:func:`window_replay`)."""
    return window_replay(plan.useful, plan.last, plan.config)[0]


def dense_exact_layer(cfg, rng: np.random.Generator, *, blocks: int = 3, n: int = 4, o: int = 8,
                      input_zero_point: int = 127, name: str = "dense-exact") -> LayerVectors:
    """``dense-exact``: a linear layer whose reduction is ``blocks`` runs of ``chunk``
    positions, each holding exactly ``values`` non-zero weights and ``values`` non-zero
    activations (at random positions, the first block's weights and activations in its
    top ``values`` positions), so that the mapper cuts every chunk at ``chunk`` positions
    with both counts exactly ``values``: the packed offsets reach ``values`` - 1, the
    counts their top value, the masks their top position. Weights span int8 (-128
    included), u = x - ``input_zero_point`` spans [-255, 0] (or [0, 255]); multipliers
    scale each channel's accumulators into int8 (the first image's, all at u = -255 or
    255, saturate)."""
    M, V = cfg.chunk, cfg.values
    k = blocks * M

    def picks(rows):
        mask = np.zeros((rows, k), dtype=bool)
        for r in range(rows):
            for b in range(blocks):
                pos = np.arange(M - V, M) if b == 0 else np.sort(rng.choice(M, size=V, replace=False))
                mask[r, b * M + pos] = True
        return mask

    wt = rng.integers(-128, 128, size=(o, k))
    wt = np.where(wt == 0, -128, wt) * picks(o)
    wt[0, wt[0] != 0] = -128
    lo, hi = (-128, 126) if input_zero_point == 127 else (-127, 127)
    x = rng.integers(lo, hi + 1, size=(n, k))
    x = np.where(x == input_zero_point, lo, x)
    x[0, x[0] != input_zero_point] = lo if input_zero_point == 127 else hi  # u = -255 (255) throughout
    x = np.where(picks(n), x, input_zero_point)
    u = x - input_zero_point
    bias = rng.integers(-5000, 5000, size=o)
    acc = u @ wt.T + bias  # (n, o)
    scale = np.maximum(1, np.abs(acc[1:]).max(axis=0))
    return layer_vectors_from(name=name, kind="linear", x=x, w=wt, bias=bias, input_zero_point=input_zero_point,
                              real_multipliers=120.0 / scale, output_zero_point=int(rng.integers(-20, 21)),
                              act_min=-128, act_max=127)


def rank_sweep_layer(cfg, rng: np.random.Generator, *, images: int = 4, passes: int = 3, fill: str = "alternate",
                     name: str = "rank-sweep") -> LayerVectors:
    """``rank-sweep``: a linear layer whose chunk stream puts every thread on every mask
    position of every window slot it can reach while input and output run free.

    The scheduler's parallel ranking gives thread k, per slot s, a one-hot vector over
    the chunk's positions (``one{s}_{k}`` in ``rtl/phantom/core.py``): thread k takes
    slot s when the eligible slots before it hold at most k useful products, and then
    the position whose rank among the chunk's useful ones is k minus those. Random
    chunks rarely put a high position at a low rank, or any chunk behind emptied slots.
    Here every input word is an *event* of ``lanes`` chunks carrying ``threads`` useful
    products in all (chunks without any make the slots before), issued in one cycle
    into an empty window: thread k lands on a chosen slot and position. Slots ``lanes``
    and beyond are reached behind 1 .. window - lanes chunks left over from the word
    before (a chunk of threads + j useful products, 0 < j < threads, issues for two
    cycles): threads j .. threads - 1 go past them. The positions are picked greedily
    until every such (thread, slot, position) is made, ``passes`` times over (each pass
    fetches other offsets there); thread 0 behind a leftover slot needs a stalled core or
    lanes + 1 outputs closing and is left to the other scenarios.

    The chunks of ``images`` outputs (one output channel, one per image) follow one
    another, each over the same run of ``chunk``-position blocks (weights shared,
    activations per image); weights beside the useful positions (where no image has an
    activation) and activations beside them (where there is no weight) vary the packed
    offsets the threads fetch (``fill`` "low": those of every block fill its lowest free
    positions; "alternate": every other block's, the others at random). Weights and
    activations are +-1, packed value i of a chunk signed by the parity of i's set bits
    (so a fetch from an offset with one bit wrong gets the other sign), each dot product
    within +-``values``, the bias 16 .. 99 and the multiplier 1: the int8 output is the
    accumulator plus the bias, so a product lost, taken twice or fetched from a wrong
    offset shows."""
    if fill not in ("low", "alternate"):
        raise ValueError(f"fill must be 'low' or 'alternate', not {fill!r}")
    T, L, NL, M, V = cfg.threads, cfg.window, cfg.lanes, cfg.chunk, cfg.values
    todo: set = set()
    chunks: list[list[int]] = []  # useful positions of each chunk, in stream order

    def place(groups: list[list[int]], slots: range, fixed: tuple) -> list[list[int]] | None:
        """Positions for the threads of each slot (in rank order): thread k* of ``fixed``
        (k*, s*, q*) at q*, the others at combinations not made yet where they can; None
        when q* cannot have its rank."""
        out = []
        for s, ks in zip(slots, groups):
            pos, lo = [], 0
            for i, k in enumerate(ks):
                hi = M - (len(ks) - i)
                if (k, s) == fixed[:2]:
                    if not lo <= fixed[2] <= hi:
                        return None
                    q = fixed[2]
                else:
                    top = min(hi, fixed[2] - 1) if s == fixed[1] and k < fixed[0] else hi
                    cand = [q for q in range(lo, top + 1) if (k, s, q) in todo]
                    q = int(rng.choice(cand[:max(1, len(cand) // (len(ks) - i))])) if cand else lo
                pos.append(q)
                lo = q + 1
            out.append(pos)
        return out

    def spread(threads: list[int], slots: range, target: tuple) -> list[list[int]]:
        """``threads`` (in order) over ``slots`` (in order, each may get none), at random,
        with the target's thread in the target's slot."""
        k, s = target[:2]
        i, si = threads.index(k), slots.index(s)
        cut_lo = np.sort(rng.integers(0, i + 1, size=si)) if si else np.zeros(0, dtype=int)
        cut_hi = np.sort(rng.integers(i + 1, len(threads) + 1, size=len(slots) - 1 - si))
        bounds = [0, *cut_lo.tolist(), *cut_hi.tolist(), len(threads)]
        return [threads[bounds[n]:bounds[n + 1]] for n in range(len(slots))]

    for _ in range(passes):  # each pass makes every combination again, with other offsets
        todo = {(k, s, q) for k in range(T) for s in range(L) for q in range(M)}
        for target in sorted(todo, key=lambda t: (t[1], t[0], t[2])):
            if target not in todo:
                continue
            k, s, q = target
            hs = [h for h in range(0, min(NL, L - NL) + 1)
                  if h <= s < h + NL and (h == 0 or 1 <= k and T < min(V, M))]  # a leftover holds T + j
            if T == 1 and s >= NL or not hs:
                continue  # thread 0 behind a leftover: only a stalled core gets there
            h = int(rng.choice(hs))
            j = int(rng.integers(1, min(k, min(V, M) - T) + 1)) if h else 0
            slots = range(h, h + NL)
            event = None
            for _ in range(8):  # the threads after the target's may idle (a word with fewer useful products)
                busy = list(range(j, int(rng.integers(k, T)) + 1 if q > M - T else T))
                groups = spread(busy, slots, target)
                event = place(groups, slots, target) if max(map(len, groups)) <= min(V, M) else None
                if event is not None:
                    break
            if event is None:
                continue
            if h:  # first the word that leaves T + j useful products at slot lanes - h, then h - 1 empty ones
                x = place([list(range(T))], range(NL - h, NL - h + 1), (-1, -1, M))[0]
                x = sorted(x + rng.choice(np.setdiff1d(np.arange(M), x), size=j, replace=False).tolist())
                chunks += [[] for _ in range(NL - h)] + [x] + [[] for _ in range(h - 1)]
            chunks += event
            thread = j
            for ss, pos in zip(slots, event):
                for qq in pos:
                    todo.discard((thread, ss, qq))
                    thread += 1
    images = max(1, min(images, V // max(map(len, chunks))))  # the images' useful positions share a block's weights
    chunks += [[] for _ in range(-len(chunks) % (images * NL))]
    blocks = len(chunks) // images  # chunk i of image n is block i % blocks
    k = blocks * M
    wmask, amask = np.zeros(k, dtype=bool), np.zeros((images, k), dtype=bool)
    for b in range(blocks):
        sl = slice(b * M, (b + 1) * M)
        useful = [chunks[n * blocks + b] for n in range(images)]
        w = np.zeros(M, dtype=bool)
        for u in useful:
            w[u] = True
        free = np.flatnonzero(~w)
        spare = V - int(w.sum())
        low = fill == "low" or b % 2 == 1  # every other block: the extra weights fill the lowest positions, so
        order = free if low else rng.permutation(free)  # the offsets fetched reach their top bits
        n_w = spare if low else int(rng.integers(0, spare + 1))
        w[order[:n_w]] = True  # weights where no image has an activation
        rest = np.setdiff1d(free, order[:n_w])
        for n, u in enumerate(useful):
            a = np.zeros(M, dtype=bool)
            a[u] = True
            low = fill == "low" or (b + n) % 2 == 0
            n_a = min(len(rest), V - len(u) if low else int(rng.integers(0, V - len(u) + 1)))
            a[rest[:n_a] if low else rng.choice(rest, size=n_a, replace=False)] = True
            amask[n, sl] = a
        wmask[sl] = w
    assert (amask.reshape(images, blocks, M).sum(axis=2) <= V).all()
    assert (wmask.reshape(blocks, M).sum(axis=1) <= V).all()
    # packed value i of every chunk is +-(-1)**popcount(i) (Thue-Morse): an offset with one
    # bit wrong fetches the other sign; the sign of each block's activations is chosen to
    # keep every image's running sum near 0
    def thue_morse(count):
        i = np.arange(count)
        return 1 - 2 * (np.array([bin(v).count("1") for v in i], dtype=np.int64) & 1)

    wt, x = np.zeros((1, k), dtype=np.int64), np.zeros((images, k), dtype=np.int64)
    run = np.zeros(images, dtype=np.int64)
    for b in range(blocks):
        sl = slice(b * M, (b + 1) * M)
        pos = np.flatnonzero(wmask[sl])
        wt[0, b * M + pos] = int(rng.choice([-1, 1])) * thue_morse(len(pos))
        for n in range(images):
            pos = np.flatnonzero(amask[n, sl])
            vals = thue_morse(len(pos))
            part = int(vals @ wt[0, b * M + pos])
            sign = -1 if run[n] * part > 0 else 1
            x[n, b * M + pos] = sign * vals
            run[n] += sign * part
    bias = rng.integers(16, 100, size=1)  # input zero point 0: x = u; multiplier 1: the output is acc + bias
    return layer_vectors_from(name=name, kind="linear", x=x, w=wt, bias=bias, input_zero_point=0,
                              real_multipliers=[1.0], output_zero_point=0, act_min=-128, act_max=127)


def region_sweep_layer(cfg, rng: np.random.Generator, *, o: int = 200, group: int = 6, tries: int = 16,
                       quota: int = 8, least: int = 3, name: str = "region-sweep") -> LayerVectors:
    """``region-sweep``: a linear layer (one image) of short outputs, one or two chunks
    each, with 0 .. threads + 2 useful products per chunk (half of them none), so the
    window holds the mixes of closing and open chunks the free-running scheduler meets
    rarely: threads in every slot behind 0 .. lanes closing chunks, in cycles that close
    more outputs than that (the product counted in the right one of the outputs closed
    together), and thread 0 behind ``lanes`` closing chunks (its product goes to the sum
    carried into the next output). The random layers' chunks seldom leave a closed
    output in the window with another behind it.

    ``values`` of the ``chunk`` positions hold an activation (u in [-255, 255]); a
    channel's weights (int8, odd, -128 in every seventh channel) sit on a random number
    of them, and in two channels out of five on ``values`` + 1 positions in all (the
    empty ones first), which cuts the output into two chunks. Channels are drawn
    ``group`` at a time, the best of ``tries`` draws (half of them with more empty
    channels and fewer cuts): the one that brings the most scheduling events
    (:func:`window_replay`) nearer ``quota`` occurrences each; past ``o`` channels, up
    to 2 ``o``, while thread 0 behind ``lanes`` closing chunks, or a thread in a slot
    behind 1 .. ``lanes`` - 1 closing ones in a cycle that closes more, has occurred
    fewer than ``least`` times. The
    multiplier is 1 and the bias centres each accumulator in [-90, 90], so the int8
    output is the accumulator: a product lost, counted twice or in the wrong output
    shows."""
    from rtl.phantom.mapper import cut_chunks
    T, M, V = cfg.threads, cfg.chunk, cfg.values
    act = np.sort(rng.choice(M, size=V, replace=False))
    idle = np.setdiff1d(np.arange(M), act)
    x = rng.integers(-128, 127, size=(1, M))  # never 127, the input zero point ...
    x[0, idle] = 127  # ... except off the activations: u = 0

    def channel(empty: float, cut: float):
        w = np.zeros(M, dtype=np.int64)
        n = 0 if rng.random() < empty else min(V, int(rng.integers(1, T + 3)))
        w[rng.choice(act, size=n, replace=False)] = rng.integers(-128, 128, size=n) | 1
        if rng.random() < cut:  # values + 1 weights, on empty positions first: a cut
            k = min(len(idle), V + 1)
            spare = np.setdiff1d(act, np.flatnonzero(w))[:max(0, V + 1 - k - n)]
            more = np.r_[rng.choice(idle, size=k, replace=False), spare].astype(np.int64)
            w[more] = rng.integers(-128, 128, size=len(more)) | 1
        return w

    def chunks(rows):
        wm = np.asarray(rows) != 0
        am = np.broadcast_to(x[0] != 127, wm.shape)
        r, s0, e = cut_chunks(wm, am, cfg)
        cum = np.zeros((len(rows), M + 1), dtype=np.int64)
        np.cumsum(wm & am, axis=1, out=cum[:, 1:])
        return list(cum[r, e] - cum[r, s0]), list(np.r_[r[1:] != r[:-1], True])

    def score(useful, last):
        return sum(min(c, quota) for c in window_replay(useful, last, cfg)[1].values())

    L, NL = cfg.window, cfg.lanes
    rare = [("first", NL)] + [("take", s, j, True) for j in range(1, NL) for s in range(j + 1, L)]

    def short(useful, last):  # a rare event below ``least`` occurrences
        events = window_replay(useful, last, cfg)[1]
        return any(events[e] < least for e in rare)

    rows, useful, last = [], [], []
    while len(rows) < o or (len(rows) < 2 * o and short(useful, last)):
        draws = [[channel(*mix) for _ in range(group)] for mix in ((0.5, 0.4), (0.8, 0.1)) * (tries // 2)]
        best = max(draws, key=lambda d: score(useful + chunks(d)[0], last + chunks(d)[1]))
        u, c = chunks(best)
        rows, useful, last = rows + best, useful + u, last + c
    wt = np.array(rows)
    wt[::7][wt[::7] != 0] = -128
    bias = rng.integers(-90, 91, size=len(wt)) - wt @ (x[0] - 127)
    return layer_vectors_from(name=name, kind="linear", x=x, w=wt, bias=bias, input_zero_point=127,
                              real_multipliers=[1.0] * len(wt), output_zero_point=0, act_min=-128, act_max=127)


def thread_positions(plan: mapper.Plan) -> set[tuple[int, int, int]]:
    """The (thread, window slot, mask position) triples a free-running core's scheduler
    selects for ``plan`` -- the bits of its one-hot vectors ``one{slot}_{thread}`` that
    rise -- per the exact cycle model (:func:`rtl.phantom.model.schedule`, one cycle at a
    time): the functional coverage :func:`rank_sweep_layer` is built for."""
    from rtl.phantom.model import schedule
    cfg = plan.config
    T, L, NL, M = cfg.threads, cfg.window, cfg.lanes, cfg.chunk

    def bits(name):
        arr = np.asarray(plan.fields[name])
        arr = arr.astype(np.int64).view(np.uint64)[:, None] if arr.ndim == 1 else arr
        return np.unpackbits(arr.astype("<u8").view(np.uint8), axis=1, bitorder="little")[:, :M].astype(bool)

    both = bits("wmask") & bits("amask")
    made, slots, i, n = set(), [], 0, len(plan.last)
    while i < n or slots:
        takes, d, _ = schedule([[s[0], s[1]] for s in slots], T, NL)
        k = 0
        for si, (s, take) in enumerate(zip(slots, takes)):
            for r in range(take):
                made.add((k, si, int(s[2][s[3] + r])))
                k += 1
            s[0] -= take
            s[3] += take
        del slots[:d]
        if i < n and len(slots) <= L - NL:
            for _ in range(min(NL, n - i)):
                pos = np.flatnonzero(both[i])
                slots.append([len(pos), bool(plan.last[i]), pos, 0])
                i += 1
    return made


def cosim(design: Design, *, sim="verilator", seed=1, vectors=0, verilog=None, waves=False,
          timeout_s=300) -> list[StreamResult]:
    """Random sparse layers (``vectors`` is ignored: the layer set is fixed, seeded), then
    the sparse demo net's layers on one image, the corners (:func:`corner_plans`:
    ``requant-params``, ``dense-exact``, ``rank-sweep``, ``region-sweep``) and the error path
    (``bad-chunks``, a run per input lane); odd random
    layers run with idle input and back-pressure, the others are also checked counter
    for counter against the cycle model."""
    from golden.nets import digits
    results = []
    demo = [vec.renamed(f"digits-sparse-{vec.name}") for vec in digits.layer_vectors(digits.build("sparse"), 1)]
    for idx, vec in enumerate(random_layers(seed) + demo):
        plan = mapper.plan(vec, design.config)
        busy = idx % 2 == 1 and idx < len(RANDOM_LAYERS)
        r = run(design, plan, sim=sim, seed=seed + idx, idle=0.1 * busy, stall=0.2 * busy,
                verilog=verilog, waves=waves, timeout_s=timeout_s)
        r.extra["scenario"] = vec.name + (" (idle + back-pressure)" if busy else "")
        if settle(r, None, results):
            return results
    for name, plan in corner_plans(design.config, seed):
        r = run(design, plan, sim=sim, seed=seed + len(results), verilog=verilog, waves=waves, timeout_s=timeout_s)
        r.extra["scenario"] = name
        if settle(r, None, results):
            return results
    # the error path: chunks whose packed counts disagree with their masks must raise the
    # flag, each counted and the first named, while the outputs stay right: a run per
    # input lane, whose first bad chunk sets the bits of the index the flag names
    # (:func:`first_bad_chunk`; the others at random after it)
    vec = random_layers(seed)[0]
    plan = mapper.plan(vec, design.config)
    rng = np.random.default_rng(seed)
    lanes = design.config.lanes
    for lane in range(lanes):
        r = run_bad_chunks(design, plan, rng, sim=sim, seed=seed + len(results), verilog=verilog, waves=waves,
                           timeout_s=timeout_s, first=first_bad_chunk(len(plan.last), lanes, lane))
        want = r.extra["expected_flags"]
        r.extra["scenario"] = (f"bad-chunks (lane {lane}: {want['errors']} chunks with wrong counts, first "
                               f"{want['error_chunk'] - 1}: the error flag must name them)")
        if settle(r, None, results):
            break
    return results


def corner_plans(cfg, seed: int) -> list[tuple[str, mapper.Plan]]:
    """The core's corner scenarios, (name, plan): :func:`requant_params_layers`, then
    :func:`dense_exact_layer` through the sparse mapping (negative u) and through the
    dense one (masks of all ones over ``values`` positions, zeros packed; positive u),
    then :func:`rank_sweep_layer` and :func:`region_sweep_layer` (sparse mapping), all
    run on the design's (sparse or dense) core: the hardware is the same."""
    out = [(vec.name, mapper.plan(vec, cfg)) for vec in requant_params_layers(seed, lanes=cfg.lanes,
                                                                              threads=cfg.threads)]
    rng = np.random.default_rng(seed)
    vec = dense_exact_layer(cfg, rng)
    out.append((f"dense-exact (every chunk {cfg.chunk} positions, {cfg.values} values of each operand)",
                mapper.plan(vec, dataclasses.replace(cfg, dense=False))))
    vec = dense_exact_layer(cfg, rng, input_zero_point=-128, name="dense-exact-dense")
    out.append((f"dense-exact (dense mapping: masks all ones, {cfg.values} values)",
                mapper.plan(vec, dataclasses.replace(cfg, dense=True))))
    vec = rank_sweep_layer(cfg, rng)
    out.append((f"rank-sweep (every thread on every position of every slot it reaches unstalled, "
                f"{len(vec.y.ravel())} outputs)", mapper.plan(vec, dataclasses.replace(cfg, dense=False))))
    vec = region_sweep_layer(cfg, rng)
    out.append((f"region-sweep (threads behind 0 .. {cfg.lanes} closing chunks, {len(vec.y.ravel())} outputs)",
                mapper.plan(vec, dataclasses.replace(cfg, dense=False))))
    return [(name, dataclasses.replace(p, config=cfg)) for name, p in out]


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
