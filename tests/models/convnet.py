"""A small float conv net on scikit-learn's digits, exported to ONNX and quantized by
onnxruntime's ``quantize_static`` (QDQ or QOperator form). Built in the test, no downloads.

Net (1 x 8 x 8 input): conv 3x3 1->8 + ReLU, depthwise 3x3 + ReLU, pointwise 1x1 8->8 +
ReLU, residual Add (with the conv's output), MaxPool 2x2, conv 3x3 8->16 + ReLU,
GlobalAveragePool, Flatten, Gemm 16->10.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn


def digits(n: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as float32 N x 1 x 8 x 8 in [0, 1] and int64 labels, shuffled."""
    from sklearn.datasets import load_digits
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(x))
    x = (x[order] / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = y[order].astype(np.int64)
    return (x, y) if n is None else (x[:n], y[:n])


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 8, 1)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        a = torch.relu(self.conv1(x))
        b = torch.relu(self.pw(torch.relu(self.dw(a))))
        c = self.pool(a + b)
        d = torch.relu(self.conv2(c))
        return self.fc(torch.flatten(self.gap(d), 1))


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int = 12, seed: int = 0) -> nn.Module:
    """A few epochs of Adam on one thread (the machine's cores are shared; many threads are slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(model, x, y, epochs, seed)
    finally:
        torch.set_num_threads(threads)


def _train(model, x, y, epochs, seed):
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model.train()
    for _ in range(epochs):
        for i in range(0, len(xt), 128):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[i:i + 128]), yt[i:i + 128]).backward()
            opt.step()
    return model.eval()


def export_float(model: nn.Module, path: Path, shape=(1, 1, 8, 8)) -> Path:
    """Float ONNX (opset 17) with a dynamic batch axis."""
    torch.onnx.export(model.eval(), (torch.zeros(shape),), str(path), input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}}, opset_version=17, dynamo=False)
    return Path(path)


def quantize(float_path: Path, out: Path, calib: np.ndarray, fmt: str = "qdq", activation: str = "int8") -> Path:
    """onnxruntime ``quantize_static``: per-channel int8 weights, int8 or uint8 activations.

    With uint8 activations the weights take 7 bits (``reduce_range``): onnxruntime's x86
    u8 x s8 kernels add pairs of products in saturating int16 (``vpmaddubsw``), which
    overflows for 255 x 127 x 2, and ``reduce_range`` is its documented remedy."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": calib[i:i + 1]} for i in range(len(calib))])

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(float_path), str(out), Reader(),
                    quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
                    per_channel=True, weight_type=QuantType.QInt8, reduce_range=activation == "uint8",
                    activation_type=QuantType.QInt8 if activation == "int8" else QuantType.QUInt8)
    return Path(out)


def build(tmp: Path, seed: int = 0) -> dict[str, Path]:
    """Train and export the net, quantize it in QDQ (int8 and uint8 activations) and QOperator
    form; returns the paths: "float", "qdq", "qdq_u8", "qop", and "data" (the held-out digits
    as data.npz with x and y)."""
    tmp = Path(tmp)
    x, y = digits(seed=seed)
    torch.manual_seed(seed)  # the initial weights too, not whatever earlier tests left in the RNG
    model = train(ConvNet(), x[:1200], y[:1200], seed=seed)
    paths = {"float": export_float(model, tmp / "convnet_float.onnx")}
    for key, fmt, act in (("qdq", "qdq", "int8"), ("qdq_u8", "qdq", "uint8"), ("qop", "qop", "int8")):
        paths[key] = quantize(paths["float"], tmp / f"convnet_{key}.onnx", x[:200], fmt, act)
    paths["data"] = tmp / "digits.npz"
    np.savez(paths["data"], x=x[1200:], y=y[1200:])
    return paths
