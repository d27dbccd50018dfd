"""AID analog model: SNR definition on hand-worked data, circuit validation, netlist generator,
raw-file parser, numerical model, designs, Monte Carlo; ngspice runs are marked."""

import json
import math
import shutil
import struct

import numpy as np
import pytest

from analog import analysis as an
from analog import spice
from analog.circuit import Adc, Circuit, LinearDac, RootDac, check_operands
from analog.model import ModelParams, load_params, simulate, stack_current


# --- SNR definition -------------------------------------------------------------------------

def test_snr_hand_worked():
    # ideal x = [1, 2, 3], measured y = [1, 2, 4]:
    # g = (1 + 4 + 12) / (1 + 4 + 16) = 17/21
    # errors g*y - x = [17/21 - 1, 34/21 - 2, 68/21 - 3] = [-4/21, -8/21, 5/21]
    # sum err^2 = (16 + 64 + 25) / 441 = 105/441; sum x^2 = 14
    # SNR = 10 log10(14 * 441 / 105) = 10 log10(58.8) = 17.6938... dB
    assert an.gain_calibration([1, 2, 3], [1, 2, 4]) == pytest.approx(17 / 21)
    assert an.snr_db([1, 2, 3], [1, 2, 4]) == pytest.approx(10 * math.log10(58.8))
    assert an.snr_db([1, 2, 3], [1, 2, 4]) == pytest.approx(17.6938, abs=1e-4)


def test_snr_is_gain_invariant_and_exact_for_a_pure_gain():
    x = np.arange(1, 10)
    assert an.snr_db(x, 0.37 * x) > 250  # float rounding only
    assert an.snr_db(x, 0.5 * x) == math.inf
    y = x + np.array([0.1, -0.2, 0, 0, 0.3, 0, 0, 0, -0.1])
    assert an.snr_db(x, 5 * y) == pytest.approx(an.snr_db(x, y))


def test_snr_bad_input():
    with pytest.raises(ValueError, match="same size"):
        an.snr_db([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="all zero"):
        an.snr_db([1, 2], [0, 0])


# --- circuit description and bad input --------------------------------------------------------

@pytest.mark.parametrize("a, b, needle", [(16, 0, "operand a must be in 0..15, not 16"),
                                          (0, -1, "operand b must be in 0..15, not -1"),
                                          (1.5, 0, "operand a must be an integer"),
                                          ("x", 0, "operand a must be an integer")])
def test_operands_out_of_range(a, b, needle):
    with pytest.raises(ValueError, match=needle):
        check_operands(a, b)


@pytest.mark.parametrize("field, value, needle", [
    ("w_access", -1e-9, "w_access must be a positive"),
    ("l", 10e-9, "l must be in 60 nm"),
    ("vdd", 5.0, "vdd must be in"),
    ("n_cells", 3, "n_cells must be an integer"),
    ("c_wire_per_m", float("nan"), "c_wire_per_m must be a positive"),
    ("t_edge", 1e-9, "t_edge"),
    ("idle_zero_fraction", 2.0, "idle_zero_fraction"),
])
def test_nonsensical_device_parameters(field, value, needle):
    with pytest.raises(ValueError, match=needle):
        Circuit(**{field: value})


def test_dac_validation_and_levels():
    with pytest.raises(ValueError, match="v_hi"):
        LinearDac(0.5, 0.4)
    with pytest.raises(ValueError, match="k must be"):
        RootDac(0.3, -0.1)
    with pytest.raises(ValueError, match="exceeds"):
        RootDac(0.5, 1.0)
    lin = LinearDac(0.3, 0.6)
    assert lin.levels(0) == 0.0 and lin.levels(15) == pytest.approx(0.6) and lin.levels(5) == pytest.approx(0.4)
    root = RootDac(0.2, 0.1)
    v = root.levels(np.arange(16))
    assert v[0] == 0 and v[4] == pytest.approx(0.4, abs=1e-3) and v[9] == pytest.approx(0.5, abs=1e-3)
    assert root.codes()[4] == round(0.4 * 1023)


def test_adc():
    adc = Adc(0.5, 4)
    assert list(adc.convert([0, 0.5 / 15 * 7.4, 0.5, 0.9])) == [0, 7, 15, 15]
    assert Adc(0.5).convert(0.25) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="bits"):
        Adc(0.5, 0)


def test_bit_line_capacitance_documented():
    c = Circuit()
    assert c.c_wire == pytest.approx(0.2e-15 * 64)   # 0.2 fF/um x 128 cells x 0.5 um
    assert c.n_idle == 124 and c.n_idle_zero == 62
    assert c.t_sample == pytest.approx(20e-12 + 400e-12 + 10e-12 + 20e-12)


# --- netlist generator ---------------------------------------------------------------------

def test_mac_netlist_structure():
    c = Circuit()
    text = spice.mac_netlist(c, [spice.MacPoint(0.45, 0b1010), spice.MacPoint(0.3, 0)])
    lines = text.splitlines()
    assert f'.include "{spice.MODEL_CARD}"' in text and spice.MODEL_CARD.exists()
    assert sum(1 for s in lines if s.startswith("x") and s.endswith(" column")) == 2
    # the stored operand: b = 0b1010 -> rows 1 and 3 hold QB = 0
    ic = [s for s in lines if s.startswith(".ic")]
    assert ".ic v(x0.xc1.qb)=0 v(x0.xc1.q)=1" in ic and ".ic v(x0.xc0.qb)=1 v(x0.xc0.q)=0" in ic
    assert ".ic v(x0.xc3.qb)=0 v(x0.xc3.q)=1" in ic and ".ic v(x1.xc3.qb)=1 v(x1.xc3.q)=0" in ic
    # binary-weighted pulse widths at the column's level
    wl3 = next(s for s in lines if s.startswith("vwl3_0 "))
    assert "PWL(0 0 2e-11 0 3e-11 0.45 4.2e-10 0.45 4.3e-10 0)" in wl3
    wl0 = next(s for s in lines if s.startswith("vwl0_1 "))
    assert "7e-11 0.3 8e-11 0" in wl0
    # idle cells: m-multiplied access transistors, half holding 0
    assert " m=62" in text and text.count(" m=62") == 4
    # per-column supplies and saved vectors
    assert "vdd1 vdd_1 0 1" in lines and "vpre0 vpre_0 0 1" in lines
    assert any(s.startswith(".save v(blb_1) v(bl_1) vdd1#branch vpre1#branch") for s in lines)
    assert f"cwblb blb 0 {c.c_wire:.6g}" in text
    assert "write out.raw" in text and text.rstrip().endswith(".end")


def test_netlist_monte_carlo_shifts():
    c = Circuit()
    text = spice.mac_netlist(c, [spice.MacPoint(0.5, 3, (0.01, 0, -0.02, 0), (0, 0.005, 0, 0)),
                                 spice.MacPoint(0.5, 3)])
    assert "mar blb wl qb 0 nmos" in text and "delvto={dva}" in text and "delvto={dvp}" in text
    assert "xc2 bl blb wl2 vdd cell6t dva={da2} dvp={dp2}" in text
    line0 = next(s for s in text.splitlines() if s.startswith("x0 "))
    assert line0.endswith("column da0=0.01 dp0=0 da1=0 dp1=0.005 da2=-0.02 dp2=0"), line0
    assert next(s for s in text.splitlines() if s.startswith("x1 ")).endswith(" pcb column")


def test_netlist_bad_points():
    c = Circuit()
    with pytest.raises(ValueError, match="at least one point"):
        spice.mac_netlist(c, [])
    with pytest.raises(ValueError, match="word-line level"):
        spice.mac_netlist(c, [spice.MacPoint(2.0, 1)])
    with pytest.raises(ValueError, match="operand b"):
        spice.mac_netlist(c, [spice.MacPoint(0.5, 16)])


def test_netlist_follows_the_description():
    text = spice.mac_netlist(Circuit(w_access=200e-9, n_cells=256, t_unit=100e-12), [spice.MacPoint(0.5, 1)])
    assert "mar blb wl qb 0 nmos w=2e-07 l=6.5e-08" in text
    assert " m=126" in text  # (256 - 4) / 2
    assert "3e-11 0.5 8.2e-10 0.5 8.3e-10 0" in text  # row 3: 20 ps + 10 ps edge .. 20 ps + 800 ps


def _write_raw(path, names, data):
    head = ["Title: t", "Date: x", "Plotname: Transient Analysis", "Flags: real",
            f"No. Variables: {len(names)}", f"No. Points: {data.shape[0]}", "Variables:"]
    head += [f"\t{j}\t{n}\tvoltage" for j, n in enumerate(names)]
    path.write_bytes(("\n".join(head) + "\nBinary:\n").encode() + data.astype("<f8").tobytes())


def test_read_raw_binary_and_truncated(tmp_path):
    data = np.array([[0.0, 1.0, -1e-6], [1e-12, 0.9, -2e-6]])
    _write_raw(tmp_path / "a.raw", ["time", "v(blb_0)", "i(vdd0)"], data)
    out = spice.read_raw(tmp_path / "a.raw")
    assert list(out) == ["time", "v(blb_0)", "i(vdd0)"] and out["v(blb_0)"][1] == 0.9
    raw = (tmp_path / "a.raw").read_bytes()
    (tmp_path / "b.raw").write_bytes(raw[:-8])
    with pytest.raises(spice.NgspiceError, match="truncated"):
        spice.read_raw(tmp_path / "b.raw")


def test_ngspice_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(spice.NgspiceMissing, match="ngspice not found"):
        spice.run("* nothing\n.end\n")


# --- numerical model ------------------------------------------------------------------------

def test_shipped_fit_loads_and_is_physical():
    p = load_params()
    assert 0.2 < p.vth < 0.6 and 1.0 <= p.alpha <= 2.5 and 10e-15 < p.c_bl < 200e-15
    i = stack_current(p, np.linspace(0, 1, 11), 1.0)
    assert np.all(np.diff(i) > 0) and 50e-6 < i[-1] < 200e-6


def test_model_is_monotonic_in_a_and_b():
    c, p = Circuit(), load_params()
    A, B = an.grid()
    dv = simulate(c, p, RootDac(0.15, 0.09).levels(A), B)
    assert np.all(np.diff(dv[1:, :], axis=0)[:, 1:] > 0)
    assert np.all(np.diff(dv[:, :], axis=1)[1:, :] > 0)


def test_model_parameter_validation():
    with pytest.raises(ValueError, match="c_bl"):
        ModelParams(c_bl=0)


def test_level_table_matches_direct_simulation():
    c, p = Circuit(), load_params()
    t = an.LevelTable(c, p)
    dac = LinearDac(0.27, 0.49)
    assert np.abs(t.outputs(dac.levels(np.arange(16))) - an.transfer(c, p, dac)).max() < 2e-4


def test_designs_respect_the_rules():
    c, p = Circuit(), load_params()
    t = an.LevelTable(c, p)
    base = an.design_baseline(c, p, 0.5, t)
    aid = an.design_aid(c, p, 0.5, table=t)
    A, B = an.grid()
    for dac in (base, aid):
        v = dac.levels(np.arange(16))
        assert v.max() <= c.vdd
        assert t.outputs(v)[-1, -1] <= 0.5 + 1e-3
    # the baseline's search is its own optimum: moving its range does not improve its SNR
    s0 = an.snr_db(A * B, t.outputs(base.levels(np.arange(16))))
    for dlo in (-0.01, 0.01):
        other = LinearDac(base.v_lo + dlo, base.v_hi)
        assert an.snr_db(A * B, t.outputs(other.levels(np.arange(16)))) <= s0 + 1e-9


def test_monte_carlo_small():
    c, p = Circuit(), load_params()
    dac = RootDac(0.15, 0.09)
    g = an.gain_calibration(np.outer(np.arange(16), np.arange(16)), an.transfer(c, p, dac))
    r = an.monte_carlo(c, p, dac, g, 8, seed=1)
    assert r["errors"].shape == (8, 16, 16) and r["sigma"].shape == (16, 16)
    assert np.all(r["sigma"][0, :] < 3e-3)  # a = 0: word lines stay low, only leakage (C varies)
    assert 0 < r["sigma_worst"] < 0.5
    with pytest.raises(ValueError, match="at least 2"):
        an.monte_carlo(c, p, dac, g, 1)


# --- ngspice ----------------------------------------------------------------------------------

@pytest.mark.ngspice
def test_ngspice_columns_discharge_as_expected(tmp_path):
    c = Circuit()
    pts = [spice.MacPoint(0.0, 15), spice.MacPoint(0.5, 1), spice.MacPoint(0.5, 8), spice.MacPoint(0.5, 0)]
    out = spice.run(spice.mac_netlist(c, pts), work_dir=tmp_path)
    assert (tmp_path / "aid.cir").exists() and (tmp_path / "out.raw").exists()
    dv = [c.vdd - np.interp(c.t_sample, out["time"], out[f"v(blb_{k})"]) for k in range(4)]
    assert dv[0] < 0.02 and dv[3] < 0.02          # word line off / nothing stored: leakage only
    assert 0.02 < dv[1] < dv[2] < 0.6             # b = 8 discharges far more than b = 1
    assert dv[2] / dv[1] == pytest.approx(8, rel=0.25)
    p = load_params()
    model = simulate(c, p, np.array([q.v_wl for q in pts]), np.array([q.b for q in pts]))
    assert np.abs(model - np.array(dv)).max() < 0.01


@pytest.mark.ngspice
def test_ngspice_failure_keeps_the_netlist(tmp_path):
    bad = "* broken\nvx a 0 1\nrx a 0 {undefined_param}\n.control\ntran 1p 10p\nwrite out.raw\nquit\n.endc\n.end\n"
    with pytest.raises(spice.NgspiceError, match=r"netlist kept at .*broken\.cir"):
        spice.run(bad, work_dir=tmp_path, name="broken")
    assert (tmp_path / "broken.cir").read_text() == bad


@pytest.mark.ngspice
def test_ngspice_stack_iv_matches_the_fit(tmp_path):
    from analog.fit import iv_data
    c, p = Circuit(), load_params()
    iv = iv_data(c, tmp_path)
    sel = iv["i"] > 2e-6
    rel = np.abs(stack_current(p, iv["v_wl"], iv["v_bl"]) - iv["i"])[sel] / iv["i"][sel]
    assert np.sqrt(np.mean(rel ** 2)) < 0.05


# --- command line --------------------------------------------------------------------------

def test_cli_model_only_writes_json_and_plots(tmp_path, capsys):
    from flows.cli import main
    out = tmp_path / "aid"
    assert main(["analog", "aid", "--mc", "20", "--images", "0", "-o", str(out)]) == 0
    doc = json.loads((out / "aid.json").read_text())
    s = doc["summary"]
    assert set(s["designs"]) == {"baseline", "aid"}
    for d in s["designs"].values():
        assert d["full_scale_drop_V"] <= 0.5 + 1e-3 and max(d["levels_V"]) <= 1.0
        assert np.isfinite(d["snr_model_db"]) and d["mc"]["samples"] == 20
    assert doc["targets"]["snr_gain_db"]["met"] is None  # needs ngspice
    assert len(doc["transfer"]["aid_model"]) == 16 and len(doc["mc_sigma"]["aid_mc_sigma"][0]) == 16
    for name in ("transfer.png", "error_heatmap.png", "mc_hist.png"):
        assert (out / name).stat().st_size > 1000
    assert not list(tmp_path.glob(".*tmp*"))
    out_text = capsys.readouterr()
    assert "target snr_gain_db" in out_text.out and "executor: local Dask cluster" in out_text.err
    # the same study in this process, one job after another: the same figures
    assert main(["analog", "aid", "--mc", "20", "--images", "0", "--workers", "0", "-o", str(tmp_path / "s")]) == 0
    serial = json.loads((tmp_path / "s" / "aid.json").read_text())
    for doc_ in (doc, serial):
        for d in doc_["summary"]["designs"].values():
            d["mc"].pop("seconds")
    assert serial["summary"] == s and serial["mc_sigma"] == doc["mc_sigma"]


@pytest.mark.parametrize("argv, needle", [
    (["analog", "aid", "--mc", "1"], "--mc must be an integer >= 2, not 1"),
    (["analog", "aid", "--images", "-3"], "--images must be >= 0"),
    (["analog", "nosuch"], "invalid choice"),
])
def test_cli_bad_input(argv, needle, capsys, tmp_path):
    from flows.cli import main
    code = main(argv + ["-o", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and needle in err and "Traceback" not in err, err


# --- energy and network level ------------------------------------------------------------------

def test_energy_integrates_supply_currents():
    from analog.energy import energies
    c = Circuit()
    t = np.linspace(0, c.t_end, 2001)
    # column 0: constant 10 uA out of the precharge supply and 1 uA out of the cell supply for the
    # whole window; every word-line driver sources 2 uA while its row is high
    out = {"time": t, "i(vpre0)": np.full_like(t, -10e-6), "i(vdd0)": np.full_like(t, -1e-6)}
    for i in range(4):
        ts, vs = zip(*c.wl_waveform(i))
        out[f"i(vwl{i}_0)"] = -2e-6 * (np.interp(t, ts, vs) > 0)
    e = energies(c, out, [0.5])
    assert e["preset"][0] == pytest.approx(10e-6 * c.vdd * c.t_end, rel=1e-9)
    assert e["cell_array"][0] == pytest.approx(1e-6 * c.vdd * c.t_end, rel=1e-9)
    # sum over rows of 0.5 V x 2 uA x (50% width of the trapezoid); edges are linear ramps
    wl = sum(0.5 * 2e-6 * (c.pulse_width(i)) for i in range(4))
    assert e["word_line"][0] == pytest.approx(wl, rel=0.01)
    assert e["total"][0] == pytest.approx(e["preset"][0] + e["cell_array"][0] + e["word_line"][0])


def test_network_layer_with_the_ideal_table_is_integer_exact():
    import torch
    import torch.nn.functional as F
    from analog import network
    torch.manual_seed(0)
    L = {"conv": True, "w_q": torch.randint(-15, 16, (4, 2 * 9)), "s_w": torch.ones(4), "bias": torch.zeros(4),
         "s_x": 1.0, "stride": 2, "padding": 1, "kernel": 3, "out_channels": 4}
    x = torch.randint(0, 16, (3, 2, 6, 6)).float()
    ideal = np.outer(np.arange(16), np.arange(16)).astype(float)
    y = network._layer(x, L, ideal, None, np.random.default_rng(0))
    ref = F.conv2d(x.double(), L["w_q"].reshape(4, 2, 3, 3).double(), stride=2, padding=1)
    assert torch.equal(y.double(), ref)
    # a product table that is off by one for a = 3, b = 5 changes the result
    bad = ideal.copy()
    bad[3, 5] += 1
    assert not torch.equal(network._layer(x, L, bad, None, np.random.default_rng(0)).double(), ref)
