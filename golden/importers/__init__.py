"""Importers: a user's model -> :class:`golden.graph.Graph`.

:func:`import_model` dispatches on the file: ``.onnx`` (QDQ / QOperator as onnxruntime
writes them, :mod:`golden.importers.onnx_qdq`; QONNX, :mod:`golden.importers.qonnx`; a plain
float model takes nnaccel's own post-training quantization), or ``file.py:factory`` (a
PyTorch module, :mod:`golden.importers.torch_module`).
"""

from __future__ import annotations

from pathlib import Path

from golden.importers.common import Problem, UnsupportedModel

VARIANTS = ("int8", "sparse", "ternary")

__all__ = ["import_model", "UnsupportedModel", "Problem", "VARIANTS"]


def import_model(path, data=None, variant: str = "int8", sparsity: float = 0.5):
    """Import ``path`` into an integer graph.

    ``data`` (float inputs, N x C x H x W) calibrates the post-training quantization of float
    models (PyTorch modules, float ONNX); ``variant`` and ``sparsity`` choose that
    quantization. Already-quantized models (QDQ, QOperator, QONNX) keep their own."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, not {variant!r}")
    spec = str(path)
    if ".py:" in spec:
        from golden.importers.torch_module import import_module
        return import_module(spec, data=data, variant=variant, sparsity=sparsity)
    p = Path(spec)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such model file")
    if p.suffix.lower() != ".onnx":
        raise ValueError(f"{p}: not a model nnaccel imports (give MODEL.onnx or file.py:factory)")
    from golden.importers.common import load_onnx, onnx_form
    model = load_onnx(p)
    fmt = onnx_form(model)
    if fmt in ("qdq", "qoperator"):
        from golden.importers import onnx_qdq
        return onnx_qdq.import_onnx(p, model)
    if fmt == "qonnx":
        from golden.importers import qonnx
        return qonnx.import_qonnx(p, model)
    from golden.importers.float_onnx import import_float_onnx
    return import_float_onnx(p, model, data=data, variant=variant, sparsity=sparsity)


def run_source(graph, x, exposed: bool = True) -> dict:
    """The source model in its own runtime on float inputs ``x`` (see each importer's
    ``run_source``): integers of the final output (key ``graph.output``) and of every
    exposed tensor (keys ``"exposed:" + tensor name``), in nnaccel's int8 domain; a float
    source (PyTorch module, float ONNX) also gives ``"float_output"``, its raw output."""
    fmt, path = graph.source.get("format"), graph.source.get("path")
    if fmt in ("onnx-qdq", "onnx-qoperator"):
        from golden.importers.onnx_qdq import run_source as run
    elif fmt == "qonnx":
        from golden.importers.qonnx import run_source as run
    elif fmt == "onnx-float":
        from golden.importers.float_onnx import run_source as run
    elif fmt == "pytorch":
        from golden.importers.torch_module import run_source as run
    else:
        raise ValueError(f"graph {graph.name}: unknown source format {fmt!r}")
    return run(path, graph, x, exposed=exposed)
