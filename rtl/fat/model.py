"""Cycle model of the FAT engine: an exact replay of a command stream.

:func:`replay` mirrors the RTL state machine command by command and replays the
array at bit-plane level (each row a Python int over the columns), so in bitskip
mode the data-dependent step counts are exact too: its counters equal the RTL's
``stat_*`` ports, and its cycles the RTL's from the first command to the last
output (no idle input cycles, no back-pressure). :func:`cycles` is the protocol's
view of a plan (:mod:`rtl.engines`).
"""

from __future__ import annotations

from rtl.fat.config import STATS, Code, FatConfig, Op


def cycles(plan) -> dict:
    """``cycles`` (first command to last output) and every RTL counter for a plan
    (:func:`rtl.fat.mapper.plan`, which carries its replay already)."""
    model = plan.model if plan.model else replay(plan.cmds, plan.config)
    return {k: v for k, v in model.items() if k != "accumulators"}


def replay(cmds: dict, cfg: FatConfig) -> dict:
    """Cycles and array operations of a command stream, mirroring the RTL state machine.

    Returns cycles (from the first command to the last output, no idle input cycles
    and no back-pressure), the same counters as the RTL's stat_* ports, and the
    accumulators read (column values of each READ, for checking the model itself).
    """
    B, C = cfg.acc_bits, cfg.cols
    lat = cfg.requant.latency
    ones = (1 << C) - 1
    rows = [0] * cfg.rows
    st = dict.fromkeys(STATS, 0)
    t = 0  # cycles so far (commands are accepted in the cycle they start)
    emit_free = 0  # cycle at which the emitter can take the next accumulator
    last_out = 0
    reads = []
    data = cmds["data"]
    for i in range(len(cmds["op"])):
        op = Op(int(cmds["op"][i]))
        addr, aux, cnt = (int(cmds[f][i]) for f in ("addr", "aux", "cnt"))
        word = int(data[i, 0]) | (int(data[i, 1]) << 64 if data.shape[1] > 1 else 0)
        if op is Op.LOAD:
            rows[addr] = word & ones
            st["row_writes"] += 1
            st["busy"] += 1
            t += 1
        elif op is Op.CLEAR:
            for b in range(B):
                rows[addr + b] = 0
            st["row_writes"] += B
            st["busy"] += B
            t += 1 + B
        elif op is Op.WEIGHTS:
            t += 1  # accept the word
            issued = False
            for jj in range(cnt):
                code = Code((word >> (2 * jj)) & 3)
                if code is Code.INVALID:
                    st["errors"] += 1
                nonzero = code in (Code.PLUS, Code.MINUS)
                if cfg.mode == "fat" and not nonzero:
                    continue  # the SACU skips it
                inv = code is Code.MINUS
                st["subs" if inv else "adds" if nonzero else "zero_ops"] += 1
                if not issued:  # the first issue of a word takes a cycle; later ones hide
                    t += 1      # under the previous operation's last step
                    issued = True
                t += _bit_serial(rows, cfg, addr + jj, aux, inv, not nonzero, st)
        elif op is Op.READ:
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
            last_out = emit_free + lat  # through the engine's requantizer
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
