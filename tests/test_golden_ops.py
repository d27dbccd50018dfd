"""Golden integer operators: requantization edge cases, conv/linear, ternary, sparse, Winograd."""

import itertools
import math
import random
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F

from golden import quant
from golden.conv import check_int32, conv2d_int, conv2d_q, linear_int, linear_q
from golden.quant import INT32_MAX, INT32_MIN
from golden.sparse import (FixedMask, LearnedMask, connection_penalty, decode_chunk, encode_chunk,
                           magnitude_masks, sparsity, step_ste)
from golden.ternary import TernarySTE, pack_ternary, ternarize, ternary_ste, unpack_ternary
from golden.winograd import (STAGES, TRANSFORMS, integer_transforms, signed_bits, winograd_conv2d_int,
                             winograd_widths, worst_case_input)

# ------------------------------------------------------------------ requantization by hand


def srdhm(a, b):
    return int(quant.saturating_rounding_doubling_high_mul(a, b))


def rdbp(x, e):
    return int(quant.rounding_divide_by_pot(x, e))


def test_srdhm_by_hand():
    # The only overflow: INT32_MIN * INT32_MIN doubled is 2**63 > INT64 max -> saturate.
    assert srdhm(INT32_MIN, INT32_MIN) == INT32_MAX
    assert srdhm(INT32_MIN, INT32_MAX) == -INT32_MAX  # (-2**62 + 2**31) * 2 / 2**32 = -(2**31 - 1)
    # 0.5 * 0.5 in Q31: (2**60 + 2**30) / 2**31 = 2**29 + 0.5, truncated -> 2**29.
    assert srdhm(1 << 30, 1 << 30) == 1 << 29
    # Ties: a*b = +-2**30 is exactly half of 2**31.
    #   +: (2**30 + 2**30) / 2**31 = 1              -> 0.5 rounds to 1
    #   -: (-2**30 + 1 - 2**30) / 2**31 = -1 + 2**-31, truncated toward zero -> 0
    # so gemmlowp's nudge rounds ties toward +infinity (not away from zero).
    assert srdhm(1 << 30, 1) == 1
    assert srdhm(-(1 << 30), 1) == 0
    # -1.5: (-3*2**30 + 1 - 2**30) / 2**31 = -2 + 2**-31 -> -1 (again toward +inf)
    assert srdhm(-3 * (1 << 30), 1) == -1
    # -0.6 (not a tie) -> -1: (-0.6*2**31 - 2**30 + 1) / 2**31 = -1.1 + tiny -> -1
    assert srdhm(-round(0.6 * 2**31), 1) == -1


@pytest.mark.parametrize("x, e, expected", [
    # RDBP(x, e): mask = 2**e - 1, rem = x & mask, thr = (mask >> 1) + (x < 0);
    # result = (x >> e) + (rem > thr)   (>> is arithmetic: floor)
    (-3, 1, -2),  # mask 1, rem 1, thr 0 + 1 = 1, -3 >> 1 = -2, 1 > 1 no  -> -2  (-1.5 away from 0)
    (3, 1, 2),  # rem 1, thr 0, 3 >> 1 = 1, 1 > 0 yes -> 2  (1.5 away from 0)
    (-5, 2, -1),  # mask 3, -5 = ...1011 so rem 3, thr 1 + 1 = 2, -5 >> 2 = -2, 3 > 2 -> -1  (-1.25)
    (6, 2, 2),  # rem 2, thr 1, 6 >> 2 = 1, 2 > 1 -> 2  (1.5)
    (-6, 2, -2),  # -6 = ...1010 so rem 2, thr 2, -6 >> 2 = -2, 2 > 2 no -> -2  (-1.5 away from 0)
    (5, 2, 1),  # rem 1, thr 1 -> 1 (1.25)
    (7, 2, 2),  # rem 3, thr 1 -> 2 (1.75)
    (-7, 2, -2),  # -7 = ...1001: rem 1, thr 2, -7 >> 2 = -2 -> -2 (-1.75)
    (12345, 0, 12345),  # mask 0: identity
    (-1, 31, 0),  # rem 2**31 - 1 > thr 2**30: -1 + 1 = 0
    (INT32_MIN, 31, -1),  # exactly -1: rem 0
    (INT32_MAX, 31, 1),  # 0.99999... -> 1
])
def test_rounding_divide_by_pot_by_hand(x, e, expected):
    assert rdbp(x, e) == expected


@pytest.mark.parametrize("acc, q, shift, zp, lo, hi, expected", [
    (100, 1 << 30, 0, 0, -128, 127, 50),  # M = 0.5: srdhm = (100*2**30 + 2**30) >> 31 = 50
    (3, 1 << 30, 1, 0, -128, 127, 3),  # M = 1.0: left shift 1 -> 6, * 0.5 -> 3
    (3, 1 << 30, -1, 0, -128, 127, 1),  # M = 0.25: srdhm(3) = 1.5 -> 2, rdbp(2, 1) = 1
    # double rounding: 5 * 0.25 = 1.25 (single rounding: 1); srdhm(5) = 2.5 -> 3, rdbp(3, 1) = 2
    (5, 1 << 30, -1, 0, -128, 127, 2),
    # -5 * 0.25 = -1.25: srdhm(-5) = -2.5 -> -2 (tie toward +inf), rdbp(-2, 1) = -1
    (-5, 1 << 30, -1, 0, -128, 127, -1),
    (-100, 1 << 30, 0, 10, -128, 127, -40),  # -50 + zero point 10
    (1000, 1 << 30, 0, 0, -128, 127, 127),  # clamp high
    (-1000, 1 << 30, 0, 0, -128, 127, -128),  # clamp low
    (-1000, 1 << 30, 0, -20, -20, 127, -20),  # ReLU folded: act_min = zero point
    (7, 1 << 30, 0, 0, -5, 2, 2),  # arbitrary activation range
    # left shift wraps like the C code on real targets: 2**30 << 1 = 2**31 -> INT32_MIN
    (1 << 30, 1 << 30, 1, 0, -128, 127, -128),
    (0, 0, 0, 5, -128, 127, 5),  # zero multiplier (flushed tiny scale)
])
def test_requantize_by_hand(acc, q, shift, zp, lo, hi, expected):
    assert int(quant.requantize(acc, q, shift, zp, lo, hi)) == expected


@pytest.mark.parametrize("real, expected", [
    (0.5, (1 << 30, 0)),  # frexp(0.5) = (0.5, 0): q = 0.5 * 2**31
    (1.0, (1 << 30, 1)),  # (0.5, 1)
    (0.25, (1 << 30, -1)),
    (0.75, (3 << 29, 0)),
    (2.0**-31, (1 << 30, -30)),
    (2.0**-32, (1 << 30, -31)),  # smallest representable shift
    (2.0**-33, (0, 0)),  # shift -32 < -31: flushed to zero like TFLite
    (0.0, (0, 0)),
    (1 - 2.0**-40, (1 << 30, 1)),  # mantissa rounds up to 2**31: halved, shift + 1
    (2.0**29, (1 << 30, 30)),  # largest allowed shift
])
def test_quantize_multiplier_by_hand(real, expected):
    assert quant.quantize_multiplier(real) == expected


@pytest.mark.parametrize("bad", [-0.5, math.inf, math.nan, 2.0**30])
def test_quantize_multiplier_rejects(bad):
    with pytest.raises(ValueError):
        quant.quantize_multiplier(bad)


def test_requantize_rejects_bad_parameters():
    with pytest.raises(ValueError, match="31"):
        quant.requantize(1, 1 << 30, 31, 0)
    with pytest.raises(ValueError):
        quant.requantize(1, 1 << 30, 0, 200)
    with pytest.raises(ValueError):
        quant.requantize(1, 1 << 30, 0, 0, 10, 5)


# ------------------------------------------------------- independent scalar reference (TFLite C)


def _c_div(a, b):  # C99 integer division truncates toward zero
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _as_int32(v):  # two's-complement wrap of the C int32 multiplication
    return (v + 2**31) % 2**32 - 2**31


def ref_requantize(acc, q, shift, zp, lo, hi):
    """Transcription of TFLite MultiplyByQuantizedMultiplier (double rounding) + clamp."""
    left, right = (shift, 0) if shift > 0 else (0, -shift)
    a, b = _as_int32(acc * (1 << left)), q
    if a == b == INT32_MIN:
        high = INT32_MAX
    else:
        ab = a * b
        nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
        high = _c_div(ab + nudge, 1 << 31)
    mask = (1 << right) - 1
    remainder = high & mask  # Python ints: two's complement, low bits as in int32
    threshold = (mask >> 1) + (1 if high < 0 else 0)
    r = (high >> right) + (1 if remainder > threshold else 0)
    return min(max(r + zp, lo), hi)


def test_requantize_matches_scalar_reference():
    rng = random.Random(1234)
    specials = [0, 1, -1, INT32_MAX, INT32_MIN, INT32_MAX - 1, INT32_MIN + 1, 1 << 30, -(1 << 30)]
    cases = []
    for _ in range(4000):
        acc = rng.choice([rng.choice(specials), rng.randint(-1000, 1000), rng.randint(INT32_MIN, INT32_MAX)])
        if rng.random() < 0.5:
            q, shift = quant.quantize_multiplier(rng.uniform(0, 1) * 2.0 ** rng.randint(-32, 8))
        else:
            q, shift = rng.choice([INT32_MIN, INT32_MAX, 1 << 30, rng.randint(1 << 30, INT32_MAX)]), \
                rng.randint(-31, 30)
        zp = rng.randint(-128, 127)
        lo = rng.randint(-128, 127)
        cases.append((acc, q, shift, zp, lo, rng.randint(lo, 127)))
    a, q, s, zp, lo, hi = (torch.tensor(c) for c in zip(*cases))
    got = quant.multiply_by_quantized_multiplier(a, q, s)
    got = [min(max(int(g) + c[3], c[4]), c[5]) for g, c in zip(got, cases)]
    assert got == [ref_requantize(*c) for c in cases]
    # and the public per-call API with scalar zero point / range
    c = cases[:300]
    assert [int(quant.requantize(*x)) for x in c] == [ref_requantize(*x) for x in c]


# ----------------------------------------------------------------------------- conv / linear


def _direct_f64(x, w, b, zp, stride, padding, groups):
    # exact: integer operands, |products| <= 255*128 and |sums| < 2**40 << 2**53
    return F.conv2d((x - zp).double(), w.double(), b.double(), stride, padding, 1, groups).long()


@pytest.mark.parametrize("stride, padding, groups, shape", [
    (1, 0, 1, (2, 3, 7, 9)), (1, 1, 1, (1, 4, 5, 5)), (2, 1, 1, (3, 2, 8, 8)),
    (2, 0, 2, (2, 4, 9, 7)), (3, 2, 4, (1, 4, 6, 5)), (1, 1, 1, (1, 1, 1, 1)),
])
def test_conv2d_int_matches_float64(stride, padding, groups, shape):
    g = torch.Generator().manual_seed(stride * 100 + padding * 10 + groups)
    x = torch.randint(-128, 128, shape, generator=g)
    w = torch.randint(-128, 128, (8, shape[1] // groups, 3, 3), generator=g)
    b = torch.randint(-2**24, 2**24, (8,), generator=g)
    for zp in (-128, 0, 37, 127):
        acc = conv2d_int(x, w, b, zp, stride, padding, groups)
        assert acc.dtype == torch.int64
        assert torch.equal(acc, _direct_f64(x, w, b, zp, stride, padding, groups))


def test_conv_padding_is_zero_point_and_linear():
    x = torch.full((1, 1, 2, 2), 5)
    w = torch.ones(1, 1, 3, 3, dtype=torch.int64)
    assert conv2d_int(x, w, None, 5, padding=1).abs().sum() == 0  # real value 0 everywhere
    g = torch.Generator().manual_seed(7)
    x = torch.randint(-128, 128, (5, 37), generator=g)
    w = torch.randint(-128, 128, (6, 37), generator=g)
    b = torch.randint(-1000, 1000, (6,), generator=g)
    assert torch.equal(linear_int(x, w, b, -3), ((x + 3).double() @ w.double().T + b).long())


def test_requantizing_wrappers_are_per_channel():
    g = torch.Generator().manual_seed(3)
    x, w = torch.randint(-128, 128, (2, 3, 5, 5), generator=g), torch.randint(-127, 128, (4, 3, 3, 3), generator=g)
    b = torch.randint(-500, 500, (4,), generator=g)
    mult, shift = quant.quantize_multipliers([0.001, 0.01, 0.0003, 0.2])
    y = conv2d_q(x, w, b, 1, mult, shift, -5, -5, 127, stride=2, padding=1)
    acc = conv2d_int(x, w, b, 1, 2, 1)
    for c in range(4):
        assert torch.equal(y[:, c], quant.requantize(acc[:, c], mult[c], shift[c], -5, -5, 127))
    xl, wl = x.reshape(2, -1)[:, :20], w.reshape(4, -1)[:, :20]
    yl = linear_q(xl, wl, b, 1, mult, shift, 3)
    accl = linear_int(xl, wl, b, 1)
    assert torch.equal(yl, torch.stack([quant.requantize(accl[:, c], mult[c], shift[c], 3) for c in range(4)], 1))


def test_conv_validation():
    x, w = torch.zeros(1, 2, 4, 4, dtype=torch.int64), torch.zeros(3, 2, 3, 3, dtype=torch.int64)
    with pytest.raises(ValueError, match="128"):
        conv2d_int(x + 128, w, None, 0)
    with pytest.raises(ValueError, match="-129"):
        conv2d_int(x, w - 129, None, 0)
    with pytest.raises(ValueError, match="zero point"):
        conv2d_int(x, w, None, 128)
    with pytest.raises(ValueError, match="groups=2"):
        conv2d_int(x, w, None, 0, groups=2)
    with pytest.raises(ValueError, match="stride"):
        conv2d_int(x, w, None, 0, stride=0)
    with pytest.raises(ValueError, match="bias shape"):
        conv2d_int(x, w, torch.zeros(2), 0)
    with pytest.raises(ValueError, match="2147483648"):
        conv2d_int(x, w, torch.full((3,), 2**31), 0)
    # accumulator overflow: bias INT32_MAX plus a positive product
    with pytest.raises(ValueError, match="accumulator"):
        conv2d_int(x + 1, w + 1, torch.full((3,), INT32_MAX), 0)
    with pytest.raises(ValueError, match="accumulator"):
        check_int32(torch.tensor([INT32_MIN - 1]))


# ----------------------------------------------------------------------------------- ternary


def test_ternarize_by_hand_and_ste():
    w = torch.tensor([1.0, -0.2, 0.05, -2.0, 0.5])
    t, alpha, delta = ternarize(w)  # mean|w| = 0.75 -> delta = 0.525; kept 1.0, -2.0
    assert t.tolist() == [1, 0, 0, -1, 0] and t.dtype == torch.int64
    assert delta == pytest.approx(0.525) and alpha == pytest.approx(1.5)
    t0, alpha0, delta0 = ternarize(torch.zeros(4))  # nothing exceeds delta = 0
    assert t0.tolist() == [0] * 4 and alpha0 == delta0 == 0.0
    w = torch.randn(6, 5, requires_grad=True)
    out = ternary_ste(w)
    t, alpha, _ = ternarize(w)
    assert torch.allclose(out, alpha * t.float())
    (out * torch.arange(30.0).reshape(6, 5)).sum().backward()
    assert torch.equal(w.grad, torch.arange(30.0).reshape(6, 5))  # identity backward
    lin = torch.nn.Linear(5, 3)
    torch.nn.utils.parametrize.register_parametrization(lin, "weight", TernarySTE())
    assert len(torch.unique(lin.weight.detach().abs())) <= 2
    with pytest.raises(ValueError, match="1.5"):
        ternarize(w, 1.5)


def test_pack_ternary_by_hand():
    t = torch.tensor([1, -1, 0, 1, -1])
    # codes 01, 11, 00, 01 | 11: byte 0 = 0b01_00_11_01 = 0x4D, byte 1 = 0b11
    assert pack_ternary(t).tolist() == [0x4D, 0x03]
    assert pack_ternary(t, 32).tolist() == [0x034D]
    assert pack_ternary(t, 16).tolist() == [0x034D]


@pytest.mark.parametrize("n", [1, 4, 15, 16, 17, 100])
def test_pack_ternary_round_trip(n):
    t = torch.randint(-1, 2, (n,), generator=torch.Generator().manual_seed(n))
    b8 = pack_ternary(t)
    assert len(b8) == -(-n // 4) and bool(((b8 >= 0) & (b8 < 256)).all())
    for bits in (8, 16, 32):
        assert torch.equal(unpack_ternary(pack_ternary(t, bits), n, bits), t)
    # a 32-bit word is its four bytes of the 8-bit packing, little-endian
    raw = bytes(b8.tolist()) + bytes(-len(b8) % 4)
    words = [int.from_bytes(raw[i:i + 4], "little") for i in range(0, len(raw), 4)]
    assert pack_ternary(t, 32).tolist() == words


def test_unpack_ternary_errors():
    with pytest.raises(ValueError, match="invalid ternary code 0b10 for weight 1"):
        unpack_ternary([0b1000], 4)
    with pytest.raises(ValueError, match="256"):
        unpack_ternary([256], 4)
    with pytest.raises(ValueError, match="count 5"):
        unpack_ternary([0], 5)
    with pytest.raises(ValueError, match="padding"):
        unpack_ternary([0b01000000], 3)
    with pytest.raises(ValueError, match="word_bits"):
        pack_ternary([0], 12)
    with pytest.raises(ValueError, match="2"):
        pack_ternary([0, 2])


# ------------------------------------------------------------------------------------ sparse


def test_magnitude_masks_and_sparsity():
    a, b = torch.tensor([0.1, -5.0, 0.3, 2.0]), torch.tensor([[-0.2, 0.05], [4.0, 0.0]])
    keep = magnitude_masks([a, b], 0.5)  # global: drop 4 smallest |w|: 0, 0.05, 0.1, 0.2
    assert keep[0].tolist() == [False, True, True, True]
    assert keep[1].tolist() == [[False, False], [True, False]]
    keep = magnitude_masks([a, b], [0.25, 0.75], "layer")
    assert keep[0].tolist() == [False, True, True, True]
    assert keep[1].tolist() == [[False, False], [True, False]]
    ties = magnitude_masks([torch.ones(10)], 0.3)[0]  # ties broken by position
    assert ties.tolist() == [False] * 3 + [True] * 7
    assert sparsity(a * keep[0]) == 0.25
    assert sparsity([a, b]) == 1 / 8
    with pytest.raises(ValueError, match="1.5"):
        magnitude_masks([a], 1.5)
    with pytest.raises(ValueError, match="scope"):
        magnitude_masks([a], 0.5, "row")


def test_fixed_mask_blocks_gradient():
    lin = torch.nn.Linear(4, 2)
    mask = torch.tensor([[1, 0, 1, 0], [0, 0, 1, 1]], dtype=torch.bool)
    torch.nn.utils.parametrize.register_parametrization(lin, "weight", FixedMask(mask))
    lin(torch.randn(3, 4)).sum().backward()
    assert bool((lin.weight[~mask] == 0).all())
    assert bool((lin.parametrizations.weight.original.grad[~mask] == 0).all())


def test_scl_learned_mask_finds_support():
    s = torch.tensor([-1.0, 0.5, 2.0], requires_grad=True)
    m = step_ste(s)
    assert m.tolist() == [0.0, 1.0, 1.0]
    (m * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert s.grad.tolist() == [1.0, 2.0, 3.0]  # identity STE
    g = torch.Generator().manual_seed(0)
    k = 16
    w_true = torch.zeros(k)
    w_true[:4] = torch.tensor([2.0, -1.5, 1.0, 0.8])
    x = torch.randn(256, k, generator=g)
    theta = torch.nn.Parameter(0.1 * torch.randn(k, generator=g))
    lm = LearnedMask((k,), init=0.5)
    assert int(connection_penalty(lm).detach()) == k
    opt = torch.optim.Adam([theta, lm.score], lr=0.05)
    for _ in range(300):
        loss = ((x @ lm(theta) - x @ w_true) ** 2).mean() + 0.02 * connection_penalty(lm)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert lm.mask().tolist() == [True] * 4 + [False] * 12
    assert int(connection_penalty(lm).detach()) == 4
    with pytest.raises(ValueError):
        connection_penalty(torch.nn.Linear(2, 2))


def test_chunk_encoding():
    mask, vals = encode_chunk([0, 3, 0, -5])
    assert mask == 0b1010 and vals.tolist() == [3, -5]
    assert decode_chunk(mask, vals, 4).tolist() == [0, 3, 0, -5]
    assert encode_chunk(torch.zeros(8, dtype=torch.int64))[0] == 0
    g = torch.Generator().manual_seed(5)
    for n in (1, 8, 16, 33):
        c = torch.randint(-128, 128, (n,), generator=g) * (torch.rand(n, generator=g) < 0.3)
        assert torch.equal(decode_chunk(*encode_chunk(c), n), c)
    with pytest.raises(ValueError, match="2 set bits but 1"):
        decode_chunk(0b11, [4], 2)
    with pytest.raises(ValueError, match="0x10"):
        decode_chunk(0b10000, [4], 4)
    with pytest.raises(ValueError, match="non-zero"):
        decode_chunk(0b1, [0], 4)


# ---------------------------------------------------------------------------------- winograd


@pytest.mark.parametrize("m", [2, 4])
def test_winograd_transforms_exact(m):
    bt, g, at = TRANSFORMS[m]
    ibt, isg, iat, s = integer_transforms(m)
    assert s == {2: 2, 4: 24}[m]
    assert isg.tolist() == [[int(v * s) for v in row] for row in g]
    # 1-D identity A^T [(G g) * (B^T d)] = correlation, checked on every pair of unit
    # vectors in exact rationals: both sides are bilinear, so this proves it.
    a = m + 2
    for i, j in itertools.product(range(a), range(3)):
        gd = [sum(g[r][c] * (c == j) for c in range(3)) * sum(bt[r][c] * (c == i) for c in range(a))
              for r in range(a)]
        y = [sum(at[o][r] * gd[r] for r in range(a)) for o in range(m)]
        assert y == [Fraction(int(i == o + j)) for o in range(m)]


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (1, 1, 3, 3), (3, 5, 5, 6), (1, 2, 11, 4)])
def test_winograd_equals_direct(m, padding, shape):
    g = torch.Generator().manual_seed(sum(shape) * 10 + m + padding)
    x = torch.randint(-128, 128, shape, generator=g)
    w = torch.randint(-128, 128, (4, shape[1], 3, 3), generator=g)
    b = torch.randint(-2**20, 2**20, (4,), generator=g)
    for zp in (-128, 0, 127):
        assert torch.equal(winograd_conv2d_int(x, w, b, zp, m, padding), conv2d_int(x, w, b, zp, 1, padding))


def test_winograd_unsupported():
    x, w = torch.zeros(1, 2, 6, 6, dtype=torch.int64), torch.zeros(1, 2, 3, 3, dtype=torch.int64)
    for kwargs in (dict(stride=2), dict(groups=2), dict(m=3)):
        with pytest.raises(ValueError, match="not supported by winograd"):
            winograd_conv2d_int(x, w, None, 0, **{"m": 2, **kwargs})
    with pytest.raises(ValueError, match="not supported by winograd"):
        winograd_conv2d_int(x, torch.zeros(1, 2, 5, 5, dtype=torch.int64), None, 0)


def _fits(t, bits):
    return bool(((t >= -(1 << (bits - 1))) & (t <= (1 << (bits - 1)) - 1)).all())


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("channels, weight_range", [(1, (-128, 127)), (3, (-128, 127)), (2, (-1, 1))])
def test_winograd_worst_case_widths(m, channels, weight_range):
    widths = winograd_widths(m, channels, weight_range)
    assert list(widths) == list(STAGES)
    c = channels
    w_abs = max(-weight_range[0], weight_range[1])
    # hand-derivable entries: d = x - zp in [-255, 255]; V for F(2,3) sums 4 terms +-d;
    # the conv output is at most 9 * C * 255 * max|w|
    assert widths["d"] == (-255, 255, 9)
    if m == 2:
        assert widths["V"][:2] == (-1020, 1020)
    assert widths["Y"][:2] == (-9 * c * 255 * w_abs, 9 * c * 255 * w_abs)
    for stage, (lo, hi, bits) in widths.items():
        assert bits == signed_bits(lo, hi)
        x, w, zp = worst_case_input(m, stage, c, weight_range)
        assert x.shape == (1, c, m + 2, m + 2) and bool((x.abs() <= 128).all())
        _, st = winograd_conv2d_int(x, w, None, zp, m, 0, return_stages=True)
        t = st[stage]
        assert max(-int(t.min()), int(t.max())) == max(-lo, hi)  # the bound is reached
        assert _fits(t, bits) and not _fits(t, bits - 1)  # ... and needs every bit
    # extreme-valued random inputs stay inside the bounds
    g = torch.Generator().manual_seed(m * 10 + c)
    for zp in (-128, 127, 0):
        x = torch.where(torch.rand(8, c, 2 * m + 2, 2 * m + 2, generator=g) < 0.5, -128, 127)
        w = torch.tensor(weight_range)[torch.randint(0, 2, (5, c, 3, 3), generator=g)]
        _, st = winograd_conv2d_int(x, w, None, zp, m, 1, return_stages=True)
        for stage, (lo, hi, _) in widths.items():
            assert lo <= int(st[stage].min()) and int(st[stage].max()) <= hi, stage
