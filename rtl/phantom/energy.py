"""Energy of a Phantom core from its counters: one documented table.

Per-operation figures come from :mod:`rtl.common.energy` (Horowitz, ISSCC 2014,
45 nm, scaled by width), applied to what the core does:

* product: each product the threads issue (``products``; in dense mode the zeros
  too) is an 8 x 9-bit multiply (int8 weight, 9-bit u = x - zero_point) and a
  32-bit accumulation;
* buffer: each chunk (``chunks``) is read from the on-chip buffer as the whole
  chunk of the core's input word (masks, packed values, counts, requantization
  parameters: ``chunk_layout().size`` bits);
* lookahead: each cycle (``cycles``) the scheduler ANDs the masks and counts
  prefixes over its window (``window * chunk`` mask positions), costed as that many
  one-bit additions.

The requantizer, the same in every engine, is left out of every engine's table, so
they compare the engines themselves. Replace the figures with your technology's:
the report records the table used (:data:`ENERGY`).
"""

from __future__ import annotations

from rtl.common.energy import SOURCE, add_pj, mul_pj, sram_read_pj
from rtl.phantom.config import A_BITS, ACC_BITS, W_BITS

ENERGY = {
    "product": {"per": "product issued", "source": f"{W_BITS}x{A_BITS}-bit multiply + {ACC_BITS}-bit add; {SOURCE}"},
    "buffer": {"per": "chunk read", "source": f"chunk_layout() bits from an 8 KB SRAM; {SOURCE}"},
    "lookahead": {"per": "cycle", "source": f"window x chunk one-bit additions; {SOURCE}"},
}


def table(cfg) -> dict:
    """pJ per event for configuration ``cfg``."""
    return {"product": mul_pj(W_BITS, A_BITS) + add_pj(ACC_BITS),
            "buffer": sram_read_pj(cfg.chunk_layout().size),
            "lookahead": add_pj(cfg.window * cfg.chunk)}


def energy(counters: dict, cfg) -> dict:
    """Energy breakdown in pJ (product, buffer, lookahead, total) from a run's counters
    (``products``, ``chunks``, ``cycles``: the RTL's stat_* counters and the run's cycles,
    or what :func:`rtl.phantom.model.cycles` predicts) on configuration ``cfg``."""
    missing = [k for k in ("products", "chunks", "cycles") if k not in counters]
    if missing:
        raise ValueError(f"phantom energy needs the counters {', '.join(missing)} (have {', '.join(counters)})")
    pj = table(cfg)
    out = {"product": counters["products"] * pj["product"], "buffer": counters["chunks"] * pj["buffer"],
           "lookahead": counters["cycles"] * pj["lookahead"]}
    out["total"] = sum(out.values())
    return out
