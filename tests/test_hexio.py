import numpy as np
import pytest

from cosim import hexio


def test_pack_and_hex_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.integers(-2**31, 2**31, 100)
    b = rng.integers(-2**31, 2**31, 100)
    c = rng.integers(-32, 32, 100)
    limbs = hexio.pack_fields([(a, 0, 32), (b, 32, 32), (c, 64, 6)], 70)
    lines = hexio.limbs_to_hex(limbs, 70).decode().split()
    for k in range(100):
        word = int(lines[k], 16)
        ak, bk, ck = int(a[k]), int(b[k]), int(c[k])
        assert word == (ak % 2**32) | ((bk % 2**32) << 32) | ((ck % 64) << 64)


def test_bin_is_big_endian_bytes_per_word(tmp_path):
    limbs = hexio.pack_fields([(np.array([0x0102030405060708, -1]), 0, 64), (np.array([0x2a, 0]), 64, 6)], 70)
    hexio.write_bin(tmp_path / "v.bin", limbs, 70)
    data = (tmp_path / "v.bin").read_bytes()
    assert data[:9] == bytes([0x2a, 1, 2, 3, 4, 5, 6, 7, 8])
    assert data[9:] == bytes([0]) + b"\xff" * 8


def test_read_hex_fast_and_slow_paths_agree(tmp_path):
    vals = np.array([0, 1, 127, 128, 255], dtype=np.int64)
    (tmp_path / "fast.hex").write_text("".join(f"{v:02x}\n" for v in vals))
    (tmp_path / "icarus.hex").write_text("// 0x00000000\n" + "".join(f"{v:02x}\n" for v in vals))
    fast = hexio.read_hex(tmp_path / "fast.hex", 8, True)
    slow = hexio.read_hex(tmp_path / "icarus.hex", 8, True)
    assert fast.tolist() == slow.tolist() == [0, 1, 127, -128, -1]
    assert hexio.read_hex(tmp_path / "fast.hex", 8, False).tolist() == [0, 1, 127, 128, 255]


def test_read_hex_rejects_undefined_values(tmp_path):
    (tmp_path / "x.hex").write_text("0f\nxx\n")
    with pytest.raises(ValueError, match="undefined or malformed"):
        hexio.read_hex(tmp_path / "x.hex", 8, True)
