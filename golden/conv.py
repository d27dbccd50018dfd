"""Exact integer convolution and fully connected layers (int8 x int8 -> int32).

Semantics (TFLite int8 reference kernels ``reference_integer_ops::ConvPerChannel``
and ``FullyConnected``, tensorflow/lite/kernels/internal/reference/integer_ops/;
scheme of :mod:`golden.quant`)::

    acc[n, o, i, j] = bias[o] + sum_{c, u, v} (x[n, c, i*S + u - P, j*S + v - P] - zp_in) * w[o, c, u, v]

* ``x`` is int8, asymmetric per tensor with zero point ``zp_in``; positions outside
  the image (padding ``P``) read ``zp_in``, i.e. they are zero in real terms, so
  ``x - zp_in`` is zero-padded;
* ``w`` is int8 symmetric (zero point 0), OIHW, or ternary {-1, 0, 1};
* ``bias`` is int32; the result is the int32 accumulator before requantization.

The sums are evaluated in torch int64 (unfold + integer matmul), which is exact:
every product is at most 255 * 128 in magnitude, so no int64 sum of fewer than
2**47 terms can overflow. The accumulator must also fit in int32, as it does in
the hardware and in TFLite; :func:`check_int32` raises ``ValueError`` otherwise.

Tensors are torch int64 holding the integer values (numpy arrays and lists accepted).
``conv2d_q`` / ``linear_q`` add requantization to int8 with per-output-channel
(multiplier, shift) pairs (:func:`golden.quant.requantize`).
"""

from __future__ import annotations

import torch

from golden.quant import INT32_MAX, INT32_MIN, _i64, _integer, requantize

INT8_MIN, INT8_MAX = -128, 127


def check_range(t, lo: int, hi: int, name: str) -> torch.Tensor:
    """``t`` as int64 tensor, or ValueError naming the first value that is not an integer
    (fraction, NaN, infinity) or lies outside [lo, hi]."""
    t = _i64(t, name)
    bad = (t < lo) | (t > hi)
    if bool(bad.any()):
        raise ValueError(f"{name} value {int(t[bad][0])} is outside [{lo}, {hi}]")
    return t


def check_int32(acc, name: str = "accumulator") -> torch.Tensor:
    """Raise ValueError if an accumulator does not fit in int32."""
    return check_range(acc, INT32_MIN, INT32_MAX, name)


def _check_int(value, name: str, lo: int) -> int:
    try:
        v = _integer(value, name)
    except ValueError:
        v = None
    if v is None or v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, not {value!r}")
    return v


def _operands(x_q, w_q, bias_q, input_zero_point, ndim: int):
    """Validate ranges/shapes; return (x - zp, w, bias) as int64."""
    x = check_range(x_q, INT8_MIN, INT8_MAX, "input")
    w = check_range(w_q, INT8_MIN, INT8_MAX, "weight")
    zp = _integer(input_zero_point, "input zero point")
    if not INT8_MIN <= zp <= INT8_MAX:
        raise ValueError(f"input zero point {input_zero_point!r} is not an int8 value")
    if x.dim() != ndim or w.dim() != ndim:
        raise ValueError(f"input and weight must be {ndim}-D, got shapes {tuple(x.shape)}, {tuple(w.shape)}")
    if bias_q is None:
        b = torch.zeros(w.shape[0], dtype=torch.int64)
    else:
        b = check_int32(bias_q, "bias")
    if tuple(b.shape) != (w.shape[0],):
        raise ValueError(f"bias shape {tuple(b.shape)} does not match {w.shape[0]} output channels")
    return x - zp, w, b


def conv2d_int(x_q, w_q, bias_q, input_zero_point, stride=1, padding=0, groups=1) -> torch.Tensor:
    """int8 NCHW input, int8 OIHW weight, int32 bias -> int32 accumulators (int64 tensor, NOHW)."""
    d, w, b = _operands(x_q, w_q, bias_q, input_zero_point, 4)
    stride, padding = _check_int(stride, "stride", 1), _check_int(padding, "padding", 0)
    groups = _check_int(groups, "groups", 1)
    n, c, _, _ = d.shape
    o, cg, kh, kw = w.shape
    if c % groups or o % groups or cg * groups != c:
        raise ValueError(f"groups={groups} does not fit {c} input / {o} output channels "
                         f"with weight shape {tuple(w.shape)}")
    d = torch.nn.functional.pad(d, (padding,) * 4)  # zero in real terms
    if d.shape[2] < kh or d.shape[3] < kw:
        raise ValueError(f"kernel {kh}x{kw} is larger than the padded input {tuple(d.shape[2:])}")
    cols = d.unfold(2, kh, stride).unfold(3, kw, stride)  # N, C, Ho, Wo, kh, kw
    ho, wo = cols.shape[2:4]
    cols = cols.reshape(n, groups, cg, ho, wo, kh, kw).permute(1, 0, 3, 4, 2, 5, 6)
    cols = cols.reshape(groups, n * ho * wo, cg * kh * kw)
    wg = w.reshape(groups, o // groups, cg * kh * kw).transpose(1, 2)
    acc = torch.bmm(cols, wg)  # G, N*Ho*Wo, O/G
    acc = acc.reshape(groups, n, ho, wo, o // groups).permute(1, 0, 4, 2, 3).reshape(n, o, ho, wo)
    return check_int32(acc + b[:, None, None])


def linear_int(x_q, w_q, bias_q, input_zero_point) -> torch.Tensor:
    """int8 (N, K) input, int8 (O, K) weight, int32 bias -> int32 accumulators (N, O)."""
    d, w, b = _operands(x_q, w_q, bias_q, input_zero_point, 2)
    if d.shape[1] != w.shape[1]:
        raise ValueError(f"input features {d.shape[1]} do not match weight shape {tuple(w.shape)}")
    return check_int32(d @ w.T + b)


def _per_channel(v, ndim: int, channels: int, name: str) -> torch.Tensor:
    """Per-output-channel vector (one value, or one per channel) shaped to broadcast on
    axis 1 of an ndim tensor."""
    t = _i64(v, name)
    if t.numel() not in (1, channels):
        raise ValueError(f"{name} has {t.numel()} values for {channels} output channels")
    return t.reshape((-1,) + (1,) * (ndim - 2))


def conv2d_q(x_q, w_q, bias_q, input_zero_point, multiplier, shift, output_zero_point,
             act_min=INT8_MIN, act_max=INT8_MAX, stride=1, padding=0, groups=1) -> torch.Tensor:
    """:func:`conv2d_int` followed by per-channel requantization to int8."""
    acc = conv2d_int(x_q, w_q, bias_q, input_zero_point, stride, padding, groups)
    o = acc.shape[1]
    return requantize(acc, _per_channel(multiplier, 4, o, "multiplier"), _per_channel(shift, 4, o, "shift"),
                      output_zero_point, act_min, act_max)


def linear_q(x_q, w_q, bias_q, input_zero_point, multiplier, shift, output_zero_point,
             act_min=INT8_MIN, act_max=INT8_MAX) -> torch.Tensor:
    """:func:`linear_int` followed by per-channel requantization to int8."""
    acc = linear_int(x_q, w_q, bias_q, input_zero_point)
    o = acc.shape[1]
    return requantize(acc, _per_channel(multiplier, 2, o, "multiplier"), _per_channel(shift, 2, o, "shift"),
                      output_zero_point, act_min, act_max)
