"""AID controller: Amaranth simulation of its sequencing, and the mixed-signal co-simulation
(Verilator, numerical analog model in the loop), including mutants that must fail."""

import re

import pytest
from amaranth.sim import Simulator

from rtl.aid.controller import AidController, AidControllerConfig, verilog


def test_config_validation():
    with pytest.raises(ValueError, match="codes must hold 16"):
        AidControllerConfig(codes=(1, 2))
    with pytest.raises(ValueError, match=r"codes\[3\] must be an integer in 0..1023, not 5000"):
        AidControllerConfig(codes=(0, 1, 2, 5000) + (0,) * 12)
    with pytest.raises(ValueError, match="unit_cycles"):
        AidControllerConfig(unit_cycles=0)


def test_controller_sequence_in_amaranth():
    cfg = AidControllerConfig(unit_cycles=2, precharge_cycles=3, settle_cycles=1, codes=tuple(range(100, 116)))
    dut = AidController(cfg)
    trace = []

    async def bench(ctx):
        ctx.set(dut.i.payload, {"a": 5, "b": 9})
        ctx.set(dut.i.valid, 1)
        await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)
        for _ in range(40):
            trace.append((ctx.get(dut.wr), ctx.get(dut.wr_data), ctx.get(dut.pre), ctx.get(dut.wl),
                          ctx.get(dut.dac_code), ctx.get(dut.adc_start)))
            if ctx.get(dut.adc_start):
                break
            await ctx.tick()
        await ctx.tick()
        ctx.set(dut.adc_data, 77)
        ctx.set(dut.adc_done, 1)
        await ctx.tick()
        ctx.set(dut.adc_done, 0)
        ctx.set(dut.o.ready, 1)
        value, = await ctx.tick().sample(dut.o.payload).until(dut.o.valid)
        assert value == 77

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    wr = [t for t in trace if t[0]]
    assert len(wr) == 1 and wr[0][1] == 9
    assert sum(t[2] for t in trace) == 3
    widths = [sum((t[3] >> i) & 1 for t in trace) for i in range(4)]
    assert widths == [2, 4, 8, 16], widths
    assert {t[4] for t in trace if t[3]} == {105}
    first_wl = next(k for k, t in enumerate(trace) if t[3])
    assert all(not t[2] for t in trace[first_wl:])
    assert trace[-1][5] == 1


@pytest.mark.verilator
def test_cosim_all_pairs_with_the_model_in_the_loop():
    from cosim.aid import run_cosim
    r = run_cosim("verilator")
    assert r["passed"], f"co-simulation failed; log: {r['log']}"
    assert r["results"] == 256 and r["conversions"] == 256


@pytest.mark.verilator
@pytest.mark.parametrize("what, pattern, replacement", [
    # pulse generator: row 3 held for one cycle less
    ("pulse width", r"count < \(\*[^)]*\*\) 4'h8", "count < 4'h7"),
    # sequencing: never precharges
    ("precharge", r"pre = 1'h1;", "pre = 1'h0;"),
])
def test_cosim_mutants_fail(what, pattern, replacement):
    from cosim.aid import make_spec, run_cosim
    import json
    spec = make_spec("aid", pairs=[(a, b) for a in (1, 9, 15) for b in (1, 15)])
    cfg = AidControllerConfig(**{**spec["config"], "codes": tuple(spec["config"]["codes"])})
    text = verilog(cfg)
    mutant, n = re.subn(pattern, replacement, text, count=1)
    assert n == 1, f"mutation {what!r} not applicable"
    r = run_cosim("verilator", verilog=mutant, pairs=[(a, b) for a in (1, 9, 15) for b in (1, 15)], timeout_s=120)
    assert not r["passed"], f"the {what} mutant passed"


@pytest.mark.verilator
def test_cosim_wrong_code_table_fails():
    from cosim.aid import make_spec, run_cosim
    pairs = [(a, 15) for a in range(16)]
    spec = make_spec("aid", pairs=pairs)
    codes = list(spec["config"]["codes"])
    codes[9] += 3  # one DAC code off by 3 LSB (3 mV)
    cfg = AidControllerConfig(**{**spec["config"], "codes": tuple(codes)})
    r = run_cosim("verilator", verilog=verilog(cfg), pairs=pairs, timeout_s=120)
    assert not r["passed"], "a wrong DAC code table passed"


@pytest.mark.verilator
@pytest.mark.ngspice
def test_cosim_with_ngspice_answering(monkeypatch):
    from cosim.aid import run_cosim
    monkeypatch.setenv("NNACCEL_AID_ENGINE", "spice")
    r = run_cosim("verilator", pairs=[(0, 15), (3, 5), (15, 15)], timeout_s=200)
    assert r["passed"], f"co-simulation with ngspice failed; log: {r['log']}"
    assert r["conversions"] == 3


@pytest.mark.icarus
def test_cosim_on_icarus():
    from cosim.aid import run_cosim
    r = run_cosim("icarus", pairs=[(a, b) for a in (0, 5, 15) for b in (1, 15)], timeout_s=120)
    assert r["passed"], f"co-simulation failed; log: {r['log']}"
    assert r["results"] == 6
