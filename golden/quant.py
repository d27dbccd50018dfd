"""Integer quantization and requantization, bit-exact with the hardware.

Scheme (Krishnamoorthi, "Quantizing deep convolutional networks for efficient
inference: A whitepaper", arXiv 1806.08342, and TFLite's int8 spec
https://www.tensorflow.org/lite/performance/quantization_spec):

* weights: int8, symmetric, per output channel (zero point 0, range [-127, 127]);
* activations: int8, asymmetric, per tensor (scale, zero point in [-128, 127]);
* bias: int32 with scale ``input_scale * weight_scale[c]`` and zero point 0;
* requantization of an int32 accumulator to int8 by a real multiplier
  ``M = input_scale * weight_scale[c] / output_scale`` that is represented as a
  31-bit fixed-point multiplier ``q`` in [2**30, 2**31) and a shift ``s`` such that
  ``M ~= q * 2**(s - 31)``.

Requantization arithmetic: the *double-rounding* variant of TFLite's reference
kernels (``MultiplyByQuantizedMultiplier`` in
tensorflow/lite/kernels/internal/common.h, with gemmlowp's
``SaturatingRoundingDoublingHighMul`` and ``RoundingDivideByPOT`` from
gemmlowp/fixedpoint/fixedpoint.h)::

    left  = max(shift, 0); right = max(-shift, 0)
    x     = wrap32(acc * 2**left)                 # int32 two's-complement wrap,
                                                  # as the C code does on real targets
    h     = SaturatingRoundingDoublingHighMul(x, q)
    r     = RoundingDivideByPOT(h, right)
    y     = clamp(r + output_zero_point, act_min, act_max)

``SaturatingRoundingDoublingHighMul(a, b)``: INT32_MAX when a == b == INT32_MIN
(the only case whose doubled high half overflows); otherwise
``(a*b + nudge) / 2**31`` with C's truncating division, nudge = 2**30 when
a*b >= 0 and 1 - 2**30 otherwise. Positive ties round up (+0.5 -> 1), and so do
negative ones (-0.5 -> 0, -1.5 -> -1): the nudge is one short of half for
negative products, so it is *not* round-half-away-from-zero.

``RoundingDivideByPOT(x, e)``: arithmetic shift right by e, plus one when the
remainder ``x & (2**e - 1)`` exceeds ``(2**e - 1) >> 1`` (+1 when x < 0):
round half away from zero.

All functions take and return integer ``torch.Tensor`` s (computed in int64 so no
intermediate overflows); Python ints and numpy arrays are accepted as input.
The RTL requantizer (``rtl.requant.requantizer``) matches :func:`requantize` bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
import torch

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
SHIFT_MIN = -31  # right shift by up to 31
SHIFT_MAX = 30  # left shift by up to 30


def _i64(x, name: str = "value") -> torch.Tensor:
    """``x`` (tensor, array, list or number) as an int64 tensor.

    Integer and boolean inputs convert as they are; floats must hold finite integral
    values (``2.0`` is 2). Anything else -- a fraction, NaN, infinity, a value outside
    int64, text -- is a ValueError naming ``name`` and the first bad value: never a
    silent truncation."""
    if isinstance(x, torch.Tensor):
        if not (x.is_floating_point() or x.is_complex()):
            return x.to(torch.int64)
        a = x.detach().cpu().numpy() if x.dtype != torch.bfloat16 else x.detach().double().numpy()
    else:
        a = np.asarray(x)
        if a.dtype.kind in "biu":
            if a.dtype == np.uint64 and a.size and int(a.max()) > np.iinfo(np.int64).max:
                raise ValueError(f"{name} value {int(a.max())} does not fit int64")
            return torch.as_tensor(a.astype(np.int64))
    return torch.as_tensor(_integral(a, name))


def _integral(a: np.ndarray, name: str) -> np.ndarray:
    """Float or object array ``a`` as int64, or ValueError for its first non-integer value."""
    if a.dtype.kind == "O":
        flat = [_integer(v, name) for v in a.ravel().tolist()]
        try:
            return np.array(flat, dtype=np.int64).reshape(a.shape)
        except OverflowError:
            raise ValueError(f"{name} holds a value that does not fit int64") from None
    if a.dtype.kind != "f":
        raise ValueError(f"{name} must hold integers, not {a.dtype} values")
    finite = np.isfinite(a)
    if not finite.all():
        raise ValueError(f"{name} must be finite, not {float(a[~finite].flat[0])}")
    frac = a != np.round(a)
    if frac.any():
        raise ValueError(f"{name} must hold integers, not {float(a[frac].flat[0])}")
    big = np.abs(a) >= 2.0**63
    if big.any():
        raise ValueError(f"{name} value {float(a[big].flat[0])} does not fit int64")
    return a.astype(np.int64)


def _integer(value, name: str) -> int:
    """One integer (int, numpy integer, integral float, one-element tensor), or ValueError naming it."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, not {value}")
        if value != math.floor(value):
            raise ValueError(f"{name} must be an integer, not {value}")
        return int(value)
    if isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim == 0:
        return int(_i64(value, name))
    raise ValueError(f"{name} must be an integer, not {value!r}")


def _finite(x, name: str) -> torch.Tensor:
    """``x`` as a float64 tensor (float32 values converted exactly), or ValueError naming
    ``name`` if it holds NaN or infinity."""
    t = x.detach().double() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, dtype=np.float64))
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        raise ValueError(f"{name} must be finite, not {float(t[bad].flatten()[0])}")
    return t


def _real(value, name: str, *, positive: bool = False) -> float:
    """One finite real number (> 0 with ``positive``), or ValueError naming it."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, not {value!r}") from None
    if not math.isfinite(v) or (positive and v <= 0):
        raise ValueError(f"{name} must be {'positive and ' if positive else ''}finite, not {v}")
    return v


def _broadcast(name: str, target: torch.Tensor, **parts: torch.Tensor) -> None:
    """ValueError (not torch's RuntimeError) when ``parts`` do not broadcast against ``target``."""
    try:
        torch.broadcast_shapes(target.shape, *(t.shape for t in parts.values()))
    except RuntimeError:
        shapes = ", ".join(f"{k} {tuple(t.shape)}" for k, t in parts.items())
        raise ValueError(f"{shapes} do not broadcast against the {name} {tuple(target.shape)} "
                         f"(per channel: give them the channel axis's shape)") from None


def _check_range(t: torch.Tensor, lo: int, hi: int, name: str) -> None:
    bad = (t < lo) | (t > hi)
    if bool(bad.any()):
        raise ValueError(f"{name} {int(t[bad].flatten()[0])} is outside [{lo}, {hi}]")


def wrap32(x) -> torch.Tensor:
    """Two's-complement wrap of int64 values to int32 range."""
    x = _i64(x, "x")
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _trunc_div_pow2(x: torch.Tensor, n: int) -> torch.Tensor:
    """C-style integer division by 2**n (rounds toward zero)."""
    bias = torch.where(x < 0, (1 << n) - 1, 0)
    return (x + bias) >> n


def saturating_rounding_doubling_high_mul(a, b) -> torch.Tensor:
    """gemmlowp's SaturatingRoundingDoublingHighMul on int32 values."""
    a, b = _i64(a, "a"), _i64(b, "b")
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    ab = a * b
    nudge = torch.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = _trunc_div_pow2(ab + nudge, 31)
    return torch.where(overflow, torch.full_like(high, INT32_MAX), high)


def rounding_divide_by_pot(x, exponent) -> torch.Tensor:
    """gemmlowp's RoundingDivideByPOT: x / 2**exponent, ties away from zero."""
    x, e = _i64(x, "x"), _i64(exponent, "exponent")
    _check_range(e, 0, 31, "exponent")
    mask = (torch.ones_like(e) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0).to(torch.int64)
    return (x >> e) + (remainder > threshold).to(torch.int64)


def multiply_by_quantized_multiplier(acc, multiplier, shift) -> torch.Tensor:
    """TFLite's MultiplyByQuantizedMultiplier (double rounding), int32 result."""
    acc, q, s = _i64(acc, "accumulator"), _i64(multiplier, "multiplier"), _i64(shift, "shift")
    _broadcast("accumulators", acc, multiplier=q, shift=s)
    _check_range(acc, INT32_MIN, INT32_MAX, "accumulator")
    # Any int32 multiplier is accepted (TFLite's lie in [2**30, 2**31)); the RTL
    # handles the full range, including the saturating INT32_MIN * INT32_MIN.
    _check_range(q, INT32_MIN, INT32_MAX, "multiplier")
    _check_range(s, SHIFT_MIN, SHIFT_MAX, "shift")
    left = s.clamp(min=0)
    right = (-s).clamp(min=0)
    x = wrap32(acc << left)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, q), right)


def requantize(acc, multiplier, shift, output_zero_point, act_min=-128, act_max=127) -> torch.Tensor:
    """int32 accumulators -> int8 outputs (returned as int64 tensor of int8 values).

    ``multiplier`` and ``shift`` broadcast against ``acc`` (per-channel: give them
    the channel axis's shape).
    """
    act_min, act_max = _integer(act_min, "act_min"), _integer(act_max, "act_max")
    zp = _integer(output_zero_point, "output zero point")
    if not (-128 <= act_min <= act_max <= 127):
        raise ValueError(f"activation range [{act_min}, {act_max}] is not inside int8")
    if not -128 <= zp <= 127:
        raise ValueError(f"output zero point {zp} is not an int8 value")
    r = multiply_by_quantized_multiplier(acc, multiplier, shift)
    return (r + zp).clamp(act_min, act_max)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: real = q * 2**(shift - 31), q in [2**30, 2**31).

    Returns (0, 0) for real == 0. Raises for negative or non-finite values and for
    multipliers whose shift falls outside [SHIFT_MIN, SHIFT_MAX].
    """
    real = _real(real, "real multiplier")
    if real < 0:
        raise ValueError(f"real multiplier must be finite and >= 0, not {real}")
    if real == 0.0:
        return 0, 0
    mant, shift = math.frexp(real)  # real = mant * 2**shift, mant in [0.5, 1)
    # TFLite rounds with TfLiteRound (std::round: half away from zero); mant > 0.
    q = int(math.floor(mant * (1 << 31) + 0.5))
    if q == (1 << 31):
        q //= 2
        shift += 1
    if shift < SHIFT_MIN:  # too small to represent: flush to zero, as TFLite does
        return 0, 0
    if shift > SHIFT_MAX:
        raise ValueError(f"real multiplier {real} is too large (shift {shift} > {SHIFT_MAX})")
    return q, shift


def quantize_multipliers(reals) -> tuple[torch.Tensor, torch.Tensor]:
    """Vector form of :func:`quantize_multiplier`: (multipliers, shifts) as int64 tensors."""
    pairs = [quantize_multiplier(float(r)) for r in np.asarray(reals, dtype=np.float64).ravel()]
    q = torch.tensor([p[0] for p in pairs], dtype=torch.int64)
    s = torch.tensor([p[1] for p in pairs], dtype=torch.int64)
    return q, s


def choose_activation_qparams(lo: float, hi: float) -> tuple[float, int]:
    """Asymmetric per-tensor int8 parameters covering [lo, hi] (which must include 0).

    Zero is exactly representable (whitepaper, section 2.1). Returns (scale, zero_point).
    """
    lo, hi = _real(lo, "lo"), _real(hi, "hi")
    if lo > hi:
        raise ValueError(f"lo {lo} is above hi {hi}")
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi == lo:
        return 1.0, 0
    scale = (hi - lo) / 255.0
    v = -128 - lo / scale
    zp = int(math.copysign(math.floor(abs(v) + 0.5), v))  # TfLiteRound: half away from zero
    return scale, max(-128, min(127, zp))


def quantize_activations(x: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    """float -> int8 values (int64 tensor), round half to even as torch.round does."""
    x = _finite(x, "x")
    scale, zero_point = _real(scale, "scale", positive=True), _integer(zero_point, "zero_point")
    q = torch.round(x / scale) + zero_point
    return q.clamp(-128, 127).to(torch.int64)


def dequantize(q: torch.Tensor, scale, zero_point) -> torch.Tensor:
    return (q.to(torch.float64) - zero_point) * torch.as_tensor(scale, dtype=torch.float64)


def quantize_weights_per_channel(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel int8 (axis 0): returns (int8 values as int64, scales)."""
    w = _finite(w, "w")
    if w.dim() < 1 or w.shape[0] == 0:
        raise ValueError(f"w must have an output-channel axis 0, not shape {tuple(w.shape)}")
    flat = w.reshape(w.shape[0], -1)
    amax = flat.abs().amax(dim=1)
    scale = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax))
    q = torch.round(flat / scale[:, None]).clamp(-127, 127).to(torch.int64)
    return q.reshape(w.shape), scale


def quantize_bias(b: torch.Tensor, input_scale: float, weight_scale: torch.Tensor) -> torch.Tensor:
    """int32 bias with scale input_scale * weight_scale[c], zero point 0 (saturated)."""
    b, weight_scale = _finite(b, "bias"), _finite(weight_scale, "weight_scale")
    input_scale = _real(input_scale, "input_scale", positive=True)
    if weight_scale.numel() != 1 and weight_scale.shape != b.shape:
        raise ValueError(f"weight_scale shape {tuple(weight_scale.shape)} does not match bias shape {tuple(b.shape)} "
                         f"(one scale per output channel)")
    q = torch.round(b / (input_scale * weight_scale))
    return q.clamp(INT32_MIN, INT32_MAX).to(torch.int64)
