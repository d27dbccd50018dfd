"""The integer graph of an imported model: typed nodes on int8 tensors, run as pure
integer golden code.

Every tensor is int8 with a per-tensor scale and zero point (real = scale * (q - zero_point));
a source model's uint8 tensor becomes int8 with its zero point shifted by 128
(``q8 = q_u8 - 128``), so every consumer sees one format. A tensor's shape is one image's
shape: (C, H, W) or (K,).

Nodes, in execution order (each names its input tensor(s) and its output tensor):

* :class:`EngineNode` -- convolution, depthwise convolution or linear layer, the three kinds
  the engines run: a :class:`golden.layer.Layer` plus integer weights, int32 bias and the
  per-channel requantization (multiplier, shift); computed by :func:`golden.layer.golden_outputs`
  (:mod:`golden.conv`, :mod:`golden.quant`). ReLU / ReLU6 / Clip are folded into the layer's
  output clamp (act_min, act_max).
* :class:`Add` -- elementwise int8 add, TFLite's integer add (see its docstring).
* :class:`MaxPool`, :class:`AveragePool`, :class:`GlobalAveragePool` -- integer pooling.
* :class:`Reshape` -- flatten / reshape (same integers, same quantization).

:func:`run` runs a graph on a batch of int8 inputs; :meth:`Graph.layer_vectors` gives each
engine node's :class:`golden.layer.LayerVectors` for given inputs.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Union

import numpy as np
import torch

from golden.layer import Layer, LayerVectors, golden_outputs
from golden.quant import (INT32_MAX, INT32_MIN, SHIFT_MAX, SHIFT_MIN, _i64, multiply_by_quantized_multiplier,
                          quantize_multiplier)

INT8_MIN, INT8_MAX = -128, 127


def _int8(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or int(value) != value or not INT8_MIN <= int(value) <= INT8_MAX:
        raise ValueError(f"{name} must be an int8 value, not {value!r}")
    return int(value)


def _clamp_range(node: str, act_min, act_max) -> tuple[int, int]:
    lo, hi = _int8(act_min, f"{node}: act_min"), _int8(act_max, f"{node}: act_max")
    if lo > hi:
        raise ValueError(f"{node}: act_min {lo} exceeds act_max {hi}")
    return lo, hi


def _shape(shape, what: str) -> tuple[int, ...]:
    """``shape`` as a tuple of ints, every dimension positive (ValueError naming ``what``)."""
    dims = tuple(int(s) for s in shape)
    if not dims or min(dims) < 1:
        raise ValueError(f"{what}: shape must be positive dimensions, not {shape}")
    return dims


def _set(node, **values) -> None:
    """Normalized values into a frozen node's fields."""
    for key, value in values.items():
        object.__setattr__(node, key, value)


def _set_int8(node, *keys: str) -> None:
    """The node's fields ``keys`` (zero points) checked and normalized as int8 values."""
    _set(node, **{k: _int8(getattr(node, k), f"{node.name}: {k}") for k in keys})


def _set_clamp(node) -> None:
    """The node's output clamp (act_min, act_max) checked and normalized."""
    lo, hi = _clamp_range(node.name, node.act_min, node.act_max)
    _set(node, act_min=lo, act_max=hi)


@dataclass(frozen=True)
class Tensor:
    """One int8 tensor: name, one image's shape, scale and zero point.

    ``source`` names the source model's tensor holding the same integers (for the agreement
    measurement), ``source_offset`` is what the source adds (128 where it holds uint8)."""
    name: str
    shape: tuple[int, ...]
    scale: float
    zero_point: int
    source: str | None = None
    source_offset: int = 0

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"tensor name must be a non-empty string, not {self.name!r}")
        object.__setattr__(self, "shape", _shape(self.shape, f"tensor {self.name}"))
        if not (math.isfinite(float(self.scale)) and float(self.scale) > 0):
            raise ValueError(f"tensor {self.name}: scale must be finite and > 0, not {self.scale}")
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "zero_point", _int8(self.zero_point, f"tensor {self.name}: zero point"))
        if self.source_offset not in (0, 128):
            raise ValueError(f"tensor {self.name}: source_offset must be 0 or 128, not {self.source_offset}")

    def dequantize(self, q) -> np.ndarray:
        return (np.asarray(q, dtype=np.float64) - self.zero_point) * self.scale


def _pool_window(name: str, kernel, stride, padding) -> tuple[tuple[int, int], int, int]:
    k = tuple(int(v) for v in kernel)
    if len(k) != 2 or min(k) < 1:
        raise ValueError(f"{name}: kernel must be (KH, KW) >= 1, not {kernel}")
    if int(stride) < 1 or int(padding) < 0:
        raise ValueError(f"{name}: stride must be >= 1 and padding >= 0, not {stride}, {padding}")
    if int(padding) >= min(k):
        raise ValueError(f"{name}: padding {padding} must be smaller than the kernel {k}")
    return k, int(stride), int(padding)


def _pool_out(shape, kernel, stride, padding) -> tuple[int, int, int]:
    c, h, w = shape
    return (c, (h + 2 * padding - kernel[0]) // stride + 1, (w + 2 * padding - kernel[1]) // stride + 1)


@dataclass(frozen=True, eq=False)
class _OneInput:
    """What every single-input node has first: its name, input and output tensors (a
    subclass adds its own fields after them; eq=False leaves equality to each node)."""
    name: str
    input: str
    output: str

    def __post_init__(self):
        pass

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)


@dataclass(frozen=True, eq=False)
class _Windowed(_OneInput):
    """A single-input node over kernel windows (MaxPool, AveragePool): kernel (KH, KW) >= 1,
    stride >= 1, 0 <= padding < the kernel."""
    kernel: tuple[int, int]
    stride: int
    padding: int = 0

    def __post_init__(self):
        k, s, p = _pool_window(self.name, self.kernel, self.stride, self.padding)
        _set(self, kernel=k, stride=s, padding=p)


@dataclass(frozen=True, eq=False)
class EngineNode(_OneInput):
    """A conv / depthwise / linear layer: ``layer`` describes it (shapes, zero points, clamp);
    ``w`` (int8), ``bias`` (int32), ``mult`` and ``shift`` (per output channel) are its data.
    ``alpha`` is the ternary scale where the weights are ternary (k folded into ``mult``);
    ``meta`` holds provenance (source node, real multipliers, sparsity)."""
    layer: Layer
    w: np.ndarray
    bias: np.ndarray
    mult: np.ndarray
    shift: np.ndarray
    alpha: float | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.layer, Layer):
            raise TypeError(f"{self.name}: layer must be a golden.layer.Layer, not {type(self.layer).__name__}")
        o = self.layer.out_channels
        for key, shape, lo, hi in (("w", self.layer.weight_shape, INT8_MIN, INT8_MAX),
                                   ("bias", (o,), INT32_MIN, INT32_MAX), ("mult", (o,), INT32_MIN, INT32_MAX),
                                   ("shift", (o,), SHIFT_MIN, SHIFT_MAX)):
            a = np.asarray(getattr(self, key))
            if not np.issubdtype(a.dtype, np.integer):
                raise ValueError(f"{self.name}: {key} must hold integers, not {a.dtype}")
            if a.shape != tuple(shape):
                raise ValueError(f"{self.name}: {key} has shape {a.shape}, expected {tuple(shape)}")
            if a.size and (a.min() < lo or a.max() > hi):
                raise ValueError(f"{self.name}: {key} holds values outside [{lo}, {hi}]")
            a = a.astype(np.int64)
            object.__setattr__(self, key, a)

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.layer.out_shape

    @property
    def ternary(self) -> bool:
        return bool(np.isin(self.w, (-1, 0, 1)).all())

    @property
    def weight_sparsity(self) -> float:
        """Fraction of zero weights."""
        return float((self.w == 0).mean())

    def compute(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        """(int32 accumulators, int8 outputs) on int8 inputs ``x`` (N x in_shape)."""
        return golden_outputs(self.layer, x, self.w, self.bias, self.mult, self.shift)

    def vectors(self, x) -> LayerVectors:
        """This layer's typed golden vectors on int8 inputs ``x``."""
        acc, y = self.compute(x)
        return LayerVectors(self.layer, np.asarray(x), self.w, self.bias, self.mult, self.shift, acc.numpy(),
                            y.numpy(), alpha=self.alpha, meta=dict(self.meta))


def add_params(scale1: float, scale2: float, scale_out: float, left_shift: int = 20) -> dict:
    """TFLite's integer-add parameters (``PrepareGeneralSubOp`` / ``Prepare`` in
    tensorflow/lite/kernels/add.cc, int8): with ``twice_max = 2 * max(scale1, scale2)``,
    input multipliers ``scale_i / twice_max`` (<= 0.5) and output multiplier
    ``twice_max / (2**left_shift * scale_out)``, each by ``QuantizeMultiplierSmallerThanOneExp``
    (our :func:`golden.quant.quantize_multiplier`, shift <= 0)."""
    twice_max = 2.0 * max(float(scale1), float(scale2))
    m1, s1 = quantize_multiplier(float(scale1) / twice_max)
    m2, s2 = quantize_multiplier(float(scale2) / twice_max)
    mo, so = quantize_multiplier(twice_max / ((1 << left_shift) * float(scale_out)))
    if max(s1, s2, so) > 0:
        raise ValueError(f"add: output scale {scale_out} is too small for inputs of scales {scale1}, {scale2}")
    return dict(mult1=m1, shift1=s1, mult2=m2, shift2=s2, out_mult=mo, out_shift=so, left_shift=left_shift)


@dataclass(frozen=True)
class Add:
    """Elementwise int8 add of two same-shape tensors, TFLite's integer add
    (``reference_integer_ops::AddElementwise``, tensorflow/lite/kernels/internal/reference/
    integer_ops/add.h; parameters from :func:`add_params`)::

        a_i   = (x_i - zp_i) * 2**left_shift                  # left_shift = 20; |a_i| < 2**28
        s_i   = MultiplyByQuantizedMultiplierSmallerThanOneExp(a_i, mult_i, shift_i)
        y     = MultiplyByQuantizedMultiplierSmallerThanOneExp(s_1 + s_2, out_mult, out_shift) + zp_out
        y     = clamp(y, act_min, act_max)

    ``MultiplyByQuantizedMultiplierSmallerThanOneExp(x, m, s)`` (s <= 0) is
    ``RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x, m), -s)``, i.e.
    :func:`golden.quant.multiply_by_quantized_multiplier` with a shift <= 0.
    """
    name: str
    inputs: tuple[str, str]
    output: str
    zero_point1: int
    zero_point2: int
    out_zero_point: int
    mult1: int
    shift1: int
    mult2: int
    shift2: int
    out_mult: int
    out_shift: int
    left_shift: int = 20
    act_min: int = INT8_MIN
    act_max: int = INT8_MAX

    def __post_init__(self):
        if len(self.inputs) != 2:
            raise ValueError(f"{self.name}: add takes two inputs, not {self.inputs}")
        _set(self, inputs=tuple(self.inputs))
        _set_int8(self, "zero_point1", "zero_point2", "out_zero_point")
        for k in ("mult1", "mult2", "out_mult"):
            if not 0 <= int(getattr(self, k)) <= INT32_MAX:
                raise ValueError(f"{self.name}: {k} must lie in [0, 2**31), not {getattr(self, k)}")
        for k in ("shift1", "shift2", "out_shift"):
            if not SHIFT_MIN <= int(getattr(self, k)) <= 0:
                raise ValueError(f"{self.name}: {k} must lie in [{SHIFT_MIN}, 0], not {getattr(self, k)}")
        if not 0 <= int(self.left_shift) <= 20:
            raise ValueError(f"{self.name}: left_shift must lie in [0, 20], not {self.left_shift}")
        _set_clamp(self)

    def compute(self, x1, x2) -> torch.Tensor:
        a1 = (_i64(x1) - self.zero_point1) << self.left_shift
        a2 = (_i64(x2) - self.zero_point2) << self.left_shift
        s = (multiply_by_quantized_multiplier(a1, self.mult1, self.shift1)
             + multiply_by_quantized_multiplier(a2, self.mult2, self.shift2))
        y = multiply_by_quantized_multiplier(s, self.out_mult, self.out_shift) + self.out_zero_point
        return y.clamp(self.act_min, self.act_max)


@dataclass(frozen=True)
class MaxPool(_Windowed):
    """Max over each kernel window of int8 values (input and output share scale and zero
    point, so the max of the integers is the max of the reals). Padding never wins: padded
    positions are ignored (ONNX: -inf), and ``padding < kernel`` keeps every window non-empty."""

    def compute(self, x) -> torch.Tensor:
        x = _i64(x)
        p = self.padding
        x = torch.nn.functional.pad(x, (p,) * 4, value=INT8_MIN - 1)  # below every int8: never the max
        cols = x.unfold(2, self.kernel[0], self.stride).unfold(3, self.kernel[1], self.stride)
        return cols.amax(dim=(-2, -1))


def _rounded_div(acc: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """TFLite's ``acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count`` with C's
    truncating division: the average rounded half away from zero."""
    half = count // 2
    num = torch.where(acc > 0, acc + half, acc - half)
    q = num.abs() // count
    return torch.where(num < 0, -q, q)


def _average(x, kernel, stride, padding, in_zp, out_zp, mult, shift, left_shift, act_min, act_max) -> torch.Tensor:
    """Windowed integer average (see :class:`AveragePool`)."""
    x = _i64(x)
    ones = torch.ones_like(x[:1, :1])
    p = padding
    same = (in_zp == out_zp and (mult, shift, left_shift) == (1 << 30, 1, 0))
    d = x if same else x - in_zp
    d = torch.nn.functional.pad(d, (p,) * 4)
    valid = torch.nn.functional.pad(ones, (p,) * 4)
    acc = d.unfold(2, kernel[0], stride).unfold(3, kernel[1], stride).sum(dim=(-2, -1))
    count = valid.unfold(2, kernel[0], stride).unfold(3, kernel[1], stride).sum(dim=(-2, -1))
    if same:
        y = _rounded_div(acc, count)
    else:
        y = multiply_by_quantized_multiplier(acc << left_shift, mult, shift) + out_zp
    return y.clamp(act_min, act_max)


def pool_rescale(input_scale: float, output_scale: float, count: int) -> tuple[int, int, int]:
    """(mult, shift, left_shift) of a rescaling average over ``count`` int8 inputs: the real
    multiplier ``in / (out * count)`` over ``2**left_shift``, where the shifted sum
    (|sum| <= 255 * count) still fits int32 and the shift stays >= SHIFT_MIN."""
    real = float(input_scale) / (float(output_scale) * int(count))
    left = max(0, min(20, 30 - (255 * int(count)).bit_length()))
    while True:
        m, s = quantize_multiplier(real / (1 << left))
        if m == 0 and real > 0 and left > 0 or s < SHIFT_MIN:
            left -= 1
            continue
        return m, s, left


@dataclass(frozen=True, eq=False)
class _Averaging(_OneInput):
    """The quantization of an average (AveragePool, GlobalAveragePool), after the node's other
    fields: zero points, the rescaling (mult, shift, left_shift; see :class:`AveragePool`) and
    the output clamp."""
    in_zero_point: int = 0
    out_zero_point: int = 0
    mult: int = 1 << 30
    shift: int = 1
    left_shift: int = 0
    act_min: int = INT8_MIN
    act_max: int = INT8_MAX

    def __post_init__(self):
        super().__post_init__()
        _set_int8(self, "in_zero_point", "out_zero_point")
        _set_clamp(self)

    def average(self, x, kernel, stride: int, padding: int) -> torch.Tensor:
        return _average(x, kernel, stride, padding, self.in_zero_point, self.out_zero_point, self.mult, self.shift,
                        self.left_shift, self.act_min, self.act_max)


@dataclass(frozen=True)
class AveragePool(_Averaging, _Windowed):
    """Average over each kernel window; padded positions are not counted (ONNX
    ``count_include_pad = 0``, TFLite's ``filter_count``).

    Same input and output quantization (``mult, shift == 2**30, 1``, the multiplier 1.0):
    TFLite's ``reference_integer_ops::AveragePool`` on the raw int8 values: ``acc = sum(x)``,
    ``y = clamp(round_half_away_from_zero(acc / count))``.

    Different quantization (a rescaling average, onnxruntime's QLinearAveragePool /
    QLinearGlobalAveragePool): ``acc = sum(x - in_zp)``, ``y = clamp(
    MultiplyByQuantizedMultiplier(acc, mult, shift) + out_zp)`` with ``mult, shift`` from
    ``in_scale / (out_scale * count)``: the count folded into the multiplier (TFLite's
    reference ``Mean`` divides after the multiplier, a third rounding). The sum is small
    (at most 255 * count), so it is first shifted left by ``left_shift`` bits, and the
    multiplier divided by ``2**left_shift``, as TFLite's add does (left_shift 20): without it
    SaturatingRoundingDoublingHighMul would round the sum at integer resolution and the
    second rounding would then see false halves. The windows must all have the same count
    (no padding); :func:`pool_rescale` gives (mult, shift, left_shift)."""

    def compute(self, x) -> torch.Tensor:
        return self.average(x, self.kernel, self.stride, self.padding)


@dataclass(frozen=True)
class GlobalAveragePool(_Averaging):
    """Average over each channel's whole H x W plane: :class:`AveragePool`'s arithmetic with
    the kernel equal to the input plane (output C x 1 x 1)."""

    def compute(self, x) -> torch.Tensor:
        x = _i64(x)
        return self.average(x, tuple(x.shape[2:]), 1, 0)


@dataclass(frozen=True)
class Reshape(_OneInput):
    """Flatten / reshape: the same integers in a new per-image shape."""
    shape: tuple[int, ...]

    def __post_init__(self):
        _set(self, shape=_shape(self.shape, self.name))

    def compute(self, x) -> torch.Tensor:
        x = _i64(x)
        return x.reshape((x.shape[0],) + self.shape)


Node = Union[EngineNode, Add, MaxPool, AveragePool, GlobalAveragePool, Reshape]
NODE_TYPES = (EngineNode, Add, MaxPool, AveragePool, GlobalAveragePool, Reshape)


def _out_shape(node, shapes: Mapping[str, tuple[int, ...]]) -> tuple[int, ...]:
    """The output shape a node computes from its input shapes (ValueError if they do not fit)."""
    ins = [shapes[i] for i in node.inputs]
    if isinstance(node, EngineNode):
        if ins[0] != node.layer.in_shape:
            raise ValueError(f"{node.name}: input {node.input} has shape {ins[0]}, the layer takes "
                             f"{node.layer.in_shape}")
        return node.layer.out_shape
    if isinstance(node, Add):
        if ins[0] != ins[1]:
            raise ValueError(f"{node.name}: inputs have shapes {ins[0]} and {ins[1]} (no broadcasting)")
        return ins[0]
    if isinstance(node, Reshape):
        if math.prod(ins[0]) != math.prod(node.shape):
            raise ValueError(f"{node.name}: cannot reshape {ins[0]} to {node.shape}")
        return node.shape
    if len(ins[0]) != 3:
        raise ValueError(f"{node.name}: pooling takes C x H x W inputs, not {ins[0]}")
    if isinstance(node, GlobalAveragePool):
        return (ins[0][0], 1, 1)
    c, h, w = ins[0]
    if h + 2 * node.padding < node.kernel[0] or w + 2 * node.padding < node.kernel[1]:
        raise ValueError(f"{node.name}: kernel {node.kernel} is larger than the padded input")
    return _pool_out(ins[0], node.kernel, node.stride, node.padding)


def _check_quant(node, t: Mapping[str, Tensor]) -> None:
    """Zero points a node was built with must be those of its tensors."""
    i, o = t[node.inputs[0]], t[node.output]
    if isinstance(node, EngineNode):
        L = node.layer
        if (L.input_zero_point, L.output_zero_point) != (i.zero_point, o.zero_point):
            raise ValueError(f"{node.name}: layer zero points ({L.input_zero_point}, {L.output_zero_point}) are not "
                             f"its tensors' ({i.zero_point}, {o.zero_point})")
    elif isinstance(node, Add):
        got = (node.zero_point1, node.zero_point2, node.out_zero_point)
        want = (t[node.inputs[0]].zero_point, t[node.inputs[1]].zero_point, o.zero_point)
        if got != want:
            raise ValueError(f"{node.name}: zero points {got} are not its tensors' {want}")
    elif isinstance(node, (AveragePool, GlobalAveragePool)):
        if (node.in_zero_point, node.out_zero_point) != (i.zero_point, o.zero_point):
            raise ValueError(f"{node.name}: zero points are not its tensors'")
    elif (i.scale, i.zero_point) != (o.scale, o.zero_point):  # MaxPool, Reshape
        raise ValueError(f"{node.name}: input and output quantization differ ({i.scale}, {i.zero_point}) vs "
                         f"({o.scale}, {o.zero_point})")


@dataclass(frozen=True, eq=False)
class Graph:
    """An integer graph: tensors by name, nodes in execution order, one input and one output.

    ``input_source`` names the source model's float input, quantized by
    :meth:`quantize_input` with the input tensor's scale and zero point; ``notes`` are the
    importer's remarks (a dropped Softmax, ...); ``source`` is where it came from
    (``{"format": ..., "path": ...}``)."""
    name: str
    input: str
    output: str
    tensors: Mapping[str, Tensor]
    nodes: tuple
    notes: tuple[str, ...] = ()
    source: Mapping = field(default_factory=dict)
    input_source: str | None = None

    def __post_init__(self):
        tensors = dict(self.tensors)
        for k, t in tensors.items():
            if not isinstance(t, Tensor) or t.name != k:
                raise ValueError(f"graph {self.name}: tensors must map each name to its Tensor ({k!r})")
        object.__setattr__(self, "tensors", MappingProxyType(tensors))
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "notes", tuple(self.notes))
        object.__setattr__(self, "source", MappingProxyType(dict(self.source)))
        if self.input not in tensors:
            raise ValueError(f"graph {self.name}: input {self.input!r} is not a tensor")
        shapes = {self.input: tensors[self.input].shape}
        names = set()
        for n in self.nodes:
            if not isinstance(n, NODE_TYPES):
                raise TypeError(f"graph {self.name}: {n!r} is not a graph node")
            if n.name in names:
                raise ValueError(f"graph {self.name}: two nodes are named {n.name!r}")
            names.add(n.name)
            for i in n.inputs:
                if i not in shapes:
                    raise ValueError(f"{n.name}: input {i!r} is not computed before it")
            if n.output in shapes or n.output not in tensors:
                raise ValueError(f"{n.name}: output {n.output!r} is computed twice or has no tensor")
            shape = _out_shape(n, shapes)
            if shape != tensors[n.output].shape:
                raise ValueError(f"{n.name}: computes shape {shape}, its output tensor {n.output} has "
                                 f"{tensors[n.output].shape}")
            _check_quant(n, tensors)
            shapes[n.output] = shape
        if self.output not in shapes:
            raise ValueError(f"graph {self.name}: output {self.output!r} is never computed")

    @property
    def engine_nodes(self) -> list[EngineNode]:
        return [n for n in self.nodes if isinstance(n, EngineNode)]

    def quantize_input(self, x) -> np.ndarray:
        """Float inputs (N x input shape) -> int8, as ONNX QuantizeLinear does: ``x / scale`` in
        float32, rounded half to even, plus the zero point, saturated."""
        t = self.tensors[self.input]
        x = np.asarray(x, dtype=np.float32)
        if x.ndim < 1 or tuple(x.shape[1:]) != t.shape:
            raise ValueError(f"input has shape {x.shape}, the model takes N x {' x '.join(map(str, t.shape))}")
        q = np.rint(x / np.float32(t.scale)).astype(np.int64) + t.zero_point
        return np.clip(q, INT8_MIN, INT8_MAX)

    def dequantize(self, name: str, q) -> np.ndarray:
        return self.tensors[name].dequantize(q)

    def layer_vectors(self, x, images: int | None = None) -> list[LayerVectors]:
        """Each engine node's typed vectors on int8 graph inputs ``x`` (the first ``images``)."""
        x = np.asarray(x)[:images]
        values = run(self, x, keep=True)
        return [n.vectors(values[n.input]) for n in self.engine_nodes]

    def to_json(self) -> dict:
        """The graph as plain JSON data (no weights): tensors, nodes, quantization, sparsity."""
        def node(n) -> dict:
            d = {"name": n.name, "op": type(n).__name__, "inputs": list(n.inputs), "output": n.output}
            if isinstance(n, EngineNode):
                L = n.layer
                d.update(kind=L.kind.value, in_shape=list(L.in_shape), out_channels=L.out_channels,
                         kernel=list(L.kernel), stride=L.stride, padding=L.padding, groups=L.groups,
                         act_min=L.act_min, act_max=L.act_max, ternary=n.ternary, alpha=n.alpha,
                         weight_sparsity=round(n.weight_sparsity, 6), macs_per_image=L.macs_per_image,
                         mult=n.mult.tolist(), shift=n.shift.tolist(),
                         **{k: v for k, v in n.meta.items() if _jsonable(v)})
            else:
                d.update({f.name: (list(v) if isinstance(v, tuple) else v)
                          for f in dataclasses.fields(n) if f.name not in ("name", "input", "inputs", "output")
                          for v in [getattr(n, f.name)]})
            return d
        return {"name": self.name, "input": self.input, "output": self.output, "input_source": self.input_source,
                "source": dict(self.source), "notes": list(self.notes),
                "tensors": [dataclasses.asdict(t) | {"shape": list(t.shape)} for t in self.tensors.values()],
                "nodes": [node(n) for n in self.nodes]}


def _jsonable(v) -> bool:
    return isinstance(v, (str, int, float, bool, type(None))) or (
        isinstance(v, (list, tuple)) and all(isinstance(e, (str, int, float, bool)) for e in v))


def run(graph: Graph, x, keep: bool = False):
    """Run ``graph`` on int8 inputs ``x`` (N x input shape): the output tensor's int8 values
    (int64 numpy array), or with ``keep`` a dict of every tensor's values by name."""
    x = np.asarray(x)
    shape = graph.tensors[graph.input].shape
    if x.ndim < 1 or tuple(x.shape[1:]) != shape:
        raise ValueError(f"graph {graph.name}: input has shape {x.shape}, expected N x {shape}")
    if x.size and (x.min() < INT8_MIN or x.max() > INT8_MAX or not np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"graph {graph.name}: input must hold int8 values")
    values = {graph.input: torch.as_tensor(x.astype(np.int64))}
    for n in graph.nodes:
        if isinstance(n, EngineNode):
            values[n.output] = n.compute(values[n.input])[1]
        else:
            values[n.output] = n.compute(*(values[i] for i in n.inputs))
    if keep:
        return {k: v.numpy() for k, v in values.items()}
    return values[graph.output].numpy()
