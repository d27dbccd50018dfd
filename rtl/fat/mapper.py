"""Combined-Stationary mapping of conv / FC layers onto a FAT subarray.

Layout of the subarray (one column per output position)::

            column 0      column 1     ...  column cols-1      (output positions p)
    row 0   u[p0,k0] b0   u[p1,k0] b0  ...                      \\
    ...     ...                                                  |  operand slot k:
    row A-1 u[p0,k0] b8   ...                                    /  A = act_bits+1 rows
    row A   u[p0,k1] b0   ...                                      (two's complement of
    ...                                                             u = x - zero_point)
    row S   acc[o0] b0    acc[o0] b0   ...                      \\  accumulator region
    ...                                                          |  per output channel:
    row S+B-1 acc[o0] b19 ...                                    /  B = acc_bits rows
    ...     acc[o1] ...
    rows-2, rows-1: ParaPIM's carry rows

Activations stay in the columns (input-stationary) and partial sums stay in the
same columns' accumulator rows (output-stationary) while ternary weights stream
through the SACU: that is the "combined" stationarity. A layer is tiled over
output positions (columns), output channels (accumulator regions) and, when its
receptive field does not fit, over the reduction dimension (operand slots, which
are reloaded per tile while the accumulators keep their partial sums).

Padding is stored as u = 0 (x = zero_point), so the array computes
``sum_k w[o,k] * (x - zp)`` exactly; the bias is added as the accumulator is read.

:func:`maps` says whether a layer fits (from its kind, weights, operand range and
the accumulator width, without simulating); :func:`plan` turns it into the
command stream, with its cycle model (:func:`rtl.fat.model.replay`) attached.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from golden.errors import NotMapped
from golden.layer import Kind, LayerVectors
from rtl.fat.config import Code, FatConfig, Op
from rtl.fat.model import replay


@dataclass(frozen=True, eq=False)
class Plan:
    """Command stream of one layer, and where each output lands."""

    layer: LayerVectors
    config: FatConfig
    cmds: dict  # op, addr, aux, cnt: int arrays; data: (n, limbs) uint64
    out_index: np.ndarray  # output stream position -> flat index into y (N*O*OH*OW, NCHW order)
    expected: np.ndarray  # int8 expected output stream
    tiles: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)  # rtl.fat.model.replay of cmds: cycles, counters, accumulators

    @property
    def name(self) -> str:
        return self.layer.name


def patches(vec: LayerVectors) -> tuple[np.ndarray, tuple]:
    """Operands u[p, k] = x - zero_point of each output position's receptive field."""
    L = vec.layer
    x = torch.as_tensor(vec.x) - L.input_zero_point
    if L.kind is Kind.LINEAR:
        u = x.reshape(len(x), -1)
        return u.numpy(), (len(x), 1, 1)
    (kh, kw), s, pad = L.kernel, L.stride, L.padding
    n, c, h, wd = x.shape
    cols = torch.nn.functional.unfold(x.double(), (kh, kw), padding=pad, stride=s)  # (N, C*kh*kw, L), exact
    oh = (h + 2 * pad - kh) // s + 1
    ow = (wd + 2 * pad - kw) // s + 1
    u = cols.round().long().permute(0, 2, 1).reshape(n * oh * ow, c * kh * kw)
    return u.numpy(), (n, oh, ow)


def maps(layer: LayerVectors, cfg: FatConfig) -> str | None:
    """None when ``layer`` runs on ``cfg``, else why not (one line naming the layer):
    weights in {-1, 0, +1}, a conv or linear layer, operands x - zero_point within
    act_bits + 1 bits, an accumulator wide enough for the reduction, a subarray that
    holds an operand beside an accumulator."""
    name, L, w = layer.name, layer.layer, layer.w
    if not layer.ternary:
        bad = w[~np.isin(w, (-1, 0, 1))].ravel()[0]
        return f"{name}: weights must lie in {{-1, 0, +1}} for fat, found {int(bad)}"
    if L.kind not in (Kind.CONV, Kind.LINEAR):
        return f"{name}: layer kind {L.kind.value!r} is not supported by fat"
    umax = (1 << cfg.act_bits) - 1  # |x - zp| <= 2**act_bits - 1
    u = np.abs(layer.x - L.input_zero_point).max(initial=0)
    if u > umax:
        return (f"{name}: operands x - zero_point must lie in [-{umax}, {umax}] for act_bits {cfg.act_bits}, "
                f"found |u| = {int(u)}")
    k = L.reduction
    need = int(k * umax).bit_length() + 1
    if need > cfg.acc_bits:
        return (f"{name}: accumulator too narrow: {k} terms of |u| <= {umax} need {need} bits, "
                f"acc_bits is {cfg.acc_bits}")
    if k * umax + int(np.abs(layer.bias).max(initial=0)) >= 1 << 31:
        return f"{name}: accumulator plus bias can exceed int32"
    if _tile_sizes(cfg, k, L.out_channels)[1] < 1:
        return f"{name}: cannot be mapped: {cfg.rows} rows hold no operand beside an accumulator"
    return None


def _tile_sizes(cfg: FatConfig, k: int, o: int) -> tuple[int, int]:
    """(output channels, operand slots) per tile; operand slots < 1 when nothing fits."""
    usable = cfg.usable_rows
    o_tile = min(o, max(1, (usable // 2) // cfg.acc_bits))
    if o * cfg.acc_bits + k * cfg.op_bits <= usable:
        o_tile = o
    k_tile = min(k, (usable - o_tile * cfg.acc_bits) // cfg.op_bits)
    return o_tile, k_tile


def _row_words(bits: np.ndarray, limbs: int) -> np.ndarray:
    """(rows, cols) 0/1 -> (rows, limbs) uint64, column c at bit c."""
    rows, cols = bits.shape
    out = np.zeros((rows, limbs), dtype=np.uint64)
    for c0 in range(0, cols, 64):
        chunk = bits[:, c0:c0 + 64].astype(np.uint64)
        weights = np.left_shift(np.uint64(1), np.arange(chunk.shape[1], dtype=np.uint64))
        out[:, c0 // 64] = (chunk * weights).sum(axis=1, dtype=np.uint64)
    return out


class _Cmds:
    def __init__(self, cfg: FatConfig):
        self.limbs = -(-cfg.data_bits // 64)
        self.op, self.addr, self.aux, self.cnt, self.data = [], [], [], [], []

    def add(self, op: Op, addr=0, aux=0, cnt=0, data=None):
        self.op.append(op.value), self.addr.append(addr), self.aux.append(aux), self.cnt.append(cnt)
        d = np.zeros(self.limbs, dtype=np.uint64)
        if data is not None:
            d[:len(data)] = data
        self.data.append(d)

    def arrays(self) -> dict:
        return {"op": np.array(self.op, dtype=np.int64), "addr": np.array(self.addr, dtype=np.int64),
                "aux": np.array(self.aux, dtype=np.int64), "cnt": np.array(self.cnt, dtype=np.int64),
                "data": np.array(self.data, dtype=np.uint64).reshape(len(self.op), self.limbs)}


def _read_data(bias: int, mult: int, shift: int) -> np.ndarray:
    v = (bias & 0xFFFFFFFF) | ((mult & 0xFFFFFFFF) << 32) | ((shift & 0x3F) << 64)
    return np.array([v & (2**64 - 1), v >> 64], dtype=np.uint64)


def plan(layer: LayerVectors, cfg: FatConfig) -> Plan:
    """``layer`` as a FAT command stream with its expected outputs and cycle model;
    NotMapped (the reason :func:`maps` gives) when it does not fit."""
    why = maps(layer, cfg)
    if why:
        raise NotMapped(why)
    A, B, W = cfg.op_bits, cfg.acc_bits, cfg.word_weights
    u, (n, oh, ow) = patches(layer)
    w = layer.w.reshape(len(layer.w), -1)  # (O, K)
    o_ch, k = w.shape
    p = u.shape[0]
    o_tile, k_tile = _tile_sizes(cfg, k, o_ch)
    acc_base0 = k_tile * A
    codes = np.where(w == 1, Code.PLUS.value, np.where(w == -1, Code.MINUS.value, Code.ZERO.value))
    bias, mult, shift = layer.bias, layer.mult, layer.shift
    planes = ((u[:, :, None] >> np.arange(A)) & 1).astype(np.uint8)  # (P, K, A), two's complement bits

    cmds = _Cmds(cfg)
    out_index = []
    n_ktiles = -(-k // k_tile)
    for p0 in range(0, p, cfg.cols):
        pc = min(cfg.cols, p - p0)
        for o0 in range(0, o_ch, o_tile):
            oc = min(o_tile, o_ch - o0)
            for r in range(oc):
                cmds.add(Op.CLEAR, addr=acc_base0 + r * B)
            for kt in range(n_ktiles):
                k0, kc = kt * k_tile, min(k_tile, k - kt * k_tile)
                if n_ktiles > 1 or o0 == 0:  # operands stay when the reduction fits in one tile
                    bits = np.zeros((kc * A, cfg.cols), dtype=np.uint8)
                    bits[:, :pc] = planes[p0:p0 + pc, k0:k0 + kc, :].reshape(pc, kc * A).T
                    rows = _row_words(bits, cmds.limbs)
                    for row in range(kc * A):
                        cmds.add(Op.LOAD, addr=row, data=rows[row])
                for r in range(oc):
                    oo = o0 + r
                    for j0 in range(0, kc, W):
                        cnt = min(W, kc - j0)
                        word = 0
                        for jj in range(cnt):
                            word |= int(codes[oo, k0 + j0 + jj]) << (2 * jj)
                        cmds.add(Op.WEIGHTS, addr=j0, aux=acc_base0 + r * B, cnt=cnt,
                                 data=np.array([word], dtype=np.uint64))
            for r in range(oc):
                oo = o0 + r
                cmds.add(Op.READ, addr=acc_base0 + r * B, aux=pc,
                         data=_read_data(int(bias[oo]), int(mult[oo]), int(shift[oo])))
                pos = np.arange(p0, p0 + pc)
                # y is (N, O, OH, OW) (or (N, O)): flat index of (position, channel oo)
                nn, rem = np.divmod(pos, oh * ow)
                out_index.append((nn * o_ch + oo) * (oh * ow) + rem)
    out_index = np.concatenate(out_index) if out_index else np.zeros(0, dtype=np.int64)
    arrays = cmds.arrays()
    tiles = {"positions": p, "cols": cfg.cols, "col_tiles": -(-p // cfg.cols), "k": k, "k_tile": k_tile,
             "k_tiles": n_ktiles, "out_channels": o_ch, "o_tile": o_tile, "weight_zero": float((w == 0).mean())}
    return Plan(layer, cfg, arrays, out_index, layer.y.ravel()[out_index], tiles=tiles, model=replay(arrays, cfg))
