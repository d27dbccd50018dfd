"""A layer's golden test vectors from integer tensors (same keys as golden.nets.digits.layer_vectors)."""

from __future__ import annotations

import numpy as np
import torch

from golden.conv import conv2d_int, linear_int
from golden.quant import quantize_multipliers, requantize


def layer_vectors_from(*, name: str, kind: str, x, w, bias, input_zero_point: int, real_multipliers,
                       output_zero_point: int, act_min: int | None = None, act_max: int = 127, stride: int = 1,
                       padding: int = 0) -> dict:
    """Golden accumulators and int8 outputs of one layer, as a vector dict.

    ``kind`` is "conv", "depthwise" (groups == input channels) or "linear";
    ``real_multipliers`` are the per-output-channel requantization scales, turned into
    (multiplier, shift) as TFLite does; ``act_min`` defaults to the output zero point
    (a fused ReLU).
    """
    xt, wt, bt = (torch.as_tensor(np.asarray(a), dtype=torch.int64) for a in (x, w, bias))
    if kind == "linear":
        acc = linear_int(xt, wt, bt, input_zero_point)
        stride, padding = 1, 0
    elif kind in ("conv", "depthwise"):
        groups = xt.shape[1] if kind == "depthwise" else 1
        acc = conv2d_int(xt, wt, bt, input_zero_point, stride, padding, groups=groups)
    else:
        raise ValueError(f"{name}: layer kind must be conv, depthwise or linear, not {kind!r}")
    mult, shift = quantize_multipliers(real_multipliers)
    act_min = output_zero_point if act_min is None else act_min
    cshape = (1, -1) + (1,) * (acc.dim() - 2)
    y = requantize(acc, mult.reshape(cshape), shift.reshape(cshape), output_zero_point, act_min, act_max)
    return {"name": name, "kind": kind, "x": np.asarray(x), "w": np.asarray(w), "bias": np.asarray(bias),
            "input_zero_point": input_zero_point, "mult": mult.numpy(), "shift": shift.numpy(),
            "output_zero_point": output_zero_point, "act_min": act_min, "act_max": act_max, "stride": stride,
            "padding": padding, "acc": acc.numpy(), "y": y.numpy()}
