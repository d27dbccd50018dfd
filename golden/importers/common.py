"""What every importer shares: the one error listing every unsupported node, and a builder
that turns quantized operators (integer weights, scales, zero points) into
:mod:`golden.graph` nodes with the TFLite requantization of :mod:`golden.quant`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from golden.graph import (INT8_MAX, INT8_MIN, Add, AveragePool, EngineNode, GlobalAveragePool, Graph, MaxPool,
                          Reshape, Tensor, add_params, pool_rescale)
from golden.layer import Kind, Layer
from golden.quant import INT32_MAX, INT32_MIN, quantize_multipliers


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
               meta: dict | None = None, bias_real=None, alpha: float | None = None) -> EngineNode | None:
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
            node = EngineNode(name, x.name, y.name, layer, w, bias, mult, shift, alpha=alpha, meta=meta)
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


# --- ONNX: what the ONNX importers (QDQ / QOperator, QONNX, float) share ---------------
QOPERATOR_OPS = {"QLinearConv", "QLinearMatMul", "QGemm", "QLinearAdd", "QLinearAveragePool",
                 "QLinearGlobalAveragePool", "QLinearSoftmax"}
SOFTMAX = {"Softmax", "LogSoftmax", "QLinearSoftmax"}


def load_onnx(path):
    """The ONNX model at ``path`` (checked), or a one-line ValueError / FileNotFoundError."""
    import onnx
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    try:
        model = onnx.load(str(path))
    except Exception as e:  # protobuf's DecodeError and friends
        raise ValueError(f"{path}: not a readable ONNX model ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else 'corrupt'})") from None
    if not model.graph.node:
        raise ValueError(f"{path}: not an ONNX model (no graph nodes)")
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        raise ValueError(f"{path}: invalid ONNX model ({str(e).splitlines()[0][:160]})") from None
    return model


def onnx_form(model) -> str:
    """"qonnx", "qoperator", "qdq" or "float"."""
    ops = {n.op_type for n in model.graph.node}
    domains = {n.domain for n in model.graph.node}
    if any(d.startswith("qonnx") or d.startswith("finn") for d in domains) or ops & {"Quant", "BipolarQuant"}:
        return "qonnx"
    if ops & QOPERATOR_OPS:
        return "qoperator"
    if ops & {"QuantizeLinear", "DequantizeLinear"}:
        return "qdq"
    return "float"


def onnx_attrs(node) -> dict:
    import onnx
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class OnnxGraph:
    """Constants, producers and consumers of an ONNX graph."""

    def __init__(self, model):
        from onnx import numpy_helper
        g = model.graph
        self.nodes = list(g.node)
        self.consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        for n in self.nodes:
            if n.op_type == "Constant":
                a = onnx_attrs(n)
                if "value" in a:
                    self.consts[n.output[0]] = numpy_helper.to_array(a["value"])
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.consumers = defaultdict(list)
        for n in self.nodes:
            for i in n.input:
                self.consumers[i].append(n)
        self.outputs = [o.name for o in g.output]
        self.inputs = [i for i in g.input if i.name not in self.consts]
        self.names = {id(n): (n.name or f"{n.op_type}_{k}") for k, n in enumerate(self.nodes)}

    def name(self, node) -> str:
        return self.names[id(node)]

    def const(self, name: str):
        return self.consts.get(name) if name else None

    def input_shape(self, inp) -> tuple | None:
        dims = inp.type.tensor_type.shape.dim
        shape = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        if len(shape) < 2 or any(s is None or s < 1 for s in shape[1:]):
            return None
        return tuple(shape[1:])


def scalar(a) -> float:
    return float(np.asarray(a).ravel()[0])


def unsigned_zp(zp) -> bool:
    return np.asarray(zp).dtype == np.uint8


def conv_geometry(attrs: dict, kernel) -> tuple[int, int, int, str | None]:
    """(stride, padding, groups, problem) of a Conv / pool's attributes."""
    nd = len(kernel)
    if nd != 2:
        return 1, 0, 1, f"{nd}-D kernel: only 2-D"
    dil = list(attrs.get("dilations", [1] * nd))
    if any(d != 1 for d in dil):
        return 1, 0, 1, f"dilation {max(dil)}: only dilation 1"
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        return 1, 0, 1, f"auto_pad {attrs['auto_pad']!r}: give explicit pads"
    pads = list(attrs.get("pads", [0] * (2 * nd)))
    if len(set(pads)) > 1:
        return 1, 0, 1, f"asymmetric padding {pads}: only the same padding on every side"
    strides = list(attrs.get("strides", [1] * nd))
    if len(set(strides)) > 1:
        return 1, 0, 1, f"strides {strides}: only equal strides"
    if attrs.get("ceil_mode", 0):
        return 1, 0, 1, "ceil_mode 1: only floor"
    return int(strides[0]), int(pads[0]) if pads else 0, int(attrs.get("group", 1)), None


class OnnxImporter:
    """Shared operator logic; subclasses say how operands and outputs are found (``act_in``,
    ``act_out``) and walk the graph (``run``), handing the host operators to :meth:`host_op`."""

    QUANTIZERS: tuple[str, ...] = ()  # what may stand between a dropped Softmax and the graph output

    def __init__(self, model, path, fmt: str):
        self.m = OnnxGraph(model)
        self.b = GraphBuilder(Path(path).stem, path, fmt)
        self.done: set[int] = set()
        self.input = self.output = self.input_source = None
        self.dropped = {}  # tensor name -> the graph tensor it stands for (dropped Softmax)
        self.aliases = {}  # a second QuantizeLinear of the same tensor -> the first

    def bad(self, node, why: str) -> None:
        self.b.problem(self.m.name(node), node.op_type, why)

    def pending(self, *skip: str):
        """(node, op type, attributes) of each node in order, but for Constants, the op types
        ``skip`` and the nodes already claimed (``done``, looked up as the walk reaches them)."""
        for node in self.m.nodes:
            op = node.op_type
            if id(node) in self.done or op == "Constant" or op in skip:
                continue
            yield node, op, onnx_attrs(node)

    # --- the host operators every form shares -------------------------------------------
    def host_op(self, node, op: str, attrs: dict) -> bool:
        """Add, AveragePool, GlobalAveragePool and :meth:`kept_op`'s operators: True when ``op``
        is one of them (handled here), False otherwise."""
        if op == "Add":
            x1, x2 = self.act_in(node, node.input[0]), self.act_in(node, node.input[1])
            yspec = self.act_out(node, node.output[0])
            if x1 is not None and x2 is not None and yspec is not None:
                y, act = self.out_tensor(yspec, x1.shape)
                self.b.add(self.m.name(node), op, x1, x2, y, act)
        elif op in ("AveragePool", "GlobalAveragePool"):
            self.pool(node, self.act_in(node, node.input[0]), self.act_out(node, node.output[0]), attrs,
                      "avg" if op == "AveragePool" else "global")
        else:
            return self.kept_op(node, op, attrs)
        return True

    def kept_op(self, node, op: str, attrs: dict) -> bool:
        """MaxPool, Flatten and Reshape (the output spec from :meth:`same`) and a trailing Softmax
        (:meth:`softmax`): True when ``op`` is one of them (handled here), False otherwise."""
        if op in ("MaxPool", "Flatten", "Reshape"):
            x = self.act_in(node, node.input[0])
            yspec = self.same(node, x)
            if op == "MaxPool":
                self.pool(node, x, yspec, attrs, "max")
            else:
                self.reshape(node, x, yspec, attrs)
        elif op in SOFTMAX:
            self.softmax(node)
        else:
            return False
        return True

    def same(self, node, x):
        """The output spec of MaxPool / Flatten / Reshape, which keep their input's quantization:
        the input's, under the output's name."""
        if x is None:
            return None
        return node.output[0], x.scale, x.zero_point + x.source_offset, x.source_offset == 128, (None, None)

    def softmax(self, node):
        """Drop a trailing Softmax: its output must reach only the graph output (through single
        consumers in ``QUANTIZERS``, then claimed). Its input tensor stands for the graph output
        (``dropped``); returns it, or None."""
        x = self.act_in(node, node.input[0])
        if x is None:
            return None
        out, seen = node.output[0], []
        while out not in self.m.outputs:
            cons = self.m.consumers.get(out, [])
            if len(cons) != 1 or cons[0].op_type not in self.QUANTIZERS:
                return self.bad(node, "Softmax that is not the last operator")
            seen.append(cons[0])
            out = cons[0].output[0]
        for c in seen:
            self.done.add(id(c))
        self.dropped[out] = x
        self.b.notes.append(f"dropped the trailing {node.op_type} {self.m.name(node)}: the top-1 class is unchanged; "
                            f"the output is its input, {x.name}")
        return x

    def find_output(self) -> None:
        """The graph's one output: a dropped Softmax's input, or :meth:`output_source` of it."""
        if len(self.m.outputs) != 1:
            self.b.problem("(graph)", "output", f"{len(self.m.outputs)} graph outputs: only one")
            return
        name = self.m.outputs[0]
        name = self.dropped[name].name if name in self.dropped else self.output_source(name)
        if name in self.b.tensors:
            self.output = name

    def output_source(self, name: str) -> str:
        """The graph tensor that holds the graph output ``name`` (a second quantizer's alias)."""
        return self.aliases.get(name, name)

    # --- operators on resolved operands -------------------------------------------------
    def conv(self, node, x, w, ws, wzp, bias, yspec, attrs, bias_real=None, meta=None):
        if x is None or w is None or yspec is None:
            return
        if len(x.shape) != 3:
            return self.bad(node, f"input of shape {x.shape}: a 2-D convolution takes C x H x W")
        stride, pad, groups, why = conv_geometry(attrs, w.shape[2:])
        if why:
            return self.bad(node, why)
        c, h, wd = x.shape
        o, kh, kw = w.shape[0], w.shape[2], w.shape[3]
        if h + 2 * pad < kh or wd + 2 * pad < kw:
            return self.bad(node, f"kernel {kh}x{kw} larger than the padded input")
        shape = (o, (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1)
        y, act = self.out_tensor(yspec, shape)
        self.b.engine(self.m.name(node), node.op_type, x, y, w, ws, bias, stride=stride, padding=pad,
                      groups=groups, act=act, meta={"source_node": self.m.name(node), **(meta or {})},
                      bias_real=bias_real)

    def linear(self, node, x, w, ws, bias, yspec, bias_real=None, meta=None):
        """``w`` is O x K already."""
        if x is None or w is None or yspec is None:
            return
        if len(x.shape) != 1 or x.shape[0] != w.shape[1]:
            return self.bad(node, f"input of shape {x.shape} for a weight of shape {w.shape}: a linear layer "
                                  f"takes N x K (flatten first)")
        y, act = self.out_tensor(yspec, (w.shape[0],))
        self.b.engine(self.m.name(node), node.op_type, x, y, w, ws, bias, act=act,
                      meta={"source_node": self.m.name(node), **(meta or {})}, bias_real=bias_real)

    def pool(self, node, x, yspec, attrs, kind: str):
        if x is None or yspec is None:
            return
        if len(x.shape) != 3:
            return self.bad(node, f"input of shape {x.shape}: pooling takes C x H x W")
        if kind == "global":
            y, act = self.out_tensor(yspec, (x.shape[0], 1, 1))
            return self.b.global_avgpool(self.m.name(node), node.op_type, x, y, act)
        kernel = list(attrs.get("kernel_shape", []))
        stride, pad, _, why = conv_geometry(attrs, kernel)
        if not why and attrs.get("storage_order", 0):
            why = "storage_order 1"
        if not why and kind == "avg" and pad and attrs.get("count_include_pad", 0):
            why = "count_include_pad 1: only averages over the real (unpadded) inputs"
        if not why and pad >= min(kernel):
            why = f"padding {pad} not smaller than the kernel {kernel}"
        if why:
            return self.bad(node, why)
        c, h, wd = x.shape
        if h + 2 * pad < kernel[0] or wd + 2 * pad < kernel[1]:
            return self.bad(node, f"kernel {kernel} larger than the padded input")
        shape = (c, (h + 2 * pad - kernel[0]) // stride + 1, (wd + 2 * pad - kernel[1]) // stride + 1)
        y, act = self.out_tensor(yspec, shape)
        if kind == "max":
            return self.b.maxpool(self.m.name(node), node.op_type, x, y, tuple(kernel), stride, pad)
        return self.b.avgpool(self.m.name(node), node.op_type, x, y, tuple(kernel), stride, pad, act)

    def reshape(self, node, x, yspec, attrs):
        if x is None or yspec is None:
            return
        if node.op_type == "Flatten":
            if attrs.get("axis", 1) != 1:
                return self.bad(node, f"axis {attrs.get('axis')}: only flattening after the batch axis")
            shape = (int(np.prod(x.shape)),)
        else:
            target = self.m.const(node.input[1])
            if target is None:
                return self.bad(node, "shape is not a constant")
            target = [int(v) for v in np.asarray(target).ravel()][1:]
            if not target:
                return self.bad(node, "reshape to a rank-1 tensor (the batch axis must stay)")
            if -1 in target:
                known = int(np.prod([t for t in target if t != -1]))
                target[target.index(-1)] = int(np.prod(x.shape)) // max(known, 1)
            target = [x.shape[i] if t == 0 else t for i, t in enumerate(target)]
            if int(np.prod(target)) != int(np.prod(x.shape)):
                return self.bad(node, f"cannot reshape {x.shape} to {target} per image")
            shape = tuple(target)
        y, _ = self.out_tensor(yspec, shape)
        self.b.reshape(self.m.name(node), node.op_type, x, y)

    def follow_activation(self, fname):
        """Follow ``fname`` through a chain of single-consumer Relu / Clip nodes (marked done):
        (the last tensor, its consumers, (lo, hi) the real clamp, None where open)."""
        lo = hi = None
        cur = fname
        while True:
            cons = self.m.consumers.get(cur, [])
            if len(cons) == 1 and cons[0].op_type in ("Relu", "Clip") and cur not in self.m.outputs:
                c = cons[0]
                self.done.add(id(c))
                if c.op_type == "Relu":
                    lo = 0.0 if lo is None else max(lo, 0.0)
                else:
                    a = onnx_attrs(c)
                    cmin = self.m.const(c.input[1]) if len(c.input) > 1 and c.input[1] else a.get("min")
                    cmax = self.m.const(c.input[2]) if len(c.input) > 2 and c.input[2] else a.get("max")
                    if cmin is not None:
                        lo = float(np.asarray(cmin)) if lo is None else max(lo, float(np.asarray(cmin)))
                    if cmax is not None:
                        hi = float(np.asarray(cmax)) if hi is None else min(hi, float(np.asarray(cmax)))
                cur = c.output[0]
                continue
            return cur, cons, (lo, hi)

    def out_tensor(self, yspec, shape):
        name, scale, zp, unsigned, (lo, hi) = yspec
        y = self.b.tensor(name, shape, scale, zp, unsigned)
        return y, clamp_range(y.zero_point, y.scale, lo, hi)

    def check_weight(self, node, w, wzp) -> bool:
        if w.dtype != np.int8:
            self.bad(node, f"{w.dtype} weights: only int8")
            return False
        if wzp is not None and np.any(np.asarray(wzp) != 0):
            self.bad(node, "weight zero point is not 0 (asymmetric weights): only symmetric int8 weights")
            return False
        return True

    def define_input(self, qnode, inp, scale, zp, qname):
        shape = self.m.input_shape(inp)
        if shape is None:
            return self.bad(qnode, f"graph input {inp.name} has no fixed per-image shape")
        if self.input is not None:
            return self.bad(qnode, "a second graph input: only one")
        self.b.tensor(qname, shape, scale, int(np.asarray(zp).ravel()[0]), unsigned_zp(zp))
        self.input, self.input_source = qname, inp.name

    def finish(self):
        return self.b.finish(self.input, self.output, self.input_source)
