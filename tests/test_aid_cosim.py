"""AID controller: Amaranth simulation of its sequencing, its rooms in the engine table, and
the mixed-signal co-simulation (Verilator, numerical analog model in the loop), including
mutants that must fail; `nnaccel verilog aid` and `nnaccel cosim aid`."""

import json
import re

import pytest
from amaranth.sim import Simulator

from golden.errors import NotMapped
from rtl.aid import model
from rtl.aid.config import AidControllerConfig
from rtl.aid.controller import AidController
from rtl.aid.mapper import multiplies
from rtl.engines import get_engine
from rtl.export import generate


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


def test_every_layer_is_refused_with_one_line():
    from tests.test_engine_protocol import zoo
    engine = get_engine("aid")
    for vec in zoo().values():
        why = engine.maps(vec)
        assert why == (f"not supported by aid: {vec.name} (the AID controller sequences one analog 4-bit "
                       f"multiply per conversion and runs no network layer)")
        with pytest.raises(NotMapped, match="^not supported by aid: "):
            engine.plan(vec)


def test_cycle_model_counts_the_fsm_states():
    cfg = AidControllerConfig(unit_cycles=2, precharge_cycles=3, settle_cycles=0)
    assert model.cycles_per_multiply(cfg, adc_cycles=2) == 1 + 1 + 3 + 16 + 0 + 1 + 2 + 1
    plan = multiplies([(1, 2), (15, 15), (0, 0)], AidControllerConfig(), adc_cycles=2)
    assert model.cycles(plan) == {"cycles": 3 * 21, "conversions": 3}
    with pytest.raises(ValueError, match=r"pair 1: operands must lie in 0..15, not \(16, 0\)"):
        multiplies([(0, 0), (16, 0)], cfg, adc_cycles=2)


@pytest.mark.verilator
def test_cosim_all_pairs_with_the_model_in_the_loop():
    from cosim.testbenches.aid import cosim
    r, = cosim(generate("aid"), sim="verilator")
    assert r.passed, f"co-simulation failed; log: {r.log}"
    assert r.outputs == 256 and r.extra["conversions"] == 256 and r.vectors == 256
    assert r.cycles >= r.extra["model_cycles"]  # idle input and back-pressure add cycles


@pytest.mark.verilator
def test_unpaced_cycles_match_the_cycle_model():
    from cosim.testbenches.aid import run_pairs
    r = run_pairs(generate("aid"), [(a, 15 - a) for a in range(16)], idle=0.0, stall=0.0, timeout_s=120)
    assert r.passed, r.log
    assert abs(r.cycles - r.extra["model_cycles"]) <= 2, (r.cycles, r.extra["model_cycles"])


def _column_config():
    from cosim.testbenches.aid import column_config
    return column_config(AidControllerConfig())


@pytest.mark.verilator
@pytest.mark.parametrize("what, pattern, replacement", [
    # pulse generator: row 3 held for one cycle less
    ("pulse width", r"count < (?:\(\*[^)]*\*\) )?4'h8", "count < 4'h7"),
    # sequencing: never precharges
    ("precharge", r"pre = 1'h1;", "pre = 1'h0;"),
])
def test_cosim_mutants_fail(what, pattern, replacement):
    from cosim.testbenches.aid import run_pairs
    text = generate("aid", config=_column_config()).verilog
    mutant, n = re.subn(pattern, replacement, text, count=1)
    assert n == 1, f"mutation {what!r} not applicable"
    r = run_pairs(generate("aid"), [(a, b) for a in (1, 9, 15) for b in (1, 15)], verilog=mutant, timeout_s=120)
    assert not r.passed, f"the {what} mutant passed"
    assert "error" in r.extra and "column:" in r.extra["error"], r.extra  # the column names the violation


@pytest.mark.verilator
def test_cosim_wrong_code_table_fails():
    import dataclasses
    from cosim.testbenches.aid import run_pairs
    pairs = [(a, 15) for a in range(16)]
    codes = list(_column_config().codes)
    codes[9] += 3  # one DAC code off by 3 LSB (3 mV)
    bad = dataclasses.replace(_column_config(), codes=tuple(codes))
    r = run_pairs(generate("aid"), pairs, verilog=generate("aid", config=bad).verilog, timeout_s=120)
    assert not r.passed, "a wrong DAC code table passed"
    assert r.first_mismatch["inputs"] == {"a": 9, "b": 15}, r.first_mismatch


@pytest.mark.verilator
@pytest.mark.ngspice
def test_cosim_with_ngspice_answering(monkeypatch):
    from cosim.testbenches.aid import run_pairs
    monkeypatch.setenv("NNACCEL_AID_ENGINE", "spice")
    r = run_pairs(generate("aid"), [(0, 15), (3, 5), (15, 15)], timeout_s=200)
    assert r.passed, f"co-simulation with ngspice failed; log: {r.log}"
    assert r.extra["conversions"] == 3


@pytest.mark.icarus
def test_cosim_on_icarus():
    from cosim.testbenches.aid import run_pairs
    r = run_pairs(generate("aid"), [(a, b) for a in (0, 5, 15) for b in (1, 15)], sim="icarus", timeout_s=120)
    assert r.passed, f"co-simulation failed; log: {r.log}"
    assert r.outputs == 6


def test_cli_verilog_aid(tmp_path, capsys):
    from flows.cli import main
    assert main(["verilog", "aid", "-o", str(tmp_path)]) == 0
    text = (tmp_path / "aid.v").read_text()
    assert "module aid(" in text.replace(" (", "(") and text == generate("aid").verilog
    meta = json.loads((tmp_path / "aid.json").read_text())
    assert meta["top"] == "aid" and meta["params"]["codes"] == list(range(16))


@pytest.mark.verilator
def test_cli_cosim_aid(tmp_path, capsys):
    from flows.cli import main
    out = tmp_path / "aid.json"
    assert main(["cosim", "aid", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "[all-pairs (idle + back-pressure)] PASS aid on verilator: 256 vectors, 256 outputs" in text
    assert "PASS: aid on verilator" in text
    assert json.loads(out.read_text())["passed"] is True
