"""Every output nnaccel writes appears whole or not at all (one mechanism: write under a
temporary name beside the target, then rename), output paths checked before any work,
and a plain progress display.

Temporaries are named ``.NAME.tmpPID`` (and ``.NAME.oldPID`` for the output being
replaced), PID the writer's process id: a writer killed in its write phase (SIGKILL,
power loss) leaves them behind, and the next write of ``NAME`` removes those whose
process is gone (:func:`sweep_stale`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from cosim.runner import pid_alive


def _writable(directory: Path) -> str | None:
    """Why no file can be created in the existing ``directory`` (None: it can). A real probe,
    so that a read-only file system or a missing permission is found, even as root."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".nnaccel-probe", dir=directory)
    except OSError as e:
        return e.strerror or str(e)
    os.close(fd)
    os.unlink(probe)
    return None


def _dir_problem(path: Path, replace: bool) -> str | None:
    """Why the directory ``path`` cannot be made (or replaced) and written; None if it can."""
    try:
        if path.exists() and not path.is_dir():
            return "exists and is not a directory"
        base = path
        while not base.exists():
            if base.is_symlink():
                return f"{base} is a broken symbolic link"
            base = base.parent
    except OSError as e:
        return f"cannot be reached ({e.strerror or e})"
    if not base.is_dir():
        return f"{base} is a file, not a directory"
    dirs = [base]
    if replace and base == path and path.resolve().parent != path.resolve():
        dirs.append(path.resolve().parent)  # the new directory is renamed in beside the old
    for d in dirs:
        why = _writable(d)
        if why:
            return f"cannot write in {d} ({why})"
    return None


def check_output_dir(path, option: str = "-o", *, replace: bool = False) -> Path:
    """Check, before any work, that output directory ``path`` can be made and written.

    ValueError, one line naming ``option``, when ``path`` is an existing file, lies below
    a file, or its nearest existing folder is not writable (permissions, read-only file
    system); with ``replace`` (outputs written whole with :func:`atomic_dir`) the folder
    holding ``path`` must be writable too. Creates nothing. Every command that writes
    calls this (or :func:`check_output_file`) first: ``verilog``, ``cosim --json``,
    ``verify``, ``bench``, ``synth``, ``analog``, ``import``."""
    path = Path(path)
    why = _dir_problem(path, replace)
    if why:
        raise ValueError(f"{option} {path}: {why}")
    return path


def check_output_file(path, option: str = "--json") -> Path:
    """As :func:`check_output_dir` for one output file ``path`` (written with
    :func:`write_atomic`): ValueError if it is a directory or its folder cannot be made
    and written."""
    path = Path(path)
    if path.is_dir() or path.name in ("", ".", ".."):
        raise ValueError(f"{option} {path}: is a directory, not a file")
    why = _dir_problem(path.parent, False)
    if why:
        raise ValueError(f"{option} {path}: folder {path.parent}: {why}")
    return path


_STALE = re.compile(r"\.(?P<name>.+)\.(?:tmp|old)(?P<pid>\d+)$")


def sweep_stale(final: Path) -> list[Path]:
    """Remove ``.NAME.tmpPID`` / ``.NAME.oldPID`` leftovers of ``final`` (NAME its name)
    whose writer process is gone; return what was removed. A leftover of a live
    process (a concurrent writer) is kept."""
    final = Path(final)
    removed = []
    try:
        siblings = list(final.parent.iterdir())
    except OSError:
        return removed
    for p in siblings:
        m = _STALE.fullmatch(p.name)
        if not m or m["name"] != final.name or pid_alive(int(m["pid"])):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                p.unlink()
        removed.append(p)
    return removed


@contextlib.contextmanager
def atomic_dir(final: Path):
    """Yield a temporary directory; on success it replaces ``final`` in one rename.

    On an exception the temporary directory is removed and ``final`` is left as it was.
    Leftovers of earlier writers of ``final`` that were killed are removed first.
    """
    final = Path(final)
    if final.exists() and not final.is_dir():
        raise FileExistsError(f"output {final} exists and is not a directory")
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(final)
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
    sweep_stale(path)
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
