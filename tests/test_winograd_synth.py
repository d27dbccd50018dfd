"""`nnaccel synth`: one fast smoke test (generic target, the small requantizer, its
post-synthesis netlist co-simulated gate by gate) in the default run; the figures for
the engines come from the command (README)."""

import json
from pathlib import Path

import pytest

from flows.cli import main
from flows.synth import check_netlist, synth, yosys_script
from rtl.export import generate


@pytest.mark.verilator
def test_synth_generic_smoke_and_its_netlist_passes_the_cosimulation(tmp_path, capsys):
    assert main(["synth", "requant", "--target", "generic", "--check", "-o", str(tmp_path)]) == 0
    r = json.loads((tmp_path / "requant-generic.json").read_text())
    assert r["target"] == "generic" and r["multipliers"] == 1  # the one 32 x 32 multiply
    assert r["luts"] > 1000 and r["ffs"] > 100 and r["fmax_mhz"] is None
    netlist = Path(r["netlist"])
    assert netlist.read_text().count(">> {") > 1000  # LUTs, not the RTL's operators
    c = r["netlist_check"]
    assert c["passed"] and c["mismatches"] == 0 and c["outputs"] == c["vectors"] > 3000
    out = capsys.readouterr().out
    assert "LUTs" in out and "netlist check (verilator): PASS" in out

    # the check can fail: one output bit of the netlist stuck at 0
    text = netlist.read_text()
    bad = tmp_path / "stuck.v"
    bad.write_text(text.replace("else if (i__ready) o__payload[0] <= ", "else if (i__ready) o__payload[0] <= 1'h0 & ", 1))
    assert bad.read_text() != text
    c = check_netlist(generate("requant"), bad)
    assert not c["passed"] and c["mismatches"] > 0 and c["failed"]["first_mismatch"]


def test_check_needs_the_generic_netlist(tmp_path, capsys):
    assert main(["synth", "requant", "--target", "ecp5", "--check", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnaccel: error:") and "--target generic" in err and err.count("\n") == 1


def test_synth_scripts_per_target():
    assert "synth_ecp5 -top winograd -json netlist.json" in yosys_script("winograd", "ecp5")
    assert "synth_ice40 -top winograd -dsp" in yosys_script("winograd", "ice40")
    assert "stat -json" in yosys_script("winograd", "generic")
    assert all("write_verilog -noattr netlist.v" in yosys_script("winograd", t) for t in ("ecp5", "ice40", "generic"))


@pytest.mark.slow
def test_ecp5_with_share_fast_maps_the_same_design(tmp_path):
    """The two-part synth_ecp5 script (its coarse step with `share -fast`, used where the
    full share pass traps) is a working flow: the requantizer still gets its 4 DSPs."""
    script = yosys_script("requant", "ecp5", share="fast")
    assert "share -fast" in script and script.count("synth_ecp5") == 2
    r = synth("requant", target="ecp5", place=False, out_dir=tmp_path, share="fast")
    assert r["share"] == "fast" and r["dsps"] == 4 and r["luts"] > 100
    with pytest.raises(ValueError, match="ecp5"):
        yosys_script("requant", "ice40", share="fast")


def test_synth_bad_target_is_one_line(capsys):
    assert main(["synth", "winograd", "--target", "virtex"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnaccel: error:") and err.count("\n") == 1
