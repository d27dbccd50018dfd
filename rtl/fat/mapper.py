"""Combined-Stationary mapping of conv / FC layers onto a FAT subarray, and its cycle model.

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
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from rtl.fat.config import CODE_MINUS, CODE_PLUS, CODE_ZERO, OP_CLEAR, OP_LOAD, OP_READ, OP_WEIGHTS, FatConfig


class MappingError(ValueError):
    """A layer that cannot run on this configuration (message names the layer and why)."""


@dataclass
class Plan:
    """Command stream of one layer, and where each output lands."""

    layer: str
    cmds: dict  # op, addr, aux, cnt: int arrays; data: (n, limbs) uint64
    out_index: np.ndarray  # output stream position -> flat index into y (N*O*OH*OW, NCHW order)
    expected: np.ndarray  # int8 expected output stream
    tiles: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)  # cycle model: cycles, steps, ...


def patches(vec: dict) -> tuple[np.ndarray, tuple]:
    """Operands u[p, k] = x - zero_point of each output position's receptive field."""
    x = torch.as_tensor(np.asarray(vec["x"], dtype=np.int64)) - int(vec["input_zero_point"])
    if vec["kind"] == "linear":
        u = x.reshape(len(x), -1)
        return u.numpy(), (len(x), 1, 1)
    w = np.asarray(vec["w"])
    kh, kw = w.shape[2], w.shape[3]
    s, pad = int(vec["stride"]), int(vec["padding"])
    n, c, h, wd = x.shape
    cols = torch.nn.functional.unfold(x.double(), (kh, kw), padding=pad, stride=s)  # (N, C*kh*kw, L), exact
    oh = (h + 2 * pad - kh) // s + 1
    ow = (wd + 2 * pad - kw) // s + 1
    u = cols.round().long().permute(0, 2, 1).reshape(n * oh * ow, c * kh * kw)
    return u.numpy(), (n, oh, ow)


def check_layer(vec: dict, cfg: FatConfig) -> None:
    """Static checks: ternary weights, operand range, accumulator width."""
    name = vec.get("name", "layer")
    w = np.asarray(vec["w"])
    if not np.isin(w, (-1, 0, 1)).all():
        bad = w[~np.isin(w, (-1, 0, 1))].ravel()[0]
        raise MappingError(f"{name}: weights must lie in {{-1, 0, +1}} for fat, found {int(bad)}")
    if vec["kind"] not in ("conv", "linear"):
        raise MappingError(f"{name}: layer kind {vec['kind']!r} is not supported by fat")
    k = int(np.prod(w.shape[1:]))
    umax = (1 << cfg.act_bits) - 1  # |x - zp| <= 2**act_bits - 1
    need = int(k * umax).bit_length() + 1
    if need > cfg.acc_bits:
        raise MappingError(f"{name}: accumulator too narrow: {k} terms of |u| <= {umax} need {need} bits, "
                           f"acc_bits is {cfg.acc_bits}")
    bias = np.abs(np.asarray(vec["bias"], dtype=np.int64)).max(initial=0)
    if k * umax + int(bias) >= 1 << 31:
        raise MappingError(f"{name}: accumulator plus bias can exceed int32")


def _tile_sizes(cfg: FatConfig, k: int, o: int, name: str) -> tuple[int, int]:
    usable = cfg.usable_rows
    o_tile = min(o, max(1, (usable // 2) // cfg.acc_bits))
    if o * cfg.acc_bits + k * cfg.op_bits <= usable:
        o_tile = o
    k_tile = min(k, (usable - o_tile * cfg.acc_bits) // cfg.op_bits)
    if k_tile < 1:
        raise MappingError(f"{name}: cannot be mapped: {cfg.rows} rows hold no operand beside an accumulator")
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

    def add(self, op, addr=0, aux=0, cnt=0, data=None):
        self.op.append(op), self.addr.append(addr), self.aux.append(aux), self.cnt.append(cnt)
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


def plan_layer(vec: dict, cfg: FatConfig) -> Plan:
    """Map one golden layer (``golden.nets`` vector dict) to a FAT command stream."""
    check_layer(vec, cfg)
    name = vec.get("name", "layer")
    A, B, W = cfg.op_bits, cfg.acc_bits, cfg.word_weights
    u, (n, oh, ow) = patches(vec)
    w = np.asarray(vec["w"], dtype=np.int64).reshape(len(vec["w"]), -1)  # (O, K)
    o_ch, k = w.shape
    p = u.shape[0]
    o_tile, k_tile = _tile_sizes(cfg, k, o_ch, name)
    acc_base0 = k_tile * A
    codes = np.where(w == 1, CODE_PLUS, np.where(w == -1, CODE_MINUS, CODE_ZERO))
    bias = np.asarray(vec["bias"], dtype=np.int64)
    mult = np.asarray(vec["mult"], dtype=np.int64)
    shift = np.asarray(vec["shift"], dtype=np.int64)
    planes = ((u[:, :, None] >> np.arange(A)) & 1).astype(np.uint8)  # (P, K, A), two's complement bits

    cmds = _Cmds(cfg)
    out_index = []
    n_ktiles = -(-k // k_tile)
    for p0 in range(0, p, cfg.cols):
        pc = min(cfg.cols, p - p0)
        for o0 in range(0, o_ch, o_tile):
            oc = min(o_tile, o_ch - o0)
            for r in range(oc):
                cmds.add(OP_CLEAR, addr=acc_base0 + r * B)
            for kt in range(n_ktiles):
                k0, kc = kt * k_tile, min(k_tile, k - kt * k_tile)
                if n_ktiles > 1 or o0 == 0:  # operands stay when the reduction fits in one tile
                    bits = np.zeros((kc * A, cfg.cols), dtype=np.uint8)
                    bits[:, :pc] = planes[p0:p0 + pc, k0:k0 + kc, :].reshape(pc, kc * A).T
                    rows = _row_words(bits, cmds.limbs)
                    for row in range(kc * A):
                        cmds.add(OP_LOAD, addr=row, data=rows[row])
                for r in range(oc):
                    oo = o0 + r
                    for j0 in range(0, kc, W):
                        cnt = min(W, kc - j0)
                        word = 0
                        for jj in range(cnt):
                            word |= int(codes[oo, k0 + j0 + jj]) << (2 * jj)
                        cmds.add(OP_WEIGHTS, addr=j0, aux=acc_base0 + r * B, cnt=cnt,
                                 data=np.array([word], dtype=np.uint64))
            for r in range(oc):
                oo = o0 + r
                cmds.add(OP_READ, addr=acc_base0 + r * B, aux=pc,
                         data=_read_data(int(bias[oo]), int(mult[oo]), int(shift[oo])))
                pos = np.arange(p0, p0 + pc)
                # y is (N, O, OH, OW) (or (N, O)): flat index of (position, channel oo)
                nn, rem = np.divmod(pos, oh * ow)
                out_index.append((nn * o_ch + oo) * (oh * ow) + rem)
    out_index = np.concatenate(out_index) if out_index else np.zeros(0, dtype=np.int64)
    y = np.asarray(vec["y"], dtype=np.int64).ravel()
    plan = Plan(name, cmds.arrays(), out_index, y[out_index],
                tiles={"positions": p, "cols": cfg.cols, "col_tiles": -(-p // cfg.cols), "k": k, "k_tile": k_tile,
                       "k_tiles": n_ktiles, "out_channels": o_ch, "o_tile": o_tile, "weight_zero": float((w == 0).mean())})
    plan.model = cycle_model(plan.cmds, cfg)
    return plan


def cycle_model(cmds: dict, cfg: FatConfig) -> dict:
    """Cycles and array operations of a command stream, mirroring the RTL state machine.

    It replays the array at bit-plane level (each row a Python int over the columns),
    so in bitskip mode the data-dependent step counts are exact too. Returns
    cycles (from the first command to the last output, no idle input cycles and no
    back-pressure) and the same counters as the RTL's stat_* ports, plus the
    accumulators read (for checking the model itself).
    """
    A, B, C = cfg.op_bits, cfg.acc_bits, cfg.cols
    ones = (1 << C) - 1
    rows = [0] * cfg.rows
    st = dict.fromkeys(("busy", "steps", "row_reads", "row_writes", "latch_ops", "adds", "subs", "zero_ops",
                        "skipped_bits", "errors"), 0)
    t = 0  # cycles so far (commands are accepted in the cycle they start)
    emit_free = 0  # cycle at which the emitter can take the next accumulator
    last_out = 0
    reads = []
    data = cmds["data"]
    for i in range(len(cmds["op"])):
        op, addr, aux, cnt = (int(cmds[f][i]) for f in ("op", "addr", "aux", "cnt"))
        word = int(data[i, 0]) | (int(data[i, 1]) << 64 if data.shape[1] > 1 else 0)
        if op == OP_LOAD:
            rows[addr] = word & ones
            st["row_writes"] += 1
            st["busy"] += 1
            t += 1
        elif op == OP_CLEAR:
            for b in range(B):
                rows[addr + b] = 0
            st["row_writes"] += B
            st["busy"] += B
            t += 1 + B
        elif op == OP_WEIGHTS:
            t += 1  # accept the word
            issued = False
            for jj in range(cnt):
                code = (word >> (2 * jj)) & 3
                if code == 0b10:
                    st["errors"] += 1
                if cfg.mode == "fat" and code not in (CODE_PLUS, CODE_MINUS):
                    continue
                inv = code == CODE_MINUS
                zero = code not in (CODE_PLUS, CODE_MINUS)
                st["subs" if inv else "adds" if not zero else "zero_ops"] += 1
                if not issued:  # the first issue of a word takes a cycle; later ones hide
                    t += 1      # under the previous operation's last step
                    issued = True
                t += _bit_serial(rows, cfg, addr + jj, aux, inv, zero, st)
        elif op == OP_READ:
            val = [0] * C
            for b in range(B):
                r = rows[addr + b]
                for c in range(C):
                    val[c] |= ((r >> c) & 1) << b
            reads.append([v - (1 << B) if v >> (B - 1) else v for v in val[:aux]])
            st["row_reads"] += B
            st["steps"] += B
            st["busy"] += B
            t += 1 + B  # accept + sense
            start = max(t, emit_free)  # HANDOFF waits for the emitter
            t = start + 1
            emit_free = start + 1 + aux
            last_out = emit_free + 5  # requantizer latency
    st["cycles"] = max(t, last_out)
    st["accumulators"] = reads
    return st


def _bit_serial(rows, cfg: FatConfig, slot: int, acc_base: int, inv: bool, zero: bool, st: dict) -> int:
    """One add / subtract on the bit-plane rows; returns its cycles and counts its operations."""
    A, B = cfg.op_bits, cfg.acc_bits
    ones = (1 << cfg.cols) - 1
    c = ones if inv else 0
    if cfg.mode == "parapim":
        cycles = 1 + 2 * B  # carry row init, then carry step + sum step per bit
        st["row_writes"] += 1 + 2 * B
        st["row_reads"] += 6 * B
        st["steps"] += 2 * B
        st["busy"] += 1 + 2 * B
    else:
        cycles = 0
    b = 0
    while b < B:
        row = slot * A + min(b, A - 1)
        o = 0 if zero else rows[row] ^ (ones if inv else 0)
        if cfg.bitskip:
            if b < A:
                # jump over planes that cannot change anything
                t = b
                eq_inv = c == (ones if inv else 0)
                while t < A and eq_inv and rows[slot * A + t] == 0:
                    t += 1
                if t == A:  # every plane left is zero and every carry matches: done
                    st["skipped_bits"] += B - b
                    cycles += 1  # the cycle that finds nothing to do
                    return cycles
                st["skipped_bits"] += t - b
                b = t
                o = rows[slot * A + b] ^ (ones if inv else 0)
        a = rows[acc_base + b]
        rows[acc_base + b] = a ^ o ^ c
        c = (a & o) | (a & c) | (o & c)
        if cfg.mode != "parapim":
            cycles += 1
            st["steps"] += 1
            st["row_reads"] += 2
            st["row_writes"] += 1
            st["latch_ops"] += 1
            st["busy"] += 1
        b += 1
        if cfg.bitskip and b >= A and c == o:
            st["skipped_bits"] += B - b
            return cycles
    return cycles
