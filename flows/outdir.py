"""Every output nnaccel writes appears whole or not at all (one mechanism: write under a
temporary name beside the target, then rename), and a plain progress display."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from pathlib import Path


@contextlib.contextmanager
def atomic_dir(final: Path):
    """Yield a temporary directory; on success it replaces ``final`` in one rename.

    On an exception the temporary directory is removed and ``final`` is left as it was.
    """
    final = Path(final)
    if final.exists() and not final.is_dir():
        raise FileExistsError(f"output {final} exists and is not a directory")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = final.with_name(f".{final.name}.old{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` (parents created): a reader sees the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_bytes(data) if isinstance(data, bytes) else tmp.write_text(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: Path, obj) -> Path:
    return write_atomic(path, json.dumps(obj, indent=2) + "\n")


class Progress:
    """`[k/n] label ... result` lines on stderr; a live line when stderr is a terminal."""

    def __init__(self, total: int, stream=None):
        self.total, self.k, self.stream = total, 0, stream or sys.stderr  # the current stderr
        self.tty = self.stream.isatty()
        self.t0 = time.perf_counter()

    def start(self, label: str) -> None:
        self.k += 1
        self.label = label
        self.t = time.perf_counter()
        if self.tty:
            self.stream.write(f"\r[{self.k}/{self.total}] {label} ...\x1b[K")
            self.stream.flush()

    def done(self, result: str) -> None:
        dt = time.perf_counter() - self.t
        line = f"[{self.k}/{self.total}] {self.label}: {result} ({dt:.1f} s)"
        self.stream.write(f"\r{line}\x1b[K\n" if self.tty else f"{line}\n")
        self.stream.flush()
