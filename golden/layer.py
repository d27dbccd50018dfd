"""Typed layers: a layer's description (:class:`Layer`) and its integer test vectors
(:class:`LayerVectors`), validated on construction.

Every mapper, cycle model, testbench and flow takes these; nothing reads a layer
as a loose dict. A layer computes (TFLite int8 scheme, :mod:`golden.conv` and
:mod:`golden.quant`)::

    acc = conv2d_int / linear_int(x, w, bias, input_zero_point, stride, padding, groups)
    y   = requantize(acc, mult, shift, output_zero_point, act_min, act_max)

Shapes: ``x`` is N x C x H x W (conv, depthwise) or N x K (linear); ``w`` is
O x C/groups x KH x KW or O x K; ``bias``, ``mult`` and ``shift`` have one entry per
output channel; ``acc`` and ``y`` are N x O x HO x WO or N x O. Depthwise means
groups == C == O (one filter per channel).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from golden.conv import conv2d_int, linear_int
from golden.quant import INT32_MAX, INT32_MIN, SHIFT_MAX, SHIFT_MIN, quantize_multipliers, requantize


class Kind(str, enum.Enum):
    CONV = "conv"
    DEPTHWISE = "depthwise"
    LINEAR = "linear"


def _int(value, name: str, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, not {value!r}")
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{name} must lie in [{lo}, {hi}], not {value}")
    return value


@dataclass(frozen=True)
class Layer:
    """What one layer computes, without its data: kind, shapes, stride, padding, groups
    and the per-tensor quantization parameters.

    ``in_shape`` is one image's input shape, (C, H, W) or (K,); ``kernel`` is (KH, KW)
    ((1, 1) for linear). Scales are optional (the integer graph needs only integers);
    an importer records them for its report.
    """
    name: str
    kind: Kind
    in_shape: tuple[int, ...]
    out_channels: int
    kernel: tuple[int, int] = (1, 1)
    stride: int = 1
    padding: int = 0
    groups: int = 1
    input_zero_point: int = 0
    output_zero_point: int = 0
    act_min: int = -128
    act_max: int = 127
    input_scale: float | None = None
    output_scale: float | None = None

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen: normalize once)
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"layer name must be a non-empty string, not {self.name!r}")
        try:
            set_("kind", Kind(self.kind))
        except ValueError:
            raise ValueError(f"{self.name}: layer kind must be one of {', '.join(k.value for k in Kind)}, "
                             f"not {self.kind!r}") from None
        set_("in_shape", tuple(_int(s, f"{self.name}: input shape", 1) for s in self.in_shape))
        want = 1 if self.kind is Kind.LINEAR else 3
        if len(self.in_shape) != want:
            raise ValueError(f"{self.name}: a {self.kind.value} layer's input shape has {want} dimension(s) "
                             f"per image, not {self.in_shape}")
        set_("out_channels", _int(self.out_channels, f"{self.name}: out_channels", 1))
        set_("kernel", tuple(_int(k, f"{self.name}: kernel", 1) for k in self.kernel))
        set_("stride", _int(self.stride, f"{self.name}: stride", 1))
        set_("padding", _int(self.padding, f"{self.name}: padding", 0))
        set_("groups", _int(self.groups, f"{self.name}: groups", 1))
        for k in ("input_zero_point", "output_zero_point", "act_min", "act_max"):
            set_(k, _int(getattr(self, k), f"{self.name}: {k}", -128, 127))
        if self.act_min > self.act_max:
            raise ValueError(f"{self.name}: act_min {self.act_min} exceeds act_max {self.act_max}")
        if len(self.kernel) != 2:
            raise ValueError(f"{self.name}: kernel must be (KH, KW), not {self.kernel}")
        c = self.in_shape[0]
        if self.kind is Kind.LINEAR and (self.kernel != (1, 1) or self.stride != 1 or self.padding or self.groups != 1):
            raise ValueError(f"{self.name}: a linear layer has kernel (1, 1), stride 1, padding 0 and groups 1")
        if self.kind is Kind.CONV and self.groups != 1:
            raise ValueError(f"{self.name}: grouped convolution (groups {self.groups}) is not a layer kind; "
                             f"depthwise has groups == channels")
        if self.kind is Kind.DEPTHWISE and not (self.groups == c == self.out_channels):
            raise ValueError(f"{self.name}: depthwise needs groups == in channels == out channels, not "
                             f"groups {self.groups}, {c} in, {self.out_channels} out")
        if self.kind is not Kind.LINEAR:
            h, w = self.in_shape[1:]
            if h + 2 * self.padding < self.kernel[0] or w + 2 * self.padding < self.kernel[1]:
                raise ValueError(f"{self.name}: kernel {self.kernel} is larger than the padded input "
                                 f"{h + 2 * self.padding}x{w + 2 * self.padding}")

    @property
    def out_shape(self) -> tuple[int, ...]:
        """One image's output shape, (O, HO, WO) or (O,)."""
        if self.kind is Kind.LINEAR:
            return (self.out_channels,)
        h, w = self.in_shape[1:]
        return (self.out_channels,
                (h + 2 * self.padding - self.kernel[0]) // self.stride + 1,
                (w + 2 * self.padding - self.kernel[1]) // self.stride + 1)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        if self.kind is Kind.LINEAR:
            return (self.out_channels, self.in_shape[0])
        return (self.out_channels, self.in_shape[0] // self.groups) + self.kernel

    @property
    def reduction(self) -> int:
        """Terms of one output's dot product (K)."""
        return int(np.prod(self.weight_shape[1:]))

    @property
    def macs_per_image(self) -> int:
        """Multiply-accumulates of one image (dense)."""
        return int(np.prod(self.out_shape)) * self.reduction


def _array(value, name: str, shape: tuple | None, lo: int, hi: int) -> np.ndarray:
    a = np.asarray(value)
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer) or a.size == 0):
        if a.size and np.issubdtype(a.dtype, np.floating) and np.isfinite(a).all() and (a == np.round(a)).all():
            pass  # integer values held as floats
        else:
            raise ValueError(f"{name} must hold integers, not {a.dtype} values")
    a = a.astype(np.int64, copy=False)
    if shape is not None and a.shape != tuple(shape):
        raise ValueError(f"{name} has shape {a.shape}, expected {tuple(shape)}")
    if a.size and (a.min() < lo or a.max() > hi):
        bad = a[(a < lo) | (a > hi)][0]
        raise ValueError(f"{name} value {int(bad)} is outside [{lo}, {hi}]")
    return a


def _checked_inputs(L: Layer, x, w, bias, mult, shift) -> dict[str, np.ndarray]:
    """The layer's input arrays as int64, or ValueError naming the first bad one."""
    x = np.asarray(x)
    if x.ndim < 1 or tuple(x.shape[1:]) != L.in_shape:
        raise ValueError(f"{L.name}: x has shape {x.shape}, expected N x {' x '.join(map(str, L.in_shape))}")
    o = L.out_channels
    return {"x": _array(x, f"{L.name}: x", None, -128, 127),
            "w": _array(w, f"{L.name}: w", L.weight_shape, -128, 127),
            "bias": _array(bias, f"{L.name}: bias", (o,), INT32_MIN, INT32_MAX),
            "mult": _array(mult, f"{L.name}: mult", (o,), INT32_MIN, INT32_MAX),
            "shift": _array(shift, f"{L.name}: shift", (o,), SHIFT_MIN, SHIFT_MAX)}


@dataclass(frozen=True, eq=False)
class LayerVectors:
    """One layer's integer test vectors for N images: input, weights, bias,
    requantization (multiplier, shift) per output channel, the golden int32
    accumulators and int8 outputs. Arrays are int64 (treat them as read-only); validated on
    construction against ``layer`` (shapes and value ranges).
    ``alpha`` is the ternary scale where the layer came from TWN."""
    layer: Layer
    x: np.ndarray
    w: np.ndarray
    bias: np.ndarray
    mult: np.ndarray
    shift: np.ndarray
    acc: np.ndarray
    y: np.ndarray
    alpha: float | None = None
    meta: dict = field(default_factory=dict)  # free-form provenance (source tensor names, ...)

    def __post_init__(self):
        L = self.layer
        if not isinstance(L, Layer):
            raise TypeError(f"layer must be a Layer, not {type(L).__name__}")
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        x = np.asarray(self.x)
        for k, v in _checked_inputs(L, x, self.w, self.bias, self.mult, self.shift).items():
            set_(k, v)
        n = x.shape[0]
        set_("acc", _array(self.acc, f"{L.name}: acc", (n,) + L.out_shape, INT32_MIN, INT32_MAX))
        set_("y", _array(self.y, f"{L.name}: y", (n,) + L.out_shape, L.act_min, L.act_max))

    # --- what mappers and reports ask -------------------------------------------------
    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def kind(self) -> Kind:
        return self.layer.kind

    @property
    def images(self) -> int:
        return int(self.x.shape[0])

    @property
    def ternary(self) -> bool:
        """Weights in {-1, 0, +1}."""
        return bool(np.isin(self.w, (-1, 0, 1)).all())

    @property
    def weight_density(self) -> float:
        return float((self.w != 0).mean()) if self.w.size else 0.0

    @property
    def activation_density(self) -> float:
        """Fraction of inputs that differ from the input zero point (non-zero in real terms)."""
        return float((self.x != self.layer.input_zero_point).mean()) if self.x.size else 0.0

    def select(self, lo: int, hi: int) -> "LayerVectors":
        """The vectors of images ``lo:hi``."""
        return dataclasses.replace(self, x=self.x[lo:hi], acc=self.acc[lo:hi], y=self.y[lo:hi])

    def renamed(self, name: str) -> "LayerVectors":
        return dataclasses.replace(self, layer=dataclasses.replace(self.layer, name=name))

    # --- files ---------------------------------------------------------------------------
    def to_npz(self, path) -> Path:
        """Write the vectors and the description to ``path`` (.npz, compact dtypes)."""
        L = self.layer
        desc = {f.name: getattr(L, f.name) for f in dataclasses.fields(L)}
        desc["kind"] = L.kind.value
        arrays = dict(x=self.x.astype(np.int8), w=self.w.astype(np.int8), bias=self.bias.astype(np.int32),
                      mult=self.mult.astype(np.int32), shift=self.shift.astype(np.int32),
                      acc=self.acc.astype(np.int32), y=self.y.astype(np.int8))
        scalars = {k: v for k, v in desc.items() if k not in ("in_shape", "kernel") and v is not None}
        np.savez(path, **arrays, **scalars, in_shape=np.array(L.in_shape), kernel=np.array(L.kernel),
                 **({"alpha": self.alpha} if self.alpha is not None else {}))
        return Path(path)

    @classmethod
    def from_npz(cls, path) -> "LayerVectors":
        with np.load(path) as f:
            d = {k: f[k] for k in f.files}
        item = lambda k, default=None: d[k].item() if k in d else default  # noqa: E731
        layer = Layer(name=str(item("name")), kind=str(item("kind")), in_shape=tuple(int(v) for v in d["in_shape"]),
                      out_channels=int(item("out_channels")), kernel=tuple(int(v) for v in d["kernel"]),
                      stride=int(item("stride")), padding=int(item("padding")), groups=int(item("groups", 1)),
                      input_zero_point=int(item("input_zero_point")),
                      output_zero_point=int(item("output_zero_point")),
                      act_min=int(item("act_min")), act_max=int(item("act_max")),
                      input_scale=item("input_scale"), output_scale=item("output_scale"))
        return cls(layer, d["x"], d["w"], d["bias"], d["mult"], d["shift"], d["acc"], d["y"], alpha=item("alpha"))


def describe(*, name: str, kind, x_shape, w_shape, input_zero_point: int, output_zero_point: int,
             act_min: int, act_max: int, stride: int = 1, padding: int = 0, **scales) -> Layer:
    """A :class:`Layer` from array shapes (x: N x C x H x W or N x K; w: O x C/g x KH x KW or O x K)."""
    linear = kind == Kind.LINEAR
    return Layer(name=name, kind=kind, in_shape=tuple(x_shape[1:]), out_channels=int(w_shape[0]),
                 kernel=(1, 1) if linear else tuple(w_shape[2:]), stride=1 if linear else stride,
                 padding=0 if linear else padding, groups=int(x_shape[1]) if kind == Kind.DEPTHWISE else 1,
                 input_zero_point=input_zero_point, output_zero_point=output_zero_point, act_min=act_min,
                 act_max=act_max, **scales)


def golden_outputs(layer: Layer, x, w, bias, mult, shift) -> tuple[torch.Tensor, torch.Tensor]:
    """(acc, y) of ``layer`` on ``x``: the golden integer convolution or linear layer, then requantization."""
    xt, wt, bt = (torch.as_tensor(np.asarray(a), dtype=torch.int64) for a in (x, w, bias))
    if layer.kind is Kind.LINEAR:
        acc = linear_int(xt, wt, bt, layer.input_zero_point)
    else:
        acc = conv2d_int(xt, wt, bt, layer.input_zero_point, layer.stride, layer.padding, groups=layer.groups)
    mt, st = (torch.as_tensor(np.asarray(a), dtype=torch.int64) for a in (mult, shift))
    cshape = (1, -1) + (1,) * (acc.dim() - 2)
    y = requantize(acc, mt.reshape(cshape), st.reshape(cshape), layer.output_zero_point, layer.act_min,
                   layer.act_max)
    return acc, y


def layer_vectors_from(*, name: str, kind: str, x, w, bias, input_zero_point: int, real_multipliers=None,
                       mult=None, shift=None, output_zero_point: int, act_min: int | None = None,
                       act_max: int = 127, stride: int = 1, padding: int = 0, alpha: float | None = None,
                       **scales) -> LayerVectors:
    """A layer's golden vectors from integer tensors.

    ``kind`` is "conv", "depthwise" (groups == input channels) or "linear". Give either
    ``real_multipliers`` (per output channel, turned into (multiplier, shift) as TFLite
    does) or ``mult`` and ``shift``; ``act_min`` defaults to the output zero point (a
    fused ReLU).
    """
    if (real_multipliers is None) == (mult is None or shift is None):
        raise ValueError(f"{name}: give real_multipliers or mult and shift")
    if real_multipliers is not None:
        m, s = quantize_multipliers(real_multipliers)
        mult, shift = m.numpy(), s.numpy()
    act_min = output_zero_point if act_min is None else act_min
    layer = describe(name=name, kind=kind, x_shape=np.shape(x), w_shape=np.shape(w),
                     input_zero_point=input_zero_point, output_zero_point=output_zero_point, act_min=act_min,
                     act_max=act_max, stride=stride, padding=padding, **scales)
    ins = _checked_inputs(layer, x, w, bias, mult, shift)
    acc, y = golden_outputs(layer, *ins.values())
    return LayerVectors(layer, **ins, acc=acc.numpy(), y=y.numpy(), alpha=alpha)
