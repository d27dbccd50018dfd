"""`nnaccel import` of PyTorch modules (file.py:factory) and float ONNX: captured, BatchNorm
folded, quantized by nnaccel's own post-training quantization, measured against the float
source (a distance). Module files are written here; nothing is downloaded."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from flows.cli import main  # noqa: E402
from golden.importers import import_model  # noqa: E402
from golden.layer import Kind  # noqa: E402
from tests.models.command import run_import  # noqa: E402
from tests.models.convnet import digits  # noqa: E402

MODULE = textwrap.dedent("""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 8, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(8)
            self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.bn2 = nn.BatchNorm2d(8)
            self.pw = nn.Conv2d(8, 16, 1)
            self.gap = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(16, 10)

        def forward(self, x):
            a = torch.relu(self.bn(self.conv(x)))
            b = nn.functional.relu6(self.bn2(self.dw(a))) + a
            b = torch.relu(self.pw(nn.functional.max_pool2d(b, 2)))
            return self.fc(torch.flatten(self.gap(b), 1))

    def make():
        torch.manual_seed(0)
        net = Net()
        with torch.no_grad():  # BatchNorm statistics that matter
            for bn in (net.bn, net.bn2):
                bn.running_mean.uniform_(-0.3, 0.3)
                bn.running_var.uniform_(0.3, 2.0)
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.uniform_(-0.2, 0.2)
        return net.eval()

    def broken():
        raise RuntimeError("checkpoint weights.pt not found")
    """)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("torch_module")
    (tmp / "net.py").write_text(MODULE)
    x, y = digits(300)
    np.savez(tmp / "data.npz", x=x, y=y)
    np.savez(tmp / "rgb.npz", x=np.zeros((4, 3, 8, 8), np.float32))
    return tmp


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("nnaccel: error:") and len(err.splitlines()) == 1, err
    return err


def test_module_with_batchnorm(files, tmp_path, capsys):
    out = tmp_path / "out"
    results, g = run_import(f"{files / 'net.py'}:make", out, data=files / "data.npz", images=2)
    assert "distance to the float source on 300 inputs" in capsys.readouterr().out
    assert g["source"]["format"] == "pytorch"
    assert [n["op"] for n in g["nodes"]] == ["EngineNode", "EngineNode", "Add", "MaxPool", "EngineNode",
                                             "GlobalAveragePool", "Reshape", "EngineNode"]
    f = results["agreement"]["final"]
    # BatchNorm folded and int8 per-channel: within a couple of LSB of the float module
    assert f["source_is_float"] and f["max_lsb"] <= 2 and f["exact"] >= 0.6 and f["top1_agreement"] >= 0.9
    assert len(list((out / "vectors").iterdir())) == 4


def test_module_ternary_and_sparse_variants(files):
    x = np.load(files / "data.npz")["x"]
    spec = f"{files / 'net.py'}:make"
    tern = import_model(spec, data=x, variant="ternary")
    assert all(n.ternary and n.alpha > 0 for n in tern.engine_nodes)
    assert [n.layer.kind for n in tern.engine_nodes] == [Kind.CONV, Kind.DEPTHWISE, Kind.CONV, Kind.LINEAR]
    sparse = import_model(spec, data=x, variant="sparse", sparsity=0.75)
    assert all(n.weight_sparsity >= 0.74 for n in sparse.engine_nodes)


def test_float_onnx_takes_the_same_quantization(files, tmp_path, capsys):
    from tests.models.convnet import export_float
    ns = {}
    exec(MODULE, ns)
    path = export_float(ns["make"](), tmp_path / "net.onnx")
    results, _ = run_import(path, tmp_path / "out", data=files / "data.npz")
    assert "distance to the float source" in capsys.readouterr().out
    r = results["agreement"]
    assert r["final"]["max_lsb"] <= 2 and r["final"]["top1_agreement"] >= 0.9
    assert r["tensors"] and all(t["max_lsb"] <= 3 for t in r["tensors"])


def test_bad_modules_exit_2(files, tmp_path, capsys):
    net = files / "net.py"
    for argv, words in ((["import", f"{net}:broken", "--data", str(files / "data.npz")],
                         "factory raised RuntimeError: checkpoint weights.pt not found"),
                        (["import", f"{net}:make", "--data", str(files / "rgb.npz")], "does not fit the module"),
                        (["import", f"{net}:make"], "give --data"),
                        (["import", f"{net}:nothing", "--data", str(files / "data.npz")], "no function nothing")):
        assert main(argv + ["-o", str(tmp_path / "o")]) == 2, argv
        assert words in _one_error_line(capsys), argv
    assert not (tmp_path / "o").exists()
