"""What every importer shares: the one error listing every unsupported node, and a builder
that turns quantized operators (integer weights, scales, zero points) into
:mod:`golden.graph` nodes with the TFLite requantization of :mod:`golden.quant`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from golden.graph import (INT8_MAX, INT8_MIN, Add, AveragePool, EngineNode, GlobalAveragePool, Graph, MaxPool,
                          Reshape, Tensor, add_params, pool_rescale)
from golden.layer import Kind, Layer
from golden.quant import INT32_MAX, INT32_MIN, quantize_multiplier, quantize_multipliers


@dataclass(frozen=True)
class Problem:
    """Why one source node cannot be imported."""
    node: str
    op: str
    why: str

    def __str__(self) -> str:
        return f"{self.node} ({self.op}): {self.why}"


class UnsupportedModel(ValueError):
    """A model with nodes nnaccel cannot import: every one of them, listed at once."""

    def __init__(self, path, problems: list[Problem]):
        self.path, self.problems = str(path), list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{self.path}: {len(self.problems)} unsupported node(s), nothing was imported:\n{lines}")


def clamp_range(zero_point: int, scale: float, lo: float | None, hi: float | None) -> tuple[int, int]:
    """The int8 range of a real clamp [lo, hi] (ReLU: lo = 0; ReLU6: 0, 6; Clip) on a tensor
    of ``scale`` and ``zero_point``: bounds rounded to the nearest representable value."""
    a, b = INT8_MIN, INT8_MAX
    if lo is not None and math.isfinite(lo):
        a = max(a, min(b, zero_point + round(lo / scale)))
    if hi is not None and math.isfinite(hi):
        b = min(b, max(a, zero_point + round(hi / scale)))
    return a, b


def requant_multipliers(reals) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (multiplier, shift) for :func:`golden.quant.requantize`, rounding once.

    TFLite's form (:func:`golden.quant.quantize_multipliers`: q in [2**30, 2**31), shift < 0
    for a multiplier below one) rounds twice: SaturatingRoundingDoublingHighMul leaves only
    ``-shift`` fractional bits, and RoundingDivideByPOT rounds again, so a value just below
    a half can round up (measured on the test model: 94% of final outputs equal to
    onnxruntime's, up to 2 LSB apart). For a multiplier M < 1 the same arithmetic with
    ``q = round(M * 2**31)`` and shift 0 rounds once (RoundingDivideByPOT by 0 is exact):
    99.9% equal, at most 1 LSB. It is used when q keeps at least 20 bits (relative error
    below 2**-20); otherwise, and for M >= 1, TFLite's form. Any int32 multiplier is a valid
    requantizer setting (the RTL takes the full range)."""
    reals = np.asarray(reals, dtype=np.float64).ravel()
    m, s = quantize_multipliers(reals)
    m, s = m.numpy(), s.numpy()
    q = np.floor(reals * (1 << 31) + 0.5)
    single = (reals < 1.0) & (q >= (1 << 20)) & (q < (1 << 31))
    return np.where(single, q, m).astype(np.int64), np.where(single, 0, s).astype(np.int64)


def ternary_levels(w: np.ndarray) -> np.ndarray | None:
    """Per output channel the k of weights in {-k, 0, k} (k = 1 for an all-zero channel), or
    None when some channel takes other values."""
    flat = np.abs(np.asarray(w, dtype=np.int64).reshape(w.shape[0], -1))
    k = flat.max(axis=1)
    if not ((flat == 0) | (flat == k[:, None])).all():
        return None
    return np.where(k > 0, k, 1)


class GraphBuilder:
    """Collects tensors, nodes, problems and notes; :meth:`finish` makes the :class:`Graph`
    or raises :class:`UnsupportedModel` with every problem."""

    def __init__(self, name: str, path, fmt: str):
        self.name, self.path, self.fmt = name, str(path), fmt
        self.tensors: dict[str, Tensor] = {}
        self.nodes: list = []
        self.problems: list[Problem] = []
        self.notes: list[str] = []

    # --- bookkeeping ------------------------------------------------------------------
    def problem(self, node: str, op: str, why: str) -> None:
        self.problems.append(Problem(node, op, why))

    def tensor(self, name: str, shape, scale: float, zero_point: int, unsigned: bool = False,
               source: str | None = None) -> Tensor:
        """A new int8 tensor; a uint8 source tensor (``unsigned``) gets its zero point shifted by 128."""
        zp = int(zero_point) - (128 if unsigned else 0)
        t = Tensor(name, tuple(shape), float(scale), zp, source=source or name, source_offset=128 if unsigned else 0)
        if name in self.tensors and self.tensors[name] != t:
            raise ValueError(f"tensor {name} defined twice")
        self.tensors[name] = t
        return t

    # --- nodes --------------------------------------------------------------------------
    def engine(self, name: str, op: str, x: Tensor, y: Tensor, w, w_scale, bias=None, *, stride: int = 1,
               padding: int = 0, groups: int = 1, act: tuple[int, int] = (INT8_MIN, INT8_MAX),
               meta: dict | None = None, bias_real=None) -> EngineNode | None:
        """A conv / depthwise / linear node: ``w`` int8 (O x C/g x KH x KW or O x K), ``w_scale``
        per output channel (or one), ``bias`` int32 with scale ``x.scale * w_scale`` (or
        ``bias_real``, float, quantized here as TFLite does). Requantization multipliers
        ``x.scale * w_scale[c] / y.scale`` by :func:`golden.quant.quantize_multipliers`. Weights
        in {-k, 0, k} per channel are made ternary, k folded into the multiplier, when the bias
        is a multiple of k (exactly the same integers out)."""
        w = np.asarray(w, dtype=np.int64)
        o = w.shape[0]
        w_scale = np.broadcast_to(np.asarray(w_scale, dtype=np.float64).ravel(), (o,)).copy() \
            if np.size(w_scale) in (1, o) else None
        if w_scale is None:
            self.problem(name, op, f"weight scale has {np.size(w_scale)} entries for {o} output channels")
            return None
        if bias is None:
            b = np.zeros(o, dtype=np.int64) if bias_real is None else np.round(
                np.asarray(bias_real, dtype=np.float64) / (x.scale * w_scale))
            if np.abs(b).max(initial=0) > INT32_MAX:
                self.problem(name, op, "bias does not fit int32 at scale input_scale * weight_scale")
                return None
            bias = b.astype(np.int64)
        bias = np.asarray(bias, dtype=np.int64).ravel()
        if w.ndim == 2:
            kind, in_shape, kernel = Kind.LINEAR, x.shape, (1, 1)
        else:
            c = x.shape[0]
            kind = Kind.CONV if groups == 1 else Kind.DEPTHWISE
            in_shape, kernel = x.shape, tuple(w.shape[2:])
            if groups != 1 and not (groups == c == o and w.shape[1] == 1):
                self.problem(name, op, f"grouped convolution (groups {groups}, {c} in, {o} out): only groups 1 "
                                       f"or depthwise (groups = in = out channels)")
                return None
        real = x.scale * w_scale / y.scale
        meta = dict(meta or {}, source_op=op, input_scale=x.scale, output_scale=y.scale,
                    weight_scale=[float(s) for s in w_scale])
        k = ternary_levels(w)
        if k is not None and (k > 1).any():
            if (bias % k == 0).all():
                w, bias, real = w // k[(slice(None),) + (None,) * (w.ndim - 1)], bias // k, real * k
                meta["ternary_k"] = [int(v) for v in k]
            else:
                meta["ternary_note"] = "weights in {-k, 0, k} but the bias is not a multiple of k: kept int8"
        try:
            mult, shift = requant_multipliers(real)
            layer = Layer(name=name, kind=kind, in_shape=in_shape, out_channels=o, kernel=kernel, stride=stride,
                          padding=padding, groups=groups, input_zero_point=x.zero_point,
                          output_zero_point=y.zero_point, act_min=act[0], act_max=act[1], input_scale=x.scale,
                          output_scale=y.scale)
            meta["real_multiplier"] = [float(r) for r in real]
            node = EngineNode(name, x.name, y.name, layer, w, bias, mult, shift, meta=meta)
        except ValueError as e:
            self.problem(name, op, str(e))
            return None
        if node.layer.out_shape != y.shape:
            raise ValueError(f"{name}: output shape {node.layer.out_shape} is not the tensor's {y.shape}")
        self.nodes.append(node)
        return node

    def add(self, name: str, op: str, a: Tensor, b: Tensor, y: Tensor, act=(INT8_MIN, INT8_MAX)) -> Add | None:
        if a.shape != b.shape:
            self.problem(name, op, f"broadcasting add ({a.shape} + {b.shape}): only same-shape inputs")
            return None
        try:
            node = Add(name, (a.name, b.name), y.name, a.zero_point, b.zero_point, y.zero_point,
                       **add_params(a.scale, b.scale, y.scale), act_min=act[0], act_max=act[1])
        except ValueError as e:
            self.problem(name, op, str(e))
            return None
        self.nodes.append(node)
        return node

    def maxpool(self, name: str, op: str, x: Tensor, y: Tensor, kernel, stride, padding) -> MaxPool | None:
        if (x.scale, x.zero_point) != (y.scale, y.zero_point):
            self.problem(name, op, "max pool changes the quantization (input and output scales differ)")
            return None
        node = MaxPool(name, x.name, y.name, kernel, stride, padding)
        self.nodes.append(node)
        return node

    def _rescale(self, x: Tensor, y: Tensor, count: int) -> dict:
        m, s, left = pool_rescale(x.scale, y.scale, count)
        return dict(in_zero_point=x.zero_point, out_zero_point=y.zero_point, mult=m, shift=s, left_shift=left)

    def avgpool(self, name: str, op: str, x: Tensor, y: Tensor, kernel, stride, padding, act=(INT8_MIN, INT8_MAX)):
        same = (x.scale, x.zero_point) == (y.scale, y.zero_point)
        if not same and padding:
            self.problem(name, op, "a padded average pool that changes the quantization (windows of "
                                   "different counts)")
            return None
        q = (dict(in_zero_point=x.zero_point, out_zero_point=y.zero_point) if same
             else self._rescale(x, y, kernel[0] * kernel[1]))
        node = AveragePool(name, x.name, y.name, kernel, stride, padding, **q, act_min=act[0], act_max=act[1])
        self.nodes.append(node)
        return node

    def global_avgpool(self, name: str, op: str, x: Tensor, y: Tensor, act=(INT8_MIN, INT8_MAX)):
        same = (x.scale, x.zero_point) == (y.scale, y.zero_point)
        q = (dict(in_zero_point=x.zero_point, out_zero_point=y.zero_point) if same
             else self._rescale(x, y, x.shape[1] * x.shape[2]))
        node = GlobalAveragePool(name, x.name, y.name, **q, act_min=act[0], act_max=act[1])
        self.nodes.append(node)
        return node

    def reshape(self, name: str, op: str, x: Tensor, y: Tensor) -> Reshape | None:
        if (x.scale, x.zero_point) != (y.scale, y.zero_point):
            self.problem(name, op, "reshape changes the quantization")
            return None
        node = Reshape(name, x.name, y.name, y.shape)
        self.nodes.append(node)
        return node

    # --- the end ------------------------------------------------------------------------
    def finish(self, input: str | None, output: str | None, input_source: str | None) -> Graph:
        if input is None:
            self.problem("(graph)", "input", "no quantized graph input (QuantizeLinear of the float input)")
        if output is None and not self.problems:
            self.problem("(graph)", "output", "the graph output is not a quantized tensor")
        if self.problems:
            raise UnsupportedModel(self.path, self.problems)
        used = {input} | {n.output for n in self.nodes}
        tensors = {k: t for k, t in self.tensors.items() if k in used}
        return Graph(self.name, input, output, tensors, tuple(self.nodes), notes=tuple(self.notes),
                     source={"format": self.fmt, "path": self.path}, input_source=input_source)


def int32_bias(values, name: str) -> np.ndarray:
    b = np.asarray(values).astype(np.int64).ravel()
    if b.size and (b.min() < INT32_MIN or b.max() > INT32_MAX):
        raise ValueError(f"{name}: bias outside int32")
    return b
