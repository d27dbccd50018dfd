"""`nnaccel bench NAME`: benchmarks that write JSON (figures, never pass/fail timing tests).

The benchmarks are the modules of ``cosim.benches`` (found by name, see
:func:`cosim.engines.benches`) and the orchestration's own (``sweep``:
:mod:`flows.bench_sweep`); each returns (result dict, summary lines, passed).
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

from cosim.engines import benches
from flows.outdir import check_output_dir, write_json_atomic


def table() -> dict:
    """Every benchmark by name: the engines' (cosim) and the flows' own."""
    from flows import bench_sweep
    return {**benches(), "sweep": bench_sweep}


def bench(what: str, *, out: Path, vectors: int, workers: int | None = None, scheduler: str | None = None) -> int:
    """Run benchmark ``what``; a bench whose ``bench`` takes ``run`` has its jobs run on the
    executor (:mod:`flows.executor`: ``workers`` local processes, default the cores, 0 in
    this process; or a ``scheduler``)."""
    out = check_output_dir(out)
    table_ = table()
    if what not in table_:
        raise ValueError(f"unknown benchmark {what!r} (valid: {', '.join(table_)})")
    fn = table_[what].bench
    if "run" in inspect.signature(fn).parameters and (workers != 0 or scheduler):
        from flows.executor import Executor
        with Executor(workers, scheduler, preload=(fn.__module__,)) as ex:
            print(f"bench {what}: executor: {ex.describe()}", file=sys.stderr, flush=True)
            result, lines, passed = fn(out, vectors, run=ex.runner(f"bench {what}", resources={"sim": 1}))
    else:
        result, lines, passed = fn(out, vectors)
    path = out / f"{what}.json"
    write_json_atomic(path, result)
    for line in lines:
        print(line)
    print(f"wrote {path}")
    return 0 if passed else 1

