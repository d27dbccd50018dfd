"""Mixed-signal co-simulation of the AID controller (rtl/aid) with the analog column in the loop.

The Amaranth controller runs as Verilog in cocotb (Verilator or Icarus). The analog
side is Python, answering per operation (one conversion per multiply, so per-operation
pin access is the natural interface here, not bulk data):

* **column model** (:class:`Column`): watches the controller's pins every clock --
  ``wr``/``wr_data`` stores b in the cells, ``pre`` precharges the bit line, ``wl`` and
  ``dac_code`` are recorded through evaluate. It checks the sequencing (precharge
  before evaluate, binary-weighted pulse widths, no word line for a = 0) and, on
  ``adc_start``, computes the bit-line drop with the numerical model from the word-line
  level the *pins* carried (code -> volts) and the stored b, quantizes it with the ADC
  and answers ``adc_data``/``adc_done`` after ``ADC_LATENCY`` cycles.
  ``NNACCEL_AID_ENGINE=spice`` makes ngspice answer instead (one run per conversion, slow).
* **driver / monitor / checker**: operands stream in with random idle cycles, results
  are taken with random back-pressure, and each result must equal the reference code
  ``ADC(model(DAC.levels(a), b))`` computed from the operands alone -- exactly with the
  model answering, within ``SPICE_TOLERANCE_LSB`` with ngspice answering.

:func:`run_cosim` builds (cached) and runs it; the spec travels in a JSON file named by
``NNACCEL_AID_SPEC``.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

ADC_LATENCY = 2
# ngspice answering against the numerical model's expectation: the model is within 0.73% of
# full scale of ngspice at worst (README), i.e. < 2 LSB of the 8-bit ADC.
SPICE_TOLERANCE_LSB = 2
TOP = "aid_ctrl"


# ------------------------------------------------------------------------------------ host side

def make_spec(design: str = "aid", pairs=None, seed: int = 1, idle: float = 0.3, stall: float = 0.3) -> dict:
    from analog import analysis as an
    from analog.circuit import Adc, Circuit
    from analog.model import load_params, simulate
    from rtl.aid.controller import AidControllerConfig

    engine = os.environ.get("NNACCEL_AID_ENGINE", "model")
    if engine not in ("model", "spice"):
        raise ValueError(f"NNACCEL_AID_ENGINE must be model or spice, not {engine!r}")
    c, p = Circuit(), load_params()
    table = an.LevelTable(c, p)
    dac = an.design_aid(c, p, table=table) if design == "aid" else an.design_baseline(c, p, table=table)
    if design not in ("aid", "baseline"):
        raise ValueError(f"design must be aid or baseline, not {design!r}")
    code_bits = 10
    top = (1 << code_bits) - 1
    codes = [int(round(v / c.vdd * top)) for v in dac.levels(list(range(16)))]
    cfg = AidControllerConfig(code_bits=code_bits, codes=tuple(codes))
    A, B = an.grid()
    pairs = [(int(a), int(b)) for a, b in zip(A.ravel(), B.ravel())] if pairs is None else list(pairs)
    fs = float(simulate(c, p, dac.levels(15), 15))
    adc = Adc(fs, cfg.adc_bits)
    levels = [codes[a] * c.vdd / top for a, _ in pairs]
    expected = adc.convert(simulate(c, p, levels, [b for _, b in pairs])).astype(int).tolist()
    return {"config": cfg.params(), "circuit": c.__dict__, "params": p.to_json(), "adc_full_scale": fs,
            "pairs": pairs, "expected": expected, "seed": seed, "idle": idle, "stall": stall,
            "engine": engine, "tolerance": 0 if engine == "model" else SPICE_TOLERANCE_LSB}


def run_cosim(sim: str = "verilator", *, design: str = "aid", verilog: str | None = None, pairs=None,
              seed: int = 1, timeout_s: float = 300, work_dir: Path | None = None) -> dict:
    """Build the controller (or the given Verilog), run the co-simulation, return the result dict."""
    from cosim import runner
    from rtl.aid.controller import AidController, AidControllerConfig

    spec = make_spec(design, pairs, seed)
    if verilog is None:
        from amaranth.back import verilog as v
        verilog = v.convert(AidController(AidControllerConfig(**{**spec["config"],
                                                                 "codes": tuple(spec["config"]["codes"])})), name=TOP)
    b = runner.build({f"{TOP}.v": public_ports(verilog)}, TOP, sim, tag="aid")
    parent = runner.cache_root() / "runs"
    parent.mkdir(parents=True, exist_ok=True)
    run_dir = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix=f"aid-{sim}-", dir=parent))
    run_dir.mkdir(parents=True, exist_ok=True)
    spec["result"] = str(run_dir / "result.json")
    (run_dir / "spec.json").write_text(json.dumps(spec))
    r = runner.run(b, "cosim.aid", run_dir, extra_env={"NNACCEL_AID_SPEC": str(run_dir / "spec.json")},
                   timeout_s=timeout_s, seed=seed)
    res = json.loads(Path(spec["result"]).read_text()) if Path(spec["result"]).exists() else {}
    res.update({"passed": r.passed, "log": str(r.log), "run_dir": str(run_dir), "reused_build": b.reused})
    return res


def public_ports(verilog: str) -> str:
    """Mark port declarations ``verilator public_flat_rw`` so cocotb sees them (the build drops
    ``--public-flat-rw`` for speed); harmless for Icarus."""
    import re
    return re.sub(r"^(\s*(?:input|output)\b[^;/]*);", r"\1 /* verilator public_flat_rw */;", verilog, flags=re.M)


# --------------------------------------------------------------------------------- cocotb side

class Column:
    """The analog bit-line column seen through the controller's pins (numerical model or ngspice)."""

    def __init__(self, dut, spec):
        from analog.circuit import Adc, Circuit
        from analog.model import ModelParams
        self.dut, self.spec = dut, spec
        self.c = Circuit(**spec["circuit"])
        self.p = ModelParams.from_json(spec["params"])
        self.cfg = spec["config"]
        self.adc = Adc(spec["adc_full_scale"], self.cfg["adc_bits"])
        self.stored = None
        self.conversions = 0

    def drop(self, level: float, b: int) -> float:
        if self.spec["engine"] == "spice":
            import numpy as np
            from analog import spice
            out = spice.run(spice.mac_netlist(self.c, [spice.MacPoint(level, b)]))
            return float(self.c.vdd - np.interp(self.c.t_sample, out["time"], out["v(blb_0)"]))
        from analog.model import simulate
        return float(simulate(self.c, self.p, level, b))

    async def run(self):
        dut, cfg = self.dut, self.cfg
        top = (1 << cfg["code_bits"]) - 1
        pre_run, widths, code, precharged = 0, [0, 0, 0, 0], None, False
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            if int(dut.rst.value):
                continue
            if int(dut.wr.value):
                self.stored = int(dut.wr_data.value)
                precharged, widths, code = False, [0, 0, 0, 0], None
            if int(dut.pre.value):
                pre_run += 1
                if pre_run >= cfg["precharge_cycles"]:
                    precharged = True
            else:
                pre_run = 0
            wl = int(dut.wl.value)
            if wl:
                assert precharged, "word line fired before the bit line was precharged"
                assert not int(dut.pre.value), "word line and precharge on together"
                level = int(dut.dac_code.value)
                assert code in (None, level), f"DAC code changed during evaluate: {code} -> {level}"
                code = level
                for i in range(4):
                    widths[i] += (wl >> i) & 1
            if int(dut.adc_start.value):
                assert self.stored is not None, "conversion before any write"
                want = [0] * 4 if code is None else [cfg["unit_cycles"] << i for i in range(4)]
                assert widths == want, f"word-line pulse widths {widths} cycles, expected {want}"
                v = 0.0 if code is None else code * self.c.vdd / top
                value = int(self.adc.convert(self.drop(v, self.stored)))
                self.conversions += 1
                for _ in range(ADC_LATENCY):
                    await RisingEdge(dut.clk)
                dut.adc_data.value = value
                dut.adc_done.value = 1
                await RisingEdge(dut.clk)
                dut.adc_done.value = 0
                precharged, widths, code = False, [0, 0, 0, 0], None


@cocotb.test()
async def aid_multiplies_through_the_analog_column(dut):
    spec = json.loads(Path(os.environ["NNACCEL_AID_SPEC"]).read_text())
    rng = random.Random(spec["seed"])
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    dut.adc_done.value = 0
    dut.adc_data.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    column = Column(dut, spec)
    cocotb.start_soon(column.run())
    pairs, expected = spec["pairs"], spec["expected"]
    got = []

    async def drive():
        for a, b in pairs:
            while rng.random() < spec["idle"]:
                await RisingEdge(dut.clk)
            dut.i__valid.value = 1
            dut.i__payload.value = a | (b << 4)
            while True:
                await ReadOnly()
                taken = int(dut.i__ready.value)
                await RisingEdge(dut.clk)
                if taken:
                    break
            dut.i__valid.value = 0

    cocotb.start_soon(drive())
    cycles = 0
    while len(got) < len(pairs):
        ready = int(rng.random() >= spec["stall"])
        dut.o__ready.value = ready
        await ReadOnly()
        fire = ready and int(dut.o__valid.value)
        v = int(dut.o__payload.value) if fire else None
        await RisingEdge(dut.clk)
        cycles += 1
        assert cycles < 200 * (len(pairs) + 10), f"stuck after {len(got)} of {len(pairs)} results"
        if fire:
            k = len(got)
            got.append(v)
            a, b = pairs[k]
            assert abs(v - expected[k]) <= spec["tolerance"], (
                f"result {k}: a={a} b={b}: expected ADC code {expected[k]}"
                + (f" +- {spec['tolerance']}" if spec["tolerance"] else "") + f", got {v}")
    dut.o__ready.value = 0
    Path(spec["result"]).write_text(json.dumps({"results": len(got), "cycles": cycles,
                                                "conversions": column.conversions, "codes": got}))
