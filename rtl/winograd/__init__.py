"""Winograd F(m x m, 3 x 3) convolution engine, m in {2, 4} (issue 5).

* :mod:`rtl.winograd.config` — :class:`WinogradConfig`, the single source of truth
  (tile size, parallel output channels, accumulation depth, every width);
* :mod:`rtl.winograd.transforms` — constant-matrix transforms as shift-add
  expressions and the exact division by ``s**2``;
* :mod:`rtl.winograd.engine` — :class:`WinogradEngine`, the pipelined datapath;
* :mod:`rtl.winograd.mapper` — which layers the engine runs (:func:`maps`) and the
  tiling of a layer into the engine's stream with its expected outputs (:func:`plan`;
  pure numpy/torch, no simulator);
* :mod:`rtl.winograd.model` — the cycle model.

Co-simulation: :mod:`cosim.testbenches.winograd`; benchmark: :mod:`cosim.benches.winograd`.
"""

from rtl.winograd.config import WinogradConfig
from rtl.winograd.engine import WinogradEngine

__all__ = ["WinogradConfig", "WinogradEngine"]
