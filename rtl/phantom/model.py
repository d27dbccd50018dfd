"""Phantom core cycle models: the exact model of a plan (equal to the RTL's counters) and
the fast model for large layers.

:func:`cycles` (:func:`cycle_model`) walks a plan's chunk stream cycle by cycle as
the core does (:func:`schedule` is one cycle of its scheduler). A VGG16 layer has
millions of outputs; the fast model (:func:`core_layer`) runs the exact model on a
sample of output positions and scales: the core streams its outputs position-major,
filter-minor, as the mapper does; its cycles per output position = exact-model
cycles of the stream for a random sample of positions (all positions when they fit
the budget) / sample size, with the pipeline fill and drain counted once per layer.
Dense mode: the steady-state rate of the dense stream (:func:`dense_rate`).

**Level 1** (inside a core) is the dynamic thread scheduling of the RTL; without it
(``static``, :func:`static_cycles`) each thread owns the positions p = t (mod T) of
every output and an output takes as many cycles as its busiest thread (at least one
per chunk).

The fast models take a layer as masks (:class:`LayerMasks`): a golden layer's
(:func:`masks_from_vectors`) or masks drawn at published densities (the bench's
study, :mod:`cosim.benches.phantom`). The mesh's models are in
:mod:`rtl.phantom2d.model`. The fast model is checked against the core RTL's cycle
counts (tests and ``nnaccel bench phantom``).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np

from golden.layer import LayerVectors
from rtl.phantom.config import PhantomConfig
from rtl.phantom.mapper import Plan, closes, cut_chunks, operands

# After the last close the model counts ``cfg.tail`` cycles (issue pipeline, output
# register, freed slot, requantizer latency: PhantomConfig.tail), and one more before the
# first issue: a chunk enters the window the cycle before it issues. The issue pipeline
# (ISSUE_STAGES) delays every product and close by the same cycles, so it moves only the
# tail while the output is never stalled (the mesh model, which stalls, carries it).


def cycles(plan: Plan) -> dict:
    """The exact model of a plan: ``cycles`` (first input cycle to last output handshake;
    the harness adds 2) and the RTL's stat_* counters (:func:`cycle_model`)."""
    return cycle_model(plan.useful, plan.last, plan.config)


def cycle_model(useful, last, cfg: PhantomConfig) -> dict:
    """Cycles and counters of a chunk stream, mirroring PhantomCore cycle by cycle.

    The eligible window runs from the oldest slot up to the slot that closes the
    (lanes + 1)-th output (so lanes + 1 outputs share a cycle). Each cycle the threads
    take up to T products from it, oldest first; the leading slots left empty are freed,
    closing at most ``lanes`` outputs; then a word of ``lanes`` consecutive chunks enters
    if the window has room for ``lanes`` chunks. The input is
    assumed always valid and the output never stalled. ``cycles`` runs from the first
    input cycle to the last output handshake (the harness adds a constant, checked in
    tests); the other keys equal the RTL's stat_* counters.
    """
    T, L, NL = cfg.threads, cfg.window, cfg.lanes
    u = [int(v) for v in useful]
    la = [bool(v) for v in last]
    n = len(u)
    slots: list[list] = []
    i = t = busy = products = 0
    last_fin = -1
    while i < n or slots:
        if slots and (len(slots) > L - NL or i == n) and slots[0][0] > 2 * T:
            # fast-forward: nothing enters or leaves while the oldest slot keeps every thread busy
            q = (slots[0][0] - T - 1) // T
            slots[0][0] -= q * T
            busy += q
            products += q * T
            t += q
        if slots:
            busy += 1
        takes, d, closed = schedule(slots, T, NL)
        for s, take in zip(slots, takes):
            s[0] -= take
        products += sum(takes)
        if d:
            del slots[:d]
        if closed:
            last_fin = t
        if i < n and len(slots) <= L - NL:
            for _ in range(min(NL, n - i)):
                slots.append([u[i], la[i]])
                i += 1
        t += 1
    return {"cycles": last_fin + cfg.tail, "busy": busy, "products": products, "slots": T * busy, "chunks": n,
            "errors": 0, "error_chunk": 0}


def schedule(slots: list, threads: int, lanes: int = 1) -> tuple[list, int, int]:
    """One cycle of the core's scheduler over its window (``slots``: [remaining useful
    products, closes its output], oldest first), without changing it: the products each
    slot issues (the next ``threads`` useful pairs, oldest first, over at most lanes + 1
    outputs), how many leading slots are then empty and leave (closing at most ``lanes``
    outputs), and how many outputs close."""
    budget, lasts, takes = threads, 0, []
    for s in slots:
        take = min(budget, s[0])
        takes.append(take)
        budget -= take
        lasts += s[1]
        if lasts == lanes + 1 or budget == 0:
            break
    d, closed = 0, 0
    for j, s in enumerate(slots):
        if s[0] - (takes[j] if j < len(takes) else 0) or (s[1] and closed == lanes):
            break
        d += 1
        closed += s[1]
    return takes, d, closed


def stream_cycles(wmask: np.ndarray, amask: np.ndarray, cfg: PhantomConfig) -> dict:
    """Exact-model cycles and products of the outputs whose masks are the rows of (R, K)
    wmask / amask, streamed in row order (dense mode: every element); ``static``: the
    cycles without dynamic thread scheduling (:func:`static_cycles`)."""
    if cfg.dense:
        wmask = amask = np.ones_like(wmask, dtype=bool)
    rows, s0, e = cut_chunks(wmask, amask, cfg)
    both = wmask & amask
    cum = np.zeros((wmask.shape[0], wmask.shape[1] + 1), dtype=np.int32)
    np.cumsum(both, axis=1, dtype=np.int32, out=cum[:, 1:])
    useful = cum[rows, e] - cum[rows, s0]
    m = cycle_model(useful, closes(rows), cfg)
    chunks = np.bincount(rows, minlength=wmask.shape[0])
    return {"cycles": m["cycles"] - cfg.tail - 1, "products": m["products"], "slots": m["slots"],
            "static": static_cycles(both, chunks, cfg.threads)}


def static_cycles(both: np.ndarray, chunks: np.ndarray, threads: int) -> int:
    """Cycles without dynamic thread scheduling (level 1 off): thread t owns positions
    t mod T of every output, so an output takes as many cycles as its busiest thread,
    and at least one per chunk it arrives in."""
    k = both.shape[1]
    pad = -k % threads
    lanes = np.pad(both, ((0, 0), (0, pad))).reshape(both.shape[0], -1, threads).sum(axis=1)
    return int(np.maximum(lanes.max(axis=1), chunks).sum())


@dataclass
class LayerMasks:
    """A layer as masks: per-filter weight masks (F, K) and a sampler of activation masks.

    ``act(pos, filters)`` -> (len(pos) * len(filters), K) activation masks of the outputs
    (position p, filter f), position-major, as the mapper streams them."""
    name: str
    kind: str  # conv, depthwise or linear
    wmask: np.ndarray
    act: object
    positions: int  # output positions (x images) per filter

    @property
    def filters(self) -> int:
        return self.wmask.shape[0]


def masks_from_vectors(vec: LayerVectors) -> LayerMasks:
    """The actual masks of a golden layer (one the core maps, :func:`rtl.phantom.mapper.maps`)."""
    wm, um, ch, _ = operands(vec)
    f_n = int(ch.max()) + 1
    nzu = (um != 0).reshape(-1, f_n, wm.shape[1])  # (positions, filters, K): stream order
    wmask = (wm[:f_n] != 0)

    def act(pos, filters):
        return nzu[np.asarray(pos)][:, np.asarray(filters)].reshape(-1, wm.shape[1])

    return LayerMasks(vec.name, vec.kind.value, wmask, act, nzu.shape[0])


def core_rate(lm: LayerMasks, filters: np.ndarray, cfg: PhantomConfig, rng: np.random.Generator,
              budget: int = 60_000) -> dict:
    """Cycles per output position of a core that holds ``filters``: the exact model on a
    sample of positions (all when they fit ``budget`` mask rows x chunks), plus the
    products, slots and static-thread cycles per position."""
    if len(filters) == 0:
        return {"cycles": 0.0, "static": 0.0, "products": 0.0, "slots": 0.0}
    per_out = max(1, -(-lm.wmask.shape[1] // cfg.chunk))
    n = int(min(lm.positions, max(4, budget // (len(filters) * per_out))))
    pos = np.arange(lm.positions) if n == lm.positions else np.sort(rng.choice(lm.positions, n, replace=False))
    r = stream_cycles(np.tile(lm.wmask[filters], (len(pos), 1)), lm.act(pos, filters), cfg)
    return {"cycles": r["cycles"] / n, "static": r["static"] / n, "products": r["products"] / n, "slots": r["slots"] / n}


@functools.lru_cache(maxsize=4096)
def dense_rate(filters: int, k: int, cfg: PhantomConfig) -> float:
    """Dense-mode cycles per output position of a core holding ``filters`` filters of K
    terms (steady state: n + 1 positions minus one, over n)."""
    if filters == 0:
        return 0.0
    dense_cfg = dataclasses.replace(cfg, dense=True)
    n = max(1, min(64, 4096 // filters))
    ones = np.ones(((n + 1) * filters, k), dtype=bool)
    many = stream_cycles(ones, ones, dense_cfg)["cycles"]
    one = stream_cycles(ones[:filters], ones[:filters], dense_cfg)["cycles"]
    return float(many - one) / n


def core_layer(lm: LayerMasks, cfg: PhantomConfig, *, seed: int = 0, budget: int = 60_000) -> dict:
    """One core holding every filter of the layer (the stream the core's mapper sends):
    sampled cycles, static-thread cycles and dense cycles of the whole layer."""
    r = core_rate(lm, np.arange(lm.filters), cfg, np.random.default_rng(seed), budget)
    dense = dense_rate(lm.filters, lm.wmask.shape[1], cfg)
    fill = cfg.tail + 1
    return {"cycles": r["cycles"] * lm.positions + fill, "static_cycles": r["static"] * lm.positions + fill,
            "dense_cycles": dense * lm.positions + fill,
            "thread_utilization": r["products"] / max(1e-9, r["slots"])}


