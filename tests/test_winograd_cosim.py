"""Winograd engine co-simulated (cocotb, memory harness) on Verilator and Icarus, bit-exact
against the golden direct convolution; mutants through --verilog fail; verify flow."""

import json

import pytest

from cosim import runner
from cosim.testbenches.winograd import cosim
from flows.cli import main
from rtl.export import generate
from tests.conftest import mutate

# Mutants of the generated F(2x2,3x3) Verilog (default parameters).
MUTANTS = {
    # channel 0, element (0,0): the running sum is not cleared on the first input channel
    # (the second use of the `first` mux; the first feeds only a one-channel `last` beat,
    # where the cleared accumulator is equivalent)
    "accumulate-first": (r"(= s3_first \? 32'd0 : macc_0_0_0;\n.*\n  assign \\\$\d+\s+= s3_first \? )32'd0( : macc_0_0_0;)",
                         r"\g<1>macc_0_0_0\g<2>"),
    # the same register's first use: a one-channel beat (first and last at once) adds the stale
    # sum; a fresh simulation hides it (the register is still zero), two layers chained in
    # one run do not
    "first-and-last": (r"(assign \\\$\d+\s+= s3_first \? )32'd0( : macc_0_0_0;)", r"\g<1>macc_0_0_0\g<2>"),
    # corner pixel adds the input zero point instead of subtracting it
    "zero-point": (r"(\$signed\(i__payload\[7:0\]\)) - (\$signed\(input_zero_point\))", r"\1 + \2"),
    # one accumulator register 16 bits narrower than the width analysis asks for
    "narrow-accumulator": (r"reg \[31:0\] macc_0_0_0 = 32'd0;", "reg [15:0] macc_0_0_0 = 16'd0;"),
}


@pytest.mark.verilator
@pytest.mark.icarus
@pytest.mark.xdist_group("sims")
@pytest.mark.parametrize("params", [{}, {"m": "4", "channels": "1"}], ids=["F2x2", "F4x4"])
def test_both_simulators_bit_exact_random_and_demo_layers(params):
    design = generate("winograd", params)
    results = {sim: cosim(design, sim=sim, seed=3, vectors=1500) for sim in runner.SIMULATORS}
    for sim, rs in results.items():
        assert all(r.passed for r in rs), f"{sim}: {[(r.extra['scenario'], r.first_mismatch) for r in rs]}"
        names = [r.extra["scenario"] for r in rs]
        assert "demo-int8-conv1" in names and "demo-int8-conv3" in names and len(names) == 13
        assert {"extremes-max-in-channels", "two-layers-chained-in-one-run"} <= set(names)
        assert [n.split(" ")[0] for n in names[8:]] == ["requant-params"] * 5
        for r in rs:  # RTL cycles against the cycle model (pacing adds idle/stall cycles)
            assert r.cycles >= r.extra["model_cycles"] - 2
    # Same vectors and pacing: both simulators take the same cycles.
    assert [r.cycles for r in results["verilator"]] == [r.cycles for r in results["icarus"]]


@pytest.mark.verilator
def test_cli_cosim_passes_and_writes_json(tmp_path, capsys):
    out = tmp_path / "w.json"
    assert main(["cosim", "winograd", "--vectors", "500", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "PASS: winograd on verilator" in text and "[demo-int8-conv3] PASS" in text
    assert json.loads(out.read_text())["passed"] is True


@pytest.fixture
def mutant_file(tmp_path):
    design = generate("winograd")

    def make(name):
        p = tmp_path / f"winograd_{name}.v"
        p.write_text(mutate(design.verilog, *MUTANTS[name]))
        return p
    return make


@pytest.mark.icarus
@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutated_verilog_fails(name, mutant_file, capsys):
    assert main(["cosim", "winograd", "--sim", "icarus", "--vectors", "300", "--verilog", str(mutant_file(name))]) == 1
    out = capsys.readouterr().out
    assert "FAIL: winograd on icarus" in out
    assert "first mismatch: index" in out and "'channel'" in out and "expected" in out and "got" in out


@pytest.mark.verilator
def test_mutated_verilog_fails_on_verilator(mutant_file, capsys):
    assert main(["cosim", "winograd", "--vectors", "300", "--verilog", str(mutant_file("accumulate-first"))]) == 1
    assert "FAIL: winograd on verilator" in capsys.readouterr().out


@pytest.mark.verilator
def test_verify_flow_maps_3x3_stride1_convs_and_reports_the_rest(tmp_path, capsys):
    out = tmp_path / "verify"
    assert main(["verify", "--engine", "winograd", "--variant", "int8", "--images", "2", "-o", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    layers = {l["layer"]: l for l in res["runs"][0]["layers"]}
    assert {k: (l["engine"], l["status"]) for k, l in layers.items()} == {
        "conv1": ("winograd", "PASS"), "conv2": ("host", "host"), "conv3": ("winograd", "PASS"),
        "fc.flatten": ("host", "host"), "fc": ("host", "host")}
    assert layers["conv2"]["why"] == "winograd cannot map it: not supported by winograd: conv2 (kernel 3x3, stride 2)"
    assert "not supported by winograd: fc" in layers["fc"]["why"] and layers["fc"]["host_ops"] == 2 * 512 * 10
    assert "engine winograd: 2 layers (winograd 2)" in capsys.readouterr().out


@pytest.mark.verilator
@pytest.mark.parametrize("params", [{}, pytest.param({"channels": "1", "requant_pipeline": "fast"}, marks=pytest.mark.slow)],
                         ids=["default", "fast-requant"])
def test_unstalled_cycles_match_the_cycle_model(params):
    """One input beat per cycle: measured cycles = beats + latency + harness start, within 2;
    the latency follows the requantizer's pipeline (8 + 5, or 8 + 8 with "fast")."""
    import numpy as np
    from cosim.testbenches.winograd import RANDOM_LAYERS, random_layer, run

    design = generate("winograd", params)
    assert design.config.latency == 8 + design.config.requant.latency == (16 if params else 13)
    ls = random_layer(design.config, RANDOM_LAYERS[1], np.random.default_rng(0), images=2)
    r = run(design, ls, idle=0.0, stall=0.0)
    assert r.passed, (r.summary(), r.first_mismatch)
    assert abs(r.cycles - r.extra["model_cycles"]) <= 2, (r.cycles, r.extra["model_cycles"])
    assert ls.n_beats / r.cycles > 0.99
