"""The main job end to end: whole nets through the engines, chained, and its ability to fail."""

import json

import numpy as np
import pytest

import flows.network as fn
import flows.verify as fv
from flows.cli import main
from golden.nets import digits
from rtl.export import generate
from tests.conftest import mutate


@pytest.mark.verilator
@pytest.mark.slow
def test_auto_runs_every_variant_end_to_end_on_several_engines(tmp_path, capsys):
    out = tmp_path / "v"
    assert main(["verify", "--images", "4", "-o", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["passed"] and res["totals"]["mismatches"] == 0 and res["schema"] == "nnaccel-verify/2"
    assert [r["variant"] for r in res["runs"]] == ["int8", "sparse", "ternary"]
    for run in res["runs"]:
        assert run["images_equal"] == run["images"] == 4 and run["passed"]
        engine_layers = [l for l in run["layers"] if l["engine"] != "host"]
        assert [l["layer"] for l in engine_layers] == ["conv1", "conv2", "conv3", "fc"]
        assert all(l["passed"] and l["outputs"] == np.prod(l["output_shape"]) for l in engine_layers)
    used = {l["engine"] for r in res["runs"] for l in r["layers"]}
    assert {"phantom", "winograd", "host"} <= used, used
    for layer in res["runs"][2]["layers"][:3]:  # ternary: the rule's pick is fat, the models decide
        assert layer["why"].startswith("ternary weights") and set(layer["model_cycles_per_image"]) >= {"fat"}
        if layer["engine"] != "fat":
            assert "model is faster" in layer["why"], layer["why"]
    t = res["totals"]
    layers = [l for r in res["runs"] for l in r["layers"] if l["engine"] != "host"]
    assert t["cycles"] == sum(l["cycles"] for l in layers) > 0
    for l in layers:  # the engines' models agree with their RTL
        assert abs(l["model_cycles"] - l["cycles"]) <= max(16 * l["batches"], 0.02 * l["cycles"]), l
    for name in ("report.md", "layers.png", "engines.png"):
        assert (out / name).stat().st_size > 500
    assert (out / "report.md").read_text().startswith("# nnaccel verify: PASS")
    assert len(sorted((out / "vectors").glob("int8_*.npz"))) == 4
    assert "PASS:" in capsys.readouterr().out


@pytest.mark.verilator
@pytest.mark.slow
def test_energy_objective_puts_every_engine_to_work(tmp_path, capsys):
    """By cycles FAT never wins a demo layer; by energy its ternary layers go to it, the
    dense 3x3 ones to Winograd and the rest to Phantom: every engine in one run."""
    out = tmp_path / "v"
    assert main(["verify", "--images", "2", "--objective", "energy", "-o", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["passed"] and res["objective"] == "energy"
    layers = [l for r in res["runs"] for l in r["layers"] if l["engine"] != "host"]
    assert {l["engine"] for l in layers} == {"fat", "phantom", "winograd"}
    for l in layers:  # the engine run is the one whose model predicts the least energy per image
        rated = {k: v for k, v in l["model_energy_pj_per_image"].items() if v is not None}
        assert l["engine"] == min(rated, key=rated.get), l["why"]
        assert l["energy"]["total"] == pytest.approx(sum(v for k, v in l["energy"].items() if k != "total"))
    ternary = [l for l in res["runs"][2]["layers"] if l["kind"] == "conv"]
    assert [l["engine"] for l in ternary] == ["fat"] * 3
    per = res["totals"]["per_engine"]
    assert sum(e["energy_pj"] for e in per.values()) == pytest.approx(sum(l["energy"]["total"] for l in layers))
    assert "decide by energy" in (out / "report.md").read_text()


@pytest.mark.verilator
@pytest.mark.slow
def test_a_broken_design_breaks_the_chain_at_its_layer(tmp_path, capsys):
    bad = tmp_path / "requant.v"
    bad.write_text(mutate(generate("requant").verilog, r"assign \\\$26  = \\\$22  > \\\$25 ;",
                          r"assign \\$26  = \\$22  >= \\$25 ;"))
    out = tmp_path / "v"
    argv = ["verify", "--engine", "requant", "--variant", "int8", "--images", "4", "--verilog", f"requant={bad}",
            "-o", str(out)]
    assert main(argv) == 1
    res = json.loads((out / "results.json").read_text())
    run = res["runs"][0]
    assert not res["passed"] and run["diverged"]["layer"] == "conv1" and run["diverged"]["engine"] == "requant"
    assert run["output"] is None and [l["layer"] for l in run["layers"]] == ["conv1"]  # the chain stopped there
    report = (out / "report.md").read_text()
    assert report.startswith("# nnaccel verify: FAIL") and "diverged at layer conv1 (requant)" in report


def test_rule_and_models_choose_the_engine(monkeypatch):
    net = digits.build("ternary")
    vec = next(digits.layer_vectors(net, 1))
    assert fn.rule(vec) == ("fat", "ternary weights")
    designs = {"fat": generate("fat"), "winograd": generate("winograd")}
    choice = fn.choose(vec, designs)
    assert set(choice.model_cycles) == {"fat", "winograd"} and all(choice.model_cycles.values())
    fastest = min(choice.model_cycles, key=choice.model_cycles.get)
    assert choice.label == fastest  # the models decide
    assert ("faster" in choice.reason) == (fastest != "fat")
    int8 = next(digits.layer_vectors(digits.build("int8"), 1))
    assert fn.rule(int8)[0] == "winograd"
    only = fn.choose(int8.renamed("x"), {"fat": designs["fat"]})
    assert only.label == "host" and "{-1, 0, +1}" in only.reason


def test_energy_objective_chooses_by_the_energy_tables():
    vec = next(digits.layer_vectors(digits.build("ternary"), 1))
    designs = {"fat": generate("fat"), "phantom": generate("phantom"), "winograd": generate("winograd")}
    by_cycles, by_energy = fn.choose(vec, designs), fn.choose(vec, designs, objective="energy")
    assert by_cycles.model_energy == by_energy.model_energy and all(by_energy.model_energy.values())
    assert by_energy.label == min(by_energy.model_energy, key=by_energy.model_energy.get) == "fat"
    assert by_cycles.label != "fat" and "faster" in by_cycles.reason  # FAT is slower and thriftier
    with pytest.raises(ValueError, match="objective"):
        fn.choose(vec, designs, objective="area")


def test_interrupted_verify_leaves_no_output(tmp_path, monkeypatch, capsys):
    def explode(*a, **k):
        raise RuntimeError("simulator crashed")

    monkeypatch.setattr(fn, "run_layer", explode)
    out = tmp_path / "v"
    with pytest.raises(RuntimeError):
        fv.verify(variants=["int8"], n_images=2, out_dir=out, engine="requant")
    assert not out.exists() and not list(tmp_path.iterdir()), "half-written output left behind"


@pytest.mark.parametrize("argv, needle", [
    (["verify", "--model", "m.onnx"], "--model and --data go together"),
    (["verify", "--verilog", "nosuch=x.v", "--engine", "requant"], "no design 'nosuch' in this run"),
    (["verify", "--verilog", "requant", "--engine", "requant"], "--verilog takes KEY=VALUE"),
])
def test_bad_verify_input(tmp_path, capsys, argv, needle):
    assert main(argv + ["-o", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


@pytest.mark.verilator
@pytest.mark.slow
def test_an_imported_qdq_model_runs_end_to_end(tmp_path, capsys):
    """Depthwise + pointwise, a residual Add, MaxPool, GlobalAveragePool and Gemm, quantized by
    onnxruntime: engine layers on the engines, the rest on the host, bit-exact end to end."""
    from tests.models import convnet

    (tmp_path / "m").mkdir()
    paths = convnet.build(tmp_path / "m")
    out = tmp_path / "v"
    assert main(["verify", "--model", str(paths["qdq"]), "--data", str(paths["data"]), "--images", "8",
                 "-o", str(out)]) == 0
    run = json.loads((out / "results.json").read_text())["runs"][0]
    assert run["passed"] and run["images_equal"] == 8
    kinds = {l["kind"]: l["engine"] for l in run["layers"]}
    assert kinds["depthwise"] == "phantom" and kinds["Add"] == kinds["MaxPool"] == "host"
    assert kinds["GlobalAveragePool"] == "host" and kinds["linear"] != "host"
    assert sorted(p.name for p in (out / "vectors").iterdir())[0].startswith("00_")


def _part(n_images, rows, out=None, diverged=None):
    return {"layers": rows, "output": out, "passed": diverged is None, "diverged": diverged}


def _row(name, images, cycles, passed=True, first=None, status=None):
    return {"layer": name, "engine": "phantom", "input_shape": [images, 4], "output_shape": [images, 2],
            "cycles": cycles, "model_cycles": cycles, "outputs": 2 * images, "vectors": images, "mismatches":
            0 if passed else 1, "macs": 8 * images, "useful_macs": 4 * images, "batches": 1, "wall_s": 0.5,
            "activation_density": 0.5 if images == 2 else 1.0, "stats": {"adds": cycles}, "energy": None,
            "passed": passed, "status": status or ("PASS" if passed else "FAIL"), "first_mismatch": first,
            "build_reused": True, "error": None, "log": None}


def test_merge_runs_sums_batches_and_breaks_where_the_earliest_batch_broke():
    a = _part(2, [_row("l0", 2, 10), _row("l1", 2, 20)], out=np.zeros((2, 2)))
    b = _part(3, [_row("l0", 3, 15), _row("l1", 3, 30)], out=np.ones((3, 2)))
    m = fn.merge_runs([a, b])
    assert m["passed"] and m["output"].tolist() == [[0, 0]] * 2 + [[1, 1]] * 3
    l0 = m["layers"][0]
    assert l0["cycles"] == 25 and l0["outputs"] == 10 and l0["input_shape"] == [5, 4] and l0["stats"] == {"adds": 25}
    assert l0["activation_density"] == pytest.approx((0.5 * 2 + 1.0 * 3) / 5)
    # the second batch breaks at l0: the merged chain stops there, the mismatch index shifted by a's outputs
    bad = {"index": 1, "expected": 5, "got": 6}
    c = _part(3, [_row("l0", 3, 15, passed=False, first=bad)], diverged={"layer": "l0", "engine": "phantom", **bad})
    m = fn.merge_runs([a, c])
    assert not m["passed"] and m["output"] is None and [l["layer"] for l in m["layers"]] == ["l0"]
    assert m["layers"][0]["first_mismatch"]["index"] == 4 + 1 and m["diverged"]["index"] == 5
    assert m["layers"][0]["status"] == "FAIL" and m["layers"][0]["mismatches"] == 1
    assert fn.split(5, 2) == [(0, 2), (2, 5)] and fn.split(1, 4) == [(0, 1)]


@pytest.mark.verilator
@pytest.mark.slow
def test_verify_on_workers_equals_the_serial_run(tmp_path):
    """`--workers 2`: image batches on a local Dask cluster; the engines chosen, the
    checks and the final outputs are the serial run's, the cycles the batches' sum."""
    runs = {}
    for w in ("0", "2"):
        out = tmp_path / f"w{w}"
        assert main(["verify", "--variant", "sparse", "--images", "6", "--workers", w, "-o", str(out)]) == 0
        runs[w] = json.loads((out / "results.json").read_text())["runs"][0]
    serial, par = runs["0"], runs["2"]
    assert par["batches"] == [[0, 3], [3, 6]] and "local Dask cluster" in par["executor"]
    assert par["images_equal"] == serial["images_equal"] == 6 and par["passed"]
    for s, p in zip(serial["layers"], par["layers"], strict=True):
        assert (s["layer"], s["engine"], s["why"]) == (p["layer"], p["engine"], p["why"])
        assert s.get("outputs") == p.get("outputs") and s.get("macs") == p.get("macs")
        if s["engine"] != "host":
            assert p["mismatches"] == 0 and abs(p["cycles"] - s["cycles"]) <= 0.05 * s["cycles"] + 64


@pytest.mark.verilator
@pytest.mark.slow
def test_a_named_engine_leaves_what_it_cannot_map_to_the_host(tmp_path):
    """`--engine winograd` on the int8 net: conv2 (stride 2) and fc (linear) run on the
    host, and the report says why."""
    out = tmp_path / "v"
    assert main(["verify", "--engine", "winograd", "--variant", "int8", "--images", "2", "-o", str(out)]) == 0
    run = json.loads((out / "results.json").read_text())["runs"][0]
    by = {l["layer"]: l for l in run["layers"]}
    assert by["conv1"]["engine"] == by["conv3"]["engine"] == "winograd" and by["conv1"]["cycles"] > 0
    for name, why in (("conv2", "stride 2"), ("fc", "winograd")):
        assert by[name]["engine"] == "host" and by[name]["cycles"] == 0 and by[name]["host_ops"] > 0
        assert by[name]["why"].startswith("winograd cannot map it") and why in by[name]["why"], by[name]["why"]
    assert run["passed"] and run["images_equal"] == 2
    assert "winograd cannot map it" in (out / "report.md").read_text()
