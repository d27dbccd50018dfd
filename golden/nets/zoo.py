"""Layer shapes of VGG16 and MobileNet-v1 (ImageNet, 224x224 input) and per-layer densities with sources.

Pure shape tables, no weights, for cycle models of sparse engines. :func:`layers` gives one dict
per compute layer in execution order:

* ``name``: ``conv1_1`` ... ``conv5_3``, ``fc6`` ... ``fc8`` (VGG16); ``conv1``, ``conv_dw1``,
  ``conv_pw1``, ..., ``conv_dw13``, ``conv_pw13``, ``fc`` (MobileNet-v1).
* ``kind``: ``"conv"``, ``"depthwise"`` (one k x k filter per channel, ``o == c``) or ``"linear"``.
* ``c``, ``h``, ``w``: input channels (features for linear) and input height and width (1 for linear).
* ``o``, ``k``, ``stride``, ``padding``: output channels (features), square kernel size
  (1 for linear), stride and symmetric zero padding. Linear layers carry ``stride = 1, padding = 0``.

Networks:

* VGG16 (Simonyan & Zisserman, configuration D): 13 3x3 convs, stride 1, pad 1; a 2x2/2 max-pool
  after each block takes the input size 224 -> 112 -> 56 -> 28 -> 14 -> 7; fc6 25088 -> 4096
  (512 x 7 x 7 flattened), fc7 4096 -> 4096, fc8 4096 -> 1000. Dense MACs: convs 15.347 G,
  fc 0.124 G, total 15.470 G.
* MobileNet-v1, width 1.0 (Howard et al. 2017, Table 1): conv1 3x3/2 3 -> 32, then 13
  depthwise-separable blocks (3x3 depthwise, pad 1, stride 1 or 2, then 1x1 pointwise), 7x7
  average pool, fc 1024 -> 1000. Table 1 prints the last depthwise layer as "s2" at 7x7 input; its
  own output size (7x7) and the paper's 569 M Mult-Adds need stride 1, used here. Dense MACs:
  568.7 M (the paper's 569 M), of which fc 1.024 M.

Pooling and activation functions are not compute layers here.

:func:`densities` reads ``densities.json`` (shipped with the package): per layer the weight
density and the density of the layer's *input* activations, each with its source id; the JSON's
``sources`` and ``notes`` give the full citations and which values are assumed rather than
published (``weight_assumed`` / ``activation_assumed``).
"""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources

NETS = ("vgg16", "mobilenet_v1")

# VGG16 blocks: (input size, output channels of each conv in the block)
_VGG16_BLOCKS = ((224, (64, 64)), (112, (128, 128)), (56, (256, 256, 256)), (28, (512, 512, 512)),
                 (14, (512, 512, 512)))
# MobileNet-v1 depthwise-separable blocks: (depthwise stride, pointwise output channels)
_MBV1_BLOCKS = ((1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512), (1, 512), (1, 512), (1, 512),
                (1, 512), (1, 512), (2, 1024), (1, 1024))


def _layer(name: str, kind: str, c: int, h: int, w: int, o: int, k: int, stride: int, padding: int) -> dict:
    return {"name": name, "kind": kind, "c": c, "h": h, "w": w, "o": o, "k": k, "stride": stride,
            "padding": padding}


def _linear(name: str, c: int, o: int) -> dict:
    return _layer(name, "linear", c, 1, 1, o, 1, 1, 0)


def out_hw(layer: dict) -> tuple[int, int]:
    """Output (height, width) of a layer: ``(h + 2 * padding - k) // stride + 1`` per axis."""
    def size(n: int) -> int:
        return (n + 2 * layer["padding"] - layer["k"]) // layer["stride"] + 1
    return size(layer["h"]), size(layer["w"])


def terms(layer: dict) -> int:
    """K, the terms of one output's dot product: c*k*k (conv), k*k (depthwise), c (linear)."""
    return {"conv": layer["c"] * layer["k"] ** 2, "depthwise": layer["k"] ** 2, "linear": layer["c"]}[layer["kind"]]


def macs(layer: dict) -> int:
    """Dense multiply-accumulates: outputs x K (:func:`terms`)."""
    oh, ow = out_hw(layer)
    return oh * ow * layer["o"] * terms(layer)


def _vgg16() -> list[dict]:
    out, c = [], 3
    for b, (hw, widths) in enumerate(_VGG16_BLOCKS, start=1):
        for i, o in enumerate(widths, start=1):
            out.append(_layer(f"conv{b}_{i}", "conv", c, hw, hw, o, 3, 1, 1))
            c = o
    last = 512 * 7 * 7  # after the fifth max-pool, flattened
    return [*out, _linear("fc6", last, 4096), _linear("fc7", 4096, 4096), _linear("fc8", 4096, 1000)]


def _mobilenet_v1() -> list[dict]:
    out = [_layer("conv1", "conv", 3, 224, 224, 32, 3, 2, 1)]
    c, hw = 32, out_hw(out[0])[0]
    for i, (stride, o) in enumerate(_MBV1_BLOCKS, start=1):
        dw = _layer(f"conv_dw{i}", "depthwise", c, hw, hw, c, 3, stride, 1)
        hw = out_hw(dw)[0]
        out += [dw, _layer(f"conv_pw{i}", "conv", c, hw, hw, o, 1, 1, 0)]
        c = o
    return [*out, _linear("fc", c, 1000)]  # after the 7x7 average pool


_BUILDERS = {"vgg16": _vgg16, "mobilenet_v1": _mobilenet_v1}


def _check_net(net: str) -> None:
    if net not in NETS:
        raise ValueError(f"unknown net {net!r}; expected one of {NETS}")


def layers(net: str) -> list[dict]:
    """Compute layers of ``net`` (one of :data:`NETS`) in execution order; a fresh list each call."""
    _check_net(net)
    return _BUILDERS[net]()


@functools.cache
def _density_table() -> dict:
    return json.loads(resources.files(__package__).joinpath("densities.json").read_text(encoding="utf-8"))


def densities(net: str) -> dict[str, dict]:
    """Per-layer densities of ``net`` from ``densities.json``, keyed by layer name.

    Each entry has ``weight`` and ``activation`` (fraction of non-zero weights and of non-zero
    *input* activations), ``weight_source`` and ``activation_source`` (ids into the net's
    ``sources``), ``weight_assumed``, ``activation_assumed`` and ``assumed`` (either), and, where
    needed, a ``note``.
    """
    _check_net(net)
    return copy.deepcopy(_density_table()[net]["layers"])


def sources(net: str) -> dict[str, dict]:
    """Citations behind :func:`densities` for ``net``, keyed by source id."""
    _check_net(net)
    return copy.deepcopy(_density_table()[net]["sources"])
