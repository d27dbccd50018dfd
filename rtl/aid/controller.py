"""AID controller: DAC code table, binary-weighted word-line pulse generator, precharge / evaluate / ADC sequencing.

One multiply ``a * b`` of the analog column (``analog/circuit.py``) per operation::

    IDLE --i.valid--> WRITE (wr = 1, wr_data = b: store b in the 4 compute cells, 1 cycle)
         -> PRECHARGE (pre = 1, precharge_cycles)
         -> EVALUATE (dac_code = table[a]; wl[i] = 1 for 2**i * unit_cycles cycles, all rows
                      rising together; a = 0 fires no word line)
         -> SETTLE (settle_cycles) -> CONVERT (adc_start = 1 for one cycle, then wait adc_done,
                      sample adc_data) -> OUTPUT (o.valid until o.ready) -> IDLE

The analog column answers ``adc_data``/``adc_done`` (in co-simulation: the numerical model).
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.aid.config import AidControllerConfig  # noqa: F401  (re-exported for callers)


class AidController(wiring.Component):
    """Sequencer of one AID bit-line column.

    Ports
    -----
    i : In(stream)   payload {a: 4, b: 4}: one multiply per transfer.
    o : Out(stream)  payload unsigned(adc_bits): the ADC code of the bit-line drop.
    wr, wr_data : Out  store b in the compute cells (one-cycle strobe).
    pre : Out        precharge enable (active high).
    wl : Out(4)      word-line enables, row i high for 2**i * unit_cycles cycles.
    dac_code : Out(code_bits)  word-line DAC code (held through evaluate).
    adc_start : Out  one-cycle conversion request; adc_done / adc_data : In  the answer.

    Latency: 1 + precharge_cycles + 8 * unit_cycles + settle_cycles + ADC time + 2 cycles
    per operation; one operation at a time (i.ready only in IDLE); the cycle model is
    :func:`rtl.aid.model.cycles_per_multiply`. Its Verilog is ``nnaccel verilog aid``
    (:func:`rtl.export.generate`, module ``aid``).
    """

    def __init__(self, config: AidControllerConfig | None = None):
        self._config = config or AidControllerConfig()
        cfg = self._config
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"a": unsigned(4), "b": unsigned(4)}))),
            "o": Out(stream.Signature(unsigned(cfg.adc_bits))),
            "wr": Out(1), "wr_data": Out(4), "pre": Out(1), "wl": Out(4),
            "dac_code": Out(cfg.code_bits), "adc_start": Out(1),
            "adc_done": In(1), "adc_data": In(cfg.adc_bits),
        })

    @property
    def config(self) -> AidControllerConfig:
        return self._config

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        a = Signal(4)
        b = Signal(4)
        result = Signal(cfg.adc_bits)
        eval_len = 8 * cfg.unit_cycles
        count = Signal(range(max(eval_len, cfg.precharge_cycles, cfg.settle_cycles) + 2))
        table = Array(Const(c, cfg.code_bits) for c in cfg.codes)

        m.d.comb += [self.wr_data.eq(b), self.o.payload.eq(result)]
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [a.eq(self.i.payload.a), b.eq(self.i.payload.b), count.eq(0)]
                    m.next = "WRITE"
            with m.State("WRITE"):
                m.d.comb += self.wr.eq(1)
                m.next = "PRECHARGE"
            with m.State("PRECHARGE"):
                m.d.comb += self.pre.eq(1)
                m.d.sync += count.eq(count + 1)
                with m.If(count == cfg.precharge_cycles - 1):
                    m.d.sync += count.eq(0)
                    m.next = "EVALUATE"
            with m.State("EVALUATE"):
                m.d.comb += self.dac_code.eq(table[a])
                with m.If(a != 0):
                    for row in range(4):
                        m.d.comb += self.wl[row].eq(count < (cfg.unit_cycles << row))
                m.d.sync += count.eq(count + 1)
                with m.If(count == eval_len - 1):
                    m.d.sync += count.eq(0)
                    m.next = "SETTLE" if cfg.settle_cycles else "CONVERT"
            if cfg.settle_cycles:
                with m.State("SETTLE"):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == cfg.settle_cycles - 1):
                        m.next = "CONVERT"
            with m.State("CONVERT"):
                m.d.comb += self.adc_start.eq(1)
                m.next = "WAIT_ADC"
            with m.State("WAIT_ADC"):
                with m.If(self.adc_done):
                    m.d.sync += result.eq(self.adc_data)
                    m.next = "OUTPUT"
            with m.State("OUTPUT"):
                m.d.comb += self.o.valid.eq(1)
                with m.If(self.o.ready):
                    m.next = "IDLE"
        return m

