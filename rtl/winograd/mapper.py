"""Map a 3x3 stride-1 convolution onto the Winograd engine's stream, and its cycle model.

Pure numpy/torch (no simulator): the flow, the testbench and the bench call it.

Tiling. The output (Ho x Wo) is covered by ``Th x Tw`` tiles of m x m
(``Th = ceil(Ho / m)``); the input is padded with the input zero point (zero in
real terms) by ``padding`` on the top and left and by ``padding`` plus the surplus
of the last tile row/column on the bottom and right, so edge tiles read zeros and
their surplus outputs are dropped. Output channels are grouped by the engine's
``channels`` (the last group padded with zero-weight channels), input channels are
streamed one per beat and accumulated in the engine.

Stream order: image, output-channel group, tile row, tile column, input channel.
One input beat per (image, group, tile, input channel); one output beat per
(image, group, tile).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from golden.conv import conv2d_int
from golden.quant import requantize
from rtl.winograd.config import WinogradConfig


def unsupported(kind: str, kernel: tuple, stride: int, groups: int = 1) -> str | None:
    """Why a layer cannot run on the engine (None if it can)."""
    if kind != "conv":
        return f"{kind} layer, not a convolution"
    if tuple(kernel) != (3, 3) or stride != 1 or groups != 1:
        g = f", groups {groups}" if groups != 1 else ""
        return f"kernel {kernel[0]}x{kernel[1]}, stride {stride}{g}"
    return None


def transform_weights(cfg: WinogradConfig, w) -> np.ndarray:
    """``U = (sG) g (sG)^T`` for int8 OIHW 3x3 weights: (O, C, a, a) int64 (offline, exact)."""
    sg = torch.tensor(cfg.sg, dtype=torch.int64)
    g = torch.as_tensor(np.asarray(w, dtype=np.int64))
    return torch.einsum("ik,ockl,jl->ocij", sg, g, sg).numpy()


@dataclass
class LayerStream:
    """A layer as the engine's input beats, the expected output beats and its figures."""

    config: WinogradConfig
    beats: dict  # field -> array (n_beats, ...) : x (aa), u (P, aa), bias/mult/shift (P), first, last
    expected: np.ndarray  # (n_out, P, m*m) int8 values
    statics: dict
    shape: tuple  # (N, G, Th, Tw, C): loop nest of the stream
    out_shape: tuple  # (N, O, Ho, Wo)
    y_ext: np.ndarray  # (N, G*P, Th*m, Tw*m): every output the engine computes

    @property
    def n_beats(self) -> int:
        return len(self.beats["first"])

    @property
    def n_out(self) -> int:
        return len(self.expected)

    @property
    def equivalent_macs(self) -> int:
        """Multiply-accumulates of the direct convolution (useful outputs only)."""
        n, o, ho, wo = self.out_shape
        return n * o * ho * wo * self.shape[4] * 9

    def locate(self, out_index: int, lane: int) -> dict:
        """Image, output channel and output position of output beat ``out_index``, lane ``lane``."""
        n, g, th, tw, _ = self.shape
        cfg = self.config
        img, rest = divmod(out_index, g * th * tw)
        grp, rest = divmod(rest, th * tw)
        ty, tx = divmod(rest, tw)
        p, k = divmod(lane, cfg.m * cfg.m)
        i, j = divmod(k, cfg.m)
        return {"image": img, "channel": grp * cfg.channels + p, "row": ty * cfg.m + i, "col": tx * cfg.m + j}

    def chunks(self, max_beats: int) -> list[tuple[int, int, int, int]]:
        """Split into runs of at most ``max_beats`` input beats at output-beat boundaries:
        ``(beat_lo, beat_hi, out_lo, out_hi)``."""
        c = self.shape[4]
        per = max(1, max_beats // c)  # output beats per chunk
        if per * c > max_beats:
            raise ValueError(f"{c} input channels exceed the {max_beats}-beat stream memory")
        return [(o * c, min(o + per, self.n_out) * c, o, min(o + per, self.n_out))
                for o in range(0, self.n_out, per)]


def _padded_params(v, o_pad: int) -> np.ndarray:
    v = np.asarray(v, dtype=np.int64).ravel()
    return np.concatenate([v, np.zeros(o_pad - len(v), dtype=np.int64)])


def map_layer(cfg: WinogradConfig, x, w, bias, input_zero_point, mult, shift, output_zero_point,
              act_min=-128, act_max=127, padding: int = 0, name: str = "layer") -> LayerStream:
    """Tile one layer (int8 NCHW ``x``, int8 OIHW 3x3 ``w``) into the engine's stream.

    Raises ValueError (with "not supported by winograd") for a shape the engine cannot run.
    """
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"not supported by winograd: {name} (input {x.shape}, weight {w.shape}: need NCHW / OIHW)")
    why = unsupported("conv", w.shape[2:], 1)
    if why:
        raise ValueError(f"not supported by winograd: {name} ({why})")
    n, c, h, wd = x.shape
    o = w.shape[0]
    if w.shape[1] != c:
        raise ValueError(f"weight shape {w.shape} does not match {c} input channels")
    if c > cfg.max_in_channels:
        raise ValueError(f"not supported by winograd: {name} ({c} input channels > max_in_channels "
                         f"{cfg.max_in_channels})")
    if int(padding) != padding or padding < 0:
        raise ValueError(f"padding must be an integer >= 0, not {padding!r}")
    m, a, P = cfg.m, cfg.a, cfg.channels
    ho, wo = h + 2 * padding - 2, wd + 2 * padding - 2
    if ho < 1 or wo < 1:
        raise ValueError(f"input {h}x{wd} with padding {padding} is smaller than the 3x3 kernel")
    th, tw = -(-ho // m), -(-wo // m)
    g = -(-o // P)
    zp = int(input_zero_point)
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding + th * m - ho), (padding, padding + tw * m - wo)),
                constant_values=zp)
    wp = np.concatenate([w, np.zeros((g * P - o, c, 3, 3), dtype=np.int64)])
    bp, mp, sp = (_padded_params(v, g * P) for v in (bias, mult, shift))

    # Every output the engine computes, from the golden direct convolution and requantizer.
    acc = conv2d_int(torch.from_numpy(xp), torch.from_numpy(wp), torch.from_numpy(bp), zp, 1, 0)
    y_ext = requantize(acc, torch.from_numpy(mp).reshape(1, -1, 1, 1), torch.from_numpy(sp).reshape(1, -1, 1, 1),
                       output_zero_point, act_min, act_max).numpy()

    tiles = np.lib.stride_tricks.sliding_window_view(xp, (a, a), axis=(2, 3))[:, :, ::m, ::m]  # N C Th Tw a a
    tiles = tiles.reshape(n, c, th, tw, a * a).transpose(0, 2, 3, 1, 4)  # N Th Tw C aa
    full = (n, g, th, tw, c)
    u = transform_weights(cfg, wp).reshape(g, P, c, a * a).transpose(0, 2, 1, 3)  # G C P aa
    per_ch = lambda v: np.broadcast_to(v.reshape(1, g, 1, 1, 1, P), full + (P,)).reshape(-1, P)
    cc = np.broadcast_to(np.arange(c), full).ravel()
    beats = {
        "x": np.broadcast_to(tiles[:, None], full + (a * a,)).reshape(-1, a * a),
        "u": np.broadcast_to(u[None, :, None, None], full + (P, a * a)).reshape(-1, P, a * a),
        "bias": per_ch(bp), "mult": per_ch(mp), "shift": per_ch(sp),
        "first": (cc == 0).astype(np.int64), "last": (cc == c - 1).astype(np.int64),
    }
    expected = (y_ext.reshape(n, g, P, th, m, tw, m).transpose(0, 1, 3, 5, 2, 4, 6)
                .reshape(n * g * th * tw, P, m * m))
    statics = {"input_zero_point": zp, "zero_point": int(output_zero_point), "act_min": int(act_min),
               "act_max": int(act_max)}
    return LayerStream(cfg, beats, expected, statics, full, (n, o, ho, wo), y_ext)


def map_vectors(cfg: WinogradConfig, vec: dict) -> LayerStream:
    """:func:`map_layer` for a golden layer-vector dict (see ``golden.nets.digits.layer_vectors``)."""
    return map_layer(cfg, vec["x"], vec["w"], vec["bias"], vec["input_zero_point"], vec["mult"], vec["shift"],
                     vec["output_zero_point"], vec["act_min"], vec["act_max"], vec["padding"], vec.get("name", "layer"))


def cycle_model(cfg: WinogradConfig, n_beats: int, runs: int = 1) -> int:
    """Cycles of an unstalled stream: one beat per cycle plus the pipeline latency per run."""
    return n_beats + runs * (cfg.latency + 1)
