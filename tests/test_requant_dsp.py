"""``requant_dsp`` through every engine: the option checked by one helper, and each engine
co-simulated bit- and cycle-exact with ``requant_pipeline=fast requant_dsp=ecp5`` (four
instantiated ECP5 MULT18X18D per requantizer, our model of the primitive joining the
Icarus sources) on a small configuration; the flows write and refuse what they should."""

import dataclasses

import numpy as np
import pytest

from flows.cli import main
from rtl.export import generate, sim_models
from rtl.fat.config import FatConfig
from rtl.phantom.config import PhantomConfig
from rtl.phantom2d.config import Phantom2DConfig
from rtl.requant.config import check_requant
from rtl.winograd.config import WinogradConfig

CONFIGS = [FatConfig, PhantomConfig, Phantom2DConfig, WinogradConfig]
DSP = {"requant_pipeline": "fast", "requant_dsp": "ecp5"}


def _requant(cfg):
    return cfg.core.requant if isinstance(cfg, Phantom2DConfig) else cfg.requant


def test_the_helper_checks_pipeline_and_dsp_together():
    assert check_requant("fast", "ecp5") == ("fast", "ecp5")
    assert check_requant("compact", "inferred") == ("compact", "inferred")
    with pytest.raises(ValueError, match=r"^requant_dsp=ecp5 .* needs requant_pipeline=fast, not 'compact'$"):
        check_requant("compact", "ecp5")
    with pytest.raises(ValueError, match=r"^requant_dsp must be one of inferred, ecp5 .*not 'xilinx'$"):
        check_requant("fast", "xilinx")
    with pytest.raises(ValueError, match=r"^requant_pipeline must be one of compact, fast .*not 'slow'$"):
        check_requant("slow", "inferred")


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.__name__)
def test_every_engine_config_passes_the_dsp_choice_to_its_requantizers(config):
    assert config().requant_dsp == "inferred" and _requant(config()).dsp == "inferred"
    rq = _requant(config(**DSP))
    assert (rq.pipeline, rq.dsp, rq.latency) == ("fast", "ecp5", 9)
    with pytest.raises(ValueError, match=r"requant_dsp=ecp5 .* needs requant_pipeline=fast, not 'compact'"):
        config(requant_dsp="ecp5")
    with pytest.raises(ValueError, match=r"requant_dsp must be one of inferred, ecp5"):
        config(requant_pipeline="fast", requant_dsp="dsp48")


def test_cli_verilog_writes_the_model_and_synth_refuses_ice40(tmp_path, capsys):
    args = ["--param", "requant_pipeline=fast", "--param", "requant_dsp=ecp5"]
    assert main(["verilog", "winograd", "--param", "channels=1", *args, "-o", str(tmp_path / "v")]) == 0
    assert (tmp_path / "v" / "ecp5_mult18x18d.v").read_text().startswith(
        next(iter(sim_models(generate("winograd", {"channels": "1", **DSP}).verilog).values()))[:200])
    assert main(["verilog", "winograd", "--param", "channels=1", "-o", str(tmp_path / "w")]) == 0
    assert not (tmp_path / "w" / "ecp5_mult18x18d.v").exists()
    capsys.readouterr()
    assert main(["synth", "winograd", "--target", "ice40", "--param", "channels=1", *args,
                 "-o", str(tmp_path / "s")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "instantiates ECP5 primitives" in err[0] and "Traceback" not in err[0], err
    assert main(["cosim", "fat", "--param", "requant_dsp=ecp5"]) != 0
    assert "requant_dsp=ecp5" in capsys.readouterr().err


def _fat():
    from cosim.testbenches.fat import run
    from rtl.fat.mapper import plan
    from cosim.testbenches.fat import random_layer
    design = generate("fat", {"rows": "256", "cols": "16", **DSP})
    vec = random_layer(np.random.default_rng(1), name="fat-small", c=3, h=5, w=5, o=3)
    return design, run(design, plan(vec, design.config), sim="icarus")


def _phantom():
    from cosim.testbenches.phantom import random_layer, run
    from rtl.phantom.mapper import plan
    design = generate("phantom", {"threads": "3", "chunk": "12", "values": "5", "window": "3", "lanes": "2", **DSP})
    vec = random_layer(np.random.default_rng(2), name="phantom-small", c=3, h=5, w=5, o=3)
    return design, run(design, plan(vec, design.config), sim="icarus")


def _phantom2d():
    from cosim.testbenches.phantom import random_layer
    from cosim.testbenches.phantom2d import run
    from rtl.phantom2d.mapper import plan
    from rtl.phantom2d.model import cycles
    design = generate("phantom2d", {"rows": "1", "cols": "2", "threads": "2", "chunk": "12", "values": "5", **DSP})
    vec = random_layer(np.random.default_rng(3), name="mesh-small", c=3, h=5, w=5, o=3)
    p = plan(vec, design.config)
    r = run(design, p, sim="icarus")
    if r.passed and r.cycles != cycles(p)["cycles"]:  # free-running: the mesh model is cycle-exact
        r.passed, r.extra["error"] = False, f"cycles: RTL {r.cycles}, mesh model {cycles(p)['cycles']}"
    return design, r


def _winograd():
    from cosim.testbenches.winograd import RANDOM_LAYERS, random_layer, run
    design = generate("winograd", {"channels": "1", "max_in_channels": "8", **DSP})
    ls = random_layer(design.config, dataclasses.replace(RANDOM_LAYERS[0], in_channels=3, idle=0, stall=0),
                      np.random.default_rng(4), images=1)
    return design, run(design, ls, sim="icarus")


def _winograd_uv():
    """F(4x4,3x3) (two division stages) with U*V in instantiated MULT18X18D (uv_dsp=ecp5)."""
    from cosim.testbenches.winograd import RANDOM_LAYERS, random_layer, run
    design = generate("winograd", {"m": "4", "channels": "1", "max_in_channels": "8", "uv_dsp": "ecp5", **DSP})
    assert design.verilog.count("MULT18X18D #(") == 36 + 16 * 4  # a*a products, 16 requantizers x 4
    assert design.config.latency == 10 + 9  # BTd V UVin UV M ATM ATMA Y0 Y acc + the requantizer's 9
    ls = random_layer(design.config, dataclasses.replace(RANDOM_LAYERS[0], in_channels=3, idle=0, stall=0),
                      np.random.default_rng(5), images=1)
    return design, run(design, ls, sim="icarus")


def test_uv_dsp_is_checked():
    from rtl.winograd.config import WinogradConfig
    assert WinogradConfig(uv_dsp="ecp5").stages[:4] == ("BTd", "V", "UVin", "UV")
    with pytest.raises(ValueError, match=r"^uv_dsp must be one of inferred, ecp5 .*not 'dsp48'$"):
        WinogradConfig(uv_dsp="dsp48")


@pytest.mark.icarus
@pytest.mark.parametrize("run", [_fat, _phantom, _phantom2d, _winograd, _winograd_uv], ids=lambda f: f.__name__[1:])
def test_every_engine_is_bit_and_cycle_exact_with_ecp5_dsps(run):
    """Unpaced runs: every output exact and the cycles (and counters) the cycle model's,
    which reads the latency from the same config (fast + ecp5: 9 requantizer stages)."""
    design, r = run()
    assert "MULT18X18D" in design.verilog and list(sim_models(design.verilog)) == ["ecp5_mult18x18d.v"]
    assert r.passed and r.outputs > 0, (r.summary(), r.first_mismatch, r.extra.get("error"))


@pytest.mark.icarus
def test_the_engine_check_fails_with_dsps_without_output_registers():
    """The check can fail: the Winograd Verilog with its requantizers' MULT18X18D output
    registers off (products a cycle early) mismatches."""
    from cosim.testbenches.winograd import RANDOM_LAYERS, random_layer, run
    design = generate("winograd", {"channels": "1", "max_in_channels": "8", **DSP})
    broken = design.verilog.replace('.REG_OUTPUT_CLK("CLK0")', '.REG_OUTPUT_CLK("NONE")')
    assert broken.count('.REG_OUTPUT_CLK("NONE")') == 4 * 4  # 4 requantizers, 4 DSPs each
    ls = random_layer(design.config, dataclasses.replace(RANDOM_LAYERS[0], in_channels=3, idle=0, stall=0),
                      np.random.default_rng(4), images=1)
    r = run(design, ls, sim="icarus", verilog=broken)
    assert not r.passed and r.mismatches > 0, r.summary()
