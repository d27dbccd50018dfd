"""Phantom-2D: a rows x cols mesh of Phantom cores with operand broadcast and output collection.

After Qureshi & Munir (arXiv 2111.05002). Each input word carries one word per row;
a row word's shared operand (an activation chunk for conv and FC rows, a channel's
weight chunk for depthwise rows) is broadcast to every core of the row, and each
core takes its own column part (the other operand, its output's parameters). A core
queues its chunks in a FIFO, so the cores of a row run apart by up to ``fifo``
chunks; the mesh takes a word when every queue has room. The output word has a lane
per core, tagged with its core (r * cols + c), so every core can deliver an output each
cycle, in its own stream order; back-pressure stalls every core, and an offered word
keeps its lanes until it is taken.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from rtl.phantom.config import MAX_IN_BITS, W_BITS
from rtl.phantom2d.config import V_BITS, Phantom2DConfig
from rtl.phantom.core import PhantomCore

STATS = ("busy", "products", "slots", "chunks", "errors", "error_core", "error_chunk")


class PhantomMesh(wiring.Component):
    """Phantom-2D mesh.

    Ports
    -----
    i : In(stream)   ``Phantom2DConfig.word_layout``: per row, the shared operand and
                     one part per column (``use``: this core takes a chunk)
    o : Out(stream)  a lane per core: int8 ``value``, its ``core``, ``valid``
    zero_point, act_min, act_max : In  requantizer statics (shared)
    stat_busy, stat_products, stat_slots, stat_chunks, stat_errors   sums over the cores
                     (see :class:`PhantomCore`)
    stat_error_core  index + 1 of the lowest core with a bad chunk (0: none)
    stat_error_chunk that core's chunk index + 1
    """

    def __init__(self, config: Phantom2DConfig | None = None):
        self._config = cfg = config or Phantom2DConfig()
        if cfg.in_bits > MAX_IN_BITS:
            self._MustUse__silence = True  # never elaborated: no warning when it is collected
            raise ValueError(f"a {cfg.rows}x{cfg.cols} mesh with chunk {cfg.chunk} and {cfg.values} values makes a "
                             f"{cfg.in_bits}-bit input word (at most {MAX_IN_BITS})")
        ports = {"i": In(stream.Signature(cfg.word_layout())), "o": Out(stream.Signature(cfg.out_layout())),
                 "zero_point": In(signed(8)), "act_min": In(signed(8)), "act_max": In(signed(8))}
        ports.update({f"stat_{name}": Out(32) for name in STATS})
        super().__init__(ports)

    @property
    def config(self) -> Phantom2DConfig:
        return self._config

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        R, C, V = cfg.rows, cfg.cols, cfg.values
        word = self.i.payload
        n = R * C
        cores, fifos = [], []
        for r in range(R):
            for c in range(C):
                core = PhantomCore(cfg.core)
                fifo = SyncFIFO(width=len(core.i.payload.as_value()), depth=cfg.fifo)
                m.submodules[f"core_{r}_{c}"] = core
                m.submodules[f"fifo_{r}_{c}"] = fifo
                cores.append(core)
                fifos.append(fifo)
                m.d.comb += [core.zero_point.eq(self.zero_point), core.act_min.eq(self.act_min),
                             core.act_max.eq(self.act_max)]

                # ---- the core's chunk: shared operand + its column part ----------------------
                p = f"r{r}c{c}_"
                s_mask, s_vals, s_cnt = (getattr(word, f"r{r}_{f}") for f in ("smask", "svals", "scnt"))
                c_mask, c_vals, c_cnt = (getattr(word, p + f) for f in ("mask", "vals", "cnt"))
                swap = getattr(word, f"r{r}_swap")
                chunk = Signal(cfg.core.chunk_layout(), name=f"chunk_{r}_{c}")

                def w8(vals):  # 9-bit packed weights -> 8-bit (int8, sign-extended on the wire)
                    return Cat(vals[j * V_BITS:j * V_BITS + W_BITS] for j in range(V))

                with m.If(swap):  # depthwise: the row shares a channel's weights
                    m.d.comb += [chunk.wmask.eq(s_mask), chunk.wvals.eq(w8(s_vals)), chunk.wcnt.eq(s_cnt),
                                 chunk.amask.eq(c_mask), chunk.avals.eq(c_vals), chunk.acnt.eq(c_cnt)]
                with m.Else():  # conv / FC: the row shares an activation chunk
                    m.d.comb += [chunk.amask.eq(s_mask), chunk.avals.eq(s_vals), chunk.acnt.eq(s_cnt),
                                 chunk.wmask.eq(c_mask), chunk.wvals.eq(w8(c_vals)), chunk.wcnt.eq(c_cnt)]
                m.d.comb += [chunk.last.eq(getattr(word, p + "last")), chunk.bias.eq(getattr(word, p + "bias")),
                             chunk.mult.eq(getattr(word, p + "mult")), chunk.shift.eq(getattr(word, p + "shift"))]
                m.d.comb += [fifo.w_data.eq(chunk.as_value()),
                             fifo.w_en.eq(self.i.valid & self.i.ready & getattr(word, f"r{r}_valid")
                                          & getattr(word, p + "use")),
                             core.i.payload.as_value().eq(fifo.r_data), core.i.valid.eq(fifo.r_rdy),
                             fifo.r_en.eq(core.i.ready)]
        m.d.comb += self.i.ready.eq(Cat(f.w_rdy for f in fifos).all())

        # ---- output collection: a lane per core, tagged; one handshake takes every valid lane --
        # An offered word holds until it is taken (the stream rule): while it waits, a core
        # whose output becomes valid is not added to it (it waits for the next word), so
        # ``offered`` keeps the lanes of a word offered and not taken in the cycle before;
        # a lane without an output reads 0.
        # (Found by `nnaccel formal phantom2d`: a lane appeared in a stalled word.)
        stalled = Signal()
        offered = Signal(n)
        lanes = Signal(n)
        m.d.comb += lanes.eq(Cat(core.o.valid & (~stalled | offered[j]) for j, core in enumerate(cores)))
        m.d.sync += [stalled.eq(self.o.valid & ~self.o.ready), offered.eq(lanes)]
        for j, core in enumerate(cores):
            m.d.comb += [getattr(self.o.payload, f"lane{j}_value").eq(Mux(lanes[j], core.o.payload.lane0_value, 0)),
                         getattr(self.o.payload, f"lane{j}_core").eq(j),
                         getattr(self.o.payload, f"lane{j}_valid").eq(lanes[j]),
                         core.o.ready.eq(self.o.ready & lanes[j])]
        m.d.comb += self.o.valid.eq(lanes.any())

        # ---- counters: sums over the cores; the first core with a bad chunk -----------------
        for name in ("busy", "products", "slots", "chunks", "errors"):
            m.d.comb += getattr(self, f"stat_{name}").eq(sum(getattr(core, f"stat_{name}") for core in cores))
        for j in reversed(range(n)):
            with m.If(cores[j].stat_errors != 0):
                m.d.comb += [self.stat_error_core.eq(j + 1), self.stat_error_chunk.eq(cores[j].stat_error_chunk)]
        return m

