"""Layers -> Phantom-2D mesh words (the mesh dataflow).

Dataflow (:func:`assign`):

* **conv** (any stride and padding): columns take filters, rows take output
  positions; a row word broadcasts the activation chunk of one position and each
  column adds the weight chunk of one of its filters;
* **FC**: filters spread over all cores (row r, column c take bin r * cols + c); every
  row streams every image's activations, each column one of its filters;
* **depthwise**: rows take channels, columns take positions; a row word broadcasts one
  channel's weight chunk (``swap``) and each column adds the activation chunk of one of
  its positions.

**Level 2** load balancing gives filters (channels) to cores longest-work-first by
their non-zero weights (known before run time) and interleaves positions; without it,
both go in contiguous blocks. **Level 1** is each core's dynamic thread scheduling.

A row word's chunk boundaries are common to its operands (``cut_chunks`` with every
column's mask): a chunk ends after ``chunk`` positions or before any operand would
exceed ``values`` non-zeros. A column part with no useful product that does not close
its output is not sent (``use`` = 0), and a word that carries no part is dropped; in
dense mode every part is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from golden.errors import NotMapped
from golden.layer import LayerVectors
from rtl.phantom2d.config import V_BITS, Phantom2DConfig
from rtl.phantom.mapper import closes, cut_chunks, gather_chunks, mask_word, operands, pack_fields, refusal


def lwf(work: np.ndarray, bins: int) -> np.ndarray:
    """Longest work first: items in decreasing work, each to the least loaded bin that has
    fewer than its share (ceil(n / bins)) of items, so counts stay within one."""
    n = len(work)
    cap = -(-n // bins) if n else 0
    owner = np.zeros(n, dtype=np.int64)
    load = np.zeros(bins)
    count = np.zeros(bins, dtype=np.int64)
    for f in np.argsort(-np.asarray(work, dtype=float), kind="stable"):
        b = int(np.argmin(np.where(count < cap, load, np.inf)))
        owner[f] = b
        load[b] += work[f]
        count[b] += 1
    return owner


def blocks(n: int, bins: int) -> np.ndarray:
    """Contiguous blocks: item i to bin floor(i * bins / n)."""
    return (np.arange(n) * bins) // max(1, n)


def spread(n: int, bins: int, level2: bool) -> np.ndarray:
    """Owner of each of n positions: level 2 deals them out in a fixed pseudo-random order
    (every bin gets n / bins, up to one, and a fair share of the image: a plain p mod bins
    would give one bin the blank left edge of every image); without it, blocks."""
    if not level2:
        return blocks(n, bins)
    owner = np.empty(n, dtype=np.int64)
    owner[np.random.default_rng(0).permutation(n)] = np.arange(n) % bins
    return owner


def assign(kind: str, wmask: np.ndarray, positions: int, rows: int, cols: int, level2: bool = True):
    """The mesh dataflow: per row, its slots as (outputs (S, cols) as (position, filter) pairs
    with -1 for an idle column) and whether the row shares the weights (``swap``).

    ``wmask`` (F, K) gives the per-filter work that level 2 balances: it gives filters
    (channels) to cores longest-work-first and orders each core's filters heaviest first,
    so that the parts of one word -- which wait for each other through the cores'
    queues -- carry about the same work."""
    f_n = wmask.shape[0]
    work = wmask.sum(axis=1)
    out = []

    def order(items):  # level 2: heaviest first, so that a word's parts carry alike work
        return items[np.argsort(-work[items], kind="stable")] if level2 else items

    if kind in ("conv", "linear"):
        if kind == "conv":
            owner = lwf(work, cols) if level2 else blocks(f_n, cols)
            owner = np.broadcast_to(owner, (rows, f_n))  # every row: the same filters per column
            pos_owner = spread(positions, rows, level2)
        else:
            bins = lwf(work, rows * cols) if level2 else blocks(f_n, rows * cols)
            owner = np.array([np.where(bins // cols == r, bins % cols, -1) for r in range(rows)])
            pos_owner = None
        for r in range(rows):
            pos = np.arange(positions) if pos_owner is None else np.flatnonzero(pos_owner == r)
            per_col = [order(np.flatnonzero(owner[r] == c)) for c in range(cols)]
            depth = max(len(p) for p in per_col)
            slots = np.full((len(pos), depth, cols, 2), -1, dtype=np.int64)
            for c, fs in enumerate(per_col):
                slots[:, :len(fs), c, 0] = pos[:, None]
                slots[:, :len(fs), c, 1] = fs[None, :]
            out.append((slots.reshape(-1, cols, 2), False))
    elif kind == "depthwise":
        ch_owner = lwf(work, rows) if level2 else blocks(f_n, rows)
        pos_owner = spread(positions, cols, level2)
        per_col = [np.flatnonzero(pos_owner == c) for c in range(cols)]
        depth = max(len(p) for p in per_col)
        for r in range(rows):
            chans = order(np.flatnonzero(ch_owner == r))
            slots = np.full((len(chans), depth, cols, 2), -1, dtype=np.int64)
            for c, ps in enumerate(per_col):
                slots[:, :len(ps), c, 0] = ps[None, :]
                slots[:, :len(ps), c, 1] = chans[:, None]
            out.append((slots.reshape(-1, cols, 2), True))
    else:
        raise NotMapped(f"layer kind {kind!r} is not supported by phantom2d")
    return out


@dataclass
class Plan:
    """One layer as mesh words: the word fields, the tagged expected outputs, and per core
    the chunk stream it receives (for the mesh cycle model). Keeps the layer, the
    configuration and the balancing level it was planned with."""
    layer: LayerVectors
    config: Phantom2DConfig
    level2: bool
    fields: dict  # word_layout field -> array
    words: int
    expected: np.ndarray  # tagged outputs (core << 8 | int8 byte), core by core, each in its order
    outputs: np.ndarray  # per core: number of outputs
    sent: list  # per core: the words that carry a chunk for it
    useful: list  # per core: useful products of each chunk it receives
    last: list  # per core: which of its chunks close an output
    work: dict = field(default_factory=dict)


def maps(layer: LayerVectors, cfg: Phantom2DConfig) -> str | None:
    """None when the mesh can run ``layer`` (what one of its cores can run), else why not."""
    return refusal(layer, "phantom2d")


def plan(layer: LayerVectors, cfg: Phantom2DConfig, level2: bool = True) -> Plan:
    """Map one layer to mesh words, the tagged expected outputs and per-core chunk streams
    (``level2``: load balancing on); NotMapped when the mesh cannot run it."""
    why = maps(layer, cfg)
    if why:
        raise NotMapped(why)
    wm, um, ch, idx = operands(layer)
    f_n = int(ch.max()) + 1
    k = wm.shape[1]
    positions = wm.shape[0] // f_n
    R, C, M, V = cfg.rows, cfg.cols, cfg.chunk, cfg.values
    y = layer.y.ravel()
    params = {"bias": layer.bias, "mult": layer.mult, "shift": layer.shift}
    rows = assign(layer.kind.value, wm[:f_n] != 0, positions, R, C, level2)

    per_row, core_outs, row_work = [], [], []
    for r, (slots, swap) in enumerate(rows):
        s_n = slots.shape[0]
        live = slots[:, :, 0] >= 0  # (S, C)
        out = np.where(live, slots[:, :, 0] * f_n + np.maximum(slots[:, :, 1], 0), 0)  # stream row of operands()
        first = out[np.arange(s_n), np.argmax(live, axis=1)] if s_n else np.zeros(0, dtype=np.int64)
        shared = (wm if swap else um)[first]  # (S, K)
        colv = (um if swap else wm)[out] * live[:, :, None]  # (S, C, K)
        rws, s0, e, useful, use, lst = row_chunks(shared != 0, colv != 0, live, cfg)
        n = rws.size
        inside = np.arange(M)[None, :] < (e - s0)[:, None]
        sv = gather_chunks(shared, rws, s0, e, M)
        sm = inside if cfg.dense else sv != 0
        row = {"valid": np.ones(n, dtype=np.int64), "swap": np.full(n, int(swap)), "smask": sm,
               "svals": _packed(sv, sm, V), "scnt": sm.sum(axis=1)}
        for c in range(C):
            cv = gather_chunks(colv[:, c], rws, s0, e, M)
            is_live = live[rws, c]
            cm = inside & is_live[:, None] if cfg.dense else cv != 0
            chan = np.maximum(slots[rws, c, 1], 0)
            row.update({f"c{c}_use": use[:, c].astype(np.int64), f"c{c}_mask": cm, f"c{c}_vals": _packed(cv, cm, V),
                        f"c{c}_cnt": cm.sum(axis=1), f"c{c}_last": lst[:, c].astype(np.int64),
                        **{f"c{c}_{p}": np.where(is_live, params[p][chan], 0) for p in params}})
            core_outs.append(out[rws, c][lst[:, c]])
        per_row.append(row)
        row_work.append((useful, use, lst))

    n_words, keep, at, n_in, sent_c, useful_c, last_c = core_streams(row_work, cfg)
    fields = {}
    for r, row in enumerate(per_row):
        for key, arr in row.items():
            full = np.zeros((n_in,) + arr.shape[1:], dtype=arr.dtype)
            full[at[r]] = arr
            arr = full[keep]
            name_ = f"r{r}{key}" if key.startswith("c") else f"r{r}_{key}"
            if key in ("smask",) or key.endswith("_mask"):
                arr = mask_word(arr)
            elif key in ("svals",) or key.endswith("_vals"):
                arr = pack_fields(arr, V_BITS)
            fields[name_] = arr
    outs_n = np.array([len(o) for o in core_outs])
    expected = np.concatenate([(j << 8) | (y[idx[np.asarray(o, dtype=np.int64)]] & 0xFF)
                               for j, o in enumerate(core_outs)]) if outs_n.sum() else np.zeros(0, dtype=np.int64)
    nzw, nzu = wm != 0, um != 0
    work = {"outputs": int(wm.shape[0]), "k": int(k), "words": int(n_words), "dense_macs": int(wm.size),
            "useful_macs": int((nzw & nzu).sum()), "weight_density": float(nzw.mean()) if wm.size else 0.0,
            "act_density": float(nzu.mean()) if um.size else 0.0}
    return Plan(layer, cfg, level2, fields, n_words, expected, outs_n, sent_c, useful_c, last_c, work)


def core_streams(row_chunks_: list, cfg: Phantom2DConfig):
    """Per row its words' (useful (n, C), use (n, C), last (n, C)) -> the input words: their
    number, which packed words are kept (:func:`compact`), each row's packed word of each
    of its words (:func:`interleave`), and per core (r * cols + c) the words that carry
    its chunks, their useful products and close flags."""
    C = cfg.cols
    at, n_in = interleave([(u, use) for u, use, _ in row_chunks_], cfg.threads, cfg.fifo)
    sent, useful, last = [], [], []
    for r, (u, use, lst) in enumerate(row_chunks_):
        for c in range(C):
            sel = use[:, c]
            sent.append(at[r][np.flatnonzero(sel)])
            useful.append(u[sel, c])
            last.append(lst[sel, c])
    words, keep, sent = compact(n_in, sent)
    return words, keep, at, n_in, sent, useful, last


def interleave(row_work: list, threads: int, fifo: int) -> tuple[list, int]:
    """Pack the rows' word streams into input words so that the rows keep pace in time,
    not in word count: each input word carries the next word of every row whose
    estimated cycles so far (a word: its busiest part's products / threads, at least one
    cycle) are within fifo - 1 average words of the row furthest behind. The cores'
    queues then rarely hold a row back for another, and few words go out part-empty.
    Returns per row the input word of each of its words, and the number of input words."""
    est = [np.where(use, np.maximum(1, -(-useful // threads)), 0).max(axis=1, initial=0) if len(useful)
           else np.zeros(0, dtype=np.int64) for useful, use in row_work]
    n = [len(e) for e in est]
    at = [np.zeros(k, dtype=np.int64) for k in n]
    spent = np.zeros(len(est))
    nxt = [0] * len(est)
    slack = (fifo - 1) * float(np.mean(np.concatenate(est))) if sum(n) else 0.0
    word = 0
    while True:
        live = [r for r in range(len(est)) if nxt[r] < n[r]]
        if not live:
            break
        floor = min(spent[r] for r in live)
        for r in live:
            if spent[r] <= floor + slack:
                at[r][nxt[r]] = word
                spent[r] += est[r][nxt[r]]
                nxt[r] += 1
        word += 1
    return at, word


def compact(words: int, sent: list) -> tuple[int, np.ndarray, list]:
    """Drop the words that carry no chunk for any core (the mesh would spend an input cycle
    on each): the words left, the kept word indices, and ``sent`` renumbered."""
    used = np.zeros(words, dtype=bool)
    for s in sent:
        used[np.asarray(s, dtype=np.int64)] = True
    keep = np.flatnonzero(used)
    new = np.cumsum(used) - 1
    return len(keep), keep, [new[np.asarray(s, dtype=np.int64)] for s in sent]


def row_chunks(s_mask: np.ndarray, c_mask: np.ndarray, live: np.ndarray, cfg: Phantom2DConfig):
    """One row's slots (shared masks (S, K), column masks (S, C, K), live columns (S, C))
    cut into words with common chunk boundaries. Per word: its slot, start, end, and per
    column the useful products, whether the part is sent (``use``) and closes its output."""
    C = cfg.cols
    if cfg.dense:  # every element is sent and multiplied
        s_mask = np.ones_like(s_mask, dtype=bool)
        c_mask = np.broadcast_to(live[:, :, None], c_mask.shape)
    if not s_mask.shape[0]:
        z = np.zeros(0, dtype=np.int64)
        return z, z, z, np.zeros((0, C), dtype=np.int64), np.zeros((0, C), bool), np.zeros((0, C), bool)
    rws, s0, e = cut_chunks(s_mask, c_mask[:, 0], cfg.core, [c_mask[:, j] for j in range(1, C)])
    useful = np.zeros((rws.size, C), dtype=np.int64)
    cum = np.zeros((s_mask.shape[0], s_mask.shape[1] + 1), dtype=np.int32)
    for c in range(C):
        np.cumsum(s_mask & c_mask[:, c], axis=1, dtype=np.int32, out=cum[:, 1:])
        useful[:, c] = cum[rws, e] - cum[rws, s0]
    is_live = live[rws]
    last = closes(rws)[:, None] & is_live
    use = is_live if cfg.dense else is_live & ((useful > 0) | last)
    return rws, s0, e, useful, use, last


def _packed(vals: np.ndarray, mask: np.ndarray, v: int) -> np.ndarray:
    """(n, M) values and masks -> (n, v) the masked values, lowest position first, zero-padded."""
    order = np.argsort(~mask, axis=1, kind="stable")[:, :v]
    return np.take_along_axis(vals, order, axis=1) * np.take_along_axis(mask, order, axis=1)
