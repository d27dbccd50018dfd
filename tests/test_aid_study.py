"""AID design-space study (analog/study.py, `nnaccel analog aid --study`): a tiny grid end to end
on the shipped ngspice fits (no ngspice), the JSON schema, and the study's invariants."""

import json
import math

import numpy as np
import pytest

from analog import analysis as an
from analog import characterize as ch
from analog import study

TINY = [{"l": 130e-9, "w_access": 150e-9, "w_pulldown": 300e-9, "vdd": 1.0, "t_unit": 50e-12, "groups": ["test"]}]
FRACS = (0.2, 0.4)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from flows.analog import analog_study
    out = tmp_path_factory.mktemp("study")
    assert analog_study(mc=16, use_spice=False, out_dir=out, images=0, workers=0, points=TINY,
                        swing_fracs=FRACS) == 0
    return out, json.loads((out / "aid-study.json").read_text())


def test_tiny_study_writes_the_schema(tiny):
    out, doc = tiny
    for k in ("command", "date", "seconds", "summary", "points", "fits", "plots"):
        assert k in doc
    s = doc["summary"]
    for k in ("grid", "gain", "paper_style", "sizing", "energy", "mc_checks", "verdicts"):
        assert k in s, k
    assert set(s["verdicts"]) == {"snr_gain_db", "energy_pj_per_op", "mc_sigma_worst"}
    (pt,) = doc["points"]
    assert [r["swing_frac"] for r in pt["swings"]] == list(FRACS)
    for name in ("baseline", "aid", "oracle", "paper_style"):
        assert math.isfinite(pt[name]["snr_db"])
    assert pt["gain_db"] == pytest.approx(pt["aid"]["snr_db"] - pt["baseline"]["snr_db"])
    for p in doc["plots"]:
        assert (out / p).stat().st_size > 1000
    assert not list(out.glob(".*tmp*"))  # written atomically, no leftovers


def test_oracle_bounds_aid_everywhere(tiny):
    _, doc = tiny
    assert study.bound_violations(doc["points"]) == []
    assert doc["summary"]["gain"]["oracle_below_aid_violations"] == []
    for r in doc["points"]:
        for s in r["swings"]:
            assert s["oracle_snr_db"] >= s["aid_snr_db"] - 1e-9


def test_bound_check_can_fail(tiny):
    _, doc = tiny
    bad = json.loads(json.dumps(doc["points"]))
    bad[0]["swings"][1]["aid_snr_db"] = bad[0]["swings"][1]["oracle_snr_db"] + 0.01
    assert study.bound_violations(bad) == [(bad[0]["label"], bad[0]["swings"][1]["swing_V"])]


def test_energy_total_is_the_sum_of_its_parts(tiny):
    _, doc = tiny
    for r in doc["points"]:
        for name in ("baseline", "aid", "paper_style"):
            e = r[name]["energy"]
            assert e["total_pJ"] == pytest.approx(sum(e["parts_pJ"].values()), rel=1e-12)
            assert set(e["parts_pJ"]) == {"preset", "word_line", "cell_array", "dac", "adc"}
            assert all(v >= 0 for v in e["parts_pJ"].values())
    e = doc["summary"]["energy"]
    assert e["adc_fom"]["assumed"]["fom_fJ"] > 0 and "source" in e["adc_fom"]["assumed"]
    assert set(e["sources"]) == {"preset", "word_line", "cell_array", "dac", "adc"}


def test_paper_style_baseline_not_above_fair_baseline(tiny):
    _, doc = tiny
    for r in doc["points"]:
        assert r["paper_style"]["snr_db"] <= r["baseline"]["snr_db"]
        assert r["paper_style"]["dac"]["v_lo"] == 0 and r["paper_style"]["dac"]["v_hi"] == r["point"]["vdd"]
    assert doc["summary"]["paper_style"]["paper_style_above_fair_baseline"] == []


def test_oracle_never_below_its_seeds():
    """The bound takes the seed designs' levels as candidates: it cannot fall below them, even when
    the designs' levels are off the search grid (a coarse gain scan alone can: analysis.oracle_dac)."""
    c = study.sized(130e-9, 150e-9, 300e-9)
    p = ch.params_for(c, ch.load_fits())
    table = study.Table(c, p)
    A, B = an.grid()
    a = np.arange(16)
    aid = an.design_aid(c, p, table=table, dv_fs=0.3)
    v_top = table.level_for_drop(0.3)
    levels, s_or = study.oracle_bound(table, v_top, [aid.levels(a)], n_gains=3, iters=0)
    assert s_or >= an.snr_db(A * B, table.outputs(aid.levels(a))) - 1e-9
    assert levels[0] == 0 and levels.max() <= max(v_top, aid.levels(a).max()) + 1e-12


def test_cell_area_and_sizing_rules():
    assert study.cell_area(65e-9, 150e-9, 300e-9) == pytest.approx(0.5e-12)
    assert study.cell_area(130e-9, 150e-9, 300e-9) > study.cell_area(65e-9, 150e-9, 300e-9)
    assert study.sized(65e-9, 150e-9, 300e-9) == study.Circuit()   # nominal sizing is the nominal circuit
    c = study.sized(260e-9, 600e-9, 1200e-9, vdd=1.2, t_unit=200e-12)
    assert c.cell_pitch > 0.5e-6 and c.w_precharge == pytest.approx(4e-6) and c.vdd == 1.2
    assert ch.fit_key(c) == ch.fit_key(c.replace(t_unit=50e-12))   # one fit serves every pulse unit
    assert ch.fit_key(c) != ch.fit_key(c.replace(vdd=1.0))


def test_every_study_sizing_has_a_shipped_fit():
    fits = ch.load_fits()
    missing = [c for c in study.study_circuits() if ch.fit_key(c) not in fits]
    assert not missing, f"{len(missing)} study sizings lack a fit: python -m analog.characterize"
    for f in fits.values():
        assert f["quality"]["iv_rms_rel_error"] < 0.05


def test_missing_fit_is_one_clear_error():
    pts = [dict(TINY[0], l=70e-9)]
    with pytest.raises(ValueError, match="no shipped model fit .* L 70 nm"):
        study.evaluate_study(points=pts, mc=4, images=0)
