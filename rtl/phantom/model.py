"""Fast cycle model of Phantom cores and of a Phantom-2D mesh, for whole networks.

The exact model (:func:`rtl.phantom.mapper.cycle_model`, equal to the RTL counters)
walks every chunk; a VGG16 layer has millions of outputs. This model runs the exact
model on a sample of each core's output positions and scales:

* **core**: the core streams its outputs position-major, filter-minor, as the mapper
  does; its cycles per output position = exact-model cycles of the stream for a random
  sample of positions (all positions when they fit the budget) / sample size, with
  the pipeline fill and drain counted once per layer. Dense mode: the steady-state rate
  of the dense stream;
* **mesh** (Phantom-2D, :class:`rtl.phantom.config.Phantom2DConfig`): the dataflow of
  the mesh RTL (:func:`rtl.phantom.mesh_map.assign`: conv rows take positions and
  columns filters, FC filters spread over all cores, depthwise rows take channels and
  columns positions), with chunk boundaries common to a row word; each core's exact
  model runs on its own chunk stream of a sample of positions, scaled. The mesh takes
  as long as its slowest core, and at least a cycle per word. **Level 2**
  balancing: filters (channels) to cores longest-work-first by their non-zero weights
  (what a mapper knows before run time), positions dealt out; without it, blocks.
* **Level 1** (inside a core) is the dynamic thread scheduling of the RTL; without it
  (``static``) each thread owns the positions p = t (mod T) of every output and an
  output takes as many cycles as its busiest thread (at least one per chunk).

Masks come from a golden layer (:func:`masks_from_vectors`) or are drawn at published
densities for ``golden.nets.zoo`` shapes (:func:`synthetic_masks`).

The core model is checked against core RTL cycle counts, the mesh model against the
cycle-exact mesh model (:func:`rtl.phantom.mesh_map.mesh_sim`, equal to the mesh RTL),
on random and demo layers (see tests and ``nnaccel bench phantom``).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np

from rtl.phantom.config import PhantomConfig
from rtl.phantom2d.config import Phantom2DConfig
from rtl.phantom.mapper import closes, cut_chunks, cycle_model, operands
from rtl.phantom.mesh_map import FIFO_DELAY, HARNESS_CYCLES, assign, blocks, core_streams, mesh_sim, row_chunks

TAIL = 1 + 1 + 5  # model cycles after the last close: output register + requantizer
# (and one more before the first: a chunk enters the window the cycle before it issues)


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
    return {"cycles": m["cycles"] - TAIL - 1, "products": m["products"], "slots": m["slots"],
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
    kind: str
    wmask: np.ndarray
    act: object
    positions: int  # output positions (x images) per filter

    @property
    def filters(self) -> int:
        return self.wmask.shape[0]


def masks_from_vectors(vec: dict) -> LayerMasks:
    """The actual masks of a golden layer (``golden.nets`` vector dict)."""
    wm, um, ch, _ = operands(vec)
    f_n = int(ch.max()) + 1
    nzu = (um != 0).reshape(-1, f_n, wm.shape[1])  # (positions, filters, K): stream order
    wmask = (wm[:f_n] != 0)

    def act(pos, filters):
        return nzu[np.asarray(pos)][:, np.asarray(filters)].reshape(-1, wm.shape[1])

    return LayerMasks(vec.get("name", "layer"), vec["kind"], wmask, act, nzu.shape[0])


def synthetic_masks(rng: np.random.Generator, layer: dict, weight: float, activation: float,
                    cv: float = 0.4) -> LayerMasks:
    """Random masks of a ``golden.nets.zoo`` layer at the given densities: per-filter weight
    densities from a Beta law (mean ``weight``, coefficient of variation ``cv``), activations
    i.i.d. (conv: one mask per position, shared by all filters; depthwise: per channel)."""
    from golden.nets.zoo import out_hw, terms
    kind, k = layer["kind"], terms(layer)
    wmask = synthetic_filters(rng, layer["o"], k, weight, cv)
    oh, ow = out_hw(layer)
    seed = int(rng.integers(1 << 31))

    def act(pos, filters):
        pos, filters = np.asarray(pos), np.asarray(filters)
        r = np.random.default_rng([seed, int(pos.sum()), len(pos)])
        if kind == "depthwise":
            return r.random((len(pos) * len(filters), k)) < activation
        per_pos = r.random((len(pos), k)) < activation
        return np.repeat(per_pos, len(filters), axis=0)

    return LayerMasks(layer["name"], kind, wmask, act, 1 if kind == "linear" else oh * ow)


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
    return {"cycles": r["cycles"] * lm.positions + TAIL + 1, "static_cycles": r["static"] * lm.positions + TAIL + 1,
            "dense_cycles": dense * lm.positions + TAIL + 1,
            "thread_utilization": r["products"] / max(1e-9, r["slots"])}


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


FILL = TAIL + 1 + FIFO_DELAY + HARNESS_CYCLES  # cycles of a mesh run outside the steady state


def mesh_layer(lm: LayerMasks, cfg: Phantom2DConfig, *, level2: bool = True, seed: int = 0,
               budget: int = 60_000) -> dict:
    """One layer on the Phantom-2D mesh (the dataflow of :mod:`rtl.phantom.mesh_map`): the
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
                static[r * C + c] = static_cycles(shared[outs] & colm[outs, c], chunks, cfg.threads) + TAIL + 1
    words, _, _, _, sent, useful, last = core_streams(row_work, cfg)
    m = mesh_sim(words, sent, useful, last, cfg)
    # pipeline fill and drain once; the rest grows with the positions
    cycles = FILL + (m["cycles"] - FILL) * scale
    busy = np.array(m["core_busy"], dtype=float)
    return {"cycles": cycles, "static_cycles": cycles + max(0.0, static.max() - alone.max()) * scale,
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
    return float(cyc) + FILL


def synthetic_filters(rng: np.random.Generator, filters: int, k: int, density: float, cv: float) -> np.ndarray:
    """(filters, k) weight masks: per-filter densities from a Beta law with mean
    ``density`` and coefficient of variation ``cv`` (0: every filter at the mean)."""
    if density >= 1.0 or cv <= 0:
        d = np.full(filters, density)
    else:
        var = min((cv * density) ** 2, density * (1 - density) * 0.99)
        nu = density * (1 - density) / var - 1
        d = rng.beta(density * nu, (1 - density) * nu, size=filters)
    return rng.random((filters, k)) < d[:, None]


def net_study(net: str, cfg: Phantom2DConfig, *, cv: float = 0.4, seed: int = 0,
              budget: int = 12_000, progress=None) -> dict:
    """Every layer of a ``golden.nets.zoo`` net at its published densities on the mesh:
    dense and sparse cycles with level-2 balancing on and off, static threads (level 1
    off), imbalance, thread utilization, and the bound dense MACs / useful MACs."""
    from golden.nets import zoo
    dens = zoo.densities(net)
    rows = []
    for i, layer in enumerate(zoo.layers(net)):
        d = dens[layer["name"]]
        if progress:
            progress(f"{net} {layer['name']}")
        lm = synthetic_masks(np.random.default_rng([seed, i]), layer, d["weight"], d["activation"], cv)
        on = mesh_layer(lm, cfg, level2=True, seed=seed, budget=budget)
        off = mesh_layer(lm, cfg, level2=False, seed=seed, budget=budget)
        dense = dense_layer(lm, cfg)
        macs = zoo.macs(layer)
        useful = float(lm.wmask.sum() * lm.positions * d["activation"])  # expected: activations i.i.d.
        rows.append({
            "layer": layer["name"], "kind": layer["kind"], "macs": macs, "weight_density": d["weight"],
            "act_density": d["activation"], "weight_density_sampled": float(lm.wmask.mean()),
            "useful_macs": useful, "bound": macs / useful,
            "dense_cycles": dense, "cycles": on["cycles"], "cycles_level2_off": off["cycles"],
            "cycles_level1_off": on["static_cycles"], "cycles_both_off": off["static_cycles"],
            "imbalance": on["imbalance"], "imbalance_level2_off": off["imbalance"],
            "thread_utilization": on["thread_utilization"],
            "words": on["words"],
            "speedup": dense / on["cycles"],
        })
        rows[-1]["fraction_of_bound"] = rows[-1]["speedup"] / rows[-1]["bound"]
    tot = {k: sum(r[k] for r in rows) for k in ("macs", "useful_macs", "dense_cycles", "cycles", "cycles_level2_off",
                                                "cycles_level1_off", "cycles_both_off")}
    summary = {
        "speedup": tot["dense_cycles"] / tot["cycles"], "bound": tot["macs"] / tot["useful_macs"],
        "speedup_level2_off": tot["dense_cycles"] / tot["cycles_level2_off"],
        "speedup_level1_off": tot["dense_cycles"] / tot["cycles_level1_off"],
        "speedup_both_off": tot["dense_cycles"] / tot["cycles_both_off"],
        "thread_utilization": sum(r["thread_utilization"] * r["cycles"] for r in rows) / tot["cycles"],
        "imbalance": sum(r["imbalance"] * r["cycles"] for r in rows) / tot["cycles"],
        "imbalance_level2_off": sum(r["imbalance_level2_off"] * r["cycles_level2_off"] for r in rows)
        / tot["cycles_level2_off"],
        **{f"total_{k}": v for k, v in tot.items()},
    }
    summary["fraction_of_bound"] = summary["speedup"] / summary["bound"]
    return {"net": net, "mesh": [cfg.rows, cfg.cols], "cv": cv, "layers": rows, "summary": summary}
