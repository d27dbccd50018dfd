"""Typed layers (golden.layer): validated on construction, sliced, written and read back."""

import numpy as np
import pytest

from golden.layer import Kind, Layer, LayerVectors, layer_vectors_from


def conv(**kw):
    rng = np.random.default_rng(0)
    args = dict(name="c", kind="conv", x=rng.integers(-128, 128, (3, 2, 5, 5)), w=rng.integers(-127, 128, (4, 2, 3, 3)),
                bias=rng.integers(-100, 100, 4), input_zero_point=-5, real_multipliers=[0.003] * 4,
                output_zero_point=-20, padding=1, stride=2)
    return layer_vectors_from(**{**args, **kw})


def test_description_shapes_and_derived_figures():
    v = conv()
    L = v.layer
    assert L.kind is Kind.CONV and L.kind == "conv" and L.in_shape == (2, 5, 5) and L.kernel == (3, 3)
    assert L.out_shape == (4, 3, 3) and v.y.shape == (3, 4, 3, 3) and L.reduction == 18
    assert L.macs_per_image == 4 * 9 * 18 and v.images == 3 and v.x.dtype == np.int64
    d = layer_vectors_from(name="d", kind="depthwise", x=np.zeros((1, 3, 4, 4)), w=np.ones((3, 1, 3, 3)),
                           bias=[0, 0, 0], input_zero_point=0, real_multipliers=[0.1] * 3, output_zero_point=0)
    assert d.layer.groups == 3 and d.layer.weight_shape == (3, 1, 3, 3)


def test_select_and_rename_keep_the_rest():
    v = conv()
    s = v.select(1, 3)
    assert s.images == 2 and np.array_equal(s.y, v.y[1:3]) and s.w is v.w and s.layer == v.layer
    assert v.renamed("other").name == "other" and v.name == "c"


def test_npz_round_trip(tmp_path):
    v = conv(alpha=0.5)
    back = LayerVectors.from_npz(v.to_npz(tmp_path / "c.npz"))
    assert back.layer == v.layer and back.alpha == 0.5
    for k in ("x", "w", "bias", "mult", "shift", "acc", "y"):
        assert np.array_equal(getattr(back, k), getattr(v, k))


@pytest.mark.parametrize("change, needle", [
    (dict(kind="pool"), "layer kind must be one of conv, depthwise, linear"),
    (dict(input_zero_point=300), "input_zero_point must lie in [-128, 127], not 300"),
    (dict(input_zero_point=1.5), "input_zero_point must be an integer"),
    (dict(stride=0), "stride must lie in [1, None], not 0"),
    (dict(x=np.full((1, 2, 5, 5), 0.5)), "x must hold integers"),
    (dict(x=np.full((1, 2, 5, 5), 200)), "x value 200 is outside [-128, 127]"),
    (dict(w=np.zeros((4, 3, 3, 3))), "w has shape"),
    (dict(bias=[0, 0]), "bias has shape (2,), expected (4,)"),
    (dict(real_multipliers=None), "give real_multipliers or mult and shift"),
])
def test_bad_layers_are_refused_with_the_reason(change, needle):
    with pytest.raises(ValueError) as e:
        conv(**change)
    assert needle in str(e.value)


def test_description_rules():
    with pytest.raises(ValueError, match="depthwise needs groups == in channels == out channels"):
        Layer("d", "depthwise", (3, 4, 4), 6, (3, 3), groups=3)
    with pytest.raises(ValueError, match="linear layer has kernel"):
        Layer("l", "linear", (10,), 4, (3, 3))
    with pytest.raises(ValueError, match="act_min 10 exceeds act_max 5"):
        Layer("l", "linear", (10,), 4, act_min=10, act_max=5)
    with pytest.raises(ValueError, match="larger than the padded input"):
        Layer("c", "conv", (1, 2, 2), 1, (3, 3))
    with pytest.raises(TypeError):
        LayerVectors({"name": "x"}, *([np.zeros(1)] * 7))
