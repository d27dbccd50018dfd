"""Network level: the digits demo CNN with 4-bit operands, every multiply through the analog column.

Quantization (post-training, from the float digits net of :mod:`golden.nets.digits`):

* activations (each layer's input, non-negative: image pixels or ReLU outputs) -> unsigned
  4 bit, ``x_q = clamp(round(x / s_x), 0, 15)``, ``s_x`` = 99.9th percentile of that
  input on the training set / 15;
* weights -> sign + 4-bit magnitude, per output channel ``s_w = max|w| / 15``,
  ``|w_q|`` in 0..15. The analog column multiplies the unsigned magnitude; the sign
  selects the positive or negative accumulation (two bit lines, or two passes).
* ``y = s_x * s_w * sum(sign(w_q) * P[x_q, |w_q|]) + bias``, ReLU between layers, where
  ``P[a, b]`` is the product as the hardware reports it: ``a * b`` exactly for the
  digital 4-bit reference, ``g * ADC(dV(a, b))`` for the analog designs (nominal), and
  with mismatch each product additionally draws its error from the Monte Carlo samples
  of its (a, b) pair (each multiply uses a different cell/column);
* ``refcol``: the same nominal products with a reference column subtracted (the a = 0
  reading, i.e. the bit-line leakage offset, removed before the gain), a common ADC
  reference scheme -- shown separately because the SNR definition allows a gain only.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from analog.circuit import FULL_SCALE


def _quantize_net(model, x_train):
    """Per layer: (kind, w_q int (O, K), sign, s_w (O,), bias, s_x, stride, padding, shape)."""
    layers = []
    record = []
    with torch.no_grad():
        model(x_train, record=record)
    for j, layer in enumerate(model.layers):
        x_in = record[j]
        s_x = float(torch.quantile(x_in.flatten()[:200000], 0.999)) / 15 or 1.0
        w = layer.weight.detach().reshape(layer.weight.shape[0], -1)
        s_w = w.abs().max(dim=1).values / 15
        s_w[s_w == 0] = 1.0
        w_q = torch.round(w / s_w[:, None]).clamp(-15, 15).to(torch.int64)
        conv = isinstance(layer, torch.nn.Conv2d)
        layers.append({"conv": conv, "w_q": w_q, "s_w": s_w, "bias": layer.bias.detach(), "s_x": s_x,
                       "stride": layer.stride[0] if conv else 1, "padding": layer.padding[0] if conv else 0,
                       "kernel": layer.kernel_size[0] if conv else 1,
                       "out_channels": layer.weight.shape[0]})
    return layers


def _layer(x, L, table, err, rng):
    """One layer on float input x (N, C, H, W) or (N, K); products from ``table`` (16, 16)."""
    n = x.shape[0]
    x_q = torch.round(x / L["s_x"]).clamp(0, 15).to(torch.int64)
    if L["conv"]:
        h = x.shape[2]
        cols = F.unfold(x_q.double(), L["kernel"], padding=L["padding"], stride=L["stride"]).to(torch.int64)  # (N,K,P)
        out_hw = (h + 2 * L["padding"] - L["kernel"]) // L["stride"] + 1
    else:
        cols = x_q.reshape(n, -1, 1)
    w_q = L["w_q"]
    mag, sign = w_q.abs(), torch.sign(w_q).double()
    acc = torch.zeros(n, w_q.shape[0], cols.shape[2], dtype=torch.float64)
    tab = torch.as_tensor(table, dtype=torch.float64).reshape(-1)
    errs = None if err is None else torch.as_tensor(err * FULL_SCALE, dtype=torch.float64).reshape(err.shape[0], -1)
    for start in range(0, n, 16):
        c = cols[start:start + 16]                                    # (n', K, P)
        idx = c[:, None, :, :] * 16 + mag[None, :, :, None]           # (n', O, K, P)
        prod = tab[idx]
        if errs is not None:
            s = torch.as_tensor(rng.integers(0, errs.shape[0], idx.shape))
            prod = prod + errs[s, idx]
        acc[start:start + 16] = (prod * sign[None, :, :, None]).sum(2)
    y = acc * L["s_x"] * L["s_w"].double()[None, :, None] + L["bias"].double()[None, :, None]
    if L["conv"]:
        return y.reshape(n, -1, out_hw, out_hw).float()
    return y.reshape(n, -1).float()


def run(layers, x, table, err=None, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    for j, L in enumerate(layers):
        x = _layer(x, L, table, err, rng)
        if j < len(layers) - 1:
            x = torch.relu(x)
    return x


def evaluate(designs: dict, seed: int = 0, n_images: int | None = None, cache_dir=None) -> dict:
    """Accuracy (%) on the digits test split: float, digital 4-bit, each analog design
    (nominal and with mismatch). ``designs``: {name: (table (16, 16) products, mc errors or None
    [, offset-corrected table])}."""
    from golden.nets import digits
    net = digits.build("float", seed, cache_dir)
    x_tr, _, x_te, y_te = digits.load_data(seed)
    if n_images is not None:
        x_te, y_te = x_te[:n_images], y_te[:n_images]
    layers = _quantize_net(net.model, x_tr)
    with torch.no_grad():
        acc_float = float((net.model(x_te).argmax(1) == y_te).float().mean() * 100)
    ideal = np.outer(np.arange(16), np.arange(16)).astype(float)
    out = {"images": int(len(y_te)), "float": acc_float,
           "digital_4bit": float((run(layers, x_te, ideal).argmax(1) == y_te).float().mean() * 100)}
    for name, spec in designs.items():
        table, err = spec[0], spec[1]
        out[f"{name}_nominal"] = float((run(layers, x_te, table).argmax(1) == y_te).float().mean() * 100)
        if len(spec) > 2 and spec[2] is not None:
            out[f"{name}_refcol"] = float((run(layers, x_te, spec[2]).argmax(1) == y_te).float().mean() * 100)
        if err is not None:
            out[f"{name}_mismatch"] = float((run(layers, x_te, table, err, seed).argmax(1) == y_te)
                                            .float().mean() * 100)
    return out
