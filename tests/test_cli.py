"""Command-line behaviour: outputs, one-line errors, exit codes."""

import json
import subprocess
import sys

import pytest

from flows.cli import main


def one_line_error(capsys, code, expected_code, needle):
    err = capsys.readouterr().err.strip()
    assert code == expected_code, f"exit {code}, expected {expected_code}; stderr: {err}"
    assert len(err.splitlines()) == 1, f"expected one line on stderr, got: {err!r}"
    assert "Traceback" not in err and needle in err, err


def test_verilog_writes_design_json_and_core(tmp_path):
    assert main(["verilog", "requant", "--param", "out_bits=8", "-o", str(tmp_path)]) == 0
    v = (tmp_path / "requant.v").read_text()
    meta = json.loads((tmp_path / "requant.json").read_text())
    core = (tmp_path / "requant.core").read_text()
    assert "module requant(" in v
    assert meta["latency"] == 5 and meta["params"]["out_bits"] == 8
    ports = {p["name"]: p for p in meta["ports"]}
    assert ports["i__payload"]["width"] == 70 and ports["i__payload"]["direction"] == "in"
    assert ports["o__payload"]["signed"] and ports["o__payload"]["direction"] == "out"
    assert core.startswith("CAPI=2:") and "requant.v" in core
    assert not list(tmp_path.glob(".*tmp*")), "temporary files left behind"


def test_verilog_out_bits_changes_the_port(tmp_path):
    assert main(["verilog", "requant", "--param", "out_bits=4", "-o", str(tmp_path)]) == 0
    ports = {p["name"]: p for p in json.loads((tmp_path / "requant.json").read_text())["ports"]}
    assert ports["o__payload"]["width"] == 4


@pytest.mark.parametrize("argv, code, needle", [
    (["verilog", "nosuch"], 2, "nnaccel: error: verilog: argument engine: invalid choice: 'nosuch' (choose from 'requant', 'fat'"),
    (["verilog", "requant", "--param", "bogus=1"], 2, "unknown parameter 'bogus'"),
    (["verilog", "requant", "--param", "out_bits=eight"], 2, "must be int"),
    (["verilog", "requant", "--param", "out_bits"], 2, "KEY=VALUE"),
    (["verilog", "requant", "--param", "acc_bits=16"], 2, "acc_bits must be 32"),
    (["cosim", "requant", "--sim", "modelsim"], 2, "invalid choice"),
    (["cosim", "requant", "--vectors", "-5"], 2, "argument --vectors: must be a whole number >= 0"),
    (["cosim", "requant", "--verilog", "/nonexistent/x.v"], 2, "no such file"),
    (["cosim", "nosuch"], 2, "invalid choice: 'nosuch'"),
    (["verify", "--engine", "nosuch"], 2, "invalid choice: 'nosuch'"),
    (["bench", "nosuch"], 2, "invalid choice: 'nosuch'"),
    (["verify", "--images", "0"], 2, "--images must be between 1 and 360"),
    (["frobnicate"], 2, "nnaccel: error: argument command: invalid choice"),
])
def test_bad_input_is_one_line_and_nonzero(capsys, argv, code, needle):
    one_line_error(capsys, main(argv), code, needle)


def test_verilog_file_without_the_module(tmp_path, capsys):
    p = tmp_path / "other.v"
    p.write_text("module other(input a); endmodule\n")
    one_line_error(capsys, main(["cosim", "requant", "--verilog", str(p)]), 2, "defines no module named 'requant'")


def test_console_script_error_has_no_traceback():
    r = subprocess.run([sys.executable, "-m", "flows.cli", "verilog", "nosuch"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_doctor_reports_every_tool(capsys):
    code = main(["doctor"])
    out = capsys.readouterr().out
    for tool in ("python", "amaranth", "yosys", "cocotb", "verilator", "icarus", "ngspice", "torch", "scikit-learn"):
        assert any(line.startswith(tool) for line in out.splitlines()), f"{tool} missing from doctor"
    assert code == 0, out  # CI installs every tool


def test_doctor_fails_when_a_tool_is_missing(monkeypatch, capsys):
    import flows.doctor as d
    monkeypatch.setattr(d, "_cmd_version", lambda cmd, pattern: None)
    assert d.doctor() == 1
    out = capsys.readouterr().out
    assert "icarus" in out and "MISSING" in out and "apt-get install iverilog" in out
