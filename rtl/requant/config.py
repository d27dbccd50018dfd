"""The requantizer's configuration: the single source for its RTL, testbench and report."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from amaranth.hdl import signed
from amaranth.lib import data

from golden.quant import SHIFT_MAX, SHIFT_MIN

# The requantizer's pipelines, by name: its registered stages from the input handshake
# to the output, in order; the latency is their number (rtl/requant/requantizer.py).
#   shift    left shift with int32 wrap-around; the shift split into left and right
#   mul      (compact) the whole 2n-bit product x * q: one 32 x 32 multiply, 4 ECP5
#            MULT18X18D and the carry chains that add their outputs, in one stage
#   high     the rounding doubling high half and its one saturating case (fast: with
#            the masks of the rounding half and the bits under it, from the shift)
#   round    rounding divide by 2**right, ties away from zero (compact: with the
#            increment; fast: barrel shift and rounding bit side by side)
#   pp       (fast) four partial products of the n/2-bit halves, registered: each at
#            most 17 x 17 bits signed, one 18 x 18 DSP and nothing after it
#   sum      (fast) their middle and outer sums, side by side (one carry chain each)
#   add      (fast) the rounding bit and the output zero point, one carry chain
#   compare  (fast) the comparisons with the clamp bounds, on out_bits bits
#   clamp    the output register (compact: zero point, comparisons and clamp)
PIPELINES: dict[str, tuple[str, ...]] = {
    "compact": ("shift", "mul", "high", "round", "clamp"),
    "fast": ("shift", "pp", "sum", "high", "round", "add", "compare", "clamp"),
}


# How the fast pipeline's four partial products reach the DSPs:
#   inferred  ``*`` in Amaranth, mapped by the synthesis tool (Yosys maps each to an ECP5
#             MULT18X18D with its registers unused: fabric flip-flop -> DSP -> flip-flop)
#   ecp5      each an instantiated ECP5 MULT18X18D (the vendor primitive) whose own input
#             registers are a stage of their own, ``dspin``, loaded from the shift stage's
#             fabric x and q registers (nothing but routing between them: the shift's
#             multiplexers end in fabric flip-flops), and whose output registers are the
#             pp stage's products; one stage more than ``inferred`` (fast: 9). Simulated
#             with our model rtl/requant/ecp5_mult18x18d.v; ``fast`` pipeline only.
DSPS = ("inferred", "ecp5")


def check_pipeline(value, name: str = "pipeline") -> str:
    """``value`` when it names a requantizer pipeline, else ValueError naming ``name``."""
    if value not in PIPELINES:
        raise ValueError(f"{name} must be one of {', '.join(PIPELINES)} (the requantizer's pipelines), "
                         f"not {value!r}")
    return value


def check_dsp(value, name: str = "dsp") -> str:
    """``value`` when it names a way to build the partial products (:data:`DSPS`), else
    ValueError naming ``name``."""
    if value not in DSPS:
        raise ValueError(f"{name} must be one of {', '.join(DSPS)} (how the multiplies reach the DSPs), "
                         f"not {value!r}")
    return value


def check_requant(pipeline, dsp, prefix: str = "requant_") -> tuple[str, str]:
    """``(pipeline, dsp)`` when they name a requantizer pipeline and a DSP choice that go
    together (``dsp=ecp5`` needs the fast pipeline), else ValueError naming the field as
    ``prefix + "pipeline"`` / ``prefix + "dsp"`` (an engine's ``requant_pipeline`` and
    ``requant_dsp``; the requantizer's own ``pipeline`` and ``dsp`` with ``prefix=""``)."""
    check_pipeline(pipeline, f"{prefix}pipeline")
    check_dsp(dsp, f"{prefix}dsp")
    if dsp != "inferred" and pipeline != "fast":
        raise ValueError(f"{prefix}dsp={dsp} registers the fast pipeline's partial products in the DSPs: "
                         f"it needs {prefix}pipeline=fast, not {pipeline!r}")
    return pipeline, dsp


@dataclass(frozen=True)
class RequantConfig:
    """The requantizer's parameters: the single source for RTL, testbench and report.

    pipeline  its registered stages (:data:`PIPELINES`): "compact" (5 stages, the fewest
              registers; about 70 MHz on an ECP5-85F) or "fast" (8 stages: the 32 x 32
              multiply as four registered 18 x 18-DSP partial products and their sums,
              the rounding shift, the zero-point add and the clamp comparisons each in a
              stage of their own; about 138 MHz). The results are the same, bit for bit.
    dsp       how the fast pipeline's partial products reach the DSPs (:data:`DSPS`):
              "inferred" (Amaranth ``*``, the synthesis tool's mapping) or "ecp5" (four
              instantiated ECP5 MULT18X18D with their input and output registers in use,
              the input registers a stage of their own: 9 stages; Verilog only, simulated with our model of the primitive,
              synthesized for ECP5).
    """

    acc_bits: int = 32  # accumulator and multiplier width (TFLite: 32)
    out_bits: int = 8  # output width (int8)
    shift_bits: int = 6  # signed shift field; valid values SHIFT_MIN..SHIFT_MAX
    pipeline: str = "compact"
    dsp: str = "inferred"

    def __post_init__(self):
        if self.acc_bits != 32:
            raise ValueError(f"acc_bits must be 32 (TFLite's int32 arithmetic), not {self.acc_bits}")
        if not 2 <= self.out_bits <= 16:
            raise ValueError(f"out_bits must lie in [2, 16], not {self.out_bits}")
        if self.shift_bits != 6:
            raise ValueError(f"shift_bits must be 6 (shifts {SHIFT_MIN}..{SHIFT_MAX}), not {self.shift_bits}")
        check_requant(self.pipeline, self.dsp, prefix="")

    @property
    def stages(self) -> tuple[str, ...]:
        """The pipeline's registered stages, in order (:data:`PIPELINES`); with
        ``dsp="ecp5"`` the DSPs' input registers are a stage of their own, ``dspin``,
        after ``shift`` (:data:`DSPS`)."""
        stages = PIPELINES[self.pipeline]
        if self.dsp == "ecp5":
            stages = stages[:1] + ("dspin",) + stages[1:]
        return stages

    @property
    def latency(self) -> int:
        """Cycles from an input handshake to its output valid (one register per stage)."""
        return len(self.stages)

    def in_layout(self) -> data.StructLayout:
        return data.StructLayout({
            "acc": signed(self.acc_bits),
            "mult": signed(self.acc_bits),
            "shift": signed(self.shift_bits),
        })

    def params(self) -> dict:
        return asdict(self)
