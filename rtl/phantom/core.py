"""Phantom core: T threads take useful (non-zero x non-zero) products from a lookahead window.

After Qureshi & Munir, "Phantom: An Efficient Sparse Convolution Neural Network
Accelerator with Dynamic Thread Scheduling" (arXiv 2111.05002), whose core follows
their Sparse-PE (IEEE Access 9, 2021). Weights and activations arrive as chunks of
(binary mask, packed non-zero values); the AND of the two masks marks the useful
products. As a chunk enters the window, prefix popcounts of each mask give every
position its offset into the packed values (the chunk is expanded in place).
Each cycle the thread scheduler takes the next T set bits of the window's useful
masks -- across chunk boundaries, within one output -- so no thread idles at the
end of a chunk while work is buffered.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring

from rtl.common.ports import int8_engine_ports
from rtl.common.requant import Requantizer
from rtl.phantom.config import A_BITS, ACC_BITS, W_BITS, PhantomConfig

STATS = ("busy", "products", "slots", "chunks", "errors", "error_chunk")


class PhantomCore(wiring.Component):
    """One Phantom core with the shared requantizer.

    Ports
    -----
    i : In(stream)   chunk pairs (``PhantomConfig.chunk_layout``); a chunk with ``last``
                     closes its output, whose ``bias``, ``mult`` and ``shift`` it carries.
                     At most one chunk per cycle; ``ready`` while the window has room
                     after this cycle's issue.
    o : Out(stream)  int8 outputs in chunk-stream order. Back-pressure stalls the core.
    zero_point, act_min, act_max : In  requantizer statics
    stat_busy      cycles with a chunk in the window
    stat_products  products issued (useful ones; every element in dense mode)
    stat_slots     thread slots offered (threads x busy cycles)
    stat_chunks    chunks accepted
    stat_errors    chunks whose mask popcount disagrees with their packed count
    stat_error_chunk  index + 1 of the first such chunk (0: none); the bad chunk is
                   computed with its masks as given (the flag is sticky)

    Latency: an output leaves the requantizer 1 + 5 cycles after its last products
    issue. Throughput: T products per cycle, at most one chunk per cycle, at least one
    cycle per output (outputs do not share a cycle).
    """

    def __init__(self, config: PhantomConfig | None = None):
        self._config = cfg = config or PhantomConfig()
        super().__init__(int8_engine_ports(cfg.chunk_layout(), STATS))

    @property
    def config(self) -> PhantomConfig:
        return self._config

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        T, CH, L = cfg.threads, cfg.chunk, cfg.window
        N = L * CH  # window positions

        m.submodules.rq = rq = Requantizer()
        wiring.connect(m, rq.o, wiring.flipped(self.o))
        m.d.comb += [rq.zero_point.eq(self.zero_point), rq.act_min.eq(self.act_min), rq.act_max.eq(self.act_max)]

        stats = {name: Signal(32, name=f"n_{name}") for name in STATS}
        for name, sig in stats.items():
            m.d.comb += getattr(self, f"stat_{name}").eq(sig)

        # ---- window: L chunk slots, slot 0 the oldest ------------------------------------
        valid = [Signal(name=f"valid{s}") for s in range(L)]
        last = [Signal(name=f"last{s}") for s in range(L)]
        rem = [Signal(CH, name=f"rem{s}") for s in range(L)]  # useful products not yet issued
        wexp = [Signal(CH * W_BITS, name=f"wexp{s}") for s in range(L)]  # expanded weights
        aexp = [Signal(CH * A_BITS, name=f"aexp{s}") for s in range(L)]  # expanded activations
        params = [Signal(70, name=f"params{s}") for s in range(L)]  # bias, mult, shift
        acc = Signal(signed(ACC_BITS))

        # ---- expansion of the incoming chunk (prefix popcounts of the masks) ---------------
        c = self.i.payload
        new_w = Signal(CH * W_BITS)
        new_a = Signal(CH * A_BITS)
        pw = Const(0, range(CH + 1))
        pa = Const(0, range(CH + 1))
        for p in range(CH):
            m.d.comb += new_w.word_select(p, W_BITS).eq(Mux(c.wmask[p], c.wvals.word_select(pw, W_BITS), 0))
            m.d.comb += new_a.word_select(p, A_BITS).eq(Mux(c.amask[p], c.avals.word_select(pa, A_BITS), 0))
            nw, na = Signal(range(CH + 1), name=f"pw{p + 1}"), Signal(range(CH + 1), name=f"pa{p + 1}")
            m.d.comb += [nw.eq(pw + c.wmask[p]), na.eq(pa + c.amask[p])]
            pw, pa = nw, na
        bad = (pw != c.wcnt) | (pa != c.acnt)  # pw, pa: popcounts of the whole masks

        # ---- thread scheduler: the next T useful positions of the eligible window ---------
        elig = []
        for s in range(L):
            e = Signal(name=f"elig{s}")
            m.d.comb += e.eq(valid[s] if s == 0 else (elig[-1] & valid[s] & ~last[s - 1]))
            elig.append(e)
        r = Signal(N, name="r0")
        m.d.comb += r.eq(Cat(Mux(elig[s], rem[s], 0) for s in range(L)))
        wflat, aflat = Cat(*wexp), Cat(*aexp)
        total = Signal(signed(ACC_BITS))
        prods, ens = [], []
        for k in range(T):
            low = Signal(N, name=f"low{k}")
            m.d.comb += low.eq(r & (~r + 1))  # lowest set bit, one-hot
            idx = Signal(range(N), name=f"idx{k}")
            m.d.comb += idx.eq(Cat(Cat(low[p] for p in range(N) if (p >> b) & 1).any()
                                   for b in range(max(1, (N - 1).bit_length()))))
            en = Signal(name=f"en{k}")
            m.d.comb += en.eq(r.any())
            prod = Signal(signed(W_BITS + A_BITS), name=f"prod{k}")
            m.d.comb += prod.eq(Mux(en, wflat.word_select(idx, W_BITS).as_signed()
                                    * aflat.word_select(idx, A_BITS).as_signed(), 0))
            prods.append(prod)
            ens.append(en)
            nr = Signal(N, name=f"r{k + 1}")
            m.d.comb += nr.eq(r & ~low)
            r = nr
        m.d.comb += total.eq(sum(prods))

        # slots emptied this cycle, in order from the oldest; the output closes with a last one
        freed = []
        for s in range(L):
            f = Signal(name=f"freed{s}")
            m.d.comb += f.eq(elig[s] & (r[s * CH:(s + 1) * CH] == 0) & (freed[-1] if freed else 1))
            freed.append(f)
        d = Signal(range(L + 1))
        m.d.comb += d.eq(sum(freed))
        fin = Signal()
        m.d.comb += fin.eq(Cat(freed[s] & last[s] for s in range(L)).any())
        fin_params = Signal(70)
        for s in reversed(range(L)):
            with m.If(freed[s] & last[s]):
                m.d.comb += fin_params.eq(params[s])

        # ---- output register -> requantizer -----------------------------------------------
        out_valid = Signal()
        out_acc = Signal(signed(ACC_BITS))
        out_ms = Signal(38)
        m.d.comb += [rq.i.valid.eq(out_valid), rq.i.payload.acc.eq(out_acc),
                     rq.i.payload.mult.eq(out_ms[:32]), rq.i.payload.shift.eq(out_ms[32:])]
        stall = Signal()
        m.d.comb += stall.eq(fin & out_valid & ~rq.i.ready)
        go = ~stall
        with m.If(out_valid & rq.i.ready):
            m.d.sync += out_valid.eq(0)
        with m.If(go):
            with m.If(fin):
                m.d.sync += [acc.eq(0), out_valid.eq(1), out_acc.eq(acc + total + fin_params[:32].as_signed()),
                             out_ms.eq(fin_params[32:])]
            with m.Else():
                m.d.sync += acc.eq(acc + total)

        # ---- window update: issue, shift out freed slots, take a new chunk ------------------
        d_eff = Signal(range(L + 1))
        m.d.comb += d_eff.eq(Mux(go, d, 0))
        count = Signal(range(L + 1))
        m.d.comb += count.eq(sum(valid))
        n_after = Signal(range(L + 1))
        m.d.comb += n_after.eq(count - d_eff)
        m.d.comb += self.i.ready.eq(n_after < L)
        rem_u = [Mux(go & elig[s], r[s * CH:(s + 1) * CH], rem[s]) for s in range(L)]
        with m.Switch(d_eff):
            for dd in range(L + 1):
                with m.Case(dd):
                    for s in range(L):
                        if s + dd < L:
                            m.d.sync += [valid[s].eq(valid[s + dd]), last[s].eq(last[s + dd]),
                                         rem[s].eq(rem_u[s + dd]), wexp[s].eq(wexp[s + dd]),
                                         aexp[s].eq(aexp[s + dd]), params[s].eq(params[s + dd])]
                        else:
                            m.d.sync += valid[s].eq(0)
        accept = self.i.valid & self.i.ready
        with m.If(accept):
            with m.Switch(n_after):
                for s in range(L):
                    with m.Case(s):
                        m.d.sync += [valid[s].eq(1), last[s].eq(c.last), rem[s].eq(c.wmask & c.amask),
                                     wexp[s].eq(new_w), aexp[s].eq(new_a),
                                     params[s].eq(Cat(c.bias, c.mult, c.shift))]
            m.d.sync += stats["chunks"].eq(stats["chunks"] + 1)
            with m.If(bad):
                m.d.sync += stats["errors"].eq(stats["errors"] + 1)
                with m.If(stats["error_chunk"] == 0):
                    m.d.sync += stats["error_chunk"].eq(stats["chunks"] + 1)

        # ---- counters ---------------------------------------------------------------------
        with m.If(valid[0]):
            m.d.sync += [stats["busy"].eq(stats["busy"] + 1), stats["slots"].eq(stats["slots"] + T)]
        with m.If(go):
            m.d.sync += stats["products"].eq(stats["products"] + sum(ens))
        return m
