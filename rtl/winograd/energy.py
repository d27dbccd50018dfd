"""Energy of the Winograd engine from its counters: one documented table.

Per-operation figures come from :mod:`rtl.common.energy` (Horowitz, ISSCC 2014,
45 nm, scaled by width), applied to what the engine does with each input beat and
each output group, at the widths :meth:`WinogradConfig.widths` gives its registers:

* buffer: each beat (``beats``) reads the whole input word from the on-chip buffer
  (the input tile, ``channels`` transformed weight tiles and their requantization
  parameters: ``in_layout().size`` bits);
* input transform: B^T d B on each beat, each constant coefficient a shift-and-add
  (a coefficient with k set bits costs k terms), at the ``V`` width;
* multiply: ``channels * a * a`` element-wise products of U x V widths per beat;
* accumulate: as many additions at the ``M`` width;
* output transform: A^T M A per output tile of each group (``groups``: the beats
  marked ``last``), at the ``ATM`` width.

The weight transform is done offline by the mapper, and the requantizer (the same in
every engine) is left out of every engine's table. Replace the figures with your
technology's: the report records the table used (:data:`ENERGY`).
"""

from __future__ import annotations

from rtl.common.energy import SOURCE, add_pj, mul_pj, sram_read_pj

ENERGY = {
    "buffer": {"per": "input beat", "source": f"in_layout() bits from an 8 KB SRAM; {SOURCE}"},
    "input_transform": {"per": "input beat", "source": f"B^T d B shift-and-add terms at the V width; {SOURCE}"},
    "multiply": {"per": "input beat", "source": f"channels*a*a U x V multiplies; {SOURCE}"},
    "accumulate": {"per": "input beat", "source": f"channels*a*a additions at the M width; {SOURCE}"},
    "output_transform": {"per": "output group", "source": f"A^T M A terms per channel at the ATM width; {SOURCE}"},
}


def _adds(matrix) -> int:
    """Additions of one matrix-vector product with constant ``matrix``: per row, its
    shift-and-add terms (set bits of each coefficient) less one."""
    return sum(max(0, sum(bin(abs(c)).count("1") for c in row) - 1) for row in matrix)


def table(cfg) -> dict:
    """pJ per event for configuration ``cfg``."""
    a, m, p = cfg.a, cfg.m, cfg.channels
    return {"buffer": sram_read_pj(cfg.in_layout().size),
            "input_transform": 2 * a * _adds(cfg.bt) * add_pj(cfg.bits("V")),
            "multiply": p * a * a * mul_pj(cfg.bits("U"), cfg.bits("V")),
            "accumulate": p * a * a * add_pj(cfg.bits("M")),
            "output_transform": p * (a + m) * _adds(cfg.at) * add_pj(cfg.bits("ATM"))}


def energy(counters: dict, cfg) -> dict:
    """Energy breakdown in pJ from ``beats`` and ``groups`` (what
    :func:`rtl.winograd.model.cycles` counts for a plan; the engine has no counters of
    its own, its dataflow is static) on configuration ``cfg``."""
    missing = [k for k in ("beats", "groups") if k not in counters]
    if missing:
        raise ValueError(f"winograd energy needs the counters {', '.join(missing)} (have {', '.join(counters)})")
    pj = table(cfg)
    out = {k: counters["groups" if k == "output_transform" else "beats"] * v for k, v in pj.items()}
    out["total"] = sum(out.values())
    return out
