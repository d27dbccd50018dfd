"""Constant-matrix transforms as shift-add expressions, and the exact division by s**2.

The transform matrices hold small integers (B^T: 0, +-1, +-2, +-4, +-5; A^T: 0,
+-1, +-2, +-4, +-8), so every product by a constant is written as shifts and adds:
no multiplier is spent outside the element-wise stage. The expressions are full
precision (Amaranth widens every add); the caller registers them into the widths
of :class:`rtl.winograd.config.WinogradConfig`, which hold every value by the
worst-case analysis.

Exact division. ``A^T M A = s**2 * (direct correlation)`` (see
:mod:`golden.winograd`), so the division by ``s**2 = 2**t * o`` (``o`` odd) is
exact: an arithmetic right shift by ``t`` drops only zero bits, and division of a
multiple of ``o`` by ``o`` equals multiplication by the inverse of ``o`` modulo
``2**W`` when the quotient fits in W signed bits (``q*o = z`` implies
``q = z * o^-1 mod 2**W``). For ``o = 9 = 1 + 2**3`` the inverse is the product
``(1 - 2**3)(1 + 2**6)(1 + 2**12)(1 + 2**24)...`` (telescoping:
``(1 + y)(1 - y)(1 + y**2)...(1 + y**(2**j)) = 1 - y**(2**(j+1))``, which is 1 mod
``2**W`` once the exponent reaches W): a handful of shift-adds modulo ``2**W``.
"""

from __future__ import annotations

from amaranth.hdl import Const, Value


def times_const(x: Value, c: int) -> tuple[list[Value], list[Value]]:
    """``c * x`` as (positive terms, negative terms) of shifted copies of ``x``."""
    terms = [x << k if k else x for k in range(abs(c).bit_length()) if abs(c) >> k & 1]
    return (terms, []) if c > 0 else ([], terms)


def linear(coeffs, xs) -> Value:
    """``sum(c * x for c, x in zip(coeffs, xs))`` with shifts and adds only."""
    pos, neg = [], []
    for c, x in zip(coeffs, xs):
        p, n = times_const(x, int(c))
        pos += p
        neg += n
    total = lambda ts: sum(ts[1:], ts[0])
    if pos and neg:
        return total(pos) - total(neg)
    if pos:
        return total(pos)
    if neg:
        return -total(neg)
    return Const(0, 1)


def left(t, x) -> list[list[Value]]:
    """``T @ X`` for an integer matrix T (rows) and a matrix X of values (rows)."""
    return [[linear(row, [x[k][l] for k in range(len(x))]) for l in range(len(x[0]))] for row in t]


def right_t(x, t) -> list[list[Value]]:
    """``X @ T^T`` for a matrix X of values and an integer matrix T (rows)."""
    return [[linear(row, xi) for row in t] for xi in x]


def split_scale(s2: int) -> tuple[int, int]:
    """``s2 = 2**t * o`` with ``o`` odd: returns (t, o)."""
    if s2 < 1:
        raise ValueError(f"scale must be positive, not {s2}")
    t = (s2 & -s2).bit_length() - 1
    return t, s2 >> t


def inverse_factors(odd: int, width: int) -> list[int]:
    """Shifts k, e1, e2, ...: ``odd**-1 = (1 - 2**k) * prod(1 + 2**e) mod 2**width``
    for ``odd = 1 + 2**k``."""
    if odd == 1:
        return []
    k = (odd - 1).bit_length() - 1
    if odd != 1 + (1 << k):
        raise ValueError(f"odd part {odd} of the scale is not of the form 1 + 2**k")
    shifts, e = [k], 2 * k
    while e < width:
        shifts.append(e)
        e *= 2
    return shifts


def exact_div_int(z: int, s2: int, width: int) -> int:
    """Integer mirror of :func:`exact_div` (for tests): ``z / s2`` when exact and the
    quotient fits ``width`` signed bits."""
    t, odd = split_scale(s2)
    q = z >> t
    shifts = inverse_factors(odd, width)
    if shifts:
        mask = (1 << width) - 1
        q &= mask
        q = (q - (q << shifts[0])) & mask
        for e in shifts[1:]:
            q = (q + (q << e)) & mask
        q = q - (1 << width) if q >> (width - 1) else q
    return q


def exact_div(z: Value, s2: int, width: int) -> Value:
    """``z / s2`` for ``z`` a multiple of ``s2`` whose quotient fits ``width`` signed bits."""
    q = z
    parts = exact_div_parts(s2, width)
    for k in range(parts):
        q = exact_div_part(q, s2, width, k, parts)
    return q


def exact_div_parts(s2: int, width: int) -> int:
    """How many pipeline stages :func:`exact_div` is split into: one when the inverse
    takes at most two shift-adds (or none), else two (half the carry chains each)."""
    return 1 if len(inverse_factors(split_scale(s2)[1], width)) <= 2 else 2


def exact_div_part(q: Value, s2: int, width: int, part: int, parts: int) -> Value:
    """Part ``part`` of ``parts`` of :func:`exact_div`: part 0 takes the dividend ``z``
    and shifts it right by ``t``; each part then applies its share of the inverse's
    shift-add factors (modulo ``2**width``, in order), so the parts chained equal
    :func:`exact_div`. A part's result is ``width`` bits, signed (the last part: the
    quotient) or the residue modulo ``2**width`` (the others)."""
    t, odd = split_scale(s2)
    if part == 0:
        q = q.as_signed() >> t if t else q.as_signed()
    shifts = inverse_factors(odd, width)
    if not shifts:
        return q
    if part == 0:
        q = q[:width]
    per = -(-len(shifts) // parts)
    for j in range(part * per, min(len(shifts), (part + 1) * per)):  # (1 - 2**k), then (1 + 2**e)
        q = ((q - (q << shifts[j])) if j == 0 else (q + (q << shifts[j])))[:width]
    return q.as_signed() if part == parts - 1 else q
