"""cocotb co-simulation of the requantizer on Verilator and Icarus, and the checker's ability to fail."""

import numpy as np
import pytest

from cosim import runner
from cosim.engines import run_layer
from cosim.stream import run_stream
from cosim.testbenches.requant import SCENARIOS, cosim, expected, random_vectors, run
from flows.cli import main
from golden.layer import layer_vectors_from
from rtl.requant import model as requant_model
from rtl.requant.mapper import plan
from rtl.requant.model import cycles

# Mutants of the generated Verilog, each breaking one behaviour the golden model pins down.
MUTANTS = {
    "saturating-high-mul": (r"mul_sat \? 32'd2147483647", "mul_sat ? 32'd2147483648"),  # no saturation: wraps
    "rounding-ties": (r"assign \\\$26  = \\\$22  > \\\$25 ;", r"assign \\$26  = \\$22  >= \\$25 ;"),
    "left-shift-width": (r"i__payload\[68:64\] : 5'h00", "i__payload[67:64] : 4'h0"),
}


@pytest.mark.verilator
@pytest.mark.icarus
@pytest.mark.xdist_group("sims")
def test_both_simulators_pass_and_agree(requant_design):
    results = {sim: cosim(requant_design, sim=sim, seed=5, vectors=3000) for sim in runner.SIMULATORS}
    for sim, rs in results.items():
        assert all(r.passed for r in rs), f"{sim}: {[r.summary() for r in rs]}"
        assert sum(r.vectors for r in rs) > 3000  # edge cases on top of the random ones
    # Same vectors, same pacing seed: the two simulators must take the same cycles.
    assert [r.cycles for r in results["verilator"]] == [r.cycles for r in results["icarus"]]


@pytest.mark.verilator
def test_cli_cosim_passes_then_reuses_build(capsys):
    assert main(["cosim", "requant", "--vectors", "500", "--seed", "2"]) == 0
    assert main(["cosim", "requant", "--vectors", "500", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("PASS: requant on verilator") == 2
    second = out.split("PASS: requant on verilator")[1]  # the second run's lines
    assert "build: reused cached build (design unchanged)" in second.splitlines()


@pytest.mark.verilator
@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_mutated_verilog_fails(mutant, mutated_requant, capsys):
    path = mutated_requant(*MUTANTS[mutant])
    assert main(["cosim", "requant", "--vectors", "2000", "--verilog", str(path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL: requant on verilator" in out
    assert "first mismatch: index" in out and "expected" in out and "got" in out


@pytest.mark.icarus
def test_mutated_verilog_fails_on_icarus(mutated_requant, capsys):
    path = mutated_requant(*MUTANTS["saturating-high-mul"])
    assert main(["cosim", "requant", "--sim", "icarus", "--vectors", "100", "--verilog", str(path)]) == 1
    assert "FAIL: requant on icarus" in capsys.readouterr().out


@pytest.mark.verilator
def test_unmodified_verilog_file_passes(tmp_path, requant_design, capsys):
    p = tmp_path / "requant.v"
    p.write_text(requant_design.verilog)
    assert main(["cosim", "requant", "--vectors", "200", "--verilog", str(p)]) == 0


def _stuck(requant_design):
    return requant_design.verilog.replace("assign o__valid = valid[4];", "assign o__valid = 1'h0;")


@pytest.mark.verilator
def test_cycle_limit_ends_a_stuck_design(requant_design):
    sc = SCENARIOS[0]
    vec = random_vectors(np.random.default_rng(0), 50)
    r = run_stream(requant_design, vec, sc.statics(), expected(vec, sc), verilog=_stuck(requant_design),
                   max_cycles=2000)
    assert not r.passed and r.timed_out and r.outputs == 0


@pytest.mark.verilator
@pytest.mark.icarus
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_an_output_after_the_last_expected_one_fails(requant_design, sim):
    """The harness watches a margin after the last expected output: a design that emits
    more than expected fails (here: 50 inputs, 47 outputs expected), at the same cycles."""
    sc = SCENARIOS[1]  # idle input and back-pressure
    vec = random_vectors(np.random.default_rng(0), 50)
    want = expected(vec, sc)
    full = run_stream(requant_design, vec, sc.statics(), want, sim=sim)
    short = run_stream(requant_design, vec, sc.statics(), want[:47], sim=sim)
    assert full.passed and "extra_outputs" not in full.extra
    assert not short.passed and short.mismatches == 0 and short.extra["extra_outputs"] == 3
    assert short.extra["error"].startswith("3 output(s) after the last expected one")


@pytest.mark.verilator
def test_wall_clock_limit_ends_a_stuck_simulation(requant_design):
    sc = SCENARIOS[0]
    vec = random_vectors(np.random.default_rng(0), 50)
    with pytest.raises(runner.SimTimeout, match="wall-clock limit"):
        run_stream(requant_design, vec, sc.statics(), expected(vec, sc), verilog=_stuck(requant_design),
                   max_cycles=10**15, timeout_s=3)


@pytest.mark.verilator
def test_waves_on_request(requant_design):
    sc = SCENARIOS[0]
    vec = random_vectors(np.random.default_rng(0), 20)
    r = run_stream(requant_design, vec, sc.statics(), expected(vec, sc), waves=True)
    assert r.passed and r.waves and r.waves.endswith(".vcd")


def _layer():
    rng = np.random.default_rng(4)
    return layer_vectors_from(name="conv", kind="conv", x=rng.integers(-128, 128, size=(2, 3, 5, 4)),
                              w=rng.integers(-127, 128, size=(4, 3, 3, 3)), bias=rng.integers(-3000, 3000, size=4),
                              input_zero_point=-7, real_multipliers=rng.uniform(0.001, 0.01, size=4),
                              output_zero_point=-100, padding=1)


@pytest.mark.verilator
def test_layer_run_takes_exactly_the_model_cycles(requant_design, monkeypatch):
    vec = _layer()
    p = plan(vec, requant_design.config)
    r = run(requant_design, p)
    assert r.passed and r.outputs == vec.y.size, (r.summary(), r.extra.get("error"))
    assert r.cycles == cycles(p)["cycles"] == vec.y.size + requant_design.config.latency + 2
    paced = run(requant_design, p, idle=0.2, stall=0.2, seed=3)
    assert paced.passed and paced.cycles > r.cycles  # paced runs are not held to the model
    # the check can fail: a model one cycle off
    monkeypatch.setattr(requant_model, "HARNESS_CYCLES", 3)
    bad = run(requant_design, p)
    assert not bad.passed and bad.mismatches == 0 and "cycle model" in bad.extra["error"]


@pytest.mark.verilator
def test_run_layer_equals_one_run(requant_design):
    vec = _layer()
    a, b = run_layer(requant_design, vec), run(requant_design, plan(vec, requant_design.config))
    assert a.passed and b.passed
    assert (a.outputs, a.cycles, a.extra["model"]) == (b.outputs, b.cycles, b.extra["model"])
