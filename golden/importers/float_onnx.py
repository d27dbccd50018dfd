"""Float ONNX models (a plain float export, or a PyTorch module captured by
:mod:`golden.importers.torch_module`) through nnaccel's own post-training quantization into
the integer graph (:mod:`golden.graph`).

* **Activations**: calibrated on DATA in onnxruntime: every tensor the graph keeps gets
  per-tensor int8 parameters from its min / max (:func:`golden.quant.choose_activation_qparams`,
  zero exactly representable); the tensor after a Relu / Clip chain is the one calibrated,
  and the chain folds into the output clamp.
* **Weights**, by ``variant``:
  ``int8``: symmetric per output channel (:func:`golden.quant.quantize_weights_per_channel`);
  ``sparse``: each layer magnitude-pruned to ``sparsity`` (:func:`golden.sparse.magnitude_masks`,
  scope "layer") then int8 per channel; ``ternary``: TWN per layer (:func:`golden.ternary.ternarize`:
  weights {-1, 0, 1}, alpha folded into the requantization multiplier ``s_in * alpha / s_out``).
  Every conv / linear layer takes the variant, the first and the last included.
* **Biases** stay float until the builder quantizes them at ``s_in * s_w`` (int32, TFLite's rule).
* **BatchNormalization** after a Conv is folded into it (``w * g / sqrt(v + eps)``,
  ``(b - m) * g / sqrt(v + eps) + beta``); a MatMul followed by an Add of a constant takes it as bias.
* **Operators**: Conv, Gemm, MatMul, Add, MaxPool, AveragePool, GlobalAveragePool, ReduceMean
  over H and W, Flatten, Reshape; Relu / Clip after an operator; a trailing Softmax is dropped.

This is a distance, not an exact match: the source computes in float.
"""

from __future__ import annotations

import numpy as np
import torch

from golden.importers.common import OnnxImporter, load_onnx, onnx_attrs
from golden.quant import choose_activation_qparams, quantize_weights_per_channel
from golden.sparse import magnitude_masks
from golden.ternary import ternarize

CALIBRATION_IMAGES = 1000


def quantize_weight(w: np.ndarray, variant: str, sparsity: float) -> tuple[np.ndarray, np.ndarray, dict]:
    """(integer weights, per-channel scales, meta) of float weights ``w`` (output channels first)."""
    t = torch.as_tensor(np.asarray(w, np.float64))
    if variant == "ternary":
        q, alpha, delta = ternarize(t)
        alpha = alpha if alpha > 0 else 1.0
        return q.numpy(), np.full(w.shape[0], alpha), {"variant": "ternary", "alpha": alpha, "twn_delta": delta}
    meta = {"variant": variant}
    if variant == "sparse":
        t = t * magnitude_masks([t], sparsity, scope="layer")[0]
        meta["sparsity_target"] = float(sparsity)
    q, scale = quantize_weights_per_channel(t)
    return q.numpy(), scale.numpy(), meta


def _session(model, names):
    import onnx
    import onnxruntime as ort
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for n in names:
        if n not in have:
            m.graph.output.append(onnx.ValueInfoProto(name=n))
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def run_float(model, x, names, batch: int = 256) -> dict[str, np.ndarray]:
    """The float model in onnxruntime on ``x``: the tensors ``names``."""
    names = list(dict.fromkeys(names))
    sess = _session(model, names)
    inits = {i.name for i in model.graph.initializer}
    inp = next(i.name for i in model.graph.input if i.name not in inits)
    outs = {n: [] for n in names}
    for k in range(0, len(x), batch):
        for n, v in zip(names, sess.run(names, {inp: np.asarray(x[k:k + batch], np.float32)})):
            outs[n].append(v)
    return {n: np.concatenate(v) if v[0].ndim else v[0] for n, v in outs.items()}


class _Float(OnnxImporter):
    def __init__(self, model, path, fmt, data, variant, sparsity):
        super().__init__(model, path, fmt)
        self.variant, self.sparsity = variant, sparsity
        names = [o for n in self.m.nodes for o in n.output if o]
        x = np.asarray(data, np.float32)[:CALIBRATION_IMAGES]
        vals = run_float(model, x, names)
        vals[self.m.inputs[0].name] = x
        self.range = {k: (float(v.min()), float(v.max())) for k, v in vals.items()
                      if np.issubdtype(v.dtype, np.floating) and v.size}

    def qparams(self, name):
        lo, hi = self.range.get(name, (0.0, 0.0))
        return choose_activation_qparams(lo, hi)

    def act_in(self, node, fname):
        if fname in self.b.tensors:
            return self.b.tensors[fname]
        return self.bad(node, f"input {fname} is not the output of a supported operator")

    def act_out(self, node, fname):
        cur, cons, (lo, hi) = self.follow_activation(fname)
        s, z = self.qparams(cur)
        return cur, s, z, False, (lo, hi)

    def run(self):
        m = self.m
        if len(m.inputs) != 1:
            self.b.problem("(graph)", "input", f"{len(m.inputs)} graph inputs: only one")
        else:
            inp = m.inputs[0]
            s, z = self.qparams(inp.name)
            self.define_input(m.nodes[0], inp, s, np.array(z, np.int8), inp.name)
        for node, op, a in self.pending():
            if op in ("Conv", "Gemm", "MatMul"):
                self.engine_op(node, a)
            elif self.host_op(node, op, a):
                pass
            elif op == "ReduceMean":
                self.reduce_mean(node, a)
            elif op == "BatchNormalization":
                self.bad(node, "BatchNormalization that does not directly follow a Conv (nothing to fold it into)")
            elif op in ("Relu", "Clip"):
                self.bad(node, "activation that does not directly follow a conv / linear / add / pool")
            else:
                self.bad(node, "operator not supported")
        self.find_output()
        self.b.notes.append(self.describe())
        return self.finish()

    def describe(self) -> str:
        v = {"int8": "int8 per-channel weights",
             "sparse": f"weights magnitude-pruned to {self.sparsity:.0%} per layer, then int8 per channel",
             "ternary": "TWN ternary weights (alpha per layer folded into the requantization)"}[self.variant]
        return (f"nnaccel post-training quantization: {v}; activations int8 per tensor from min / max on "
                f"{min(CALIBRATION_IMAGES, self.calibrated)} DATA inputs")

    def engine_op(self, node, a):
        m, op = self.m, node.op_type
        x = self.act_in(node, node.input[0])
        w = m.const(node.input[1])
        if w is None:
            return self.bad(node, f"weight {node.input[1]} is not a constant")
        w = np.asarray(w, np.float64)
        b = m.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        out = node.output[0]
        if op == "Gemm":
            if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 or a.get("transA", 0):
                return self.bad(node, "alpha, beta != 1 or transA: only y = x W^T + b")
            if not a.get("transB", 0):
                w = w.T
        elif op == "MatMul":
            if w.ndim != 2:
                return self.bad(node, f"{w.ndim}-D weight: only 2-D")
            w = w.T
            cons = m.consumers.get(out, [])
            if len(cons) == 1 and cons[0].op_type == "Add" and out not in m.outputs:
                other = [i for i in cons[0].input if i != out]
                c = m.const(other[0]) if other else None
                if c is not None and np.size(c) == w.shape[0]:
                    b, out = c, cons[0].output[0]
                    self.done.add(id(cons[0]))
        elif op == "Conv":
            if w.ndim != 4:
                return self.bad(node, f"{w.ndim - 2}-D convolution: only 2-D")
            cons = m.consumers.get(out, [])
            if len(cons) == 1 and cons[0].op_type == "BatchNormalization" and out not in m.outputs:
                bn = cons[0]
                g, beta, mean, var = (m.const(i) for i in bn.input[1:5])
                if any(v is None for v in (g, beta, mean, var)):
                    return self.bad(bn, "BatchNormalization with non-constant parameters")
                k = np.asarray(g, np.float64) / np.sqrt(np.asarray(var, np.float64) + onnx_attrs(bn).get("epsilon", 1e-5))
                w = w * k[:, None, None, None]
                b = (np.zeros(w.shape[0]) if b is None else np.asarray(b, np.float64)) - np.asarray(mean, np.float64)
                b = b * k + np.asarray(beta, np.float64)
                out = bn.output[0]
                self.done.add(id(bn))
        yspec = self.act_out(node, out)
        if x is None:
            return
        wq, ws, meta = quantize_weight(w, self.variant, self.sparsity)
        alpha = meta.pop("alpha", None)  # EngineNode.alpha
        bias_real = None if b is None else np.asarray(b, np.float64).ravel()
        if op == "Conv":
            self.conv(node, x, wq, ws, 0, None, yspec, a, bias_real=bias_real, meta=meta)
        else:
            self.linear(node, x, wq, ws, None, yspec, bias_real=bias_real, meta=meta)
        if alpha is not None and self.b.nodes and self.b.nodes[-1].name == m.name(node):
            import dataclasses
            self.b.nodes[-1] = dataclasses.replace(self.b.nodes[-1], alpha=alpha)

    def reduce_mean(self, node, a):
        x = self.act_in(node, node.input[0])
        if x is None:
            return
        axes = self.m.const(node.input[1]) if len(node.input) > 1 and node.input[1] else a.get("axes")
        axes = None if axes is None else sorted(int(v) % 4 for v in np.asarray(axes).ravel())
        if len(x.shape) != 3 or axes != [2, 3]:
            return self.bad(node, f"ReduceMean over axes {axes}: only over H and W of N x C x H x W (a global "
                                  f"average pool)")
        yspec = self.act_out(node, node.output[0])
        if a.get("keepdims", 1):
            return self.pool(node, x, yspec, a, "global")
        name, s, z, u, lohi = yspec
        self.pool(node, x, (name + ".gap", s, z, u, lohi), a, "global")
        gap = self.b.tensors.get(name + ".gap")
        if gap is not None:
            y, _ = self.out_tensor(yspec, (x.shape[0],))
            self.b.reshape(self.m.name(node) + ".flatten", "ReduceMean", gap, y)


def import_float_onnx(path, model=None, data=None, variant: str = "int8", sparsity: float = 0.5,
                      fmt: str = "onnx-float"):
    """A float ONNX model -> :class:`golden.graph.Graph`, quantized by nnaccel (see the module doc)."""
    model = load_onnx(path) if model is None else model
    if data is None:
        raise ValueError(f"{path}: a float model: give --data DATA.npz to calibrate nnaccel's post-training "
                         f"quantization of its activations")
    imp = _Float(model, path, fmt, data, variant, sparsity)
    imp.calibrated = len(data)
    return imp.run()


def run_source(path, graph, x, exposed: bool = True) -> dict[str, np.ndarray]:
    """The float model in onnxruntime on ``x``: every graph tensor the model holds, quantized
    with that tensor's scale and zero point (a distance in LSBs, not an exact match; keys
    ``graph.output`` and ``"exposed:" + name``), and ``"float_output"``, the raw float output
    (top-1 of the source)."""
    import onnx
    model = onnx.load(str(path))
    want = {t.source: t for t in graph.tensors.values() if t.source and not t.source.endswith(".gap")}
    out_t = graph.tensors[graph.output]
    vals = run_float(model, x, [out_t.source] + (list(want) if exposed else []))
    res = {graph.output: quantize_like(vals[out_t.source], out_t), "float_output": vals[out_t.source]}
    for name, t in want.items() if exposed else ():
        v = vals[name]
        if v[0].size == int(np.prod(t.shape)):
            res["exposed:" + t.name] = quantize_like(v.reshape((len(v),) + t.shape), t)
    return res


def quantize_like(v, t) -> np.ndarray:
    """Float values on tensor ``t``'s int8 grid (rounded half to even, saturated)."""
    return np.clip(np.rint(np.asarray(v, np.float64) / t.scale) + t.zero_point, -128, 127).astype(np.int64)
