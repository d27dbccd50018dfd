"""Where nnaccel keeps what it can rebuild: ``$NNACCEL_CACHE``, default ``~/.cache/nnaccel``.

Everything in it is keyed by content (trained nets, generated Verilog, simulator
builds, synthesis results), so one directory may be shared by several machines or
Dask workers (a shared file system is optional: each worker otherwise keeps its own).
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    root = os.environ.get("NNACCEL_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "nnaccel"
