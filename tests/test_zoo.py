"""VGG16 / MobileNet-v1 shape tables (golden.nets.zoo): MAC totals, shapes, and the density data with its sources."""

import itertools
import json
from importlib import resources

import pytest

from golden.nets import zoo

KEYS = {"name", "kind", "c", "h", "w", "o", "k", "stride", "padding"}
DENSITY_KEYS = {"weight", "activation", "weight_source", "activation_source", "weight_assumed",
                "activation_assumed", "assumed"}


def total(net: str, kinds=("conv", "depthwise", "linear")) -> int:
    return sum(zoo.macs(layer) for layer in zoo.layers(net) if layer["kind"] in kinds)


@pytest.mark.parametrize("net, kinds, expected", [
    ("vgg16", ("conv", "depthwise", "linear"), 15.47e9),
    ("vgg16", ("conv",), 15.35e9),
    ("vgg16", ("linear",), 0.124e9),
    ("mobilenet_v1", ("conv", "depthwise", "linear"), 569e6),  # Howard et al. 2017: 569 M Mult-Adds
])
def test_mac_totals(net, kinds, expected):
    assert total(net, kinds) == pytest.approx(expected, rel=0.01)


def test_layer_names_and_keys():
    vgg = [layer["name"] for layer in zoo.layers("vgg16")]
    assert vgg == [f"conv{b}_{i}" for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)) for i in range(1, n + 1)] \
        + ["fc6", "fc7", "fc8"]
    mb = [layer["name"] for layer in zoo.layers("mobilenet_v1")]
    assert mb == ["conv1"] + [f"conv_{t}{i}" for i in range(1, 14) for t in ("dw", "pw")] + ["fc"]
    for net in zoo.NETS:
        assert all(set(layer) == KEYS for layer in zoo.layers(net))


@pytest.mark.parametrize("net", zoo.NETS)
def test_layers_chain(net):
    """Each layer's input channels match the previous output; spatial sizes chain through pooling."""
    ls = zoo.layers(net)
    for prev, cur in itertools.pairwise(ls):
        oh, ow = zoo.out_hw(prev)
        if cur["kind"] == "linear":
            spatial = 1 if prev["kind"] == "linear" else {"vgg16": 7 * 7, "mobilenet_v1": 1}[net]  # flatten / avg-pool
            assert cur["c"] == prev["o"] * spatial, cur["name"]
        else:
            assert cur["c"] == prev["o"], cur["name"]
            assert (cur["h"], cur["w"]) in {(oh, ow), (oh // 2, ow // 2)}, cur["name"]  # same size or after 2x2 pool
        if cur["kind"] == "depthwise":
            assert cur["o"] == cur["c"]


def test_known_shapes():
    vgg = {layer["name"]: layer for layer in zoo.layers("vgg16")}
    assert (vgg["conv5_3"]["h"], zoo.out_hw(vgg["conv5_3"])) == (14, (14, 14))
    assert (vgg["fc6"]["c"], vgg["fc6"]["o"]) == (25088, 4096)
    mb = {layer["name"]: layer for layer in zoo.layers("mobilenet_v1")}
    assert zoo.out_hw(mb["conv1"]) == (112, 112)
    assert [mb[f"conv_dw{i}"]["stride"] for i in range(1, 14)] == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
    assert (mb["conv_pw13"]["h"], mb["conv_pw13"]["c"], mb["conv_pw13"]["o"]) == (7, 1024, 1024)
    assert zoo.macs(mb["conv_dw1"]) == 112 * 112 * 32 * 9
    assert zoo.macs(mb["fc"]) == 1024 * 1000


def test_layers_is_a_fresh_copy_and_rejects_unknown_nets():
    zoo.layers("vgg16")[0]["c"] = 99
    assert zoo.layers("vgg16")[0]["c"] == 3
    with pytest.raises(ValueError):
        zoo.layers("resnet50")
    with pytest.raises(ValueError):
        zoo.densities("resnet50")


@pytest.mark.parametrize("net", zoo.NETS)
def test_every_layer_has_sourced_densities(net):
    dens, srcs = zoo.densities(net), zoo.sources(net)
    assert set(dens) == {layer["name"] for layer in zoo.layers(net)}
    for name, d in dens.items():
        assert DENSITY_KEYS <= set(d), name
        for kind in ("weight", "activation"):
            assert 0.0 < d[kind] <= 1.0, (name, kind)
            assert d[f"{kind}_source"] in srcs, (name, kind)
            if d[f"{kind}_assumed"]:  # an assumed value names an assumption, never a publication
                assert srcs[d[f"{kind}_source"]]["type"] == "assumption", (name, kind)
                assert d.get("note"), name
        assert d["assumed"] == (d["weight_assumed"] or d["activation_assumed"]), name
    for sid, s in srcs.items():
        assert s["citation"] and s["where"] and s["type"], sid


def test_vgg16_densities_match_han2015_flops():
    """FLOP% (Han et al. 2015, Table 5) = Weights% x input Act%: checks the one-layer shift of Act%."""
    table = json.loads(resources.files("golden.nets").joinpath("densities.json").read_text(encoding="utf-8"))
    flop_pct = table["vgg16"]["crosscheck"]["han2015_flop_pct"]
    dens = zoo.densities("vgg16")
    assert set(flop_pct) == set(dens)
    for name, d in dens.items():
        assert 100 * d["weight"] * d["activation"] == pytest.approx(flop_pct[name], abs=1.0), name


def test_published_values():
    vgg = zoo.densities("vgg16")
    assert [vgg[n]["weight"] for n in vgg] == [0.58, 0.22, 0.34, 0.36, 0.53, 0.24, 0.42, 0.32, 0.27, 0.34, 0.35, 0.29,
                                               0.36, 0.04, 0.04, 0.23]  # Han et al. 2016, Table 5
    assert not any(vgg[n]["assumed"] for n in vgg if n != "conv1_1")
    mb = zoo.densities("mobilenet_v1")
    sparse = {f"conv_pw{i}" for i in range(4, 14)}
    assert all(mb[n]["weight"] == (0.5 if n in sparse else 0.4 if n == "fc" else 1.0) for n in mb)
    assert all(mb[n]["activation_assumed"] and not mb[n]["weight_assumed"] for n in mb)


def test_densities_returns_a_copy():
    zoo.densities("vgg16")["fc6"]["weight"] = 1.0
    assert zoo.densities("vgg16")["fc6"]["weight"] == 0.04
