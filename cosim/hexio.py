"""Vectorized packing of integer fields into wide words and ``$readmemh`` text.

Bulk data reaches the simulated design through memories loaded with
``$readmemh`` and leaves it through ``$writememh``; these helpers turn numpy
arrays into that text and back without a Python loop per vector.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def pack_fields(fields: list[tuple[np.ndarray, int, int]], width: int) -> np.ndarray:
    """Pack ``(values, offset, bits)`` fields into words of ``width`` bits.

    Values are taken two's-complement modulo ``2**bits``. A field wider than 64 bits
    is given as an ``(n, limbs)`` uint64 array (limb 0 least significant) and is
    split into 64-bit pieces. Returns a ``(n, limbs)`` uint64 array.
    """
    n = len(fields[0][0]) if fields else 0
    limbs = np.zeros((n, max(1, -(-width // 64))), dtype=np.uint64)
    wide = []
    for values, offset, bits in fields:
        if bits > 64:
            values = np.asarray(values, dtype=np.uint64).reshape(n, -1)
            for k in range(values.shape[1]):
                piece = min(64, bits - 64 * k)
                if piece > 0:
                    wide.append((values[:, k].view(np.int64), offset + 64 * k, piece))
        else:
            wide.append((values, offset, bits))
    for values, offset, bits in wide:
        if not 0 < bits <= 64 or offset + bits > width:
            raise ValueError(f"field of {bits} bits at {offset} does not fit a {width}-bit word")
        v = np.asarray(values).astype(np.int64).view(np.uint64)
        if bits < 64:
            v = v & np.uint64((1 << bits) - 1)
        limb, shift = divmod(offset, 64)
        limbs[:, limb] |= v << np.uint64(shift)
        if shift + bits > 64:
            limbs[:, limb + 1] |= v >> np.uint64(64 - shift)
    return limbs


def limbs_to_hex(limbs: np.ndarray, width: int) -> bytes:
    """``$readmemh`` text, one word a line, for a ``(n, limbs)`` uint64 array."""
    digits = max(1, -(-width // 4))
    n = limbs.shape[0]
    out = np.empty((n, digits + 1), dtype=np.uint8)
    for k in range(digits):  # nibble k from the least significant end
        nib = (limbs[:, k // 16] >> np.uint64(4 * (k % 16))) & np.uint64(15)
        out[:, digits - 1 - k] = _HEX[nib.astype(np.intp)]
    out[:, digits] = ord("\n")
    return out.tobytes()


def write_hex(path: Path, limbs: np.ndarray, width: int) -> None:
    Path(path).write_bytes(limbs_to_hex(limbs, width))


def write_bin(path: Path, limbs: np.ndarray, width: int) -> None:
    """Raw words for Verilog's ``$fread`` into a memory: ceil(width/8) bytes each, big-endian."""
    nbytes = max(1, -(-width // 8))
    le = np.ascontiguousarray(limbs.astype("<u8")).view(np.uint8).reshape(limbs.shape[0], -1)
    Path(path).write_bytes(np.ascontiguousarray(le[:, :nbytes][:, ::-1]).tobytes())


def read_hex(path: Path, width: int, signed: bool, count: int | None = None) -> np.ndarray:
    """Words of at most 64 bits from ``$writememh`` output (Verilator or Icarus)."""
    if width > 64:
        raise ValueError(f"read_hex handles words of at most 64 bits, not {width}")
    text = Path(path).read_bytes()
    digits = max(1, -(-width // 4))
    fast = _read_fixed_hex(text, digits, count)
    if fast is not None:
        words = fast
    else:
        words = _read_hex_lines(path, text, count)
    if signed and width < 64:
        sign = np.int64(1 << (width - 1))
        words = (words ^ sign) - sign
    return words


def _read_fixed_hex(text: bytes, digits: int, count: int | None) -> np.ndarray | None:
    """Fast path: every line exactly ``digits`` hex digits (Verilator's $writememh)."""
    if not text or len(text) % (digits + 1) or b"/" in text[: 4 * (digits + 1)]:
        return None
    a = np.frombuffer(text, dtype=np.uint8).reshape(-1, digits + 1)
    if count is not None:
        a = a[:count]
    if not (a[:, digits] == ord("\n")).all():
        return None
    d = a[:, :digits]
    val = np.where(d <= ord("9"), d - ord("0"), (d | 0x20) - ord("a") + 10).astype(np.int64)
    if ((val < 0) | (val > 15)).any():
        return None  # x, z or anything else: let the slow path name it
    words = np.zeros(len(a), dtype=np.uint64)
    for k in range(digits):
        words = (words << np.uint64(4)) | val[:, k].astype(np.uint64)
    return words.view(np.int64)


def _read_hex_lines(path, text: bytes, count: int | None) -> np.ndarray:
    lines = [w for ln in text.splitlines() for w in ln.split(b"//", 1)[0].split() if not w.startswith(b"@")]
    if count is not None:
        lines = lines[:count]
    for ln in lines:
        if not ln.strip(b"0123456789abcdefABCDEF") == b"":
            raise ValueError(f"{path}: undefined or malformed value {ln.decode(errors='replace')!r}")
    return np.array([int(ln, 16) for ln in lines], dtype=np.uint64).view(np.int64)
