"""Map a 3x3 stride-1 convolution onto the Winograd engine's stream.

:func:`maps` says whether the engine can run a layer (and if not, why, in one
line); :func:`plan` turns a :class:`golden.layer.LayerVectors` into the engine's
input beats and expected output beats (a :class:`LayerStream`); :func:`map_layer`
does the same from bare arrays (the testbench's random layers). Pure numpy/torch
(no simulator): the flow, the testbench and the bench call it. The cycle model is
:mod:`rtl.winograd.model`.

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

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from golden.conv import conv2d_int
from golden.errors import NotMapped
from golden.layer import Kind, Layer, LayerVectors, describe
from golden.quant import requantize
from rtl.winograd.config import WinogradConfig


def _why(kind, kernel: tuple, stride: int, groups: int, in_channels: int, cfg: WinogradConfig) -> str | None:
    """Why the engine cannot run such a layer (None if it can): 3x3 stride-1 dense
    convolutions of at most ``max_in_channels`` input channels only."""
    kind = Kind(kind)
    if kind is Kind.LINEAR:
        return "linear layer, not a convolution"
    if kind is Kind.DEPTHWISE:
        return f"depthwise layer (groups {groups}), not a dense convolution"
    if tuple(kernel) != (3, 3) or stride != 1 or groups != 1:
        g = f", groups {groups}" if groups != 1 else ""
        return f"kernel {kernel[0]}x{kernel[1]}, stride {stride}{g}"
    if in_channels > cfg.max_in_channels:
        return f"{in_channels} input channels > max_in_channels {cfg.max_in_channels}"
    return None


def maps(layer: LayerVectors | Layer, cfg: WinogradConfig) -> str | None:
    """None when the engine runs ``layer``, else one line saying why not, e.g.
    ``not supported by winograd: conv2 (kernel 3x3, stride 2)``."""
    L = layer.layer if isinstance(layer, LayerVectors) else layer
    why = _why(L.kind, L.kernel, L.stride, L.groups, L.in_shape[0], cfg)
    return f"not supported by winograd: {L.name} ({why})" if why else None


def transform_weights(cfg: WinogradConfig, w) -> np.ndarray:
    """``U = (sG) g (sG)^T`` for int8 OIHW 3x3 weights: (O, C, a, a) int64 (offline, exact)."""
    sg = torch.tensor(cfg.sg, dtype=torch.int64)
    g = torch.as_tensor(np.asarray(w, dtype=np.int64))
    return torch.einsum("ik,ockl,jl->ocij", sg, g, sg).numpy()


@dataclass(frozen=True, eq=False)
class LayerStream:
    """A layer as the engine's input beats, the expected output beats and its figures:
    the engine's plan (:func:`plan`), for the configuration ``config``."""

    config: WinogradConfig
    layer: Layer  # what the stream computes (the layer's description)
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

    @property
    def useful(self) -> np.ndarray:
        """``(n_out, channels * m * m)`` bool: which lanes of each output beat are outputs of
        the layer (not an edge tile's surplus or a padding channel's)."""
        n, g, th, tw, _ = self.shape
        m, P = self.config.m, self.config.channels
        _, o, ho, wo = self.out_shape
        ch = (np.arange(g)[:, None] * P + np.arange(P)) < o  # G P
        rows = (np.arange(th)[:, None] * m + np.arange(m)) < ho  # Th m
        cols = (np.arange(tw)[:, None] * m + np.arange(m)) < wo  # Tw m
        mask = (ch[:, None, None, :, None, None] & rows[None, :, None, None, :, None]
                & cols[None, None, :, None, None, :])  # G Th Tw P m m
        return np.broadcast_to(mask[None], (n,) + mask.shape).reshape(self.n_out, P * m * m)

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
    """Tile one layer (int8 NCHW ``x``, int8 OIHW 3x3 ``w``, stride 1) into the engine's stream.

    Raises NotMapped (a ValueError, "not supported by winograd: ...") for a shape the
    engine cannot run, ValueError for inconsistent arguments.
    """
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    if x.ndim != 4 or w.ndim != 4:
        raise NotMapped(f"not supported by winograd: {name} (input {x.shape}, weight {w.shape}: need NCHW / OIHW)")
    n, c, h, wd = x.shape
    why = _why(Kind.CONV, w.shape[2:], 1, 1, c, cfg)
    if why:
        raise NotMapped(f"not supported by winograd: {name} ({why})")
    o = w.shape[0]
    if w.shape[1] != c:
        raise ValueError(f"weight shape {w.shape} does not match {c} input channels")
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
    layer = describe(name=name, kind=Kind.CONV, x_shape=x.shape, w_shape=w.shape, input_zero_point=zp,
                     output_zero_point=int(output_zero_point), act_min=int(act_min), act_max=int(act_max),
                     padding=int(padding))
    return LayerStream(cfg, layer, beats, expected, statics, full, (n, o, ho, wo), y_ext)


def plan(layer: LayerVectors, cfg: WinogradConfig) -> LayerStream:
    """``layer`` as the engine's stream (:func:`map_layer`); NotMapped with :func:`maps`'s
    reason. The stream's expected outputs are checked against the layer's golden ``y``."""
    why = maps(layer, cfg)
    if why:
        raise NotMapped(why)
    L = layer.layer
    ls = map_layer(cfg, layer.x, layer.w, layer.bias, L.input_zero_point, layer.mult, layer.shift,
                   L.output_zero_point, L.act_min, L.act_max, L.padding, L.name)
    n, o, ho, wo = ls.out_shape
    if not np.array_equal(ls.y_ext[:, :o, :ho, :wo], layer.y):
        raise ValueError(f"{L.name}: the mapper's expectation differs from the layer's golden y")
    return dataclasses.replace(ls, layer=L)
