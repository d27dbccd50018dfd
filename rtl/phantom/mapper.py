"""Conv (any stride and padding), depthwise conv and FC layers -> Phantom chunk streams.

Every output (one output channel at one output position) is a dot product of K
terms: its weights w[k] and its operands u[k] = x[k] - input_zero_point (padding
is u = 0). The mapper cuts both vectors into chunks (:func:`cut_chunks`: at most
``chunk`` positions and ``values`` non-zeros of either operand); each chunk travels
as one input word with both masks, both packed non-zero arrays, their counts, and
the output's bias, mult and shift (the core uses them on the chunk flagged
``last``). Outputs stream position-major, channel-minor;
``out_index`` maps stream position to the flat (NCHW / NC) index of the golden y.
:func:`maps` says whether the core can run a layer, :func:`plan` maps it; the
cycle model of a plan is :func:`rtl.phantom.model.cycles`.

The core accumulates in int32 with wrap-around, so the result is exact whenever
the golden accumulator fits int32 (which golden.conv checks), whatever the
partial sums do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from golden.errors import NotMapped
from golden.layer import Kind, LayerVectors
from rtl.phantom.config import A_BITS, W_BITS, PhantomConfig

KINDS = (Kind.CONV, Kind.LINEAR, Kind.DEPTHWISE)


@dataclass
class Plan:
    """One layer as the core's chunk stream: the chunk fields, per chunk the products the
    core issues and whether it closes its output, and the expected int8 outputs in
    stream order. Keeps the layer and the configuration it was planned for."""
    layer: LayerVectors
    config: PhantomConfig
    fields: dict  # chunk_layout field -> array ((n, limbs) uint64 for fields wider than 64 bits)
    useful: np.ndarray  # per chunk: products the core issues (useful pairs; every element in dense mode)
    last: np.ndarray  # per chunk: closes its output
    out_index: np.ndarray  # output stream position -> flat index into y
    expected: np.ndarray  # int8 expected output stream
    work: dict = field(default_factory=dict)  # dense_macs, useful_macs, densities

    @property
    def words(self) -> int:
        """Input words: ``lanes`` chunks a word."""
        return -(-len(self.last) // self.config.lanes)


def refusal(layer: LayerVectors, engine: str) -> str | None:
    """Why ``engine`` (the core, or the mesh of such cores) cannot run ``layer``, or None:
    its kind and groups, int8 weights, and operands x - zero_point within 9 bits."""
    L = layer.layer
    name, kind = L.name, L.kind
    if kind not in KINDS:
        return (f"{name}: layer kind {getattr(kind, 'value', kind)!r} is not supported by {engine} "
                f"(supported: {', '.join(k.value for k in KINDS)})")
    w = layer.w
    if kind == Kind.DEPTHWISE and not (L.groups == L.in_shape[0] == L.out_channels and w.shape[1] == 1):
        return (f"{name}: depthwise needs groups == channels == outputs and one input channel per "
                f"filter, not weight shape {tuple(w.shape)} with {L.in_shape[0]} input channels")
    if kind == Kind.CONV and (L.groups != 1 or w.shape[1] != L.in_shape[0]):
        return f"{name}: grouped conv (groups={L.groups}) is not supported by {engine} (only groups 1 or depthwise)"
    if w.size and (w.min() < -128 or w.max() > 127):
        return f"{name}: weights must be int8, found {int(w.min())}..{int(w.max())}"
    x, zp = layer.x, L.input_zero_point
    if x.size and max(abs(int(x.min()) - zp), abs(int(x.max()) - zp)) > 255:
        return f"{name}: activations x - zero_point must lie in [-255, 255]"
    return None


def maps(layer: LayerVectors, cfg: PhantomConfig) -> str | None:
    """None when the core can run ``layer``, else why not (one line naming the layer)."""
    return refusal(layer, "phantom")


def _patches(x: torch.Tensor, kh: int, kw: int, stride: int, pad: int):
    """(N, C*kh*kw, OH*OW) receptive fields of u (channel-major), exact in float64."""
    n, c, h, wd = x.shape
    cols = torch.nn.functional.unfold(x.double(), (kh, kw), padding=pad, stride=stride)
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    return cols.round().long(), oh, ow


def operands(vec: LayerVectors) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per output in stream order: weights (M, K), operands u (M, K), channel (M,), flat y index (M,).
    ``vec`` is a layer the engine maps (:func:`refusal`)."""
    L = vec.layer
    w = torch.as_tensor(vec.w)
    x = torch.as_tensor(vec.x) - L.input_zero_point
    if L.kind == Kind.LINEAR:
        n, o = x.shape[0], w.shape[0]
        u = x.reshape(n, -1)
        wm = w.reshape(o, -1).repeat(n, 1)
        um = u.repeat_interleave(o, dim=0)
        ch = np.tile(np.arange(o), n)
        idx = np.arange(n * o)
        return wm.numpy(), um.numpy(), ch, idx
    s, pad = L.stride, L.padding
    n, c = x.shape[:2]
    o, cg, kh, kw = w.shape
    cols, oh, ow = _patches(x, kh, kw, s, pad)  # (N, C*kh*kw, P)
    p = oh * ow
    if L.kind == Kind.CONV:
        um = cols.permute(0, 2, 1).reshape(n * p, 1, c * kh * kw).expand(n * p, o, c * kh * kw)
        um = um.reshape(n * p * o, -1)
        wm = w.reshape(o, -1).repeat(n * p, 1)
    else:  # depthwise: output (n, ch, pos) uses channel ch's patch only
        um = cols.reshape(n, c, kh * kw, p).permute(0, 3, 1, 2).reshape(n * p * c, kh * kw)
        wm = w.reshape(o, -1).repeat(n * p, 1)
    ch = np.tile(np.arange(o), n * p)
    pos = np.repeat(np.arange(n * p), o)
    nn_, rem = np.divmod(pos, p)
    idx = (nn_ * o + ch) * p + rem
    return wm.numpy(), um.numpy(), ch, idx


def pack_fields(vals: np.ndarray, bits: int) -> np.ndarray:
    """(n, CH) integers -> (n, limbs) uint64 (or (n,) int64 when it fits 64 bits), element j at
    bits [j*bits, (j+1)*bits), two's complement."""
    n, chn = vals.shape
    v = (vals.astype(np.int64) & ((1 << bits) - 1)).astype(np.uint64)
    b = ((v[:, :, None] >> np.arange(bits, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8).reshape(n, chn * bits)
    limbs = -(-chn * bits // 64)
    by = np.packbits(b, axis=1, bitorder="little")
    by = np.pad(by, ((0, 0), (0, limbs * 8 - by.shape[1])))
    out = np.ascontiguousarray(by).view("<u8").astype(np.uint64).reshape(n, limbs)
    return out[:, 0].view(np.int64) if limbs == 1 else out  # fields up to 64 bits go as plain integers


def mask_word(bits: np.ndarray) -> np.ndarray:
    """(n, CH) 0/1 flags -> one mask word per row (:func:`pack_fields` at 1 bit)."""
    return pack_fields(bits.astype(np.int64), 1)


def cut_chunks(wmask: np.ndarray, amask: np.ndarray, cfg: PhantomConfig, extra=()):
    """Cut every output's dot product (rows of the (R, K) masks) into chunks, greedily:
    a chunk ends after ``chunk`` positions, or before any operand (``wmask``, ``amask``
    and the ``extra`` masks: a mesh row word's other columns) would exceed ``values``
    non-zeros. Returns (row, start, end) arrays in stream order (row-major)."""
    r, k = wmask.shape
    # running counts, made globally increasing (row i offset by i * (k + 1)) so that one
    # searchsorted finds, for every row at once, the last position within the value budget
    off = np.arange(r, dtype=np.int64)[:, None] * (k + 1)
    cums = []
    for mask in (wmask, amask, *extra):
        cm = np.zeros((r, k + 1), dtype=np.int64)
        np.cumsum(mask, axis=1, dtype=np.int64, out=cm[:, 1:])
        cums.append((cm + off).ravel())
    start = np.zeros(r, dtype=np.int64)
    act = np.arange(r)
    parts = []
    step = 0
    while act.size:
        s0 = start[act]
        base = act * (k + 1)
        end = np.minimum(s0 + cfg.chunk, k)
        for cm in cums:
            end = np.minimum(end, np.searchsorted(cm, cm[base + s0] + cfg.values, side="right") - 1 - base)
        parts.append((act, s0, end, np.full(act.size, step)))
        start[act] = end
        act = act[end < k]
        step += 1
    rows, s0, e, st = (np.concatenate([p[j] for p in parts]) for j in range(4))
    order = np.lexsort((st, rows))
    return rows[order], s0[order], e[order]


def closes(rows: np.ndarray) -> np.ndarray:
    """Per chunk of a (row-major) chunk stream: it is its output's last chunk."""
    return np.r_[rows[1:] != rows[:-1], True] if rows.size else np.zeros(0, dtype=bool)


def gather_chunks(mat: np.ndarray, rows, s0, e, width: int) -> np.ndarray:
    """(n_chunks, width) slices mat[row, s0:e], zero-padded."""
    off = np.arange(width)
    col = s0[:, None] + off
    ok = col < e[:, None]
    return np.where(ok, mat[rows[:, None], np.minimum(col, mat.shape[1] - 1)], 0)


def plan(layer: LayerVectors, cfg: PhantomConfig) -> Plan:
    """Map one layer to a Phantom chunk stream; NotMapped when the core cannot run it."""
    why = maps(layer, cfg)
    if why:
        raise NotMapped(why)
    wm, um, ch, idx = operands(layer)
    m_out, k = wm.shape
    nzw, nzu = wm != 0, um != 0
    if cfg.dense:
        ones = np.ones_like(nzw)
        rows, s0, e = cut_chunks(ones, ones, cfg)
    else:
        rows, s0, e = cut_chunks(nzw, nzu, cfg)
    M, V = cfg.chunk, cfg.values
    wp, up = gather_chunks(wm, rows, s0, e, M), gather_chunks(um, rows, s0, e, M)
    inside = np.arange(M)[None, :] < (e - s0)[:, None]
    wmask, amask = (inside, inside) if cfg.dense else (wp != 0, up != 0)
    useful = (wmask & amask).sum(axis=1)

    def packed(vals, mask):
        order = np.argsort(~mask, axis=1, kind="stable")[:, :V]
        return np.take_along_axis(vals, order, axis=1) * np.take_along_axis(mask, order, axis=1)

    last = closes(rows)
    bias, mult, shift = (a[ch][rows] for a in (layer.bias, layer.mult, layer.shift))
    fields = {
        "wmask": mask_word(wmask), "wvals": pack_fields(packed(wp, wmask), W_BITS),
        "amask": mask_word(amask), "avals": pack_fields(packed(up, amask), A_BITS),
        "wcnt": wmask.sum(axis=1), "acnt": amask.sum(axis=1), "last": last.astype(np.int64),
        "bias": bias, "mult": mult, "shift": shift,
    }
    y = layer.y.ravel()
    nz_pairs = int((nzw & nzu).sum())
    work = {"outputs": int(m_out), "k": int(k), "chunks": int(rows.size), "dense_macs": int(m_out * k),
            "useful_macs": nz_pairs, "weight_density": float(nzw.sum() / max(1, m_out * k)),
            "act_density": float(nzu.sum() / max(1, m_out * k))}
    return Plan(layer, cfg, fields, useful, last, idx, y[idx], work)


def word_fields(fields: dict, lanes: int) -> dict:
    """Chunk fields (one entry per chunk) -> input-word fields: chunks lanes * j ... share
    word j (lane l > 0 fields suffixed ``_l``; ``chunks``: how many lanes hold one)."""
    if lanes == 1:
        return fields
    n = len(next(iter(fields.values())))
    words = -(-n // lanes)
    out = {}
    for lane in range(lanes):
        for name, arr in fields.items():
            part = arr[lane::lanes]
            part = np.concatenate([part, np.zeros((words - len(part),) + part.shape[1:], dtype=part.dtype)])
            out[name if lane == 0 else f"{name}_{lane}"] = part
    out["chunks"] = np.minimum(lanes, n - np.arange(words) * lanes).astype(np.int64)
    return out
