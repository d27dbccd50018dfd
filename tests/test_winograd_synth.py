"""`nnaccel synth`: one fast smoke test (generic target, the small requantizer) in the
default run; the figures for the Winograd engine come from the command (README)."""

import json

from flows.cli import main
from flows.synth import yosys_script


def test_synth_generic_smoke(tmp_path, capsys):
    assert main(["synth", "requant", "--target", "generic", "-o", str(tmp_path)]) == 0
    r = json.loads((tmp_path / "requant-generic.json").read_text())
    assert r["target"] == "generic" and r["multipliers"] == 1  # the one 32 x 32 multiply
    assert r["luts"] > 1000 and r["ffs"] > 100 and r["fmax_mhz"] is None
    assert "LUTs" in capsys.readouterr().out


def test_synth_scripts_per_target():
    assert "synth_ecp5 -top winograd -json netlist.json" in yosys_script("winograd", "ecp5")
    assert "synth_ice40 -top winograd -dsp" in yosys_script("winograd", "ice40")
    assert "stat -json" in yosys_script("winograd", "generic")


def test_synth_bad_target_is_one_line(capsys):
    assert main(["synth", "winograd", "--target", "virtex"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnaccel: error:") and err.count("\n") == 1
