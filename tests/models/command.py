"""`nnaccel import` run from a test: the command must succeed, its JSON files are read back."""

from __future__ import annotations

import json
from pathlib import Path


def run_import(source, out: Path, data=None, images: int | None = None) -> tuple[dict, dict]:
    """``nnaccel import SOURCE [--data DATA] [--images N] -o OUT``, asserted to exit 0:
    (results.json, graph.json) as written in ``out``."""
    from flows.cli import main
    argv = ["import", str(source)]
    if data is not None:
        argv += ["--data", str(data)]
    if images is not None:
        argv += ["--images", str(images)]
    assert main(argv + ["-o", str(out)]) == 0, argv
    return json.loads((out / "results.json").read_text()), json.loads((out / "graph.json").read_text())
