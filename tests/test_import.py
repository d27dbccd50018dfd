"""`nnaccel import`: the integer graph's nodes, the ONNX importers (QDQ, QOperator), the
command and its bad inputs. Models are built here (scikit-learn's digits), nothing is downloaded."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from flows.cli import main  # noqa: E402
from golden.graph import Add, AveragePool, EngineNode, GlobalAveragePool, MaxPool, Reshape, add_params, run  # noqa: E402
from golden.importers import UnsupportedModel, import_model, run_source  # noqa: E402
from golden.layer import Kind, LayerVectors  # noqa: E402
from tests.models import convnet  # noqa: E402
from tests.models.command import run_import  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    logging.getLogger().setLevel(logging.ERROR)  # quantize_static's advice to pre-process
    return convnet.build(tmp_path_factory.mktemp("convnet"))


@pytest.fixture(scope="module")
def data(models):
    d = np.load(models["data"])
    return d["x"], d["y"]


# --- graph nodes ------------------------------------------------------------------------
def test_add_is_tflite_integer_add():
    """Within one LSB of the float sum, exact on a hand-checked case, clamped."""
    s1, s2, so = 0.05, 0.02, 0.06
    p = add_params(s1, s2, so)
    node = Add("add", ("a", "b"), "y", 3, -5, 1, **p)
    a = torch.arange(-128, 128).repeat(4)
    b = torch.flip(a, (0,))
    y = node.compute(a, b).numpy()
    real = (s1 * (a.numpy() - 3) + s2 * (b.numpy() + 5)) / so + 1
    assert np.abs(y - np.clip(np.round(real), -128, 127)).max() <= 1
    assert int(node.compute(torch.tensor([13]), torch.tensor([-5]))[0]) == 1 + round(0.5 / 0.06)  # 9.33 -> 9
    relu = Add("add", ("a", "b"), "y", 3, -5, 1, **p, act_min=1)
    assert int(relu.compute(torch.tensor([-100]), torch.tensor([-100]))[0]) == 1


def test_average_pool_rounds_half_away_from_zero():
    x = torch.tensor([[[[1, 2], [0, 0]], [[-1, -2], [0, 0]], [[2, 2], [1, 1]]]])  # sums 3, -3, 6 over 4
    pool = AveragePool("ap", "x", "y", (2, 2), 2)
    assert pool.compute(x).flatten().tolist() == [1, -1, 2]  # 0.75 -> 1, -0.75 -> -1, 1.5 -> 2
    gap = GlobalAveragePool("gap", "x", "y")
    assert gap.compute(torch.tensor([[[[1, 1], [0, 0]]]])).flatten().tolist() == [1]  # 0.5 -> 1
    assert gap.compute(torch.tensor([[[[-1, -1], [0, 0]]]])).flatten().tolist() == [-1]  # -0.5 -> -1


def test_max_pool_ignores_padding():
    x = torch.full((1, 1, 2, 2), -128)
    assert MaxPool("mp", "x", "y", (2, 2), 1, padding=1).compute(x).unique().tolist() == [-128]


def test_nodes_validate():
    with pytest.raises(ValueError, match="zero_point1"):
        Add("a", ("x", "y"), "z", 200, 0, 0, **add_params(1, 1, 1))
    with pytest.raises(ValueError, match="padding"):
        MaxPool("m", "x", "y", (2, 2), 2, padding=2)
    with pytest.raises(ValueError, match="shape"):
        Reshape("r", "x", "y", (0,))


# --- ONNX importers ---------------------------------------------------------------------
def _kinds(graph):
    return [n.layer.kind if isinstance(n, EngineNode) else type(n).__name__ for n in graph.nodes]


@pytest.mark.parametrize("form", ["qdq", "qdq_u8", "qop"])
def test_onnx_import_and_agreement(models, data, form):
    """Graph structure, and each node's arithmetic against onnxruntime on the same inputs:
    at most one LSB apart (TFLite fixed point vs float requantization), nearly all exact."""
    graph = import_model(models[form])
    assert _kinds(graph) == [Kind.CONV, Kind.DEPTHWISE, Kind.CONV, "Add", "MaxPool", Kind.CONV,
                             "GlobalAveragePool", "Reshape", Kind.LINEAR]
    x, y = data
    x = x[:300]
    src = run_source(graph, x)
    ours = run(graph, graph.quantize_input(x), keep=True)
    assert (ours[graph.input] == src["exposed:" + graph.input]).all()
    for n in graph.nodes:
        got = n.compute(*[torch.as_tensor(src["exposed:" + i]) for i in n.inputs])
        got = (got[1] if isinstance(n, EngineNode) else got).numpy()
        want = src["exposed:" + n.output]
        diff = np.abs(got - want)
        assert diff.max() <= 1, f"{n.name}: {diff.max()} LSB apart"
        assert (diff == 0).mean() >= 0.99, f"{n.name}: only {(diff == 0).mean():.2%} exact"
    top = lambda a: a.reshape(len(a), -1).argmax(1)  # noqa: E731
    assert (top(ours[graph.output]) == top(src[graph.output])).mean() >= 0.98
    if form == "qdq_u8":  # uint8 activations: zero points shifted by 128
        t = graph.tensors[graph.input]
        assert t.source_offset == 128


def test_layer_vectors_are_typed_and_match_the_run(models, data):
    graph = import_model(models["qdq"])
    xq = graph.quantize_input(data[0][:8])
    values = run(graph, xq, keep=True)
    vecs = graph.layer_vectors(xq)
    assert [v.name for v in vecs] == [n.name for n in graph.engine_nodes]
    for v, n in zip(vecs, graph.engine_nodes):
        assert isinstance(v, LayerVectors) and v.images == 8
        assert (v.y == values[n.output]).all() and (v.x == values[n.input]).all()
    assert vecs[1].kind == Kind.DEPTHWISE and vecs[1].layer.groups == 8


def test_ternary_valued_weights_are_folded(models, tmp_path):
    """A layer whose int8 weights are {-k, 0, k} per channel becomes ternary, k in the multiplier,
    and computes the same integers."""
    from onnx import numpy_helper
    m = onnx.load(str(models["qdq"]))
    inits = {i.name: i for i in m.graph.initializer}
    w = numpy_helper.to_array(inits["pw.weight_quantized"])
    b = numpy_helper.to_array(inits["pw.bias_quantized"])
    k = np.arange(1, w.shape[0] + 1) * 7
    t = np.sign(w) * (np.abs(w) > 40)
    inits["pw.weight_quantized"].CopyFrom(numpy_helper.from_array((t * k[:, None, None, None]).astype(np.int8),
                                                                  "pw.weight_quantized"))
    inits["pw.bias_quantized"].CopyFrom(numpy_helper.from_array((b // k * k).astype(np.int32), "pw.bias_quantized"))
    path = tmp_path / "tern.onnx"
    onnx.save(m, str(path))
    graph = import_model(path)
    pw = next(n for n in graph.engine_nodes if n.name == "/pw/Conv")
    assert pw.ternary and pw.meta["ternary_k"] == k.tolist()
    assert graph.to_json()["nodes"][2]["ternary"] is True


# --- the command ------------------------------------------------------------------------
def test_command_writes_everything(models, tmp_path, capsys):
    out = tmp_path / "out"
    results, graph = run_import(models["qdq"], out, data=models["data"], images=4)
    assert "agreement on 597 inputs" in capsys.readouterr().out
    f = results["agreement"]["final"]
    # End to end against the model as written, which onnxruntime runs through its fused int8
    # kernels (differences carry forward): top-1 only. Each node's arithmetic is checked in
    # test_onnx_import_and_agreement.
    assert f["top1_agreement"] >= 0.99
    assert all(n["max_lsb"] <= 1 for n in results["agreement"]["nodes"])
    assert 0 < abs(f["accuracy_nnaccel"] - f["accuracy_source"]) <= 0.02 or f["accuracy_nnaccel"] == f["accuracy_source"]
    assert len(graph["nodes"]) == 9
    files = sorted((out / "vectors").iterdir())
    assert len(files) == 5
    v = LayerVectors.from_npz(files[1])
    assert v.kind == Kind.DEPTHWISE and v.images == 4
    assert "Agreement with the source runtime" in (out / "report.md").read_text()


def test_command_without_data_claims_nothing(models, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["import", str(models["qop"]), "--images", "2", "-o", str(out)]) == 0
    assert "no agreement or accuracy claimed" in capsys.readouterr().out
    assert "No DATA given" in (out / "report.md").read_text()


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("nnaccel: error:")
    return err


def test_bad_inputs_exit_2(models, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(models["qdq"].read_bytes()[:300])
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model\n" * 20)
    other = tmp_path / "model.txt"
    other.write_text("x")
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=np.zeros((3, 1, 7, 7), np.float32))
    for argv in (["import", str(models["float"])], ["import", "model.py:make"], ["import", str(corrupt)], ["import", str(text)], ["import", str(other)],
                 ["import", str(tmp_path / "missing.onnx")],
                 ["import", str(models["qdq"]), "--data", str(wrong)],
                 ["import", str(models["qdq"]), "--data", str(tmp_path / "missing.npz")]):
        assert main(argv + ["-o", str(tmp_path / "o")]) == 2, argv
        assert len(_one_error_line(capsys).splitlines()) == 1, argv
    assert not (tmp_path / "o").exists()


def test_unsupported_model_lists_every_node(models, tmp_path, capsys):
    m = onnx.load(str(models["qdq"]))
    for n in m.graph.node:
        if n.name == "/dw/Conv":
            for a in n.attribute:
                if a.name == "dilations":
                    a.ints[:] = [2, 2]
        if n.name == "/pool/MaxPool":
            n.op_type = "LpPool"
            keep = [a for a in n.attribute if a.name in ("kernel_shape", "pads", "strides")]
            del n.attribute[:]
            n.attribute.extend(keep)
        if n.name == "/Add":
            n.op_type = "Mul"
    path = tmp_path / "bad.onnx"
    onnx.save(m, str(path))
    with pytest.raises(UnsupportedModel) as e:
        import_model(path)
    names = {p.node for p in e.value.problems}
    assert {"/dw/Conv", "/pool/MaxPool", "/Add"} <= names
    assert "dilation 2" in str(e.value)
    assert main(["import", str(path), "-o", str(tmp_path / "o")]) == 2
    err = _one_error_line(capsys)
    assert "/dw/Conv" in err and "LpPool" in err and "Mul" in err


def test_trailing_softmax_is_dropped(models, tmp_path):
    m = onnx.load(str(models["qdq"]))
    out = m.graph.output[0]
    m.graph.node.append(onnx.helper.make_node("Softmax", [out.name], ["probs"], name="softmax", axis=1))
    out.name = "probs"
    path = tmp_path / "softmax.onnx"
    onnx.save(m, str(path))
    graph = import_model(path)
    assert graph.output == "logits_QuantizeLinear_Output"
    assert any("Softmax" in n for n in graph.notes)
