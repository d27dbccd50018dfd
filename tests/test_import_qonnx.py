"""`nnaccel import` of QONNX: a Brevitas net (ternary conv weights, unsigned 8-bit activations,
8-bit linear) exported by ``export_qonnx`` in the test, imported, and measured against qonnx's
executor. Nothing is downloaded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
pytest.importorskip("qonnx")
pytest.importorskip("brevitas")
pytest.importorskip("onnxoptimizer")

from flows.cli import main  # noqa: E402
from golden.graph import EngineNode, run  # noqa: E402
from golden.importers import UnsupportedModel, import_model, run_source  # noqa: E402
from golden.layer import Kind  # noqa: E402
from tests.models import brevitas_net  # noqa: E402
from tests.models.command import run_import  # noqa: E402


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return brevitas_net.build(tmp_path_factory.mktemp("brevitas"))


def test_qonnx_graph_and_agreement(model):
    graph = import_model(model["qonnx"])
    kinds = [n.layer.kind if isinstance(n, EngineNode) else type(n).__name__ for n in graph.nodes]
    assert kinds == [Kind.CONV, "MaxPool", Kind.CONV, "Reshape", Kind.LINEAR]
    conv1, conv2, fc = graph.engine_nodes
    # the weight Quant nodes' widths, read before any folding: 2-bit narrow = ternary, 8-bit = int8
    for n in (conv1, conv2):
        assert n.ternary and n.meta["weight_bits"] == 2 and n.meta["weight_quant"] == "ternary"
    assert not fc.ternary and fc.meta["weight_bits"] == 8 and np.abs(fc.w).max() > 1
    # unsigned 8-bit activations (QuantReLU) become int8 with the zero point shifted by 128
    relu = graph.tensors[conv1.output]
    assert relu.source_offset == 128 and relu.zero_point == -128
    assert graph.tensors[graph.input].source_offset == 0

    d = np.load(model["data"])
    x = d["x"]
    src = run_source(graph, x)
    ours = run(graph, graph.quantize_input(x), keep=True)
    assert (ours[graph.input] == src["exposed:" + graph.input]).all()
    for n in graph.nodes:  # each node's arithmetic on qonnx's own input integers
        got = n.compute(*[torch.as_tensor(src["exposed:" + i]) for i in n.inputs])
        got = (got[1] if isinstance(n, EngineNode) else got).numpy()
        diff = np.abs(got - src["exposed:" + n.output])
        assert diff.max() <= 1, f"{n.name}: {diff.max()} LSB apart"
        assert (diff == 0).mean() >= 0.99, f"{n.name}: only {(diff == 0).mean():.2%} exact"
    final = np.abs(ours[graph.output] - src[graph.output])
    assert final.max() <= 1 and (final == 0).mean() >= 0.99
    top = lambda a: a.argmax(1)  # noqa: E731
    assert (top(ours[graph.output]) == top(src[graph.output])).mean() >= 0.995


def test_qonnx_command(model, tmp_path, capsys):
    out = tmp_path / "out"
    results, graph = run_import(model["qonnx"], out, data=model["data"], images=4)
    assert "3 engine layers (2 ternary)" in capsys.readouterr().out
    f = results["agreement"]["final"]
    assert f["max_lsb"] <= 1 and f["top1_agreement"] >= 0.995
    assert abs(f["accuracy_nnaccel"] - f["accuracy_source"]) <= 0.01
    assert graph["source"]["format"] == "qonnx"
    assert [n["weight_bits"] for n in graph["nodes"] if n["op"] == "EngineNode"] == [2, 2, 8]
    assert len(list((out / "vectors").iterdir())) == 3


def test_unsupported_qonnx_lists_every_node(model, tmp_path, capsys):
    m = onnx.load(str(model["qonnx"]))
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    for a in convs[1].attribute:
        if a.name == "dilations":
            a.ints[:] = [2, 2]
    last = [n for n in m.graph.node if n.op_type == "Quant"][-1]
    for a in last.attribute:
        if a.name == "rounding_mode":
            a.s = b"FLOOR"
    path = tmp_path / "bad.onnx"
    onnx.save(m, str(path))
    with pytest.raises(UnsupportedModel) as e:
        import_model(path)
    text = str(e.value)
    assert "dilation 2" in text and "rounding mode FLOOR" in text
    assert main(["import", str(path), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nnaccel: error:") and "dilation 2" in err
    assert not (tmp_path / "o").exists()
