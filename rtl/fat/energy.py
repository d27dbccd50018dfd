"""Per-operation energies of the FAT subarray, and energy from the RTL's counters.

One documented table. No technology data ships with this project, so the values
are anchored to what the FAT paper reports at sense-amplifier level and
otherwise stated as assumptions:

* row_read: assumption, ~5 fJ to sense one cell into a column's sense amplifier
  (bit-line swing of a small subarray, 45-65 nm class).
* row_write: calibrated. FAT reports, at SA level against ParaPIM, 2.00x speed and
  1.22x power efficiency, i.e. 2.44x less energy per added bit. Per bit, ParaPIM
  senses three rows twice and writes twice (carry row, sum row); FAT senses two
  rows, writes once and updates a latch. (6R + 2W) / (2R + W) = 2.44 gives
  W = 2.5 R, so 12.5 fJ.
* latch_op: assumption, ~0.1 fJ for one CMOS latch update.
* control: assumption, 10 fJ per cycle for the SACU and row decoders.

Replace the table with your technology's figures; the bench JSON records the
table it used.

:func:`energy` is the protocol's entry (:mod:`rtl.engines`): it takes a counters
dict with ``row_reads``, ``row_writes``, ``latch_ops`` and ``cycles`` -- what the
testbench's ``run`` reports in ``StreamResult.extra["stats"]`` (the RTL's stat_*
counters plus the run's cycles), or what :func:`rtl.fat.model.cycles` predicts.
"""

from __future__ import annotations

# femtojoules, per column unless noted
ENERGY_FJ = {
    "row_read": {"value": 5.0, "per": "row sensed into a column's sense amplifier",
                 "source": "assumption: sensing one cell, ~5 fJ (45-65 nm class subarray)"},
    "row_write": {"value": 12.5, "per": "cell written",
                  "source": "calibrated to FAT's SA-level 2.00x speed x 1.22x power efficiency over ParaPIM "
                            "(2.44x energy per added bit): (6R + 2W) / (2R + W) = 2.44 -> W = 2.5 R"},
    "latch_op": {"value": 0.1, "per": "carry-latch update in a column",
                 "source": "assumption: one CMOS latch update"},
    "control": {"value": 10.0, "per": "cycle of the SACU + row decoders (whole subarray)",
                "source": "assumption: controller and decoder activity per cycle"},
}


def energy(counters: dict, cfg) -> dict:
    """Energy breakdown in pJ (row_read, row_write, latch_op, control, total) from a
    run's counters (see the module docstring) on configuration ``cfg``."""
    missing = [k for k in ("row_reads", "row_writes", "latch_ops", "cycles") if k not in counters]
    if missing:
        raise ValueError(f"fat energy needs the counters {', '.join(missing)} (have {', '.join(counters)})")
    return energy_pj(counters, counters["cycles"], cfg.cols)


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
