"""Quantized ONNX models, as onnxruntime's ``quantize_static`` writes them, into the
integer graph (:mod:`golden.graph`).

Two forms:

* **QDQ**: float operators between ``DequantizeLinear`` (inputs, int8 per-channel weights,
  int32 bias) and ``QuantizeLinear`` (outputs). Supported operators: Conv (2-D, dilation 1,
  symmetric padding, groups 1 or depthwise), Gemm (alpha = beta = 1), MatMul (constant
  weight), Add, MaxPool, AveragePool, GlobalAveragePool, Flatten, Reshape; Relu / Clip
  between an operator and its QuantizeLinear fold into the output clamp (onnxruntime often
  removes a ReLU altogether and lets the output range start at zero: the same clamp).
* **QOperator**: QLinearConv, QLinearMatMul, QGemm, QLinearAdd, QLinearAveragePool,
  QLinearGlobalAveragePool (com.microsoft), MaxPool / Flatten / Reshape on quantized tensors.

Activations may be int8 or uint8 (uint8 becomes int8 with the zero point shifted by 128);
weights must be int8 with zero point 0. A trailing Softmax / LogSoftmax (or QLinearSoftmax)
is dropped with a note: the top-1 class is unchanged. Every node nnaccel cannot take is
listed in one :class:`~golden.importers.common.UnsupportedModel` error.

The integer graph requantizes in TFLite fixed point (:mod:`golden.quant`); onnxruntime
requantizes in float32 with round-half-to-even, so single outputs can differ by one LSB
where the real value lies within float rounding of a half: :func:`run_source` lets the flow
measure it.
"""

from __future__ import annotations

import numpy as np

from golden.importers.common import OnnxImporter, load_onnx, onnx_attrs, onnx_form, scalar, unsigned_zp


class _QDQ(OnnxImporter):
    QUANTIZERS = ("QuantizeLinear", "DequantizeLinear")

    def act_in(self, node, fname):
        """The graph tensor behind the float tensor ``fname`` (a DequantizeLinear of a quantized tensor)."""
        if fname in self.dropped:
            return self.dropped[fname]
        p = self.m.producer.get(fname)
        if p is not None and p.op_type == "DequantizeLinear":
            q = self.aliases.get(p.input[0], p.input[0])
            if q in self.b.tensors:
                return self.b.tensors[q]
        if p is not None and p.op_type == "DequantizeLinear":
            return self.bad(node, f"input {fname} dequantizes a tensor no supported operator produced")
        if any(i.name == fname for i in self.m.inputs):
            return self.bad(node, f"input {fname} is the float graph input, not quantized")
        return self.bad(node, f"input {fname} is not a quantized activation")

    def weight(self, node, fname):
        """(int weights, scales, zero points, axis) of a DequantizeLinear of a constant."""
        p = self.m.producer.get(fname)
        if p is not None and p.op_type == "DequantizeLinear" and self.m.const(p.input[0]) is not None:
            self.done.add(id(p))
            zp = self.m.const(p.input[2]) if len(p.input) > 2 else None
            return (self.m.const(p.input[0]), np.asarray(self.m.const(p.input[1]), dtype=np.float64),
                    zp, onnx_attrs(p).get("axis", 1))
        if fname in self.m.consts:
            self.bad(node, f"weight {fname} is float, not quantized")
        else:
            self.bad(node, f"weight {fname} is not a constant")
        return None

    def act_out(self, node, fname):
        """(quantized name, scale, zero point, unsigned, (lo, hi)) after Relu / Clip and QuantizeLinear."""
        cur, cons, (lo, hi) = self.follow_activation(fname)
        qs = [c for c in cons if c.op_type == "QuantizeLinear"]
        if not qs or len(qs) != len(cons) or cur in self.m.outputs:
            return self.bad(node, f"output {cur} is not quantized (no QuantizeLinear after it)")
        params = {(scalar(self.m.const(q.input[1])), int(np.asarray(self.m.const(q.input[2])).ravel()[0]))
                  for q in qs}
        if len(params) > 1:
            return self.bad(node, f"output {cur} is quantized twice with different parameters")
        for q in qs[1:]:  # the same integers under a second name
            self.aliases[q.output[0]] = qs[0].output[0]
        for q in qs:
            self.done.add(id(q))
        q = qs[0]
        zp = self.m.const(q.input[2])
        return (q.output[0], scalar(self.m.const(q.input[1])), int(np.asarray(zp).ravel()[0]), unsigned_zp(zp), (lo, hi))

    def bias(self, node, fname, x, ws):
        if not fname:
            return None
        p = self.m.producer.get(fname)
        if p is not None and p.op_type == "DequantizeLinear" and self.m.const(p.input[0]) is not None:
            self.done.add(id(p))
            b = np.asarray(self.m.const(p.input[0]))
            scale = np.asarray(self.m.const(p.input[1]), dtype=np.float64)
            if b.dtype != np.int32:
                return self.bad(node, f"{b.dtype} bias: only int32")
            want = x.scale * np.asarray(ws, dtype=np.float64)
            if not np.allclose(np.broadcast_to(scale, want.shape), want, rtol=1e-5):
                return self.bad(node, "bias scale is not input scale x weight scale")
            return b.astype(np.int64).ravel()
        if fname in self.m.consts:
            return ("real", np.asarray(self.m.consts[fname], dtype=np.float64).ravel())
        return self.bad(node, f"bias {fname} is not a constant")

    def same(self, node, x):
        """MaxPool / Flatten / Reshape: their output is quantized by the QuantizeLinear after them."""
        return self.act_out(node, node.output[0])

    def output_source(self, name):
        """The graph output dequantizes a graph tensor (or another operator's input is one)."""
        p = self.m.producer.get(name)
        return p.input[0] if p is not None and p.input else name

    def run(self):
        m = self.m
        for node, op, a in self.pending("DequantizeLinear"):
            if op == "QuantizeLinear":
                inp = next((i for i in m.inputs if i.name == node.input[0]), None)
                if inp is None:
                    self.bad(node, f"quantizes {node.input[0]}, which no supported operator produced")
                    continue
                zp = m.const(node.input[2])
                self.define_input(node, inp, scalar(m.const(node.input[1])), zp, node.output[0])
                continue
            if op in ("Conv", "Gemm", "MatMul"):
                x = self.act_in(node, node.input[0])
                wt = self.weight(node, node.input[1])
                if x is None or wt is None:
                    self.act_out(node, node.output[0])
                    continue
                w, ws, wzp, axis = wt
                if not self.check_weight(node, w, wzp):
                    continue
                if op == "Gemm":
                    if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 or a.get("transA", 0):
                        self.bad(node, "alpha, beta != 1 or transA: only y = x W^T + b")
                        continue
                    if not a.get("transB", 0):
                        w = w.T
                elif op == "MatMul":
                    if w.ndim != 2:
                        self.bad(node, f"{w.ndim}-D weight: only 2-D")
                        continue
                    w = w.T
                bias = self.bias(node, node.input[2], x, ws) if len(node.input) > 2 else None
                yspec = self.act_out(node, node.output[0])
                if isinstance(bias, tuple):
                    bias_int, bias_real = None, bias[1]
                else:
                    bias_int, bias_real = bias, None
                if op == "Conv":
                    if w.ndim != 4:
                        self.bad(node, f"{w.ndim - 2}-D convolution: only 2-D")
                        continue
                    self._engine_with(node, x, w, ws, bias_int, bias_real, yspec, a, conv=True)
                else:
                    self._engine_with(node, x, w, ws, bias_int, bias_real, yspec, a, conv=False)
            elif self.host_op(node, op, a):
                pass
            elif op in ("Relu", "Clip"):
                self.bad(node, "activation that does not directly follow a quantized operator")
            else:
                self.bad(node, "operator not supported")
        self.find_output()
        return self.finish()

    def _engine_with(self, node, x, w, ws, bias, bias_real, yspec, a, conv: bool):
        if yspec is None:
            return
        if bias_real is not None:  # float bias: quantized as TFLite does (scale input x weight)
            bias = np.round(bias_real / (x.scale * np.broadcast_to(ws.ravel(), (w.shape[0],))))
            bias = bias.astype(np.int64)
        if conv:
            self.conv(node, x, w, ws, 0, bias, yspec, a)
        else:
            self.linear(node, x, w, ws, bias, yspec)



class _QOperator(OnnxImporter):
    QUANTIZERS = _QDQ.QUANTIZERS

    def act(self, node, name, scale_name=None, zp_name=None):
        t = self.b.tensors.get(name)
        if t is None:
            return self.bad(node, f"input {name} is not a quantized tensor nnaccel computed")
        if scale_name is not None:
            s = scalar(self.m.const(scale_name))
            if not np.isclose(s, t.scale, rtol=1e-6):
                return self.bad(node, f"input {name} is read with scale {s}, it was written with {t.scale}")
        return t

    act_in = act  # MaxPool, Flatten, Reshape, QLinearSoftmax (kept_op): an input read at its own scale

    def yspec(self, node, out, scale_name, zp_name):
        s, zp = self.m.const(scale_name), self.m.const(zp_name)
        if s is None or zp is None:
            return self.bad(node, "output scale or zero point is not a constant")
        return out, scalar(s), int(np.asarray(zp).ravel()[0]), unsigned_zp(zp), (None, None)

    def run(self):
        m = self.m
        for node, op, a in self.pending():
            i = list(node.input)
            if op == "QuantizeLinear":
                inp = next((g for g in m.inputs if g.name == i[0]), None)
                if inp is None:
                    self.bad(node, f"quantizes {i[0]}, which is not the graph input")
                    continue
                zp = m.const(i[2])
                self.define_input(node, inp, scalar(m.const(i[1])), zp, node.output[0])
            elif op == "DequantizeLinear":
                if node.output[0] in m.outputs and i[0] in self.b.tensors:
                    self.output = i[0]
                else:
                    self.bad(node, "dequantization before the graph output: float operators between")
            elif op in ("QLinearConv", "QLinearMatMul", "QGemm"):
                x = self.act(node, i[0], i[1])
                w = m.const(i[3])
                if w is None:
                    self.bad(node, f"weight {i[3]} is not a constant")
                    continue
                if not self.check_weight(node, w, m.const(i[5])):
                    continue
                ws = np.asarray(m.const(i[4]), dtype=np.float64)
                if op == "QLinearConv":
                    ys = self.yspec(node, node.output[0], i[6], i[7])
                    bias = m.const(i[8]) if len(i) > 8 and i[8] else None
                    if w.ndim != 4:
                        self.bad(node, f"{w.ndim - 2}-D convolution: only 2-D")
                        continue
                    self.conv(node, x, w, ws, 0, None if bias is None else bias.astype(np.int64), ys, a)
                elif op == "QLinearMatMul":
                    ys = self.yspec(node, node.output[0], i[6], i[7])
                    self.linear(node, x, w.T, ws, None, ys)
                else:
                    if len(i) < 9 or not i[7]:
                        self.bad(node, "QGemm with a float output: only quantized outputs")
                        continue
                    if a.get("alpha", 1.0) != 1.0 or a.get("transA", 0):
                        self.bad(node, "alpha != 1 or transA: only y = x W^T + b")
                        continue
                    bias = m.const(i[6]) if i[6] else None
                    ys = self.yspec(node, node.output[0], i[7], i[8])
                    self.linear(node, x, w if a.get("transB", 0) else w.T, ws,
                                None if bias is None else bias.astype(np.int64), ys)
            elif op == "QLinearAdd":
                x1, x2 = self.act(node, i[0], i[1]), self.act(node, i[3], i[4])
                ys = self.yspec(node, node.output[0], i[6], i[7])
                if x1 is None or x2 is None or ys is None:
                    continue
                y, act = self.out_tensor(ys, x1.shape)
                self.b.add(m.name(node), op, x1, x2, y, act)
            elif op in ("QLinearGlobalAveragePool", "QLinearAveragePool"):
                if a.get("channels_last", 0):
                    self.bad(node, "channels_last: only NCHW")
                    continue
                x = self.act(node, i[0], i[1])
                ys = self.yspec(node, node.output[0], i[3], i[4])
                self.pool(node, x, ys, a, "global" if op == "QLinearGlobalAveragePool" else "avg")
            elif not self.kept_op(node, op, a):
                self.bad(node, "operator not supported")
        if self.output is None and len(m.outputs) == 1 and m.outputs[0] in self.b.tensors:
            self.output = m.outputs[0]
        return self.finish()

    def softmax(self, node):
        """The dropped Softmax's input is the output (the DequantizeLinear after it, claimed, is skipped)."""
        x = super().softmax(node)
        if x is not None:
            self.output = x.name
        return x


def import_onnx(path, model=None):
    """A QDQ or QOperator ONNX model -> :class:`golden.graph.Graph`."""
    model = load_onnx(path) if model is None else model
    f = onnx_form(model)
    if f == "qdq":
        return _QDQ(model, path, "onnx-qdq").run()
    if f == "qoperator":
        return _QOperator(model, path, "onnx-qoperator").run()
    raise ValueError(f"{path}: a {f} model, not a QDQ / QOperator ONNX model")


def run_source(path, graph, x, exposed: bool = True, batch: int = 256) -> dict[str, np.ndarray]:
    """The source model in onnxruntime on float inputs ``x``: the final output's integers
    (key ``graph.output``) from the model as written and, with ``exposed``, every graph
    tensor's integers (in nnaccel's int8 domain) read from a copy of the model that also
    outputs them (keys prefixed ``"exposed:"``; exposing tensors can change which fused
    kernels onnxruntime picks, so the final output is taken from the unmodified model)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    out_t = graph.tensors[graph.output]
    final_name = model.graph.output[0].name

    def session(m):
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])

    def batches(sess, names):
        outs = {n: [] for n in names}
        for k in range(0, len(x), batch):
            vals = sess.run(names, {graph.input_source: np.asarray(x[k:k + batch], dtype=np.float32)})
            for n, v in zip(names, vals):
                outs[n].append(v)
        return {n: np.concatenate(v) for n, v in outs.items()}

    res = {}
    plain = batches(session(model), [final_name])[final_name]
    if np.issubdtype(plain.dtype, np.floating):  # DequantizeLinear at the end: back to the integers
        plain = np.rint(plain.astype(np.float64) / out_t.scale) + out_t.zero_point + out_t.source_offset
    res[graph.output] = plain.astype(np.int64) - out_t.source_offset
    if exposed:
        existing = {o.name for o in model.graph.output}
        want = {t.source: t for t in graph.tensors.values() if t.source}
        for name in want:
            if name not in existing:
                model.graph.output.append(onnx.ValueInfoProto(name=name))
        vals = batches(session(model), list(want))
        for name, t in want.items():
            res["exposed:" + t.name] = vals[name].astype(np.int64) - t.source_offset
    return res
