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

The controller's DAC code table is the analog design's (:func:`column_config`: the
word-line levels of ``analog.analysis.design_aid``, as codes); its other parameters
are the given design's. :func:`cosim` runs every operand pair (``nnaccel cosim aid``);
:func:`run_pairs` runs chosen pairs (or a given Verilog text, top ``aid``) and returns a
:class:`cosim.stream.StreamResult`. The spec travels in a JSON file named by
``NNACCEL_AID_SPEC``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

ADC_LATENCY = 2
# ngspice answering against the numerical model's expectation: the model is within 0.73% of
# full scale of ngspice at worst (README), i.e. < 2 LSB of the 8-bit ADC.
SPICE_TOLERANCE_LSB = 2
TEST_MODULE = "cosim.testbenches.aid"


# ------------------------------------------------------------------------------------ host side

def _dac(dac: str):
    from analog import analysis as an
    from analog.circuit import Circuit
    from analog.model import load_params

    if dac not in ("aid", "baseline"):
        raise ValueError(f"dac must be aid or baseline, not {dac!r}")
    c, p = Circuit(), load_params()
    table = an.LevelTable(c, p)
    return c, p, (an.design_aid(c, p, table=table) if dac == "aid" else an.design_baseline(c, p, table=table))


def column_config(cfg, dac: str = "aid"):
    """``cfg`` (an :class:`rtl.aid.config.AidControllerConfig`) with the DAC code table of the
    analog design ``dac`` ("aid": root DAC, "baseline": linear): code per operand a of its
    word-line level, full scale = vdd."""
    c, _, d = _dac(dac)
    top = (1 << cfg.code_bits) - 1
    return dataclasses.replace(cfg, codes=tuple(int(round(v / c.vdd * top)) for v in d.levels(list(range(16)))))


def make_spec(cfg, pairs=None, seed: int = 1, idle: float = 0.3, stall: float = 0.3, dac: str = "aid") -> dict:
    """The cocotb test's spec: ``cfg``'s code table driving the column of the analog design
    ``dac``; ``pairs`` (default every operand pair) with their expected ADC codes."""
    from analog import analysis as an
    from analog.circuit import Adc
    from analog.model import simulate

    engine = os.environ.get("NNACCEL_AID_ENGINE", "model")
    if engine not in ("model", "spice"):
        raise ValueError(f"NNACCEL_AID_ENGINE must be model or spice, not {engine!r}")
    c, p, d = _dac(dac)
    top = (1 << cfg.code_bits) - 1
    A, B = an.grid()
    pairs = [(int(a), int(b)) for a, b in zip(A.ravel(), B.ravel())] if pairs is None else list(pairs)
    fs = float(simulate(c, p, d.levels(15), 15))
    adc = Adc(fs, cfg.adc_bits)
    levels = [cfg.codes[a] * c.vdd / top for a, _ in pairs]
    expected = adc.convert(simulate(c, p, levels, [b for _, b in pairs])).astype(int).tolist()
    return {"config": cfg.params(), "circuit": c.__dict__, "params": p.to_json(), "adc_full_scale": fs,
            "pairs": pairs, "expected": expected, "seed": seed, "idle": idle, "stall": stall,
            "engine": engine, "tolerance": 0 if engine == "model" else SPICE_TOLERANCE_LSB}


def run_pairs(design, pairs=None, *, sim: str = "verilator", seed: int = 1, idle: float = 0.3, stall: float = 0.3,
              verilog: str | None = None, waves: bool = False, timeout_s: float = 300, dac: str = "aid",
              keep: bool = False):
    """Operand ``pairs`` (default: all 256) through the controller of ``design`` (or the given
    Verilog text, module ``design.top``) with the analog column answering; every result
    checked. The controller gets the analog design's code table (:func:`column_config`)."""
    from cosim import runner
    from cosim.stream import StreamResult
    from rtl.aid import model
    from rtl.aid.mapper import multiplies
    from rtl.export import generate

    t0 = time.perf_counter()
    cfg = column_config(design.config, dac)
    spec = make_spec(cfg, pairs, seed, idle, stall, dac)
    if verilog is None:
        verilog = design.verilog if cfg == design.config else generate(design.engine, config=cfg).verilog
    b = runner.build({f"{design.top}.v": public_ports(verilog)}, design.top, sim, waves=waves, tag=design.engine)
    parent = runner.cache_root() / "runs"
    parent.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix=f"{design.engine}-{sim}-", dir=parent))
    spec["result"] = str(run_dir / "result.json")
    (run_dir / "spec.json").write_text(json.dumps(spec))
    r = runner.run(b, TEST_MODULE, run_dir, extra_env={"NNACCEL_AID_SPEC": str(run_dir / "spec.json")},
                   timeout_s=timeout_s, seed=seed)
    res_file = Path(spec["result"])
    if not res_file.exists():
        raise runner.CosimError(f"{sim} co-simulation of {design.engine} ended without a result; log: {r.log}")
    res = json.loads(res_file.read_text())
    plan = multiplies(spec["pairs"], cfg, ADC_LATENCY)
    extra = {"conversions": res["conversions"], "model_cycles": model.cycles(plan)["cycles"], "column": spec["engine"]}
    if res["error"]:
        extra["error"] = res["error"]
    result = StreamResult(engine=design.engine, sim=sim,
                          passed=r.passed and not res["mismatches"] and not res["error"] and not res["timed_out"],
                          vectors=len(spec["pairs"]), outputs=res["results"], cycles=res["cycles"],
                          mismatches=res["mismatches"], first_mismatch=res["first_mismatch"],
                          timed_out=res["timed_out"], build_reused=b.reused, wall_s=time.perf_counter() - t0,
                          sim_s=r.wall_s, waves=str(r.waves) if r.waves else None, log=str(r.log), extra=extra)
    if result.passed and not (keep or waves):
        shutil.rmtree(run_dir, ignore_errors=True)
        result.log = None
    return result


def cosim(design, *, sim: str = "verilator", seed: int = 1, vectors: int = 0, verilog: str | None = None,
          waves: bool = False, timeout_s: float = 300) -> list:
    """Every operand pair (a, b) once, with idle input cycles and back-pressure, the analog
    column answering (``vectors`` is ignored: the 256 pairs are exhaustive)."""
    r = run_pairs(design, sim=sim, seed=seed, verilog=verilog, waves=waves, timeout_s=timeout_s)
    r.extra["scenario"] = "all-pairs (idle + back-pressure)" + (f": {r.extra['error']}" if "error" in r.extra else "")
    return [r]


def public_ports(verilog: str) -> str:
    """Mark port declarations ``verilator public_flat_rw`` so cocotb sees them (the build drops
    ``--public-flat-rw`` for speed); harmless for Icarus."""
    import re
    return re.sub(r"^(\s*(?:input|output)\b[^;/]*);", r"\1 /* verilator public_flat_rw */;", verilog, flags=re.M)


# --------------------------------------------------------------------------------- cocotb side

class Column:
    """The analog bit-line column seen through the controller's pins (numerical model or
    ngspice). A sequencing violation stops it and is kept in ``error``."""

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
        self.error: str | None = None

    def drop(self, level: float, b: int) -> float:
        if self.spec["engine"] == "spice":
            import numpy as np
            from analog import spice
            out = spice.run(spice.mac_netlist(self.c, [spice.MacPoint(level, b)]))
            return float(self.c.vdd - np.interp(self.c.t_sample, out["time"], out["v(blb_0)"]))
        from analog.model import simulate
        return float(simulate(self.c, self.p, level, b))

    async def run(self):
        try:
            await self._watch()
        except AssertionError as e:
            self.error = f"column: {e}"

    async def _watch(self):
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
    pairs, expected, tol = spec["pairs"], spec["expected"], spec["tolerance"]
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
    cycles, limit = 0, 200 * (len(pairs) + 10)
    mismatches, first, timed_out = 0, None, False
    while len(got) < len(pairs) and not column.error:
        if cycles >= limit:
            timed_out = True
            break
        ready = int(rng.random() >= spec["stall"])
        dut.o__ready.value = ready
        await ReadOnly()
        fire = ready and int(dut.o__valid.value)
        if fire:
            try:
                v = int(dut.o__payload.value)
            except ValueError:  # x / z: shown as read
                v = str(dut.o__payload.value)
        await RisingEdge(dut.clk)
        cycles += 1
        if fire:
            k = len(got)
            got.append(v)
            if not (isinstance(v, int) and abs(v - expected[k]) <= tol):
                mismatches += 1
                if first is None:
                    a, b = pairs[k]
                    first = {"index": k, "inputs": {"a": a, "b": b}, "expected": expected[k], "got": v}
    dut.o__ready.value = 0
    Path(spec["result"]).write_text(json.dumps({
        "results": len(got), "cycles": cycles, "conversions": column.conversions, "codes": got,
        "mismatches": mismatches + len(pairs) - len(got), "first_mismatch": first, "timed_out": timed_out,
        "error": column.error}))
    assert not column.error, column.error
    assert not timed_out, f"stuck after {len(got)} of {len(pairs)} results ({cycles} cycles)"
    assert not mismatches, (
        f"{mismatches} of {len(got)} results wrong; first: result {first['index']}: a={first['inputs']['a']} "
        f"b={first['inputs']['b']}: expected ADC code {first['expected']}" + (f" +- {tol}" if tol else "")
        + f", got {first['got']}")
