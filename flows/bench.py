"""`nnaccel bench NAME`: benchmarks that write JSON (figures, never pass/fail timing tests).

The benchmarks are the modules of ``cosim.benches`` (found by name, see
:func:`cosim.engines.benches`); each returns (result dict, summary lines, passed).
"""

from __future__ import annotations

from pathlib import Path

from cosim.engines import benches
from flows.outdir import check_output_dir, write_json_atomic


def bench(what: str, *, out: Path, vectors: int) -> int:
    out = check_output_dir(out)
    table = benches()
    if what not in table:
        raise ValueError(f"unknown benchmark {what!r} (valid: {', '.join(table)})")
    result, lines, passed = table[what].bench(out, vectors)
    path = out / f"{what}.json"
    write_json_atomic(path, result)
    for line in lines:
        print(line)
    print(f"wrote {path}")
    return 0 if passed else 1
