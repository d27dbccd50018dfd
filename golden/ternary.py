"""Ternary weights: TWN ternarization, 2-bit packing and a straight-through layer.

Ternary Weight Networks (F. Li, B. Liu, "Ternary Weight Networks", arXiv 1605.04711,
eqs. 9-10) approximate a layer's weights ``W`` by ``alpha * T`` with ``T`` in {-1, 0, 1}::

    delta = 0.7 * mean(|W|)                      # over the whole layer
    T     = sign(W) * (|W| > delta)
    alpha = mean(|W_i|  for |W_i| > delta)       # 0 when no weight exceeds delta

The integer pipeline uses ``T`` as the weight tensor; ``alpha`` (one per layer) is
folded into the requantization multiplier (see :mod:`golden.nets.digits`).

Packed format (hardware weight memories): each weight is a 2-bit two's-complement
code, ``00 = 0``, ``01 = +1``, ``11 = -1``; ``10`` (-2) is invalid and rejected by
:func:`unpack_ternary`. Weights are taken in C (row-major) order of the tensor and
packed little-endian: weight ``k`` occupies bits ``[2*(k % P), 2*(k % P) + 1]`` of word
``k // P`` with ``P = word_bits // 2`` (4 per byte, 16 per 32-bit word). So a 32-bit
word equals its four bytes of the 8-bit packing read little-endian. The tail of
the last word is padded with ``00`` codes. Words are returned as non-negative
integers in ``[0, 2**word_bits)`` in an int64 tensor.
"""

from __future__ import annotations

import torch

from golden.quant import _finite, _i64, _integer, _real

WORD_BITS = (8, 16, 32)


def ternarize(w: torch.Tensor, delta_factor: float = 0.7) -> tuple[torch.Tensor, float, float]:
    """TWN: float weights -> (T in {-1,0,1} as int64, alpha, delta), one alpha per tensor."""
    if not 0 <= _real(delta_factor, "delta_factor") < 1:
        raise ValueError(f"delta_factor must lie in [0, 1), not {delta_factor}")
    w = _finite(w, "w")
    a = w.abs()
    delta = delta_factor * float(a.mean())
    keep = a > delta
    t = (torch.sign(w).to(torch.int64)) * keep
    alpha = float(a[keep].mean()) if bool(keep.any()) else 0.0
    return t, alpha, delta


def ternary_ste(w: torch.Tensor, delta_factor: float = 0.7) -> torch.Tensor:
    """Forward ``alpha * T`` (TWN), backward identity (straight-through estimator)."""
    t, alpha, _ = ternarize(w, delta_factor)
    return w + (alpha * t.to(w.dtype) - w).detach()


class TernarySTE(torch.nn.Module):
    """Weight parametrization for QAT: ``torch.nn.utils.parametrize.register_parametrization(
    layer, "weight", TernarySTE())`` turns a Conv2d/Linear into a TWN ternary layer
    trained with the straight-through estimator (latent float weights are updated)."""

    def __init__(self, delta_factor: float = 0.7):
        super().__init__()
        self.delta_factor = delta_factor

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return ternary_ste(w, self.delta_factor)


def _per_word(word_bits: int) -> int:
    if word_bits not in WORD_BITS:
        raise ValueError(f"word_bits must be one of {WORD_BITS}, not {word_bits!r}")
    return word_bits // 2


def pack_ternary(t, word_bits: int = 8) -> torch.Tensor:
    """Ternary tensor -> 1-D int64 tensor of packed words (format in the module doc)."""
    per = _per_word(word_bits)
    t = _i64(t, "ternary weights").flatten()
    bad = (t < -1) | (t > 1)
    if bool(bad.any()):
        raise ValueError(f"ternary value {int(t[bad][0])} is not in {{-1, 0, 1}}")
    codes = torch.nn.functional.pad(t & 3, (0, -t.numel() % per)).reshape(-1, per)
    return (codes << (2 * torch.arange(per))).sum(dim=1)


def unpack_ternary(words, count: int, word_bits: int = 8) -> torch.Tensor:
    """Inverse of :func:`pack_ternary`: the first ``count`` weights as int64 {-1,0,1}."""
    per = _per_word(word_bits)
    words = _i64(words, "words").flatten()
    count = _integer(count, "count")
    bad = (words < 0) | (words >= 1 << word_bits)
    if bool(bad.any()):
        raise ValueError(f"word {int(words[bad][0])} is not a {word_bits}-bit unsigned value")
    if not 0 <= count <= words.numel() * per:
        raise ValueError(f"count {count} does not fit in {words.numel()} words of {per} weights")
    codes = ((words[:, None] >> (2 * torch.arange(per))) & 3).flatten()
    invalid = torch.nonzero(codes == 2).flatten()
    if invalid.numel():
        raise ValueError(f"invalid ternary code 0b10 for weight {int(invalid[0])}")
    if bool(codes[count:].any()):
        raise ValueError(f"non-zero padding code after weight {count}")
    return (codes - 4 * (codes >> 1))[:count]  # sign-extend 2-bit two's complement
