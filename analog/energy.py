"""Energy per operation from ngspice supply currents (and the same columns' bit-line drops).

Each column of :func:`analog.spice.mac_netlist` has its own supplies, so for every
(a, b) pair::

    word line  = sum_i  -integral V_WLi(t) * I(vwl_i) dt   (the four word-line drivers; the DAC
                                                          level supplies the charge)
    cell array = -integral VDD * I(vdd) dt                 (cell supply: read-disturb restore, leakage)
    preset     = -integral VDD * I(vpre) dt                (precharge PMOS restoring BL and BLB)

over the whole evaluate + preset window. The paper's "multiply, accumulate and
preset" maps to word line + cell array (the multiply, whose products accumulate as
charge on the bit line) and preset; the ADC conversion is not included (the paper's
figure does not state it either).
"""

from __future__ import annotations

import numpy as np

from analog.circuit import B_BITS, Circuit


def _integrate(t, y):
    return float(np.sum((y[1:] + y[:-1]) * np.diff(t)) / 2)


def energies(c: Circuit, out: dict, levels: list[float]) -> dict:
    """Per-column energy components (J), arrays in column order."""
    t = out["time"]
    n = len(levels)
    wl, cell, pre = np.zeros(n), np.zeros(n), np.zeros(n)
    shapes = []
    for i in range(B_BITS):
        ts, vs = zip(*c.wl_waveform(i))
        shapes.append(np.interp(t, ts, vs))
    for k, v in enumerate(levels):
        for i in range(B_BITS):
            wl[k] += -_integrate(t, v * shapes[i] * out[f"i(vwl{i}_{k})"])
        cell[k] = -_integrate(t, c.vdd * out[f"i(vdd{k})"])
        pre[k] = -_integrate(t, c.vdd * out[f"i(vpre{k})"])
    return {"word_line": wl, "cell_array": cell, "preset": pre, "total": wl + cell + pre}
