"""QONNX models, as Brevitas ``export_qonnx`` writes them, into the integer graph
(:mod:`golden.graph`).

QONNX marks quantization with ``Quant`` (inputs: x, scale, zero point, bit width;
attributes signed, narrow, rounding_mode) and ``BipolarQuant`` (x, scale) nodes of the
``qonnx.custom_op.general`` domain, between otherwise float ONNX operators:

    y = scale * (clip(round(x / scale + zp), min_int, max_int) - zp)

* **Weights**: a ``Quant`` / ``BipolarQuant`` of a constant. Its bit width, scale, zero point
  and narrow flag are read from the node itself, never from a cleaned-up model (qonnx's
  ``cleanup_model`` constant-folds weight Quant nodes into plain floats and loses the
  width). Signed, zero point 0, at most 8 bits, per tensor or per output channel; the integer
  weights are computed here with the node's own rounding. 2-bit narrow-range weights are
  {-1, 0, 1}: ternary (the scale goes into the requantization multiplier); 8-bit weights are
  int8; BipolarQuant weights are {-1, 1}.
* **Activations**: a ``Quant`` of a computed tensor, signed or unsigned, at most 8 bits,
  per-tensor scale, integer zero point, rounding ROUND (half to even). An unsigned tensor
  becomes int8 with its zero point shifted by 128; a narrow or narrower-than-8-bit range
  becomes the output clamp. The graph input must pass through an 8-bit full-range Quant.
* **Operators** (as in :mod:`golden.importers.onnx_qdq`): Conv, Gemm, MatMul (float or Quant
  bias), Add, AveragePool / GlobalAveragePool (followed by a Quant), MaxPool, Flatten and
  Reshape (on a quantized tensor; they keep its quantization); Relu / Clip between an
  operator and its Quant fold into the output clamp; a trailing Softmax is dropped.

The integer graph requantizes in fixed point (:mod:`golden.quant`); qonnx's executor
(:func:`run_source`) computes in float32 and rounds half to even, so single values can lie
one LSB apart.
"""

from __future__ import annotations

import numpy as np

from golden.importers.common import OnnxImporter, clamp_range, onnx_attrs

QONNX_OPS = {"Quant", "BipolarQuant"}
ROUNDING = {"ROUND": np.round, "HALF_EVEN": np.round, "CEIL": np.ceil, "FLOOR": np.floor, "ROUND_TO_ZERO": np.fix}


def _mode(a: dict) -> str:
    m = a.get("rounding_mode", "ROUND")
    return (m.decode() if isinstance(m, bytes) else str(m)).upper()


class _QONNX(OnnxImporter):
    QUANTIZERS = tuple(sorted(QONNX_OPS))

    def __init__(self, model, path):
        super().__init__(model, path, "qonnx")
        # Quant nodes of constants (weights, biases): read as written, before any folding
        self.const_quant = {}  # Quant output name -> its node
        for n in self.m.nodes:
            if n.op_type in QONNX_OPS and self.m.const(n.input[0]) is not None:
                self.done.add(id(n))
                self.const_quant[n.output[0]] = n

    # --- quantizers ---------------------------------------------------------------------
    def _params(self, n):
        """(scale, zero point, bit width, signed, narrow, rounding) of a Quant node, or None."""
        a = onnx_attrs(n)
        if n.op_type == "BipolarQuant":
            scale = self.m.const(n.input[1])
            if scale is None:
                return self.bad(n, "scale is not a constant")
            return np.asarray(scale, np.float64), np.zeros(1), 1, True, False, "BIPOLAR"
        vals = [self.m.const(i) if i else None for i in n.input[1:4]]
        if len(n.input) < 4 or any(v is None for v in vals):
            return self.bad(n, "scale, zero point or bit width is not a constant")
        scale, zp, bits = (np.asarray(v, np.float64) for v in vals)
        if bits.size != 1 or bits.ravel()[0] != round(bits.ravel()[0]) or not 1 <= bits.ravel()[0] <= 32:
            return self.bad(n, f"bit width {bits.ravel().tolist()}: only one integer width")
        if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            return self.bad(n, "scale is not finite and positive")
        if np.any(zp != np.round(zp)):
            return self.bad(n, f"zero point {zp.ravel()[:4].tolist()} is not an integer")
        return scale, zp, int(bits.ravel()[0]), bool(a.get("signed", 1)), bool(a.get("narrow", 0)), _mode(a)

    @staticmethod
    def _range(bits: int, signed: bool, narrow: bool) -> tuple[int, int]:
        """qonnx's min_int / max_int."""
        if signed:
            return -(1 << (bits - 1)) + int(narrow), (1 << (bits - 1)) - 1
        return 0, (1 << bits) - 1 - int(narrow)

    def _weight_ints(self, n):
        """(integer weights, scale, meta) of a weight quantizer, exactly as qonnx computes them."""
        p = self._params(n)
        if p is None:
            return None
        scale, zp, bits, signed, narrow, mode = p
        w = np.asarray(self.m.const(n.input[0]), np.float64)
        if mode == "BIPOLAR":
            return np.where(w >= 0, 1, -1).astype(np.int64), scale, {"weight_bits": 1, "weight_quant": "bipolar"}
        if not signed:
            return self.bad(n, "unsigned weights: only signed")
        if bits > 8:
            return self.bad(n, f"{bits}-bit weights: at most 8 bits")
        if np.any(zp != 0):
            return self.bad(n, "weight zero point is not 0 (asymmetric weights): only symmetric weights")
        if mode not in ROUNDING:
            return self.bad(n, f"rounding mode {mode}")
        lo, hi = self._range(bits, signed, narrow)
        # qonnx's int_quant in float32: clip, then round
        q = np.clip(w.astype(np.float32) / scale.astype(np.float32) + zp.astype(np.float32), lo, hi)
        q = ROUNDING[mode](q).astype(np.int64)
        return q, scale, {"weight_bits": bits, "weight_narrow": narrow,
                          "weight_quant": "ternary" if (bits, narrow) == (2, True) else f"int{bits}"}

    def act_params(self, q):
        """(scale, int8 zero point, unsigned, (lo, hi) real clamp) of an activation Quant, or None."""
        if q.op_type == "BipolarQuant":
            return self.bad(q, "bipolar (1-bit) activations: only 2- to 8-bit activation quantizers")
        p = self._params(q)
        if p is None:
            return None
        scale, zp, bits, signed, narrow, mode = p
        if scale.size != 1 or zp.size != 1:
            return self.bad(q, "per-channel activation scale or zero point: only per tensor")
        if bits > 8 or bits < 2:
            return self.bad(q, f"{bits}-bit activations: only 2 to 8 bits (int8 / uint8)")
        if mode not in ("ROUND", "HALF_EVEN"):
            return self.bad(q, f"rounding mode {mode} on activations: only ROUND (to nearest, half to even)")
        s, z = float(scale.ravel()[0]), int(zp.ravel()[0])
        if not (-128 <= z <= 127 if signed else 0 <= z <= 255):
            return self.bad(q, f"zero point {z} outside the {'int8' if signed else 'uint8'} range")
        lo, hi = self._range(bits, signed, narrow)
        return s, z, not signed, ((lo - z) * s, (hi - z) * s), (bits, signed, narrow)

    # --- operands -----------------------------------------------------------------------
    def act_in(self, node, fname):
        if fname in self.dropped:
            return self.dropped[fname]
        fname = self.aliases.get(fname, fname)
        if fname in self.b.tensors:
            return self.b.tensors[fname]
        if any(i.name == fname for i in self.m.inputs):
            return self.bad(node, f"input {fname} is the float graph input, not quantized (no Quant after it)")
        return self.bad(node, f"input {fname} is not a quantized activation (no Quant before this operator)")

    def weight(self, node, fname):
        if fname in self.const_quant:
            return self._weight_ints(self.const_quant[fname])
        if fname in self.m.consts:
            return self.bad(node, f"weight {fname} is float, not quantized (no Quant on it)")
        return self.bad(node, f"weight {fname} is not a constant")

    def bias(self, node, fname, x, ws):
        """(int bias, None) for a Quant of a constant at scale input x weight (Brevitas Int32Bias);
        (None, real) for a float constant or a Quant at another scale (its dequantized values)."""
        q = self.const_quant.get(fname)
        if q is not None:
            p = self._params(q)
            if p is None:
                return None
            scale, zp, bits, signed, narrow, mode = p
            b = np.asarray(self.m.const(q.input[0]), np.float64).ravel()
            if mode == "BIPOLAR":
                return None, np.where(b >= 0, 1.0, -1.0) * scale.ravel()
            lo, hi = self._range(bits, signed, narrow)
            qb = np.clip(b / scale.ravel() + zp.ravel(), lo, hi)
            qb = ROUNDING.get(mode, np.round)(qb)
            want = x.scale * np.asarray(ws, np.float64)
            if (np.all(zp == 0) and bits <= 32
                    and np.allclose(np.broadcast_to(scale.ravel(), want.shape), want, rtol=1e-5)):
                return qb.astype(np.int64), None
            return None, (qb - zp.ravel()) * scale.ravel()
        if fname in self.m.consts:
            return None, np.asarray(self.m.consts[fname], np.float64).ravel()
        return self.bad(node, f"bias {fname} is not a constant")

    def act_out(self, node, fname):
        """(name, scale, zero point, unsigned, (lo, hi)) of the Quant after Relu / Clip."""
        cur, cons, (lo, hi) = self.follow_activation(fname)
        qs = [c for c in cons if c.op_type in QONNX_OPS]
        if not qs or len(qs) != len(cons) or cur in self.m.outputs:
            return self.bad(node, f"output {cur} is not quantized (no Quant after it)")
        specs = []
        for q in qs:
            self.done.add(id(q))
            specs.append(self.act_params(q))
        if any(s is None for s in specs):
            return None
        if len({s[:3] + (s[4],) for s in specs}) > 1:
            return self.bad(node, f"output {cur} is quantized twice with different parameters")
        for q in qs[1:]:
            self.aliases[q.output[0]] = qs[0].output[0]
        s, z, unsigned, (qlo, qhi), _ = specs[0]
        lo = qlo if lo is None else max(lo, qlo)
        hi = qhi if hi is None else min(hi, qhi)
        return qs[0].output[0], s, z, unsigned, (lo, hi)

    # --- the walk -----------------------------------------------------------------------
    def run(self):
        for node, op, a in self.pending():
            if op in QONNX_OPS:
                self.quant(node)
            elif op in ("Conv", "Gemm", "MatMul"):
                self.engine_op(node, a)
            elif self.host_op(node, op, a):
                pass
            elif op in ("Relu", "Clip"):
                self.bad(node, "activation that does not directly follow an operator with a Quant after it")
            elif op == "Trunc":
                self.bad(node, "Trunc (Brevitas TruncAvgPool): not supported; use an average pool followed by a "
                               "QuantIdentity")
            else:
                self.bad(node, "operator not supported")
        self.find_output()
        return self.finish()

    def quant(self, node):
        """An activation Quant no operator claimed: the graph input's, or a second Quant of a quantized tensor."""
        src = node.input[0]
        inp = next((i for i in self.m.inputs if i.name == src), None)
        if inp is not None:
            spec = self.act_params(node)
            if spec is None:
                return
            s, z, unsigned, _, (bits, signed, narrow) = spec
            if bits != 8 or narrow:
                return self.bad(node, f"the graph input's quantizer is {bits}-bit{' narrow' if narrow else ''}: "
                                      f"only 8-bit full range")
            self.define_input(node, inp, s, np.array(z, np.uint8 if unsigned else np.int8), node.output[0])
            return
        x = self.b.tensors.get(self.aliases.get(src, src))
        if x is None:
            return self.bad(node, f"quantizes {src}, which no supported operator produced")
        spec = self.act_params(node)
        if spec is None:
            return
        s, z, unsigned, (lo, hi), _ = spec
        z8 = z - (128 if unsigned else 0)
        if not np.isclose(s, x.scale, rtol=1e-6) or z8 != x.zero_point:
            return self.bad(node, f"requantizes {src} (scale {x.scale:.6g}, zero point {x.zero_point}) to scale "
                                  f"{s:.6g}, zero point {z8} with no operator between: not supported")
        if clamp_range(x.zero_point, x.scale, lo, hi) != (-128, 127):
            return self.bad(node, f"narrows {src}'s range with no operator between: not supported")
        self.aliases[node.output[0]] = x.name

    def engine_op(self, node, a):
        op = node.op_type
        x = self.act_in(node, node.input[0])
        wt = self.weight(node, node.input[1])
        yspec = self.act_out(node, node.output[0])
        if x is None or wt is None or yspec is None:
            return
        w, scale, meta = wt
        ws = np.asarray(scale, np.float64)
        if op == "Gemm":
            if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 or a.get("transA", 0):
                return self.bad(node, "alpha, beta != 1 or transA: only y = x W^T + b")
            if not a.get("transB", 0):
                w, ws = w.T, ws.T
        elif op == "MatMul":
            if w.ndim != 2:
                return self.bad(node, f"{w.ndim}-D weight: only 2-D")
            w, ws = w.T, ws.T
        if ws.size not in (1, w.shape[0]) or (ws.size > 1 and ws.shape[0] != w.shape[0]):
            return self.bad(node, f"weight scale of shape {ws.shape}: only per tensor or per output channel")
        ws = ws.ravel()
        bias, bias_real = None, None
        if len(node.input) > 2 and node.input[2]:
            bb = self.bias(node, node.input[2], x, np.broadcast_to(ws, (w.shape[0],)))
            if bb is None:
                return
            bias, bias_real = bb
        if op == "Conv":
            if w.ndim != 4:
                return self.bad(node, f"{w.ndim - 2}-D convolution: only 2-D")
            self.conv(node, x, w, ws, 0, bias, yspec, a, bias_real=bias_real, meta=meta)
        else:
            self.linear(node, x, w, ws, bias, yspec, bias_real=bias_real, meta=meta)


def import_qonnx(path, model=None):
    """A QONNX model -> :class:`golden.graph.Graph` (every unsupported node in one
    :class:`~golden.importers.common.UnsupportedModel`)."""
    from golden.importers.common import load_onnx
    model = load_onnx(path) if model is None else model
    return _QONNX(model, path).run()


def _batched(model, graph, n: int):
    """A copy of ``model`` whose batch axis is ``n``: the graph input's first dimension, no
    stale value_info, and every constant Reshape target rewritten to ``[-1] + the tensor's
    per-image shape`` (exporters bake batch 1 into it)."""
    import onnx
    from onnx import numpy_helper
    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = {i.name for i in m.graph.initializer}
    del m.graph.value_info[:]
    for v in list(m.graph.input) + list(m.graph.output):
        if v.name in inits:
            continue
        dims = v.type.tensor_type.shape.dim
        if len(dims):
            dims[0].Clear()
            dims[0].dim_value = n
    for k, node in enumerate(m.graph.node):
        t = graph.tensors.get(node.output[0]) if node.op_type == "Reshape" else None
        if t is not None:
            name = f"{node.output[0]}__nnaccel_shape_{k}"
            m.graph.initializer.append(numpy_helper.from_array(np.array((-1,) + t.shape, np.int64), name))
            node.input[1] = name
    return m


def run_source(path, graph, x, exposed: bool = True, batch: int = 500) -> dict[str, np.ndarray]:
    """The source model in qonnx's executor (``qonnx.core.onnx_exec.execute_onnx`` on a
    ``ModelWrapper``) on float inputs ``x``: the integers (in nnaccel's int8 domain,
    ``round(value / scale) + zero point``) of the final output (key ``graph.output``) and,
    with ``exposed``, of every graph tensor (keys ``"exposed:" + name``)."""
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    model = onnx.load(str(path))
    want = {t.source: t for t in graph.tensors.values() if t.source} if exposed else {}
    out_t = graph.tensors[graph.output]
    final = out_t.source  # a dropped Softmax's input, or the graph output
    outs = {}
    wrappers = {}
    for k in range(0, len(x), batch):
        xb = np.asarray(x[k:k + batch], dtype=np.float32)
        if len(xb) not in wrappers:
            wrappers[len(xb)] = ModelWrapper(_batched(model, graph, len(xb))).transform(InferShapes())
        ctx = execute_onnx(wrappers[len(xb)], {graph.input_source: xb}, return_full_exec_context=True)
        for name in dict.fromkeys([final, *want]):
            outs.setdefault(name, []).append(np.asarray(ctx[name]))
    vals = {n: np.concatenate(v) for n, v in outs.items()}

    def ints(v, t):
        return (np.rint(v.astype(np.float64) / t.scale) + t.zero_point).astype(np.int64)

    res = {graph.output: ints(vals[final], out_t)}
    for name, t in want.items():
        res["exposed:" + t.name] = ints(vals[name], t)
    return res
