"""Phantom-2D cycle models: the cycle-exact mesh model of a plan (equal to the mesh RTL)
and the fast mesh model for large layers.

:func:`cycles` (:func:`mesh_sim`) runs every core's queue, window and output pipeline
cycle by cycle. The fast model (:func:`mesh_layer`) follows the dataflow of the mesh
RTL (:func:`rtl.phantom2d.mapper.assign`: conv rows take positions and columns
filters, FC filters spread over all cores, depthwise rows take channels and columns
positions), with chunk boundaries common to a row word, and runs the exact mesh
model on a sample of output positions, scaled. **Level 2** balancing: filters
(channels) to cores longest-work-first by their non-zero weights (what a mapper knows
before run time), positions dealt out; without it, blocks. Level 1 (each core's
dynamic thread scheduling) and the layer as masks are as in :mod:`rtl.phantom.model`.

The fast mesh model is checked against the exact mesh model on demo and synthetic
layers (tests and ``nnaccel bench phantom``).
"""

from __future__ import annotations

import numpy as np

from rtl.phantom.config import ISSUE_STAGES
from rtl.phantom2d.config import Phantom2DConfig
from rtl.phantom2d.mapper import Plan, assign, blocks, core_streams, row_chunks
from rtl.phantom.model import LayerMasks, cycle_model, dense_rate, schedule, static_cycles

FIFO_DELAY = 1  # a word reaches its core one cycle after the mesh takes it
HARNESS_CYCLES = 2  # harness cycles outside the mesh model (calibrated against the RTL)


def cycles(plan: Plan) -> dict:
    """The cycle-exact mesh model of a plan (:func:`mesh_sim`): ``cycles`` as the harness
    counts them, the RTL's stat_* sums, per-core busy cycles and the imbalance."""
    return mesh_sim(plan.words, plan.sent, plan.useful, plan.last, plan.config)


def _imbalance(c: np.ndarray) -> float:
    busy = c[c > 0]
    return float(busy.max() / busy.mean()) if busy.size else 1.0


def mesh_sim(words: int, sent: list, useful: list, last: list, cfg: Phantom2DConfig, *,
             max_cycles: int = 100_000_000, trace: list | None = None) -> dict:
    """Cycle-exact model of the mesh RTL (input always valid, output never stalled) for
    ``words`` input words; per core, the words that carry a chunk for it (``sent``) and
    each chunk's useful products and close flag. Per core: its queue, window
    (:func:`rtl.phantom.model.schedule`), issue pipeline (``ISSUE_STAGES``: a close
    reaches the output register that many cycles after its last issue, and stalls the
    core there while the output register cannot pass it on), output register and
    requantizer pipeline; the
    mesh takes a word when every queue has room; each core has its own output lane.
    ``cycles`` matches the harness's count, the counters the RTL's stat_* sums.
    ``trace``, when given, gets per core and issuing cycle ``(core, [(chunk, left, take)
    per window slot])``: the index of the slot's chunk in the core's stream, its useful
    products left before the issue and those it issues (threads take them in slot order)."""
    T, L, D = cfg.threads, cfg.window, cfg.fifo
    n_c = cfg.rows * cfg.cols
    lat = cfg.core.requant.latency
    feeds = [list(zip(np.asarray(s).tolist(), np.asarray(u).tolist(), np.asarray(la).tolist()))
             for s, u, la in zip(sent, useful, last)]
    nxt = [0] * n_c  # next feed item per core
    fifo = [[] for _ in range(n_c)]
    slots = [[] for _ in range(n_c)]
    out_valid = [False] * n_c
    pipe = [[False] * lat for _ in range(n_c)]
    issue = [[False] * ISSUE_STAGES for _ in range(n_c)]  # closes in the issue pipeline
    busy, products = [0] * n_c, [0] * n_c
    word, collected, total = 0, 0, int(sum(np.asarray(la).sum() for la in last))
    t = 0
    while collected < total:
        if t > max_cycles:
            raise RuntimeError("mesh model did not finish")
        grants = [j for j in range(n_c) if pipe[j][-1]]  # a lane per core: every valid output leaves
        take_word = word < words and all(len(q) < D for q in fifo)
        for j in range(n_c):
            o_ready = j in grants
            en = not pipe[j][-1] or o_ready
            takes, d, fin = schedule(slots[j], T, 1)
            fin_out = issue[j][-1]  # the close leaving the issue pipeline
            go = not (fin_out and out_valid[j] and not en)
            if slots[j]:
                busy[j] += 1
            if go:
                if trace is not None:
                    trace.append((j, [(s[2], s[0], take) for s, take in zip(slots[j], takes)]))
                for s, take in zip(slots[j], takes):
                    s[0] -= take
                products[j] += sum(takes)
                del slots[j][:d]
                issue[j] = [bool(fin)] + issue[j][:-1]
            accept = bool(fifo[j]) and len(slots[j]) < L  # room after this cycle's issue
            if en:
                pipe[j] = [out_valid[j]] + pipe[j][:-1]
                out_valid[j] = False
            if go and fin_out:
                out_valid[j] = True
            if accept:
                slots[j].append(fifo[j].pop(0))  # [useful left, closes, chunk index]
        collected += len(grants)
        if take_word:
            for j in range(n_c):
                while nxt[j] < len(feeds[j]) and feeds[j][nxt[j]][0] == word:
                    fifo[j].append([*feeds[j][nxt[j]][1:], nxt[j]])
                    nxt[j] += 1
            word += 1
        t += 1
    return {"cycles": t + HARNESS_CYCLES, "products": sum(products), "chunks": sum(len(f) for f in feeds),
            "busy": sum(busy), "slots": T * sum(busy), "errors": 0,
            "core_busy": busy, "imbalance": _imbalance(np.array(busy, dtype=float))}


def _sample(lm: LayerMasks, cfg: Phantom2DConfig, budget: int, rng) -> np.ndarray:
    """Output positions the mesh model streams: all when they fit ``budget`` mask rows x
    chunks, else a stratified random sample (one position per stratum) whose size is a
    multiple of the mesh dimension that splits positions, so that every row (conv) or
    column (depthwise) gets the same number, as in the whole layer up to one."""
    split = {"conv": cfg.rows, "depthwise": cfg.cols}.get(lm.kind, 1)
    per_out = max(1, -(-lm.wmask.shape[1] // cfg.chunk))
    n = max(2 * split, budget // max(1, lm.filters * per_out)) // split * split
    if n >= lm.positions:
        return np.arange(lm.positions)
    return np.floor((np.arange(n) + rng.random(n)) * (lm.positions / n)).astype(np.int64)


def fill(cfg: Phantom2DConfig) -> int:
    """Cycles of a mesh run outside the steady state."""
    return cfg.core.tail + 1 + FIFO_DELAY + HARNESS_CYCLES


def mesh_layer(lm: LayerMasks, cfg: Phantom2DConfig, *, level2: bool = True, seed: int = 0,
               budget: int = 60_000) -> dict:
    """One layer on the Phantom-2D mesh (the dataflow of :mod:`rtl.phantom2d.mapper`): the
    cycle-exact mesh model on a sample of output positions, scaled to all of them.

    Also: static-thread cycles (level 1 off: the run plus the slowest core's extra
    cycles with static lanes, as each core alone), imbalance (busiest core / mean of the
    busy ones), thread utilization and input words."""
    rng = np.random.default_rng(seed)
    R, C, core = cfg.rows, cfg.cols, cfg.core
    pos = _sample(lm, cfg, budget, rng)
    n_s = len(pos)
    scale = lm.positions / n_s
    rows = assign(lm.kind, lm.wmask, n_s, R, C, level2)
    if lm.kind == "depthwise":  # activations depend on the channel
        acts = lm.act(pos, np.arange(lm.filters)).reshape(n_s, lm.filters, -1)
    else:
        acts = lm.act(pos, np.arange(1)).reshape(n_s, 1, -1)
    n_c = R * C
    static, alone = np.zeros(n_c), np.zeros(n_c)
    row_work = [(np.zeros((0, C), np.int64), np.zeros((0, C), bool), np.zeros((0, C), bool))] * R
    for r, (sl, swap) in enumerate(rows):
        live = sl[:, :, 0] >= 0
        if not sl.shape[0]:
            continue
        p_idx, f_idx = np.maximum(sl[:, :, 0], 0), np.maximum(sl[:, :, 1], 0)
        first = np.argmax(live, axis=1)
        s_ix = np.arange(sl.shape[0])
        if swap:
            shared = lm.wmask[f_idx[s_ix, first]]
            colm = acts[p_idx, f_idx] & live[:, :, None]
        else:
            shared = acts[p_idx[s_ix, first], 0]
            colm = lm.wmask[f_idx] & live[:, :, None]
        rws, _, _, u, use, lst = row_chunks(shared, colm, live, cfg)
        row_work[r] = (u, use, lst)
        for c in range(C):
            sel = use[:, c]
            if sel.any():  # each core alone: dynamic and static threads
                alone[r * C + c] = cycle_model(u[sel, c], lst[sel, c], core)["cycles"]
                outs = live[:, c]
                chunks = np.bincount(rws[sel], minlength=len(live))[outs]
                static[r * C + c] = static_cycles(shared[outs] & colm[outs, c], chunks, cfg.threads) + core.tail + 1
    words, _, _, _, sent, useful, last = core_streams(row_work, cfg)
    m = mesh_sim(words, sent, useful, last, cfg)
    # pipeline fill and drain once; the rest grows with the positions
    total = fill(cfg) + (m["cycles"] - fill(cfg)) * scale
    busy = np.array(m["core_busy"], dtype=float)
    return {"cycles": total, "static_cycles": total + max(0.0, static.max() - alone.max()) * scale,
            "imbalance": m["imbalance"], "thread_utilization": m["products"] / max(1, m["slots"]),
            "core_busy": busy * scale, "words": words * scale,
            "sampled_positions": n_s}


def dense_layer(lm: LayerMasks, cfg: Phantom2DConfig) -> float:
    """Dense-mode mesh cycles: filters (channels) and positions in blocks; every core's
    stream is regular, so each runs as alone (:func:`dense_rate`)."""
    R, C, k, core = cfg.rows, cfg.cols, lm.wmask.shape[1], cfg.core
    f_n, p_n = lm.filters, lm.positions
    if lm.kind == "conv":
        per = [(np.sum(blocks(p_n, R) == r), np.sum(blocks(f_n, C) == c)) for r in range(R) for c in range(C)]
    elif lm.kind == "linear":
        per = [(p_n, np.sum(blocks(f_n, R * C) == j)) for j in range(R * C)]
    else:  # depthwise: rows take channels, columns positions
        per = [(np.sum(blocks(p_n, C) == c), np.sum(blocks(f_n, R) == r)) for r in range(R) for c in range(C)]
    cyc = max(groups * dense_rate(int(outs), k, core) for groups, outs in per)
    return float(cyc) + fill(cfg)
