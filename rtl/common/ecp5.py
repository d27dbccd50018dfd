"""ECP5 primitives the RTL instantiates where inference would leave a DSP's registers
unused (Lattice TN1267, the ECP5 sysDSP usage guide). Verilog only: simulated with our
model ``rtl/requant/ecp5_mult18x18d.v``, synthesized for ECP5."""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Const, Instance, Module, ResetSignal, Signal, signed

# The ECP5 MULT18X18D configuration of dsp="ecp5": A and B registered on the way in, the
# 36-bit product P registered on the way out (no pipeline register: two cycles from A, B
# to P), all on CLK0, enabled by CE0, cleared by the synchronous RST0 (the domain's reset,
# as the fabric registers it stands for). Lattice TN1267 (ECP5 sysDSP usage guide); the
# parameter names and defaults as Yosys's share/ecp5/cells_bb.v declares them. nextpnr
# times such a DSP as registers at both ends (its MULT18X18D_REGS_ALL timing class).
MULT18X18D_PARAMS = {
    "REG_INPUTA_CLK": "CLK0", "REG_INPUTA_CE": "CE0", "REG_INPUTA_RST": "RST0",
    "REG_INPUTB_CLK": "CLK0", "REG_INPUTB_CE": "CE0", "REG_INPUTB_RST": "RST0",
    "REG_PIPELINE_CLK": "NONE",
    "REG_OUTPUT_CLK": "CLK0", "REG_OUTPUT_CE": "CE0", "REG_OUTPUT_RST": "RST0",
    "GSR": "DISABLED", "RESETMODE": "SYNC", "MULT_BYPASS": "DISABLED",
}


def mult18x18d(m: Module, name: str, a, b, en) -> Signal:
    """An instantiated MULT18X18D named ``name`` (:data:`MULT18X18D_PARAMS`): ``a`` and
    ``b`` (each at most 18 bits signed, or 17 unsigned) extended to 18-bit signed
    operands; returns its registered 36-bit product, the signal ``name``."""
    a18, b18 = Signal(signed(18), name=f"{name}_a"), Signal(signed(18), name=f"{name}_b")
    m.d.comb += [a18.eq(a), b18.eq(b)]
    p = Signal(signed(36), name=name)
    ports = {"i_CLK0": ClockSignal(), "i_CE0": en, "i_RST0": ResetSignal(),
             "i_SIGNEDA": Const(1), "i_SIGNEDB": Const(1), "i_SOURCEA": Const(0), "i_SOURCEB": Const(0)}
    ports.update({f"i_A{j}": a18[j] for j in range(18)})
    ports.update({f"i_B{j}": b18[j] for j in range(18)})
    ports.update({f"i_C{j}": Const(0) for j in range(18)})
    ports.update({f"o_P{j}": p[j] for j in range(36)})
    m.submodules[f"{name}_dsp"] = Instance("MULT18X18D", **{f"p_{k}": v for k, v in MULT18X18D_PARAMS.items()},
                                           **ports)
    return p
