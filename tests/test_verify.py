"""The main job end to end, and its ability to fail."""

import json

import numpy as np
import pytest

import flows.verify as fv
from flows.cli import main
from golden.errors import NotMapped
from golden.layer import layer_vectors_from
from rtl.export import generate
from tests.conftest import mutate


@pytest.mark.verilator
@pytest.mark.slow
def test_verify_passes_and_writes_report(tmp_path, capsys):
    out = tmp_path / "v"
    assert main(["verify", "--variant", "int8", "--variant", "ternary", "--images", "4", "-o", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["passed"] and res["totals"]["mismatches"] == 0
    assert {l["variant"] for l in res["layers"]} == {"int8", "ternary"}
    assert all(l["outputs"] == l["vectors"] > 0 for l in res["layers"])
    assert (out / "accuracy.png").stat().st_size > 1000 and (out / "layers.png").stat().st_size > 1000
    assert (out / "report.md").read_text().startswith("# nnaccel verify: PASS")
    import numpy as np
    npz = sorted((out / "vectors").glob("int8_*.npz"))
    assert len(npz) == 4
    with np.load(npz[0]) as f:
        assert {"x", "w", "bias", "mult", "shift", "acc", "y", "input_zero_point"} <= set(f.files)
    assert "PASS:" in capsys.readouterr().out


@pytest.mark.verilator
@pytest.mark.slow
def test_verify_fails_on_a_broken_requantizer(tmp_path, monkeypatch, capsys):
    def broken(engine, params=None, config=None):
        d = generate(engine, params)
        d.verilog = mutate(d.verilog, r"assign \\\$26  = \\\$22  > \\\$25 ;", r"assign \\$26  = \\$22  >= \\$25 ;")
        return d
    monkeypatch.setattr(fv, "generate", broken)
    out = tmp_path / "v"
    assert main(["verify", "--variant", "int8", "--images", "4", "-o", str(out)]) == 1
    res = json.loads((out / "results.json").read_text())
    assert not res["passed"] and res["totals"]["mismatches"] > 0
    assert "FAIL" in (out / "report.md").read_text().splitlines()[0]


def test_interrupted_verify_leaves_no_output(tmp_path, monkeypatch, capsys):
    class FakeNet:
        accuracy, sparsity, train_seconds = 99.0, 0.0, 0.0
        layers = [object()]

    class FakeModule:
        VARIANTS = ("int8",)

        @staticmethod
        def build(v, seed, cache_dir):
            return FakeNet()

        @staticmethod
        def export_vectors(net, directory, n):
            return []

        @staticmethod
        def layer_vectors(net, n):
            yield layer_vectors_from(name="conv1", kind="conv", x=np.zeros((1, 2, 2, 2)), w=np.ones((2, 2, 1, 1)),
                                     bias=[0, 0], input_zero_point=0, real_multipliers=[0.01, 0.01],
                                     output_zero_point=0)

    def explode(*a, **k):
        raise RuntimeError("simulator crashed")

    monkeypatch.setattr(fv, "_load_net", lambda net: FakeModule)
    monkeypatch.setattr(fv, "run_layer", explode)
    out = tmp_path / "v"
    with pytest.raises(RuntimeError):
        fv.verify(out_dir=out)
    assert not out.exists() and not list(tmp_path.iterdir()), "half-written output left behind"


def test_not_mapped_layers_are_reported_not_failed(tmp_path, monkeypatch, capsys):
    def picky(design, vec, **kw):
        raise NotMapped(f"{vec.name}: kernel not supported")

    monkeypatch.setattr(fv, "run_layer", picky)
    out = tmp_path / "v"
    assert fv.verify(variants=["int8"], n_images=2, out_dir=out) == 1  # nothing mapped: no PASS
    res = json.loads((out / "results.json").read_text())
    assert {l["status"] for l in res["layers"]} == {"not mapped"}
    assert "not mapped: conv1: kernel not supported" in (out / "report.md").read_text()
