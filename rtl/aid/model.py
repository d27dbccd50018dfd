"""Cycle model of the AID controller, from its FSM (:mod:`rtl.aid.controller`).

One multiply, operands waiting and the result taken at once, visits every state::

    IDLE 1 (accept) + WRITE 1 + PRECHARGE precharge_cycles + EVALUATE 8 * unit_cycles
    + SETTLE settle_cycles + CONVERT 1 + WAIT_ADC adc_cycles + OUTPUT 1

and the next multiply starts only when the controller is back in IDLE (one at a
time), so N multiplies take N times that.
"""

from __future__ import annotations

from rtl.aid.config import AidControllerConfig
from rtl.aid.mapper import Multiplies


def cycles_per_multiply(cfg: AidControllerConfig, adc_cycles: int) -> int:
    """Cycles of one multiply with a column that answers after ``adc_cycles`` cycles."""
    return 1 + 1 + cfg.precharge_cycles + 8 * cfg.unit_cycles + cfg.settle_cycles + 1 + adc_cycles + 1


def cycles(plan: Multiplies) -> dict:
    """``cycles`` and ``conversions`` of a plan of multiplies, without idle input or back-pressure."""
    n = len(plan.pairs)
    return {"cycles": n * cycles_per_multiply(plan.config, plan.adc_cycles), "conversions": n}
