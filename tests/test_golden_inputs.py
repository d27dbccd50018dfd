"""Golden models refuse what is not an integer (a fraction, NaN, infinity) with one
ValueError naming the argument, never a silent truncation; shapes that do not match are
a ValueError too, not a torch RuntimeError."""

import math

import numpy as np
import pytest
import torch

from golden import quant
from golden.conv import conv2d_int, conv2d_q, linear_int, linear_q
from golden.sparse import decode_chunk, encode_chunk
from golden.ternary import pack_ternary, ternarize, unpack_ternary

X4 = torch.zeros(1, 2, 4, 4, dtype=torch.int64)
W4 = torch.zeros(3, 2, 3, 3, dtype=torch.int64)
ACC = torch.arange(-6, 6).reshape(2, 6)


@pytest.mark.parametrize("call, needle", [
    # requantize: every argument
    (lambda: quant.requantize(1, 1 << 30, 0, 1.5), "output zero point must be an integer, not 1.5"),
    (lambda: quant.requantize(1, 1 << 30, 0, math.nan), "output zero point must be finite"),
    (lambda: quant.requantize(np.array([1.5, 2.0]), 1 << 30, 0, 0), "accumulator must hold integers, not 1.5"),
    (lambda: quant.requantize(torch.tensor([math.inf]), 1 << 30, 0, 0), "accumulator must be finite, not inf"),
    (lambda: quant.requantize(1, 1 << 30, 1.5, 0), "shift must hold integers, not 1.5"),
    (lambda: quant.requantize(1, [2.0**30 + 0.25], 0, 0), "multiplier must hold integers"),
    (lambda: quant.requantize(1, 1 << 30, 0, 0, -128.5, 127), "act_min must be an integer"),
    (lambda: quant.requantize(1, 1 << 30, 0, 0, -128, math.inf), "act_max must be finite"),
    (lambda: quant.requantize(1, 1 << 30, 0, 0, "a", 127), "act_min must be an integer"),
    (lambda: quant.requantize(["a"], 1 << 30, 0, 0), "accumulator must hold integers"),
    (lambda: quant.requantize([2**70], 1 << 30, 0, 0), "accumulator"),
    # per-channel shapes
    (lambda: quant.requantize(ACC, torch.full((3,), 1 << 30), 0, 0), "multiplier (3,), shift () do not broadcast"),
    (lambda: conv2d_q(X4, W4, None, 0, [1 << 30] * 2, [0] * 3, 0), "multiplier has 2 values for 3 output channels"),
    (lambda: linear_q(X4.reshape(1, -1)[:, :18], W4.reshape(3, -1), None, 0, [1 << 30] * 3, [0] * 4, 0),
     "shift has 4 values for 3 output channels"),
    (lambda: quant.quantize_bias(torch.zeros(3), 0.5, torch.ones(4)), "weight_scale shape (4,) does not match"),
    # conv / linear
    (lambda: linear_int([[1.5, 2.0]], [[1, 1]], None, 0), "input must hold integers, not 1.5"),
    (lambda: linear_int([[1, 2]], [[1.25, 1]], None, 0), "weight must hold integers, not 1.25"),
    (lambda: linear_int([[1, 2]], [[1, 1]], [0.5], 0), "bias must hold integers, not 0.5"),
    (lambda: linear_int([[1, 2]], [[1, 1]], None, 0.5), "input zero point must be an integer"),
    (lambda: conv2d_int(X4.double() + math.nan, W4, None, 0), "input must be finite, not nan"),
    (lambda: conv2d_int(X4, W4, None, math.inf), "input zero point must be finite"),
    (lambda: conv2d_int(X4, W4, None, 0, stride=1.5), "stride must be an integer >= 1, not 1.5"),
    (lambda: conv2d_int(X4, W4, None, 0, padding=math.nan), "padding must be an integer >= 0, not nan"),
    (lambda: conv2d_int(X4, W4, None, 0, groups=math.inf), "groups must be an integer >= 1, not inf"),
    # float -> int8
    (lambda: quant.quantize_activations(torch.tensor([0.1, math.nan]), 0.1, 0), "x must be finite, not nan"),
    (lambda: quant.quantize_activations(torch.tensor([0.1]), 0.0, 0), "scale must be positive and finite"),
    (lambda: quant.quantize_activations(torch.tensor([0.1]), math.inf, 0), "scale must be positive and finite"),
    (lambda: quant.quantize_activations(torch.tensor([0.1]), 0.1, 0.5), "zero_point must be an integer"),
    (lambda: quant.quantize_weights_per_channel(torch.tensor([[1.0, math.nan]])), "w must be finite, not nan"),
    (lambda: quant.quantize_weights_per_channel(torch.tensor([[1.0, -math.inf]])), "w must be finite, not -inf"),
    (lambda: quant.choose_activation_qparams(0, math.inf), "hi must be finite, not inf"),
    (lambda: quant.choose_activation_qparams(math.nan, 1), "lo must be finite, not nan"),
    (lambda: quant.choose_activation_qparams(2, 1), "lo 2.0 is above hi 1.0"),
    (lambda: quant.quantize_multiplier(math.nan), "real multiplier must be finite"),
    # ternary, sparse
    (lambda: ternarize(torch.tensor([1.0, math.nan])), "w must be finite, not nan"),
    (lambda: ternarize(torch.tensor([math.inf, 1.0])), "w must be finite, not inf"),
    (lambda: ternarize(torch.tensor([1.0]), math.nan), "delta_factor must be finite"),
    (lambda: pack_ternary([0.5, 1]), "ternary weights must hold integers, not 0.5"),
    (lambda: unpack_ternary([1.5], 1), "words must hold integers, not 1.5"),
    (lambda: unpack_ternary([1], 1.5), "count must be an integer, not 1.5"),
    (lambda: encode_chunk([1, 0.5]), "chunk must hold integers, not 0.5"),
    (lambda: decode_chunk(1.5, [1], 4), "mask must be an integer, not 1.5"),
])
def test_bad_input_is_one_value_error_naming_the_argument(call, needle):
    with pytest.raises(ValueError) as e:
        call()
    assert needle in str(e.value), str(e.value)
    assert "\n" not in str(e.value)


def test_integral_floats_and_every_integer_type_are_accepted():
    want = quant.requantize(torch.tensor([100, -7]), 1 << 30, -1, 3)
    for acc in ([100, -7], [100.0, -7.0], np.array([100, -7], dtype=np.int32), np.array([100.0, -7.0]),
                torch.tensor([100.0, -7.0]), [np.uint64(100), np.int16(-7)]):
        assert torch.equal(quant.requantize(acc, 1 << 30, -1.0, 3.0, -128.0, np.int8(127)), want)
    with pytest.raises(ValueError, match="does not fit int64"):
        quant.requantize(np.array([2**63], dtype=np.uint64), 1 << 30, 0, 0)
    assert torch.equal(linear_int([[1.0, 2.0]], [[1, -1]], [3.0], np.int64(0)), torch.tensor([[2]]))
    assert conv2d_int(X4, W4, None, 0, stride=2.0).shape == (1, 3, 1, 1)
    scale, zp = quant.choose_activation_qparams(np.float32(-1.0), 3)
    assert zp == -64 and scale == pytest.approx(4 / 255)
    t, alpha, _ = ternarize(np.array([1.0, -0.2, 0.05, -2.0, 0.5]))
    assert t.tolist() == [1, 0, 0, -1, 0] and alpha == pytest.approx(1.5)


def test_checks_cost_nothing_on_integer_tensors():
    acc = torch.randint(-(1 << 20), 1 << 20, (1000,))
    r = quant.requantize(acc, torch.full((1000,), 1 << 30), torch.full((1000,), -3), 0)
    assert r.dtype == torch.int64 and r.shape == (1000,)
