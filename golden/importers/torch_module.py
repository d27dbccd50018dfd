"""PyTorch modules: ``MODEL`` given as ``path/to/file.py:factory``, a function of no arguments
returning a float ``nn.Module`` (put in eval mode here).

The module is captured with ``torch.export`` through the dynamo ONNX exporter
(``torch.onnx.export(..., dynamo=True)``, a dynamic batch axis), which folds BatchNorm into the
preceding convolution (the float-ONNX path folds any BatchNormalization left), then quantized
by nnaccel's own post-training quantization (:mod:`golden.importers.float_onnx`) calibrated on
DATA. ``torch.ao.quantization`` is not used (deprecated). The source runtime is PyTorch: the
float module itself (:func:`run_source`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import torch

_MODULES: dict[str, torch.nn.Module] = {}  # spec -> the module imported (its weights, for run_source)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


def load_module(spec: str) -> torch.nn.Module:
    """``file.py:factory`` -> the module in eval mode; a one-line ValueError / FileNotFoundError
    for a missing file, a file that does not import, a missing factory, a factory that raises
    or returns something else than an ``nn.Module``."""
    file, _, factory = str(spec).rpartition(":")
    path = Path(file)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such module file (MODEL is path/to/file.py:factory)")
    if not factory.isidentifier():
        raise ValueError(f"{spec}: {factory!r} is not a function name (MODEL is path/to/file.py:factory)")
    mod_spec = importlib.util.spec_from_file_location(f"nnaccel_user_model_{abs(hash(str(path.resolve())))}", path)
    mod = importlib.util.module_from_spec(mod_spec)
    try:
        mod_spec.loader.exec_module(mod)
    except Exception as e:
        raise ValueError(f"{path}: importing it failed ({_first_line(e)})") from None
    fn = getattr(mod, factory, None)
    if not callable(fn):
        raise ValueError(f"{path}: no function {factory}")
    try:
        module = fn()
    except Exception as e:
        raise ValueError(f"{spec}: the factory raised {_first_line(e)}") from None
    if not isinstance(module, torch.nn.Module):
        raise ValueError(f"{spec}: the factory returned a {type(module).__name__}, not a torch.nn.Module")
    return module.eval()


def _forward(module, x, batch: int = 256) -> np.ndarray:
    outs = []
    with torch.no_grad():
        for k in range(0, len(x), batch):
            y = module(torch.as_tensor(np.asarray(x[k:k + batch], np.float32)))
            if not isinstance(y, torch.Tensor):
                raise ValueError(f"the module returned a {type(y).__name__}: only one output tensor")
            outs.append(y.float().numpy())
    return np.concatenate(outs)


def export_onnx(module, example: torch.Tensor):
    """The module as float ONNX (dynamo exporter, dynamic batch axis), a ModelProto."""
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            try:
                prog = torch.onnx.export(module, (example,), dynamo=True, verbose=False, input_names=["input"],
                                         dynamic_shapes=({0: torch.export.Dim("batch")},))
            except Exception:  # a module that fixes its batch: export it for batch 1
                prog = torch.onnx.export(module, (example[:1],), dynamo=True, verbose=False, input_names=["input"])
    except Exception as e:
        raise ValueError(f"torch.onnx.export (dynamo) could not capture the module: {_first_line(e)}") from None
    finally:
        quiet.setLevel(level)
    return prog.model_proto


def import_module(spec: str, data=None, variant: str = "int8", sparsity: float = 0.5):
    """A PyTorch module -> :class:`golden.graph.Graph` (nnaccel's post-training quantization,
    calibrated on ``data``)."""
    from golden.importers.float_onnx import import_float_onnx

    module = load_module(spec)
    if data is None:
        raise ValueError(f"{spec}: a PyTorch module: give --data DATA.npz (its inputs, to capture and calibrate it)")
    x = np.asarray(data, np.float32)
    try:
        _forward(module, x[:2])
    except Exception as e:
        raise ValueError(f"DATA x of shape {x.shape} does not fit the module {spec}: {_first_line(e)}") from None
    model = export_onnx(module, torch.as_tensor(x[:2]))
    _MODULES[spec] = module
    graph = import_float_onnx(spec, model, data=x, variant=variant, sparsity=sparsity, fmt="pytorch")
    return graph


def run_source(spec, graph, x, exposed: bool = True) -> dict[str, np.ndarray]:
    """The float module in PyTorch on ``x``: its output quantized with the graph output's scale
    and zero point (key ``graph.output``: a distance in LSBs) and the raw float output
    (``"float_output"``: the source's top-1). Intermediate tensors are not compared."""
    from golden.importers.float_onnx import quantize_like
    module = _MODULES.get(spec) or load_module(spec)
    out_t = graph.tensors[graph.output]
    y = _forward(module, x)
    y = y.reshape((len(y),) + out_t.shape) if y[0].size == int(np.prod(out_t.shape)) else y
    return {graph.output: quantize_like(y, out_t), "float_output": y}
