"""The ``run(fn, items, labels)`` hook of the long studies (benches, the AID analysis).

A study made of independent measurements hands them to ``run`` and stays free of
any executor: :func:`serial` runs them here, one after another (the default);
``flows.executor.Executor.runner`` runs them on Dask workers. Either returns
``[fn(item) for item in items]`` in the items' order.
"""

from __future__ import annotations

from typing import Callable


def serial(log: Callable[[str], None] | None = None) -> Callable:
    """``run`` in this process, one job after another, ``log(label)`` before each."""
    def run(fn: Callable, items: list, labels: list[str]) -> list:
        out = []
        for item, label in zip(items, labels):
            if log:
                log(label)
            out.append(fn(item))
        return out
    return run
