"""Amaranth simulation of the RTL requantizer against golden.quant.requantize."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from cosim.testbenches.requant import SCENARIOS, edge_vectors, expected, random_vectors
from golden.errors import NotMapped
from golden.layer import layer_vectors_from
from golden.quant import requantize
from rtl.requant.config import PIPELINES, RequantConfig
from rtl.requant.mapper import maps, plan
from rtl.requant.model import cycles, stream_cycles
from rtl.requant.requantizer import Requantizer
from rtl.common.simtools import stream_get, stream_put


def simulate(vec, sc, *, idle=0.0, stall=0.0, seed=0, cfg=None):
    dut = Requantizer(cfg)
    n = len(vec["acc"])
    got = []
    rng = random.Random(seed)

    async def config(ctx):
        ctx.set(dut.zero_point, sc.zero_point)
        ctx.set(dut.act_min, sc.act_min)
        ctx.set(dut.act_max, sc.act_max)

    async def producer(ctx):
        await config(ctx)
        for k in range(n):
            await stream_put(ctx, dut.i, {f: int(vec[f][k]) for f in ("acc", "mult", "shift")}, idle=idle, rng=rng)

    async def consumer(ctx):
        for _ in range(n):
            got.append(await stream_get(ctx, dut.o, stall=stall, rng=rng))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return np.array(got, dtype=np.int64)


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("sc", SCENARIOS, ids=lambda s: s.name)
def test_requantizer_matches_golden(sc, pipeline):
    rng = np.random.default_rng(3)
    vec = {k: np.concatenate([edge_vectors(rng)[k], random_vectors(rng, 300)[k]]) for k in ("acc", "mult", "shift")}
    exp = expected(vec, sc)
    got = simulate(vec, sc, idle=sc.idle, stall=sc.stall, cfg=RequantConfig(pipeline=pipeline))
    bad = np.flatnonzero(got != exp)
    assert bad.size == 0, (f"index {bad[0]}: inputs {({k: int(v[bad[0]]) for k, v in vec.items()})}, "
                           f"expected {exp[bad[0]]}, got {got[bad[0]]}")


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_latency_and_throughput(pipeline):
    """One result per cycle after config.latency cycles with no back-pressure."""
    cfg = RequantConfig(pipeline=pipeline)
    dut = Requantizer(cfg)
    seen = []

    async def bench(ctx):
        ctx.set(dut.act_min, -128)
        ctx.set(dut.act_max, 127)
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 1)
        for cycle in range(20):
            ctx.set(dut.i.payload, {"acc": cycle * 4, "mult": 1 << 30, "shift": -1})
            await ctx.tick()
            if ctx.get(dut.o.valid):
                seen.append((cycle, ctx.get(dut.o.payload)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    lat = cfg.latency
    assert lat == {"compact": 5, "fast": 8}[pipeline]
    assert seen[0][0] == lat - 1, f"first output after {seen[0][0] + 1} cycles, expected {lat}"
    assert [c for c, _ in seen] == list(range(lat - 1, 20)), "not one result per cycle"
    assert [v for _, v in seen] == [int(requantize(4 * k, 1 << 30, -1, 0)) for k in range(len(seen))]


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="acc_bits must be 32"):
        RequantConfig(acc_bits=16)
    with pytest.raises(ValueError, match="out_bits"):
        RequantConfig(out_bits=1)
    with pytest.raises(ValueError, match="pipeline must be one of compact, fast .*not 'deep'"):
        RequantConfig(pipeline="deep")


def test_plan_streams_each_accumulator_with_its_channels_multiplier():
    rng = np.random.default_rng(2)
    vec = layer_vectors_from(name="fc", kind="linear", x=rng.integers(-128, 128, size=(3, 10)),
                             w=rng.integers(-127, 128, size=(4, 10)), bias=rng.integers(-99, 99, size=4),
                             input_zero_point=5, real_multipliers=rng.uniform(0.001, 0.01, size=4),
                             output_zero_point=-100)
    assert maps(vec, RequantConfig()) is None
    p = plan(vec, RequantConfig())
    assert p.elements == 12 and np.array_equal(p.inputs["acc"], vec.acc.ravel())
    assert np.array_equal(p.inputs["mult"], np.tile(vec.mult, 3))
    assert np.array_equal(p.inputs["shift"], np.tile(vec.shift, 3))
    assert p.statics == {"zero_point": -100, "act_min": -100, "act_max": 127}
    got = requantize(p.inputs["acc"], p.inputs["mult"], p.inputs["shift"], -100, -100, 127).numpy()
    assert np.array_equal(got, p.expected) and np.array_equal(p.expected, vec.y.ravel())
    assert cycles(p) == {"cycles": 12 + RequantConfig().latency + 2}
    # an output range wider than the configured output width is refused, with the reason
    why = maps(vec, RequantConfig(out_bits=4))
    assert why == "fc: output range [-100, 127] and zero point -100 need more than the requantizer's 4 output bits"
    with pytest.raises(NotMapped, match="fc: output range"):
        plan(vec, RequantConfig(out_bits=4))


@pytest.mark.verilator
def test_fast_pipeline_cosim_bit_exact_and_cycle_exact():
    """The fast pipeline through the co-simulation testbench (Verilator): every scenario
    bit-exact; the unpaced one takes exactly the model's cycles, 3 more than compact's."""
    from cosim.testbenches.requant import cosim
    from rtl.export import generate

    design = generate("requant", {"pipeline": "fast"})
    assert design.config.latency == 8
    runs = cosim(design, vectors=400)
    assert runs and all(r.passed for r in runs), [(r.summary(), r.extra.get("error")) for r in runs if not r.passed]
    assert SCENARIOS[0].idle == SCENARIOS[0].stall == 0  # the unpaced scenario: held to the model (testbench)
    assert runs[0].cycles == stream_cycles(runs[0].vectors, design.config), (runs[0].cycles, runs[0].vectors)
    assert stream_cycles(10, design.config) - stream_cycles(10, RequantConfig()) == 3


def test_dsp_option_is_checked():
    assert RequantConfig(pipeline="fast", dsp="ecp5").latency == 9  # + dspin, the DSPs' input registers
    with pytest.raises(ValueError, match="dsp must be one of inferred, ecp5 .*not 'xilinx'"):
        RequantConfig(pipeline="fast", dsp="xilinx")
    with pytest.raises(ValueError, match="dsp=ecp5 .* needs pipeline=fast, not 'compact'"):
        RequantConfig(dsp="ecp5")


def test_dsp_ecp5_verilog_instantiates_registered_mult18x18d(tmp_path):
    """dsp=ecp5: four MULT18X18D with input and output registers on CLK0, the input
    registers a stage of their own (dspin, loaded from the shift stage's fabric x and q)
    and the output registers in place of the pp stage's fabric registers; the co-simulation gets our
    model of the primitive, the inferred design none; synthesis only for ECP5 (or generic,
    with the model as logic)."""
    from flows.synth import synth, yosys_script
    from rtl.export import generate, sim_models

    design = generate("requant", {"pipeline": "fast", "dsp": "ecp5"})
    v = design.verilog
    assert v.count("MULT18X18D #(") == 4 and "module MULT18X18D" not in v
    for param in ("REG_INPUTA_CLK", "REG_INPUTB_CLK", "REG_OUTPUT_CLK"):
        assert v.count(f'.{param}("CLK0")') == 4, param
    assert v.count('.REG_PIPELINE_CLK("NONE")') == 4
    assert "shift_x <=" in v and "pp_hh_dsp" in v and "pp_hh <=" not in v
    assert "dspin_right" in v and design.meta()["latency"] == 9
    assert design.config.stages == ("shift", "dspin", "pp", "sum", "high", "round", "add", "compare", "clamp")
    models = sim_models(v)
    assert list(models) == ["ecp5_mult18x18d.v"] and "module MULT18X18D" in models["ecp5_mult18x18d.v"]
    assert sim_models(generate("requant", {"pipeline": "fast"}).verilog) == {}
    assert "read_verilog ecp5_mult18x18d.v" in yosys_script("requant", "generic", models=tuple(models))
    assert "ecp5_mult18x18d.v" not in yosys_script("requant", "ecp5", models=tuple(models))
    with pytest.raises(ValueError, match="instantiates ECP5 primitives .*use --target ecp5 or generic"):
        synth("requant", target="ice40", params={"pipeline": "fast", "dsp": "ecp5"}, out_dir=tmp_path)


@pytest.mark.icarus
def test_dsp_ecp5_cosim_bit_exact_and_cycle_exact_and_a_broken_dsp_fails():
    """dsp=ecp5 with our MULT18X18D model (Icarus): every scenario bit-exact, the unpaced
    one in the model's cycles (latency 8, as inferred). The check can fail: the same
    Verilog without the DSPs' output registers (products a cycle early) mismatches."""
    from cosim.testbenches.requant import cosim
    from rtl.export import generate

    design = generate("requant", {"pipeline": "fast", "dsp": "ecp5"})
    runs = cosim(design, sim="icarus", vectors=200)
    assert runs and all(r.passed for r in runs), [(r.summary(), r.extra.get("error")) for r in runs if not r.passed]
    assert runs[0].cycles == stream_cycles(runs[0].vectors, design.config), (runs[0].cycles, runs[0].vectors)
    broken = design.verilog.replace('.REG_OUTPUT_CLK("CLK0")', '.REG_OUTPUT_CLK("NONE")')
    assert broken != design.verilog
    runs = cosim(design, sim="icarus", vectors=200, verilog=broken)
    assert not runs[0].passed and runs[0].mismatches > 0, runs[0].summary()
