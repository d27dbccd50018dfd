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
from cosim.testbenches.phantom import (capacity, check_plan, check_slots, dense_exact_layer, params_layer,
                                      random_layers, requant_params_layers, settle, stream_plan, words)
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


STALL = 0.5  # the back-pressure scenario's probability of an output cycle without ready
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


def bad_chunks(plan: mapper.Plan, rng: np.random.Generator, n: int = 3, *, only: int | None = None,
               first: int | None = None):
    """``plan`` with the packed count of ``n`` random cores' chunks (one each, picked among
    the chunks the cores receive) made to disagree with its mask -- or, with ``only``, of
    ``n`` chunks of that core alone, the first of them its chunk ``first`` (its index in
    the core's stream, from 0, as in :func:`cosim.testbenches.phantom.bad_chunks`; else
    at random) -- and the flags the mesh must then raise: ``errors``
    (bad chunks, summed), ``error_core`` (the lowest such core, from 1) and
    ``error_chunk`` (its first bad chunk in its own stream, from 1). The counts only feed
    the consistency check, so the outputs stay those of the plan."""
    cfg = plan.config
    fields = dict(plan.fields)
    if only is None:
        cores = [j for j in range(cfg.rows * cfg.cols) if len(plan.sent[j])]
        picked = [(int(j), None) for j in sorted(rng.choice(cores, size=min(n, len(cores)), replace=False))]
    else:
        count = len(plan.sent[only])
        if first is None:
            ks = rng.choice(count, size=min(n, count), replace=False).tolist()
        else:
            ks = [first, *rng.choice(np.arange(first + 1, count), size=min(n - 1, count - first - 1), replace=False).tolist()]
        picked = [(only, int(k)) for k in sorted(ks)]
    for i, (j, k) in enumerate(picked):
        if k is None:
            k = int(rng.integers(len(plan.sent[j])))  # core j's k-th chunk
            picked[i] = (j, k)
        r, c = divmod(j, cfg.cols)
        key = f"r{r}c{c}_cnt"
        fields[key] = fields[key].copy()
        w = plan.sent[j][k]
        fields[key][w] = (fields[key][w] + int(rng.integers(1, cfg.values + 1))) % (cfg.values + 1)
    bad = dataclasses.replace(plan, fields=fields)
    return bad, {"errors": len(picked), "error_core": picked[0][0] + 1, "error_chunk": picked[0][1] + 1}


def run_bad_chunks(design: Design, plan: mapper.Plan, rng: np.random.Generator, *, only: int | None = None,
                   first: int | None = None, sim="verilator", seed=1, verilog=None, waves=False,
                   timeout_s=300) -> StreamResult:
    """An error-path run: :func:`bad_chunks` of ``plan`` (``only``: in that core alone, from
    its chunk ``first``, counted from 0) through the mesh, which must flag exactly those
    chunks (``errors``, ``error_core``, ``error_chunk``) while its outputs and its products
    and chunks stay those of the good plan."""
    cfg = design.config
    check_plan(plan, cfg)
    bad, want = bad_chunks(plan, rng, only=only, first=first)
    model = dict(cycles(plan), **want)
    r = stream_plan(design, bad.fields, bad, model, (cfg.cores, cfg.lane_bits), sim=sim, seed=seed,
                    verilog=verilog, waves=waves, timeout_s=timeout_s, expect_errors=True)
    wrong = check_counters(r, model)
    if wrong and r.passed:
        r.passed = False
        r.extra["error"] = wrong
    r.extra["expected_flags"] = want
    return r


def corner_plans(cfg, seed: int) -> list[tuple[str, mapper.Plan]]:
    """The mesh's corner scenarios, (name, plan): :func:`requant_params_layers`, a layer of
    :func:`cosim.testbenches.requant.bit_half_vectors` under the first static setting
    (``requant-halves``; both with every vector through every core's requantizer) and
    :func:`dense_exact_layer` through the mesh mapper, then :func:`rank_sweep_plan`."""
    from cosim.testbenches import requant as rq
    out = [(vec.name, mapper.plan(vec, cfg)) for vec in requant_params_layers(seed, cores=cfg.cores)]
    v, sc = rq.bit_half_vectors(), rq.SCENARIOS[0]
    vec = params_layer(f"requant-halves zp={sc.zero_point} [{sc.act_min}, {sc.act_max}]", v["acc"], v["mult"],
                       v["shift"], sc.statics(), np.random.default_rng(seed), cores=cfg.cores)
    out.append((f"{vec.name} (near halves one remainder bit away, every right shift)", mapper.plan(vec, cfg)))
    vec = dense_exact_layer(cfg, np.random.default_rng(seed))
    out.append((vec.name, mapper.plan(vec, cfg)))
    plan = rank_sweep_plan(cfg, np.random.default_rng(seed))
    out.append((f"rank-sweep (every thread of every core on every position of every slot it reaches, "
                f"{plan.work['outputs'] // cfg.cores} outputs per core)", plan))
    return out


def cosim(design: Design, *, sim="verilator", seed=1, vectors=0, verilog=None, waves=False,
          timeout_s=300) -> list[StreamResult]:
    """The random sparse layers of the core's testbench (conv stride 1 / 2, FC, depthwise,
    densities 5-100 %, odd sizes), with level-2 balancing on and (every third) off, odd
    ones with idle input and back-pressure, then the sparse demo net's layers, the corners
    (:func:`corner_plans`: ``requant-params``, the requantizers' parameters at their
    extremes; ``dense-exact``, chunks full to ``values``; ``rank-sweep``, a hand-made
    stream that puts every thread on every position of every window slot it reaches; all
    free-running and held to the mesh model's cycles and busy count) and the error path
    (``bad-chunks``)."""
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
    # heavier back-pressure: a core stalls when an output closes while the one before still
    # waits for its requantizer, which the odd random layers' 20 % never makes some cores do
    # with their last window slot full (on the small configuration, core 3: survivor #26 of
    # `nnaccel mutate phantom2d`, docs/mutate.md)
    vec = random_layers(seed)[0]
    r = run(design, mapper.plan(vec, design.config), sim=sim, seed=seed + len(results), stall=STALL,
            verilog=verilog, waves=waves, timeout_s=timeout_s)
    r.extra["scenario"] = f"{vec.name} (back-pressure {STALL:.0%})"
    if settle(r, None, results):
        return results
    # corners: the requantizers' parameters at their extremes, chunks full to ``values``,
    # every thread on every position of every window slot it reaches
    for name, plan in corner_plans(design.config, seed):
        r = run(design, plan, sim=sim, seed=seed + len(results), verilog=verilog, waves=waves, timeout_s=timeout_s)
        r.extra["scenario"] = name
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

    def bad_run(rng, label, **where) -> bool:
        r = run_bad_chunks(design, plan, rng, sim=sim, seed=seed + len(results), verilog=verilog, waves=waves,
                           timeout_s=timeout_s, **where)
        want = r.extra["expected_flags"]
        r.extra["scenario"] = f"bad-chunks ({label(want)}: the error flags must name them)"
        return settle(r, None, results)

    if bad_run(np.random.default_rng(seed), lambda w: f"{w['errors']} cores with a wrong count, first core "
               f"{w['error_core'] - 1} chunk {w['error_chunk'] - 1}"):
        return results
    # ... and with the bad chunks in one core alone, for every core but the first (the run
    # above names core 0 or 1: the others' error_chunk reaches the mesh's flag only so),
    # twice, the first bad chunk's index + 1 with alternating bits and then the others
    rng = np.random.default_rng(seed + 1)
    for j in range(1, design.config.cores):
        top = len(plan.sent[j]).bit_length() - 1  # chunk numbers of `top` bits fit the core's stream
        for number in (int("10" * 16, 2) >> (32 - top), int("01" * 16, 2) >> (32 - top)):
            if bad_run(rng, lambda w: f"core {j} alone, {w['errors']} chunks from chunk {w['error_chunk'] - 1}",
                       only=j, first=number - 1):
                return results
    return results


# ---- rank-sweep on the mesh: a hand-made chunk stream -----------------------------------

def _thue_morse(i: int) -> int:
    """(-1) ** popcount(i): the sign of packed value i of a chunk, so that a fetch from an
    offset with one bit wrong gets the other sign."""
    return 1 - 2 * (bin(i).count("1") & 1)


def core_positions(plan: mapper.Plan) -> list[set[tuple[int, int, int]]]:
    """Per core, the (thread, window slot, mask position) triples its scheduler selects
    for ``plan`` with input and output running free -- the bits of its one-hot vectors
    ``one{slot}_{thread}`` (``rtl/phantom/core.py``) that rise while it issues -- per the
    cycle-exact mesh model (:func:`rtl.phantom2d.model.mesh_sim` and its ``trace``): the
    functional coverage :func:`rank_sweep_plan` is built for."""
    from rtl.phantom2d.model import mesh_sim
    cfg = plan.config
    M = cfg.chunk

    def bits(name, words):
        arr = np.asarray(plan.fields[name])[words]
        arr = arr.astype(np.int64).view(np.uint64)[:, None] if arr.ndim == 1 else arr
        return np.unpackbits(arr.astype("<u8").view(np.uint8), axis=1, bitorder="little")[:, :M].astype(bool)

    made = [set() for _ in plan.sent]
    trace: list = []
    mesh_sim(plan.words, plan.sent, plan.useful, plan.last, cfg, trace=trace)
    pos = {}
    for j, slots in trace:
        if j not in pos:
            r, c = divmod(j, cfg.cols)
            pos[j] = bits(f"r{r}_smask", plan.sent[j]) & bits(f"r{r}c{c}_mask", plan.sent[j])
        k = 0
        for s, (n, left, take) in enumerate(slots):
            where = np.flatnonzero(pos[j][n])
            done = int(plan.useful[j][n]) - left
            for i in range(take):
                made[j].add((k, s, int(where[done + i])))
                k += 1
    return made


def rank_sweep_plan(cfg, rng: np.random.Generator, *, passes: int = 2, tries: int = 400, fill: str = "alternate",
                    name: str = "rank-sweep") -> mapper.Plan:
    """``rank-sweep`` on the mesh: a hand-made word stream that puts every thread of every
    core on every mask position of every window slot it can reach with input and output
    running free.

    The mesh mapper never sends a column part without a useful product unless it closes
    its output, so no layer puts a core's thread 0 behind two emptied slots, and the
    random and demo layers seldom put any thread past slot 1 (the core's own
    ``rank-sweep``, :func:`cosim.testbenches.phantom.rank_sweep_layer`, builds its events
    from such chunks). Here every word carries the same chunk for every core (the row's
    shared activations, each column the same weights), so the cores run in lockstep and
    each sees the whole sweep. The stream is a series of *episodes*, each a few chunks
    (some without useful products, closing or not) followed by empty words (no row valid)
    until the core has drained: for each (thread, slot, position) not yet made in this
    pass, random episode shapes (useful products and close flags per chunk; one in three
    with an empty chunk that closes and one that does not behind chunks of many products,
    which is how thread 0 gets past two slots) are traced through the cycle-exact mesh
    model (:func:`rtl.phantom2d.model.mesh_sim` with a ``trace``) until one gives that
    thread that slot at a rank that fits the position, trying ``tries`` shapes; its
    chunks' useful positions are then placed rank by rank, the target's at its position
    and the others, where they can, at combinations not made yet. ``passes`` times over
    (each pass fetches other offsets there). Weights beside the useful positions and
    activations beside them vary the offsets fetched (``fill`` "low": they take the
    lowest free positions; "alternate": every other chunk's, the others at random); at
    the target position one of the two offsets has odd Thue-Morse parity where it can, so
    that its product differs from that of entry 0, which a thread whose one-hot vector
    loses its bit fetches.

    Weights and activations are +-1, packed value i of a chunk signed by the parity of
    i's set bits; every output's multiplier is 1 (2**30, shift 1), its bias within +-40
    and |acc| <= its useful products, so its int8 output is acc + bias: a product lost,
    taken twice or fetched from a wrong offset shows."""
    from golden.layer import layer_vectors_from
    from golden.quant import requantize
    from rtl.phantom.mapper import mask_word, pack_fields
    from rtl.phantom2d.config import V_BITS
    from rtl.phantom2d.model import mesh_sim

    core = cfg.core
    T, L, M, V = core.threads, core.window, core.chunk, core.values
    top = min(V, M)
    useful: list = []  # per word: useful products (None: an empty word)
    last: list = []
    positions: list = []  # per word: the useful positions, in rank order
    aim: list = []  # per word: the target position its episode was made for, if in this chunk

    def small() -> int:  # useful products of a chunk: often none or few, sometimes ``values``
        x = rng.random()
        return 0 if x < 0.3 else top if x < 0.45 else int(rng.integers(1, min(top, 2 * T + 2) + 1))

    def shape() -> tuple[list, list]:
        """Useful products and close flags of an episode's chunks: at random, or (one time in
        three) behind a slot left empty and unfreed -- chunks of many products, the last of
        them closing, then an empty closing chunk (held: the second close of a cycle) and an
        empty chunk that does not close -- which is how thread 0 gets past two slots."""
        if rng.random() < 1 / 3:
            big = [int(rng.integers(T + 1, top + 1)) for _ in range(int(rng.integers(1, 3)))] if top > T else [top]
            u = big + [0, 0] + [small() for _ in range(int(rng.integers(1, 3)))]
            lst = [bool(rng.random() < 0.5) for _ in big[:-1]] + [True, True, False]
        else:
            u = [small() for _ in range(int(rng.integers(1, L + 3)))]
            lst = []
        lst += [bool(rng.random() < 0.4) for _ in range(len(u) - len(lst))]
        lst[-1] = True  # the episode closes its last output
        return u, lst

    def events(u: list, lst: list) -> tuple[dict, int]:
        """(chunk, rank) -> (thread, slot) of the episode alone, from the model's trace (one
        entry a cycle; the mesh takes a word a cycle), and the empty words it needs after
        it so that the next episode's first chunk finds the core empty."""
        trace: list = []
        pad = sum(-(-x // T) + 1 for x in u) + cfg.fifo + 2  # more than enough to drain
        mesh_sim(len(u) + pad, [np.arange(len(u))], [np.array(u)], [np.array(lst)],
                 dataclasses.replace(cfg, rows=1, cols=1), trace=trace)
        ev = {}
        for _, slots in trace:
            k = 0
            for s, (n, left, take) in enumerate(slots):
                for r in range(take):
                    ev[(n, u[n] - left + r)] = (k, s)
                    k += 1
        busy_to = max(t for t, (_, slots) in enumerate(trace) if slots)
        return ev, max(0, busy_to + 1 - len(u))

    for _ in range(passes):
        todo = {(k, s, q) for k in range(T) for s in range(L) for q in range(M)}
        for target in sorted(todo, key=lambda t: (t[1], t[0], t[2])):
            if target not in todo:
                continue
            k_t, s_t, q_t = target
            for _ in range(tries):
                u, lst = shape()
                ev, pad = events(u, lst)
                hits = [(n, r) for (n, r), ks in ev.items() if ks == (k_t, s_t) and r <= q_t
                        and u[n] - 1 - r <= M - 1 - q_t]
                if hits:
                    break
            else:
                continue  # not reachable this way: left out
            fixed = hits[int(rng.integers(len(hits)))]
            for n in range(len(u)):
                pos, lo = [], 0
                for r in range(u[n]):
                    hi = M - (u[n] - r)
                    if (n, r) == fixed:
                        q = q_t
                    else:
                        k, s = ev[(n, r)]
                        cap = min(hi, q_t - (fixed[1] - r)) if n == fixed[0] and r < fixed[1] else hi
                        cand = [q for q in range(lo, cap + 1) if (k, s, q) in todo]
                        q = int(rng.choice(cand[:max(1, len(cand) // (u[n] - r))])) if cand else lo
                    todo.discard((*ev[(n, r)], q))
                    pos.append(q)
                    lo = q + 1
                useful.append(u[n])
                last.append(lst[n])
                positions.append(pos)
                aim.append(q_t if n == fixed[0] else None)
            useful += [None] * pad
            last += [False] * pad
            positions += [None] * pad
            aim += [None] * pad

    # masks and values, word by word; outputs close with their chunks' ``last``
    words = len(useful)
    wmask, amask = np.zeros((words, M), dtype=bool), np.zeros((words, M), dtype=bool)
    wv, av = np.zeros((words, V), dtype=np.int64), np.zeros((words, V), dtype=np.int64)
    acc, accs = 0, []
    low_fill = 0
    for i in range(words):
        if useful[i] is None:
            continue
        u = positions[i]
        w = np.zeros(M, dtype=bool)
        w[u] = True
        free = np.flatnonzero(~w)
        low_fill += 1
        low = fill == "low" or low_fill % 2 == 0
        base = w
        for _ in range(16):
            # a thread whose one-hot vector loses its bit fetches entry 0 of its slot: the target
            # position's packed values should make another product than entry 0's (one of its
            # offsets of odd Thue-Morse parity), when it has any below it
            order = free if low else rng.permutation(free)
            n_w = top - len(u) if low else int(rng.integers(0, top - len(u) + 1))
            w, a = base.copy(), base.copy()
            w[order[:n_w]] = True
            rest = np.setdiff1d(free, order[:n_w])
            n_a = min(len(rest), top - len(u) if low else int(rng.integers(0, top - len(u) + 1)))
            a[rest[:n_a] if low else rng.choice(rest, size=n_a, replace=False)] = True
            q = aim[i]
            if not q or _thue_morse(int(w[:q].sum())) != _thue_morse(int(a[:q].sum())):
                break
            low = False
        wmask[i], amask[i] = w, a
        nw, na = int(w.sum()), int(a.sum())
        wv[i, :nw] = int(rng.choice([-1, 1])) * np.array([_thue_morse(j) for j in range(nw)])
        av[i, :na] = int(rng.choice([-1, 1])) * np.array([_thue_morse(j) for j in range(na)])
        wpos, apos = np.flatnonzero(w), np.flatnonzero(a)
        acc += sum(int(wv[i, np.searchsorted(wpos, q)]) * int(av[i, np.searchsorted(apos, q)]) for q in u)
        if last[i]:
            accs.append(acc)
            acc = 0
    bias = rng.integers(-40, 41, size=len(accs))
    y = requantize(np.array(accs) + bias, 1 << 30, 1, 0, -128, 127).numpy()
    out_of = np.cumsum([0] + [bool(x) for x in last[:-1]])  # each word's output
    live = np.array([x is not None for x in useful])
    n_out = np.where(live, out_of, 0)
    fields = {}
    for r in range(cfg.rows):
        fields.update({f"r{r}_valid": live.astype(np.int64), f"r{r}_swap": np.zeros(words, dtype=np.int64),
                       f"r{r}_smask": mask_word(amask), f"r{r}_svals": pack_fields(av, V_BITS),
                       f"r{r}_scnt": amask.sum(axis=1)})
        for c in range(cfg.cols):
            p = f"r{r}c{c}_"
            fields.update({p + "use": live.astype(np.int64), p + "mask": mask_word(wmask), p + "vals": pack_fields(wv, V_BITS),
                           p + "cnt": wmask.sum(axis=1), p + "last": np.array(last, dtype=np.int64),
                           p + "bias": np.where(live, bias[np.minimum(n_out, len(bias) - 1)], 0),
                           p + "mult": np.where(live, 1 << 30, 0), p + "shift": live.astype(np.int64)})
    n_c = cfg.rows * cfg.cols
    sent = np.flatnonzero(live)
    u_arr = np.array([useful[i] for i in sent], dtype=np.int64)
    l_arr = np.array([last[i] for i in sent], dtype=bool)
    expected = np.concatenate([(j << 8) | (y & 0xFF) for j in range(n_c)])
    stand_in = layer_vectors_from(name=name, kind="linear", x=np.zeros((1, 1)), w=np.zeros((1, 1)), bias=[0],
                                  input_zero_point=0, mult=[1 << 30], shift=[1], output_zero_point=0,
                                  act_min=-128, act_max=127)  # the statics and the name: the stream is not a layer's
    work = {"outputs": n_c * len(accs), "words": words, "useful_macs": n_c * int(u_arr.sum())}  # over the cores
    return mapper.Plan(stand_in, cfg, False, fields, words, expected, np.full(n_c, len(accs)), [sent] * n_c,
                       [u_arr] * n_c, [l_arr] * n_c, work)
