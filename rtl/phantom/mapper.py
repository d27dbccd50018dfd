"""Conv (stride 1 / 2, any padding), depthwise conv and FC layers -> Phantom chunk streams, and the cycle model.

Every output (one output channel at one output position) is a dot product of K
terms: its weights w[k] and its operands u[k] = x[k] - input_zero_point (padding
is u = 0). The mapper cuts both vectors into ceil(K / chunk) chunks; each chunk
travels as one input word with both masks, both packed non-zero arrays, their
counts, and on every chunk the output's bias, mult and shift (the core uses them
on the chunk flagged ``last``). Outputs stream position-major, channel-minor;
``out_index`` maps stream position to the flat (NCHW / NC) index of the golden y.

The core accumulates in int32 with wrap-around, so the result is exact whenever
the golden accumulator fits int32 (which golden.conv checks), whatever the
partial sums do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from rtl.phantom.config import A_BITS, W_BITS, PhantomConfig

KINDS = ("conv", "linear", "depthwise")


class MappingError(ValueError):
    """A layer that this engine cannot run (the message names the layer and why)."""


@dataclass
class Plan:
    layer: str
    fields: dict  # chunk_layout field -> array ((n, limbs) uint64 for fields wider than 64 bits)
    useful: np.ndarray  # per chunk: products the core issues (useful pairs; every element in dense mode)
    last: np.ndarray  # per chunk: closes its output
    out_index: np.ndarray  # output stream position -> flat index into y
    expected: np.ndarray  # int8 expected output stream
    work: dict = field(default_factory=dict)  # dense_macs, useful_macs, densities
    model: dict = field(default_factory=dict)  # cycle model (see cycle_model)


def _patches(x: torch.Tensor, kh: int, kw: int, stride: int, pad: int):
    """(N, C*kh*kw, OH*OW) receptive fields of u (channel-major), exact in float64."""
    n, c, h, wd = x.shape
    cols = torch.nn.functional.unfold(x.double(), (kh, kw), padding=pad, stride=stride)
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    return cols.round().long(), oh, ow


def operands(vec: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per output in stream order: weights (M, K), operands u (M, K), channel (M,), flat y index (M,)."""
    name, kind = vec.get("name", "layer"), vec.get("kind")
    if kind not in KINDS:
        raise MappingError(f"{name}: layer kind {kind!r} is not supported by phantom (supported: {', '.join(KINDS)})")
    w = torch.as_tensor(np.asarray(vec["w"], dtype=np.int64))
    x = torch.as_tensor(np.asarray(vec["x"], dtype=np.int64)) - int(vec["input_zero_point"])
    if kind == "linear":
        n, o = x.shape[0], w.shape[0]
        u = x.reshape(n, -1)
        wm = w.reshape(o, -1).repeat(n, 1)
        um = u.repeat_interleave(o, dim=0)
        ch = np.tile(np.arange(o), n)
        idx = np.arange(n * o)
        return wm.numpy(), um.numpy(), ch, idx
    s, pad = int(vec["stride"]), int(vec["padding"])
    n, c = x.shape[:2]
    o, cg, kh, kw = w.shape
    groups = int(vec.get("groups", c if kind == "depthwise" else 1))
    if kind == "depthwise" and not (groups == c == o and cg == 1):
        raise MappingError(f"{name}: depthwise needs groups == channels == outputs and one input channel per "
                           f"filter, not weight shape {tuple(w.shape)} with {c} input channels")
    if kind == "conv" and (groups != 1 or cg != c):
        raise MappingError(f"{name}: grouped conv (groups={groups}) is not supported by phantom "
                           f"(only groups 1 or depthwise)")
    cols, oh, ow = _patches(x, kh, kw, s, pad)  # (N, C*kh*kw, P)
    p = oh * ow
    if kind == "conv":
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


def _pack(vals: np.ndarray, bits: int) -> np.ndarray:
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


def _mask_word(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint64) << np.arange(bits.shape[1], dtype=np.uint64)).sum(axis=1, dtype=np.uint64)


def plan_layer(vec: dict, cfg: PhantomConfig) -> Plan:
    """Map one golden layer (``golden.nets`` vector dict) to a Phantom chunk stream."""
    name = vec.get("name", "layer")
    wm, um, ch, idx = operands(vec)
    if wm.size and (wm.min() < -128 or wm.max() > 127):
        raise MappingError(f"{name}: weights must be int8, found {int(wm.min())}..{int(wm.max())}")
    if um.size and np.abs(um).max() > 255:
        raise MappingError(f"{name}: activations x - zero_point must lie in [-255, 255]")
    m_out, k = wm.shape
    CH = cfg.chunk
    nch = -(-k // CH)
    pad = nch * CH - k
    wp = np.pad(wm, ((0, 0), (0, pad))).reshape(m_out * nch, CH)
    up = np.pad(um, ((0, 0), (0, pad))).reshape(m_out * nch, CH)
    inside = np.pad(np.ones((m_out, k), dtype=bool), ((0, 0), (0, pad))).reshape(m_out * nch, CH)
    nzw, nzu = wp != 0, up != 0
    wmask, amask = (inside, inside) if cfg.dense else (nzw, nzu)
    useful = (wmask & amask).sum(axis=1)

    def packed(vals, mask):
        order = np.argsort(~mask, axis=1, kind="stable")
        return np.take_along_axis(vals, order, axis=1) * np.take_along_axis(mask, order, axis=1)

    last = np.tile(np.arange(nch) == nch - 1, m_out)
    bias = np.asarray(vec["bias"], dtype=np.int64)[ch]
    mult = np.asarray(vec["mult"], dtype=np.int64)[ch]
    shift = np.asarray(vec["shift"], dtype=np.int64)[ch]
    fields = {
        "wmask": _mask_word(wmask).view(np.int64), "wvals": _pack(packed(wp, wmask), W_BITS),
        "amask": _mask_word(amask).view(np.int64), "avals": _pack(packed(up, amask), A_BITS),
        "wcnt": wmask.sum(axis=1), "acnt": amask.sum(axis=1), "last": last.astype(np.int64),
        "bias": np.repeat(bias, nch), "mult": np.repeat(mult, nch), "shift": np.repeat(shift, nch),
    }
    y = np.asarray(vec["y"], dtype=np.int64).ravel()
    nz_pairs = int((nzw & nzu).sum())
    work = {"outputs": int(m_out), "k": int(k), "chunks_per_output": nch, "dense_macs": int(m_out * k),
            "useful_macs": nz_pairs, "weight_density": float(nzw.sum() / max(1, m_out * k)),
            "act_density": float(nzu.sum() / max(1, m_out * k))}
    plan = Plan(name, fields, useful, last, idx, y[idx], work)
    plan.model = cycle_model(useful, last, cfg)
    return plan


def cycle_model(useful, last, cfg: PhantomConfig) -> dict:
    """Cycles and counters of a chunk stream, mirroring PhantomCore cycle by cycle.

    Each cycle the threads take up to T products from the eligible window (slots
    from the oldest up to the first one closing an output); the leading slots left
    empty are freed (a freed ``last`` slot closes the output); then one chunk enters
    if the window has room. The input is assumed always valid and the output never
    stalled. ``cycles`` runs from the first input cycle to the last output handshake
    (the harness adds a constant, checked in tests); the other keys equal the RTL's
    stat_* counters.
    """
    T, L = cfg.threads, cfg.window
    u = [int(v) for v in useful]
    la = [bool(v) for v in last]
    n = len(u)
    slots: list[list] = []
    i = t = busy = products = 0
    last_fin = -1
    while i < n or slots:
        if slots:
            busy += 1
        budget, d, fin = T, 0, False
        for s in slots:
            take = min(budget, s[0])
            s[0] -= take
            budget -= take
            if s[0]:
                break
            d += 1
            if s[1]:
                fin = True
                break
        products += T - budget
        if d:
            del slots[:d]
        if fin:
            last_fin = t
        if i < n and len(slots) < L:
            slots.append([u[i], la[i]])
            i += 1
        t += 1
    return {"cycles": last_fin + 1 + 1 + 5, "busy": busy, "products": products, "slots": T * busy, "chunks": n,
            "errors": 0, "error_chunk": 0}
