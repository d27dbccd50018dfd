"""A small Brevitas net on scikit-learn's digits, exported to QONNX with ``export_qonnx``.
Built in the test, no downloads.

Net (1 x 8 x 8 input): QuantIdentity (signed 8-bit input), QuantConv2d 3x3 1->8 with ternary
weights (2-bit narrow range) + QuantReLU (unsigned 8-bit), MaxPool 2x2, QuantConv2d 3x3 8->16
ternary + QuantReLU (unsigned 8-bit), Flatten, QuantLinear 256->10 (8-bit weights),
QuantIdentity (signed 8-bit logits). Biases are Brevitas ``Int32Bias`` (on the accumulator
grid, as the hardware adds them).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tests.models.convnet import digits, train


def make() -> nn.Module:
    import brevitas.nn as qnn
    from brevitas.quant import Int32Bias

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
            self.conv1 = qnn.QuantConv2d(1, 8, 3, padding=1, weight_bit_width=2, weight_narrow_range=True,
                                         bias_quant=Int32Bias, return_quant_tensor=False)
            self.relu1 = qnn.QuantReLU(bit_width=8, return_quant_tensor=True)
            self.pool = nn.MaxPool2d(2)
            self.conv2 = qnn.QuantConv2d(8, 16, 3, padding=1, weight_bit_width=2, weight_narrow_range=True,
                                         bias_quant=Int32Bias, return_quant_tensor=False)
            self.relu2 = qnn.QuantReLU(bit_width=8, return_quant_tensor=True)
            self.fc = qnn.QuantLinear(16 * 4 * 4, 10, weight_bit_width=8, bias_quant=Int32Bias)
            self.out = qnn.QuantIdentity(bit_width=8)

        def forward(self, x):
            x = self.relu1(self.conv1(self.inp(x)))
            x = self.relu2(self.conv2(self.pool(x)))
            return self.out(self.fc(torch.flatten(x, 1)))

    return Net()


def export(model: nn.Module, path: Path, shape=(1, 1, 8, 8)) -> Path:
    """``brevitas.export.export_qonnx`` (needs onnxoptimizer), quietly."""
    from brevitas.export import export_qonnx
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        export_qonnx(model.eval(), torch.zeros(shape), export_path=str(path))
    return Path(path)


def build(tmp: Path, seed: int = 0, epochs: int = 3) -> dict[str, Path]:
    """Train briefly, export; returns "qonnx" and "data" (held-out digits, x and y) paths."""
    tmp = Path(tmp)
    x, y = digits(seed=seed)
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = train(make(), x[:1200], y[:1200], epochs=epochs, seed=seed)
    paths = {"qonnx": export(model, tmp / "brevitas_qonnx.onnx"), "data": tmp / "digits.npz"}
    np.savez(paths["data"], x=x[1200:], y=y[1200:])
    return paths
