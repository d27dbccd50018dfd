"""Weight sparsity: magnitude pruning, SCL learned masks, sparse chunk encoding.

* Magnitude pruning (Han et al., "Learning both Weights and Connections for
  Efficient Neural Networks", arXiv 1506.02626): remove the fraction ``f`` of
  weights with the smallest ``|w|``, over all layers together ("global") or in each
  layer ("layer"). Exactly ``round(f * n)`` weights are removed; ties in ``|w|``
  are broken by position (stable sort), so masks are deterministic.
* SCL, Sparse Connectivity Learning (Z. Tang et al., "Automatic Sparse Connectivity
  Learning for Neural Networks", arXiv 2201.05020): ``W = theta * step(s)`` with a
  trainable score ``s`` per weight, ``step(s) = 1 if s > 0 else 0``, and the identity
  straight-through estimator ``d step(s) / ds := 1``. The sparsity penalty is the
  number of connections, ``sum(step(s))`` (through the same identity STE, so every
  score gets gradient ``lambda`` from it), as in SCL's objective; SCL's per-feature
  normalization of mask gradients is not implemented.
* Sparse chunk format for sparse engines (:func:`encode_chunk`): a 1-D chunk of
  ``n`` integers is a mask word (bit ``i`` set iff element ``i`` is non-zero; bit 0 is
  element 0) plus the non-zero values in increasing index order.
"""

from __future__ import annotations

from typing import Sequence

import torch

from golden.quant import _i64, _integer


def sparsity(tensors) -> float:
    """Fraction of exactly-zero elements of a tensor or of a sequence of tensors."""
    ts = [tensors] if isinstance(tensors, torch.Tensor) else list(tensors)
    total = sum(t.numel() for t in ts)
    if total == 0:
        raise ValueError("sparsity of an empty tensor is undefined")
    return sum(int((t == 0).sum()) for t in ts) / total


def _check_fraction(f) -> float:
    if not 0.0 <= float(f) <= 1.0:
        raise ValueError(f"pruning fraction {f} is not in [0, 1]")
    return float(f)


def _keep_mask(magnitude: torch.Tensor, fraction: float) -> torch.Tensor:
    flat = magnitude.flatten()
    drop = torch.argsort(flat, stable=True)[: round(fraction * flat.numel())]
    keep = torch.ones_like(flat, dtype=torch.bool)
    keep[drop] = False
    return keep.reshape(magnitude.shape)


def magnitude_masks(weights: Sequence[torch.Tensor], fraction, scope: str = "global") -> list[torch.Tensor]:
    """Boolean keep-masks pruning the smallest-magnitude weights.

    ``scope="global"``: one threshold over all tensors, ``fraction`` a float.
    ``scope="layer"``: each tensor pruned separately; ``fraction`` a float or one per tensor.
    """
    mags = [w.detach().abs() for w in weights]
    if scope == "global":
        keep = _keep_mask(torch.cat([m.flatten() for m in mags]), _check_fraction(fraction))
        parts = torch.split(keep, [m.numel() for m in mags])
        return [k.reshape(m.shape) for k, m in zip(parts, mags)]
    if scope == "layer":
        fracs = [fraction] * len(mags) if isinstance(fraction, (int, float)) else list(fraction)
        if len(fracs) != len(mags):
            raise ValueError(f"{len(fracs)} fractions given for {len(mags)} tensors")
        return [_keep_mask(m, _check_fraction(f)) for m, f in zip(mags, fracs)]
    raise ValueError(f"scope must be 'global' or 'layer', not {scope!r}")


class FixedMask(torch.nn.Module):
    """Weight parametrization ``w * mask`` (fine-tuning after pruning: pruned weights
    get zero gradient and stay zero)."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask.detach().clone().bool())

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * self.mask


def step_ste(s: torch.Tensor) -> torch.Tensor:
    """Unit step ``(s > 0)`` forward, identity gradient backward (SCL's identity STE)."""
    return s + ((s > 0).to(s.dtype) - s).detach()


class LearnedMask(torch.nn.Module):
    """SCL weight parametrization ``theta * step_ste(score)`` with a trainable score per
    weight, initialised to ``init`` (> 0: all connections active)."""

    def __init__(self, shape, init: float = 1.0):
        super().__init__()
        self.score = torch.nn.Parameter(torch.full(tuple(shape), float(init)))

    def mask(self) -> torch.Tensor:
        return (self.score > 0).detach()

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        return theta * step_ste(self.score)


def connection_penalty(module: torch.nn.Module) -> torch.Tensor:
    """SCL regulariser: number of active connections ``sum(step(s))`` over every
    :class:`LearnedMask` in ``module`` (identity STE gradient: 1 per score)."""
    terms = [step_ste(m.score).sum() for m in module.modules() if isinstance(m, LearnedMask)]
    if not terms:
        raise ValueError("module has no LearnedMask parametrizations")
    return torch.stack(terms).sum()


def encode_chunk(chunk) -> tuple[int, torch.Tensor]:
    """1-D integer chunk -> (mask word, non-zero values in index order)."""
    c = _i64(chunk, "chunk")
    if c.dim() != 1:
        raise ValueError(f"chunk must be 1-D, got shape {tuple(c.shape)}")
    nz = c != 0
    return sum(1 << i for i in torch.nonzero(nz).flatten().tolist()), c[nz]


def decode_chunk(mask: int, values, length: int) -> torch.Tensor:
    """Inverse of :func:`encode_chunk` for a chunk of ``length`` elements."""
    v = _i64(values, "values").flatten()
    mask, length = _integer(mask, "mask"), _integer(length, "length")
    if not 0 <= mask < 1 << length:
        raise ValueError(f"mask {mask:#x} does not fit a chunk of {length} elements")
    idx = [i for i in range(length) if mask >> i & 1]
    if len(idx) != v.numel():
        raise ValueError(f"mask has {len(idx)} set bits but {v.numel()} values were given")
    if bool((v == 0).any()):
        raise ValueError("values of a sparse chunk must be non-zero")
    out = torch.zeros(length, dtype=torch.int64)
    out[idx] = v
    return out
