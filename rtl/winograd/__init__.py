"""Winograd F(m x m, 3 x 3) convolution engine, m in {2, 4} (issue 5).

* :mod:`rtl.winograd.config` — :class:`WinogradConfig`, the single source of truth
  (tile size, parallel output channels, accumulation depth, every width);
* :mod:`rtl.winograd.transforms` — constant-matrix transforms as shift-add
  expressions and the exact division by ``s**2``;
* :mod:`rtl.winograd.engine` — :class:`WinogradEngine`, the pipelined datapath;
* :mod:`rtl.winograd.mapper` — tiling of a layer into the engine's stream, the
  expected outputs and the cycle model (pure numpy/torch, no simulator).
"""

from rtl.winograd.config import WinogradConfig
from rtl.winograd.engine import WinogradEngine

__all__ = ["WinogradConfig", "WinogradEngine"]
