"""Validation of integer configuration fields, one message for every engine's config."""

from __future__ import annotations


def check_ints(config, ranges: dict[str, tuple[int, int | None]]) -> None:
    """ValueError naming the first field of ``config`` that is not an integer in its
    ``(lo, hi)`` range (``hi`` None: no upper bound); booleans are not integers here."""
    for name, (lo, hi) in ranges.items():
        v = getattr(config, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < lo or (hi is not None and v > hi):
            what = "a positive integer" if (lo, hi) == (1, None) else f"an integer in [{lo}, {hi}]"
            raise ValueError(f"{name} must be {what}, not {v!r}")
