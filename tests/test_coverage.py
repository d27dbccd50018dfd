"""`nnaccel cosim --coverage`: Verilator line and toggle coverage of an engine's RTL.

The figures are proved able to be low: a cut-down stimulus leaves lines uncovered and
fewer bits toggled than the suite does, and more vectors toggle more bits.
"""

import json

import numpy as np
import pytest

from cosim import coverage, runner
from cosim.stream import run_stream
from cosim.testbenches import requant as requant_tb
from flows.cli import main


def _key(**f) -> str:
    return "".join(f"\x01{k}\x02{v}" for k, v in f.items())


def _point(file, line, page, comment, lines="", hier="nnaccel_harness.dut"):
    f = {"f": f"/b/src/{file}", "l": line, "n": 3, "t": page.split("_")[1], "page": page, "o": comment}
    if lines:
        f["S"] = lines
    f["h"] = hier
    return _key(**f)


def test_merge_sums_runs_and_summary_splits_engine_from_harness(tmp_path):
    verilog = "\n".join([
        "module eng(clk);",                                                   # 1
        "  (* src = \"/x/rtl/eng.py:12\" *)",                                 # 2
        "  reg [1:0] q = 2'h0;",                                              # 3
        "  always @* begin",                                                  # 4
        "    if (\\$auto$verilog_backend.cc:2355:dump_module$1 ) begin end",  # 5
        "    if (q[0]) begin",                                                # 6
        "      \\$2 = q;",                                                    # 7
        "    end",                                                            # 8
        "  end",                                                              # 9
        "endmodule"])
    run1 = {_point("eng.v", 6, "v_branch/eng", "if", "6-7"): 0,
            _point("eng.v", 6, "v_branch/eng", "else"): 5,
            _point("eng.v", 5, "v_branch/eng", "if", "5"): 0,  # Yosys's trigger: excluded
            _point("eng.v", 3, "v_toggle/eng", "q[0]:0->1"): 1,
            _point("eng.v", 3, "v_toggle/eng", "q[0]:1->0"): 0,
            _point("eng.v", 3, "v_toggle/eng", "q[1]:0->1"): 0,
            _point("eng.v", 3, "v_toggle/eng", "q[1]:1->0"): 0,
            _point("nnaccel_harness.v", 40, "v_line/nnaccel_harness", "block", "40", "nnaccel_harness"): 0}
    run2 = dict(run1)
    run2[_point("eng.v", 3, "v_toggle/eng", "q[0]:1->0")] = 2
    for name, pts in (("a.dat", run1), ("b.dat", run2)):
        (tmp_path / name).write_text(coverage.dat_text(pts))
    merged = coverage.merge([tmp_path / "a.dat", tmp_path / "b.dat"])
    assert merged[_point("eng.v", 6, "v_branch/eng", "else")] == 10
    assert coverage.read_dat(tmp_path / "a.dat") == run1  # the written format reads back
    s = coverage.summarize(merged, "eng.v", verilog)
    assert s["modules"]["eng"]["part"] == "engine" and s["modules"]["nnaccel_harness"]["part"] == "harness"
    assert s["engine"]["line"] == {"covered": 1, "total": 2, "ratio": 0.5}
    assert s["engine"]["toggle"] == {"covered": 2, "total": 4, "ratio": 0.5}
    assert s["harness"]["line"]["total"] == 1 and s["excluded"]["points"] == 1
    [miss] = s["uncovered_lines"]
    assert (miss["line"], miss["kind"], miss["text"]) == (6, "branch:if", "if (q[0]) begin")
    [tog] = s["uncovered_toggles"]
    assert (tog["signal"], tog["constant_bits"], tog["src"]) == ("q", "1", "rtl/eng.py:12")


def test_structurally_constant_bits_leave_the_toggle_figure():
    verilog = "\n".join([
        "module eng(clk, a, y);",
        "  input clk; input [1:0] a; output [3:0] y;",
        "  wire [3:0] \\$1 ;",
        "  reg [2:0] r = 3'h0;",
        "  assign \\$1 = { 2'h0, a };",        # bits 3:2 are literal padding
        "  always @(posedge clk) r <= { 1'h0, a };",  # r[2] never leaves its reset value
        "  assign y = \\$1 ;",
        "endmodule", ""])
    constants = coverage.structural_constants(verilog)
    assert constants[("eng", "$1")] == {2, 3} and constants[("eng", "y")] == {2, 3}
    assert constants[("eng", "r")] == {2}
    assert ("eng", "a") not in constants  # an input can toggle: not reported
    pts = {_point("eng.v", 3, "v_toggle/eng", f"\\$1[{b}]:{d}"): int(b < 2)
           for b in range(4) for d in ("0->1", "1->0")}
    s = coverage.summarize(pts, "eng.v", verilog, constants)
    assert s["engine"]["toggle"] == {"covered": 4, "total": 4, "ratio": 1.0}
    assert s["engine_raw"]["toggle"]["ratio"] == 0.5 and s["structural_constants"]["points"] == 4
    assert coverage.summarize(pts, "eng.v", verilog)["engine"]["toggle"]["ratio"] == 0.5  # without: counted


def test_coverage_refused_on_icarus_in_one_line(tmp_path, capsys):
    assert main(["cosim", "requant", "--coverage", "--sim", "icarus", "-o", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--coverage needs --sim verilator" in err, err
    assert main(["cosim", "requant", "-o", str(tmp_path / "c")]) == 2  # a folder without --coverage
    assert "give --coverage too" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
    with runner.coverage(tmp_path / "d"), pytest.raises(runner.CosimError, match="coverage needs Verilator"):
        runner.build({"t.v": "module t; endmodule\n"}, "t", "icarus")


def _cli_coverage(out, vectors: int) -> dict:
    assert main(["cosim", "requant", "--coverage", "--vectors", str(vectors), "-o", str(out)]) == 0
    return json.loads((out / "coverage-requant.json").read_text())


@pytest.mark.verilator
@pytest.mark.xdist_group("sims")
def test_requant_coverage_figures_and_misses(tmp_path, capsys, requant_design):
    doc = _cli_coverage(tmp_path / "v0", 0)
    out = capsys.readouterr().out
    assert out.index("PASS: requant") < out.index("coverage of requant")  # after the verdict
    for name in ("json", "md", "dat", "v"):
        assert (tmp_path / "v0" / f"coverage-requant.{name}").is_file()
    mods = doc["modules"]
    assert mods["requant"]["part"] == "engine" and mods["nnaccel_harness"]["part"] == "harness"
    for kind in ("line", "toggle"):
        fig = doc["engine"][kind]
        assert fig == mods["requant"][kind]  # the engine's own logic only: the harness left out
        assert 0 < fig["ratio"] <= 1 and fig["total"] > 0
    assert doc["engine"]["toggle"]["ratio"] < 1  # dead high bits of wide intermediates
    assert all(t["module"] == "requant" for t in doc["uncovered_toggles"])
    assert any(t.get("src", "").startswith("rtl/requant/") for t in doc["uncovered_toggles"])

    # A cut-down stimulus on the same build (8 random vectors, no back-pressure): lines go
    # uncovered; more random vectors toggle more bits; the suite more than either.
    text = (tmp_path / "v0" / "coverage-requant.v").read_text()
    few, many = (_stream_coverage(tmp_path / f"n{n}", requant_design, text, n) for n in (8, 2000))
    assert few["uncovered_lines"], "8 vectors without back-pressure left no line uncovered"
    assert all(u["text"] and u["module"] == "requant" for u in few["uncovered_lines"])
    assert few["engine"]["line"]["ratio"] < doc["engine"]["line"]["ratio"]
    assert few["engine"]["toggle"]["covered"] < many["engine"]["toggle"]["covered"] \
        <= doc["engine"]["toggle"]["covered"]


def _stream_coverage(out, design, text: str, n: int) -> dict:
    sc = requant_tb.SCENARIOS[0]
    vec = requant_tb.random_vectors(np.random.default_rng(3), n)
    with runner.coverage(out) as sink:
        r = run_stream(design, vec, sc.statics(), requant_tb.expected(vec, sc), verilog=text,
                       depth_log2=requant_tb.DEPTH_LOG2)
    assert r.passed and r.build_reused and len(sink.files) == 1
    return coverage.summarize(coverage.merge(sink.files), "requant.v", text)


def test_fat_value_range_rules():
    """cosim.fat_toggles: each rule counts out the bits its bound names and keeps the bit below."""
    from cosim.fat_toggles import out_of_range
    from rtl.fat.config import FatConfig
    cfg = FatConfig()

    def why(signal, bit, d="0->1", width=16, driver="", text="", module="fat"):
        return out_of_range({"module": module, "signal": signal, "bit": bit, "dir": d, "width": width,
                             "driver": driver, "text": text, "fine_constant": False}, cfg)
    assert why("i__payload.addr", 10) == "command field" and why("i__payload.addr", 9) is None
    assert why("i__payload", 2) == "command field" and why("i__payload", 1) is None  # op bit 2: 4 opcodes
    assert why("i__payload.cnt", 5, width=8) == "command field" and why("i__payload.cnt", 4, width=8) is None
    assert why("rd_cols", 6) == "column count" and why("rd_cols", 5) is None
    assert why("$9", 5, width=6, driver="assign \\$9 = \\bit + 1'h1;") == "bit counter"
    errors = 'count("errors", sum(bad[k] for k in range(W)))'
    assert why("$1", 5, width=17, driver="assign \\$1 = \\$2 + \\$3;", text=errors) == "error sum"
    assert why("$1", 4, width=17, driver="assign \\$1 = \\$2 + \\$3;", text=errors) is None  # 16 invalid codes
    # errors counts at most W = 16 per command: within the 2**20 commands of a harness run bit 23
    # can fall (2**24 counts), bit 24 cannot
    assert why("stat_errors", 23, "1->0", width=32) is None and why("stat_errors", 24, "1->0", width=32)
    assert why("stat_zero_ops", 0, width=32) == "SACU invariant"  # fat mode issues no zero weight
    assert why("act_min", 3, "1->0", width=8) == "static" and why("act_min", 3, "0->1", width=8) is None
    assert why("rest", 0) == "SACU invariant" and why("rest", 1) is None


def test_percent_rounds_once_from_the_counts():
    """866/1004 is 86.25498...%: 86.3%, where formatting the JSON's rounded ratio (0.8625) gave 86.2%."""
    fig = {"covered": 866, "total": 1004, "ratio": coverage._ratio(866, 1004)}
    assert fig["ratio"] == 0.8625 and coverage.percent(fig) == "86.3% (866/1004)"
    assert coverage.percent({"covered": 0, "total": 0, "ratio": None}) == "n/a (0 points)"
