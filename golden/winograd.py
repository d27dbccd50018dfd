"""Exact integer Winograd convolution F(m x m, 3 x 3), m in {2, 4}.

Minimal filtering (A. Lavin, S. Gray, "Fast Algorithms for Convolutional Neural
Networks", arXiv 1509.09308, section 4): for an ``(m+2) x (m+2)`` input tile ``d`` and
a 3x3 filter ``g`` the ``m x m`` output tile of the correlation is::

    Y = A^T [ (G g G^T) * (B^T d B) ] A          (* element-wise, summed over channels)

with the paper's matrices (:data:`TRANSFORMS`, exact ``Fraction`` s). ``B^T`` and
``A^T`` are integral; ``G`` has denominators 2 (F(2,3)) and 4, 6, 12, 24 (F(4,3)), so
with ``s`` the least common denominator (2 and 24) ``sG = s * G`` is an integer
matrix, and the integer pipeline is::

    d    = x - zp_in (zero padded)       V = B^T d B           U = (sG) g (sG)^T
    M    = sum_c U * V                   Y = (A^T M A) / s**2  (exact division)
    acc  = Y + bias

Every stage is integral and ``A^T M A = s**2 * (direct correlation)``, so ``acc``
equals :func:`golden.conv.conv2d_int` exactly (stride 1, no groups only). Tiles
cover the output in steps of ``m``; the input is zero-padded (in ``d``) at the bottom
and right so that the tile grid fits, and the surplus outputs are cropped.

:func:`winograd_widths` gives the exact worst-case signed width of every stage
(named in :data:`STAGES`) for int8 inputs/zero points and a weight range (int8 by
default), and :func:`worst_case_input` an input tile reaching it.
"""

from __future__ import annotations

import functools
import itertools
import math
from fractions import Fraction as F

import torch

from golden.conv import _operands, check_int32


def _fr(rows):
    return tuple(tuple(F(v) for v in r) for r in rows)


# (B^T, G, A^T) from Lavin & Gray, section 4.1 (F(2x2,3x3)) and 4.2 (F(4x4,3x3)).
TRANSFORMS = {
    2: (_fr([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]),
        _fr([[1, 0, 0], [F(1, 2), F(1, 2), F(1, 2)], [F(1, 2), F(-1, 2), F(1, 2)], [0, 0, 1]]),
        _fr([[1, 1, 1, 0], [0, 1, -1, -1]])),
    4: (_fr([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
             [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]),
        _fr([[F(1, 4), 0, 0], [F(-1, 6), F(-1, 6), F(-1, 6)], [F(-1, 6), F(1, 6), F(-1, 6)],
             [F(1, 24), F(1, 12), F(1, 6)], [F(1, 24), F(-1, 12), F(1, 6)], [0, 0, 1]]),
        _fr([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]])),
}

STAGES = ("d", "BTd", "V", "g", "Gg", "U", "UV", "M", "ATM", "ATMA", "Y")
_G_ONLY = ("g", "Gg", "U")
_PER_CHANNEL_SUM = ("M", "ATM", "ATMA", "Y")


def _check_m(m) -> int:
    if m not in TRANSFORMS:
        raise ValueError(f"F({m}x{m},3x3) is not supported by winograd (m must be one of {tuple(TRANSFORMS)})")
    return m


def integer_transforms(m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """(B^T, s*G, A^T) as int64 tensors and the scale ``s`` (least common denominator of G)."""
    bt, g, at = TRANSFORMS[_check_m(m)]
    s = math.lcm(*(v.denominator for row in g for v in row))
    as_int = lambda rows, k=1: torch.tensor([[int(v * k) for v in r] for r in rows], dtype=torch.int64)
    return as_int(bt), as_int(g, s), as_int(at), s


def _pipeline(d: torch.Tensor, g: torch.Tensor, m: int, keep_uv: bool) -> dict[str, torch.Tensor]:
    """All stages for tiles d (N, C, Th, Tw, a, a) and filters g (O, C, 3, 3), int64."""
    bt, sg, at, s = integer_transforms(m)
    st = {"d": d, "g": g}
    st["BTd"] = torch.einsum("ik,nctukl->nctuil", bt, d)
    st["V"] = torch.einsum("nctuil,jl->nctuij", st["BTd"], bt)
    st["Gg"] = torch.einsum("ik,ockl->ocil", sg, g)
    st["U"] = torch.einsum("ocil,jl->ocij", st["Gg"], sg)
    if keep_uv:
        st["UV"] = torch.einsum("ocij,nctuij->noctuij", st["U"], st["V"])
    st["M"] = torch.einsum("ocij,nctuij->notuij", st["U"], st["V"])
    st["ATM"] = torch.einsum("ik,notukl->notuil", at, st["M"])
    st["ATMA"] = torch.einsum("notuil,jl->notuij", st["ATM"], at)
    if bool((st["ATMA"] % (s * s)).any()):  # impossible by the identity above
        raise ArithmeticError("A^T M A is not divisible by s**2")
    st["Y"] = st["ATMA"] // (s * s)
    return st


def winograd_conv2d_int(x_q, w_q, bias_q, input_zero_point, m: int = 2, padding: int = 0,
                        stride: int = 1, groups: int = 1, return_stages: bool = False):
    """Same result as ``conv2d_int(x_q, w_q, bias_q, input_zero_point, 1, padding)``
    computed with integer F(m x m, 3 x 3) Winograd; optionally also the stage tensors."""
    _check_m(m)
    d, w, b = _operands(x_q, w_q, bias_q, input_zero_point, 4)
    if stride != 1 or groups != 1 or tuple(w.shape[2:]) != (3, 3) or w.shape[1] != d.shape[1]:
        raise ValueError(f"stride {stride}, groups {groups}, weight shape {tuple(w.shape)} "
                         f"for {d.shape[1]} input channels is not supported by winograd")
    if int(padding) != padding or padding < 0:
        raise ValueError(f"padding must be an integer >= 0, not {padding!r}")
    n, _, h, wd = d.shape
    ho, wo = h + 2 * padding - 2, wd + 2 * padding - 2
    if ho < 1 or wo < 1:
        raise ValueError(f"input {h}x{wd} with padding {padding} is smaller than the 3x3 kernel")
    th, tw = -(-ho // m), -(-wo // m)
    d = torch.nn.functional.pad(d, (padding, padding + tw * m - wo, padding, padding + th * m - ho))
    tiles = d.unfold(2, m + 2, m).unfold(3, m + 2, m)  # N, C, Th, Tw, a, a
    st = _pipeline(tiles, w, m, return_stages)
    y = st["Y"].permute(0, 1, 2, 4, 3, 5).reshape(n, w.shape[0], th * m, tw * m)
    acc = check_int32(y[:, :, :ho, :wo] + b[:, None, None])
    return (acc, st) if return_stages else acc


def signed_bits(lo: int, hi: int) -> int:
    """Smallest two's-complement width holding every integer in [lo, hi]."""
    return max((-lo - 1).bit_length(), hi.bit_length()) + 1


@functools.lru_cache(maxsize=None)
def _single_channel_extremes(m: int, w_lo: int, w_hi: int) -> dict:
    """Per stage, for one channel: (lo, hi, worst d tile, worst g), exact.

    Each stage is linear in d, linear in g, or bilinear. A bilinear form on a box
    takes its extremes at vertices, so g runs over the 2**9 vertices of the weight
    box. For fixed g the stage is linear in d with coefficients c_k (found by feeding
    the unit tiles e_k); d = x - zp with int8 x and zp spans [0, 255]^n (zp = -128)
    or [-255, 0]^n (zp = 127), hence the extremes are +-255 * max(P, N) with P (N)
    the sum of the positive (negative) c_k: symmetric, attained with zp = -128 by
    d_k = 255 on the coefficients of the winning sign and 0 elsewhere.
    """
    a = m + 2
    basis = torch.eye(a * a, dtype=torch.int64).reshape(a * a, 1, 1, 1, a, a)
    verts = torch.tensor(list(itertools.product((w_lo, w_hi), repeat=9)), dtype=torch.int64)
    st = _pipeline(basis, verts.reshape(-1, 1, 3, 3), m, keep_uv=True)
    out = {}
    for name in STAGES:
        t = st[name]
        if name in _G_ONLY:  # (O = vertex, C, ...): range over vertices
            lo, hi = int(t.min()), int(t.max())
            v = int(torch.nonzero(t == (lo if -lo > hi else hi))[0, 0])
            out[name] = (lo, hi, torch.zeros(a, a, dtype=torch.int64), verts[v].reshape(3, 3))
            continue
        c = t.reshape(a * a, -1)  # coefficient of d_k for every (vertex,) element
        pos, neg = c.clamp(min=0).sum(0), (-c).clamp(min=0).sum(0)
        best = torch.maximum(pos, neg)
        j = int(best.argmax())
        r = 255 * int(best[j])
        sign = 1 if pos[j] >= neg[j] else -1
        dk = (255 * (sign * c[:, j] > 0)).reshape(a, a)
        vert = j // (c.shape[1] // t.shape[1])  # axis 1 is the vertex (or C = 1 if no g)
        out[name] = (-r, r, dk, verts[vert].reshape(3, 3))
    return out


def _check_channels(in_channels) -> int:
    if int(in_channels) != in_channels or in_channels < 1:
        raise ValueError(f"in_channels must be an integer >= 1, not {in_channels!r}")
    return int(in_channels)


def winograd_widths(m: int, in_channels: int = 1, weight_range=(-128, 127)) -> dict[str, tuple[int, int, int]]:
    """Exact worst case ``{stage: (min, max, signed bits)}`` for int8 activations and
    zero point and weights in ``weight_range``; M onwards sum ``in_channels`` channels.
    ``Y`` excludes the bias (add the int32 bias for the accumulator)."""
    _check_m(m)
    c = _check_channels(in_channels)
    ext = _single_channel_extremes(m, *map(int, weight_range))
    res = {}
    for name, (lo, hi, _, _) in ext.items():
        k = c if name in _PER_CHANNEL_SUM else 1
        res[name] = (k * lo, k * hi, signed_bits(k * lo, k * hi))
    return res


def worst_case_input(m: int, stage: str, in_channels: int = 1, weight_range=(-128, 127)):
    """``(x_q (1, C, m+2, m+2), w_q (1, C, 3, 3), zp)``: with padding 0 this single tile
    makes ``stage`` reach the magnitude ``max(|min|, |max|)`` of :func:`winograd_widths`."""
    _check_m(m)
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages are {STAGES}")
    c = _check_channels(in_channels)
    _, _, dk, g = _single_channel_extremes(m, *map(int, weight_range))[stage]
    zp = -128
    x = (dk + zp).expand(1, c, m + 2, m + 2).clone()
    return x, g.expand(1, c, 3, 3).clone(), zp
