"""Per-operation energies of digital datapaths, shared by the engines' energy tables.

Anchor: M. Horowitz, "Computing's energy problem (and what we can do about it)",
ISSCC 2014, 45 nm at 0.9 V: 8-bit add 0.03 pJ, 32-bit add 0.1 pJ, 8-bit multiply
0.2 pJ, 32-bit multiply 3.1 pJ, a 64-bit read of an 8 KB SRAM 10 pJ. Scaled as
designers scale them: a ripple or prefix adder's energy grows with its width
(0.1 pJ / 32 bits per bit), an array multiplier's with the product of its operand
widths (3.1 pJ / (32 x 32) per bit pair, which gives 0.19 pJ for 8 x 8, the table's
0.2 pJ), an SRAM read with the bits read (10 pJ / 64 per bit).

The FAT subarray has its own table (:mod:`rtl.fat.energy`, sense-amplifier level);
these figures are for the engines that stream their operands from an on-chip buffer
(Phantom, Winograd). Replace them with your technology's figures: every energy
report records the table it used.
"""

from __future__ import annotations

ADD_PJ_PER_BIT = 0.1 / 32
MUL_PJ_PER_BIT2 = 3.1 / (32 * 32)
SRAM_READ_PJ_PER_BIT = 10.0 / 64

SOURCE = "Horowitz, ISSCC 2014 (45 nm, 0.9 V), scaled by width"


def add_pj(bits: int) -> float:
    """One ``bits``-wide addition."""
    return bits * ADD_PJ_PER_BIT


def mul_pj(a_bits: int, b_bits: int) -> float:
    """One ``a_bits`` x ``b_bits`` multiplication."""
    return a_bits * b_bits * MUL_PJ_PER_BIT2


def sram_read_pj(bits: int) -> float:
    """Reading ``bits`` from an 8 KB-class on-chip SRAM buffer."""
    return bits * SRAM_READ_PJ_PER_BIT
