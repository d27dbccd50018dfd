"""Per-operation energies of the FAT subarray, and energy from the RTL's counters.

One documented table; each value is an *assumption* (no technology data ships
with this project), chosen as orders of magnitude for a 45 nm-class non-volatile
(SOT-MRAM-like) in-memory-computing subarray of the kind FAT and ParaPIM target,
where writing a cell costs several times sensing it. Replace the table with your
technology's figures; the ratios the bench reports depend mostly on
row_write / row_read, and the bench JSON records the table it used.
"""

from __future__ import annotations

# femtojoules, per column unless noted
ENERGY_FJ = {
    "row_read": {"value": 5.0, "per": "row sensed into a column's sense amplifier",
                 "source": "assumption: bit-line sensing of one cell, ~5 fJ (45 nm-class)"},
    "row_write": {"value": 40.0, "per": "cell written",
                  "source": "assumption: MRAM-like write ~8x a read (SOT-MRAM writes are tens of fJ)"},
    "latch_op": {"value": 0.5, "per": "carry-latch update in a column",
                 "source": "assumption: one CMOS latch toggle, ~0.5 fJ"},
    "control": {"value": 50.0, "per": "cycle of the SACU + row decoders (whole subarray)",
                "source": "assumption: controller and decoder activity per cycle"},
}


def energy_pj(stats: dict, cycles: int, cols: int, table: dict = ENERGY_FJ) -> dict:
    """Energy breakdown in pJ from the stat_* counters of one run."""
    parts = {
        "row_read": stats["row_reads"] * cols * table["row_read"]["value"],
        "row_write": stats["row_writes"] * cols * table["row_write"]["value"],
        "latch_op": stats["latch_ops"] * cols * table["latch_op"]["value"],
        "control": cycles * table["control"]["value"],
    }
    out = {k: v / 1000.0 for k, v in parts.items()}
    out["total"] = sum(out.values())
    return out
