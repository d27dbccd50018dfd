"""Demo CNN on scikit-learn's bundled 8x8 digits, in float, int8, sparse and ternary form.

Data: ``sklearn.datasets.load_digits`` (1797 images, pixels 0..16 scaled to [0, 1]),
stratified 80/20 train/test split with ``random_state=seed``.

Network (NCHW)::

    conv1 3x3  1->16 stride 1 pad 1 + ReLU   (16 x 8 x 8)
    conv2 3x3 16->32 stride 2 pad 1 + ReLU   (32 x 4 x 4)
    conv3 3x3 32->32 stride 1 pad 1 + ReLU   (32 x 4 x 4)
    flatten (C-order, as torch)              (512)
    fc    512->10                            (logits)

Variants (:data:`VARIANTS`), trained deterministically (fixed seed, one intra-op
thread, ``torch.use_deterministic_algorithms``, seeded shuffling, caller's RNG
untouched). One thread, not two: these layers are too small to gain from a second
thread, and on a busy 2-core machine two spinning OpenMP threads ran 5-15x slower.

* ``float``: Adam, cosine learning rate, each batch shifted by random -1..1 pixels
  in x and y (as in every training phase); accuracy of the float model. It has no
  integer layers (``layers == []``, nothing exported; ``run_int`` raises ValueError).
* ``int8``: post-training quantization of ``float`` with :mod:`golden.quant`:
  symmetric per-output-channel int8 weights, asymmetric per-tensor int8 activations
  (min/max calibrated on the training set), int32 bias, per-channel (multiplier,
  shift) with ``M_c = s_in * s_w[c] / s_out``; ReLU is folded into the clamp
  (``act_min = output zero point``).
* ``sparse``: ``float`` pruned by global magnitude pruning in steps up to
  :data:`SPARSE_FRACTION` with masked fine-tuning (:mod:`golden.sparse`), then as ``int8``.
* ``ternary``: QAT from ``float`` with TWN weights on every conv and fc layer
  (:mod:`golden.ternary`, straight-through estimator); integer weights are T in
  {-1, 0, 1} and the layer's ``alpha`` plays the role of the weight scale
  (``M_c = s_in * alpha / s_out``, bias scale ``s_in * alpha``).

Integer pipeline (:meth:`QuantNet.run_int`): every layer is ``golden.conv`` exact int32
accumulation followed by ``golden.quant.requantize``; the fc layer also requantizes
(no ReLU, ``act_min = -128``) and the prediction is the argmax of the int8 logits
(first index on ties). Accuracies of the integer variants come from this pipeline
on the int8-quantized test images.

Test vectors (:func:`layer_vectors`, :func:`export_vectors`) hold, per layer, the int8
input ``x`` (the previous layer's ``y``, reshaped to (N, 512) before fc), the expected
int32 accumulators ``acc`` and int8 outputs ``y`` for the first ``n`` test images.
Linear layers carry ``stride = 1, padding = 0``.

Weights (:func:`build`): for seed 0 the trained weights ship with the package
(``golden/nets/weights/digits_<variant>_seed0.npz``, :data:`WEIGHTS`: the integer layers,
and the float model's state for ``float``), so every machine computes the same
accuracies and test vectors. Training is deterministic on one machine, but its float
arithmetic follows the CPU instruction set PyTorch's kernels pick (AVX2, AVX-512,
...), so a net trained elsewhere differs in a few weights and its accuracy by a few
tenths of a percent. ``retrain=True`` (``nnaccel verify --retrain``), or any other
seed, trains from the seed on this machine instead; trained networks are cached in
``cache_dir`` (default ``$NNACCEL_CACHE/nets`` or ``~/.cache/nnaccel/nets``) under a
name made of variant, seed and :data:`CODE_VERSION`. Bump the version whenever training
or quantization changes, and write the shipped weights again (:func:`ship`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from golden import quant
from golden.conv import conv2d_int, linear_int
from golden.layer import describe
from golden.sparse import FixedMask, magnitude_masks, sparsity
from golden.ternary import TernarySTE, ternarize

CODE_VERSION = "digits-3"
VARIANTS = ("float", "int8", "sparse", "ternary")
TEST_IMAGES = 360  # the 20% test split of the 1797 images (load_data)
WEIGHTS = Path(__file__).parent / "weights"  # shipped weights (package data)
SHIPPED_SEEDS = (0,)
# name, kind, in, out, stride, padding (3x3 kernels for convs); ReLU after all but the last.
ARCH = (("conv1", "conv", 1, 16, 1, 1), ("conv2", "conv", 16, 32, 2, 1),
        ("conv3", "conv", 32, 32, 1, 1), ("fc", "linear", 512, 10, 1, 0))
SPARSE_FRACTION = 0.85
# (epochs, learning rate) per training phase
FLOAT_EPOCHS, FLOAT_LR = 40, 3e-3
PRUNE_STEPS, PRUNE_EPOCHS, PRUNE_LR = (0.5, 0.7, 0.8, SPARSE_FRACTION), 12, 3e-3
TERNARY_EPOCHS, TERNARY_LR = 30, 1e-3
BATCH = 32


def load_data(seed: int = 0):
    """(x_train, y_train, x_test, y_test): float32 (N, 1, 8, 8) in [0, 1] and int64 labels."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    tr, te = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=seed)
    x = torch.tensor(x.reshape(-1, 1, 8, 8) / 16.0, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.int64)
    return x[tr], y[tr], x[te], y[te]


class DigitsCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Conv2d(i, o, 3, s, p) if k == "conv" else nn.Linear(i, o) for _, k, i, o, s, p in ARCH)

    def forward(self, x, record=None):
        for j, layer in enumerate(self.layers):
            if isinstance(layer, nn.Linear):
                x = x.flatten(1)
            if record is not None:
                record.append(x)
            x = layer(x)
            if j < len(self.layers) - 1:
                x = torch.relu(x)
        if record is not None:
            record.append(x)
        return x


@dataclasses.dataclass
class Layer:
    """One integer layer: ``y = requantize(acc, mult, shift, output_zero_point, act_min,
    act_max)`` with ``acc = conv2d_int/linear_int(x, w, bias, input_zero_point, ...)``."""
    name: str
    kind: str  # "conv" or "linear"
    w: torch.Tensor  # int8 values (ternary: -1/0/1), OIHW or (O, K)
    bias: torch.Tensor  # int32 values
    mult: torch.Tensor  # per output channel, in [2**30, 2**31) (or 0)
    shift: torch.Tensor  # per output channel
    input_zero_point: int
    output_zero_point: int
    act_min: int
    act_max: int
    stride: int
    padding: int
    input_scale: float
    output_scale: float
    weight_scale: torch.Tensor  # per output channel (ternary: alpha repeated)
    alpha: float | None = None

    def accumulate(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "conv":
            return conv2d_int(x, self.w, self.bias, self.input_zero_point, self.stride, self.padding)
        return linear_int(x.reshape(len(x), -1), self.w, self.bias, self.input_zero_point)

    def requantize(self, acc: torch.Tensor) -> torch.Tensor:
        shape = (-1,) + (1,) * (acc.dim() - 2)
        return quant.requantize(acc, self.mult.reshape(shape), self.shift.reshape(shape),
                                self.output_zero_point, self.act_min, self.act_max)


class QuantNet:
    """A trained digits network: ``variant``, ``seed``, ``accuracy`` (test, %),
    ``layers`` (:class:`Layer` list, empty for float), input quantization
    (``input_scale``, ``input_zero_point``), ``model`` (float module, float variant only),
    ``train_seconds`` (0 unless trained just now) and ``source``: ``"shipped"`` (the
    package's weights), ``"cache"`` or ``"trained"`` (on this machine)."""

    def __init__(self, variant, seed, accuracy, layers, input_scale=None, input_zero_point=None,
                 model=None, train_seconds=0.0, source="trained"):
        self.variant, self.seed, self.accuracy, self.layers = variant, seed, accuracy, layers
        self.input_scale, self.input_zero_point = input_scale, input_zero_point
        self.model, self.train_seconds, self.source = model, train_seconds, source

    def __repr__(self):
        return f"QuantNet({self.variant!r}, seed={self.seed}, accuracy={self.accuracy:.2f}%)"

    @property
    def sparsity(self) -> float:
        """Fraction of zero weights over all conv/fc layers (integer weights, or float)."""
        ws = [l.w for l in self.layers] or [l.weight for l in self.model.layers]
        return sparsity(ws)

    def _need_int(self):
        if not self.layers:
            raise ValueError(f"variant {self.variant!r} has no integer pipeline")

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        self._need_int()
        return quant.quantize_activations(x, self.input_scale, self.input_zero_point)

    def test_inputs(self, n: int | None = None):
        """(int8 test images as int64 (n, 1, 8, 8), labels) for this net's split."""
        _, _, x, y = load_data(self.seed)
        return self.quantize_input(x[:n]), y[:n]

    def trace_int(self, x_q):
        """Yield ``(layer, x, acc, y)`` through the integer pipeline."""
        self._need_int()
        x = quant._i64(x_q)
        for layer in self.layers:
            if layer.kind == "linear":
                x = x.reshape(len(x), -1)
            acc = layer.accumulate(x)
            y = layer.requantize(acc)
            yield layer, x, acc, y
            x = y

    def run_int(self, x_q) -> torch.Tensor:
        """int8 images (N, 1, 8, 8) -> int8 logits (N, 10), as int64 tensor."""
        *_, (_, _, _, y) = self.trace_int(x_q)
        return y

    def predict(self, x_q) -> torch.Tensor:
        return self.run_int(x_q).argmax(dim=1)

    def export_vectors(self, directory, n: int = 32) -> list[Path]:
        return export_vectors(self, directory, n)


def to_graph(net: QuantNet):
    """The integer net as a :class:`golden.graph.Graph`: its layers, a flatten before the linear one."""
    from golden.graph import EngineNode, Graph, Reshape, Tensor

    net._need_int()
    shape = (ARCH[0][2], 8, 8)
    tensors = {"input": Tensor("input", shape, float(net.input_scale), int(net.input_zero_point))}
    nodes, prev = [], "input"
    for layer in net.layers:
        if layer.kind == "linear" and len(shape) > 1:
            t = tensors[prev]
            shape = (int(np.prod(shape)),)
            tensors[f"{layer.name}.in"] = Tensor(f"{layer.name}.in", shape, t.scale, t.zero_point)
            nodes.append(Reshape(f"{layer.name}.flatten", prev, f"{layer.name}.in", shape))
            prev = f"{layer.name}.in"
        desc = describe(name=layer.name, kind=layer.kind, x_shape=(1,) + shape, w_shape=tuple(layer.w.shape),
                        input_zero_point=layer.input_zero_point, output_zero_point=layer.output_zero_point,
                        act_min=layer.act_min, act_max=layer.act_max, stride=layer.stride, padding=layer.padding,
                        input_scale=float(layer.input_scale), output_scale=float(layer.output_scale))
        shape = desc.out_shape
        tensors[layer.name] = Tensor(layer.name, shape, float(layer.output_scale), layer.output_zero_point)
        nodes.append(EngineNode(layer.name, prev, layer.name, desc, layer.w.numpy(), layer.bias.numpy(),
                                layer.mult.numpy(), layer.shift.numpy(), alpha=layer.alpha))
        prev = layer.name
    return Graph(f"digits-{net.variant}", "input", prev, tensors, nodes,
                 source={"format": "digits demo net", "variant": net.variant, "seed": net.seed})


def layer_vectors(net: QuantNet, n: int = 32):
    """Per layer, its :class:`golden.layer.LayerVectors` for the first ``n`` test images
    (``alpha`` set for ternary layers)."""
    x_q, _ = net.test_inputs(n)
    graph = to_graph(net)
    yield from graph.layer_vectors(x_q.numpy())


def export_vectors(net: QuantNet, directory, n: int = 32) -> list[Path]:
    """Write ``<variant>_<idx>_<layername>.npz`` per layer; return the paths (none for float)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return [vec.to_npz(directory / f"{net.variant}_{idx}_{vec.name}.npz")
            for idx, vec in enumerate(layer_vectors(net, n) if net.layers else ())]


# ----------------------------------------------------------------------------- training


@contextlib.contextmanager
def _deterministic(seed: int):
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(1)  # see module doc
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(det)


def _train(model, data, epochs, lr, seed):
    x, y = data[0], data[1]
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * -(-len(x) // BATCH))
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(BATCH):
            dx, dy = torch.randint(0, 3, (2,), generator=gen).tolist()  # shift batch by -1..1 px
            xb = nn.functional.pad(x[idx], (1, 1, 1, 1))[:, :, dy:dy + 8, dx:dx + 8]
            loss = nn.functional.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()


def _float_accuracy(model, data) -> float:
    with torch.no_grad():
        return 100.0 * float((model(data[2]).argmax(1) == data[3]).double().mean())


def _attach(model, parametrizations):
    for layer, p in zip(model.layers, parametrizations, strict=True):
        parametrize.register_parametrization(layer, "weight", p)


def _convert(model, variant, data, seed) -> QuantNet:
    """Calibrate activation ranges on the training set and build the integer layers."""
    record = []
    with torch.no_grad():
        model(data[0], record)
    qp = [quant.choose_activation_qparams(float(t.min()), float(t.max())) for t in record]
    layers = []
    for j, ((name, kind, _, _, stride, pad), mod) in enumerate(zip(ARCH, model.layers)):
        (s_in, zp_in), (s_out, zp_out) = qp[j], qp[j + 1]
        w = mod.parametrizations.weight.original if parametrize.is_parametrized(mod) else mod.weight
        if variant == "ternary":
            w_q, alpha, _ = ternarize(w)
            s_w = torch.full((w.shape[0],), alpha, dtype=torch.float64)
        else:
            w_q, s_w = quant.quantize_weights_per_channel(mod.weight)  # masked weight if sparse
            alpha = None
        mult, shift = quant.quantize_multipliers(s_in * s_w / s_out)
        last = j == len(ARCH) - 1
        layers.append(Layer(name, kind, w_q, quant.quantize_bias(mod.bias, s_in, s_w), mult, shift,
                            zp_in, zp_out, -128 if last else zp_out, 127, stride, pad,
                            s_in, s_out, s_w, alpha))
    net = QuantNet(variant, seed, 0.0, layers, qp[0][0], qp[0][1])
    net.accuracy = 100.0 * float((net.predict(net.quantize_input(data[2])) == data[3]).double().mean())
    return net


def _make(variant: str, seed: int, cache_dir) -> QuantNet:
    data = load_data(seed)
    with _deterministic(seed):
        model = DigitsCNN()
        if variant == "float":
            _train(model, data, FLOAT_EPOCHS, FLOAT_LR, seed)
            return QuantNet("float", seed, _float_accuracy(model, data), [], model=model)
        model.load_state_dict(build("float", seed, cache_dir, retrain=True).model.state_dict())
        if variant == "sparse":
            for frac in PRUNE_STEPS:
                if parametrize.is_parametrized(model.layers[0]):
                    for layer in model.layers:
                        parametrize.remove_parametrizations(layer, "weight")
                masks = magnitude_masks([l.weight for l in model.layers], frac, "global")
                _attach(model, map(FixedMask, masks))
                _train(model, data, PRUNE_EPOCHS, PRUNE_LR, seed)
        elif variant == "ternary":
            _attach(model, [TernarySTE() for _ in model.layers])
            _train(model, data, TERNARY_EPOCHS, TERNARY_LR, seed)
        return _convert(model, variant, data, seed)


def _cache_path(variant, seed, cache_dir) -> Path:
    if cache_dir is None:
        from golden.paths import cache_root
        cache_dir = cache_root() / "nets"
    return Path(cache_dir) / f"digits_{variant}_seed{seed}_{CODE_VERSION}.pt"


def shipped_path(variant: str, seed: int = 0) -> Path:
    return WEIGHTS / f"digits_{variant}_seed{seed}.npz"


def build(variant: str, seed: int = 0, cache_dir=None, *, retrain: bool = False) -> QuantNet:
    """The ``variant`` network for ``seed``: the shipped weights when there are some for
    this seed and :data:`CODE_VERSION` (the same on every machine), unless ``retrain``;
    otherwise trained from the seed on this machine, or loaded from the cache where such
    a training was kept."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; variants are {VARIANTS}")
    if isinstance(seed, bool) or int(seed) != seed or not 0 <= seed < 1 << 32:
        raise ValueError(f"seed must be an integer in [0, 2**32), not {seed!r}")
    seed = int(seed)
    shipped = shipped_path(variant, seed)
    if not retrain and shipped.exists():
        net = read_weights(shipped)
        if net is not None:
            return net
    path = _cache_path(variant, seed, cache_dir)
    if path.exists():
        d = torch.load(path, weights_only=True)
        model = None
        if d["state"] is not None:
            model = DigitsCNN()
            model.load_state_dict(d["state"])
            model.eval()
        return QuantNet(variant, seed, d["accuracy"], [Layer(**l) for l in d["layers"]],
                        d["input_scale"], d["input_zero_point"], model, source="cache")
    start = time.perf_counter()
    net = _make(variant, seed, cache_dir)
    net.train_seconds = time.perf_counter() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_stale(path)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # atomic: concurrent builders never see half a file
    torch.save(dict(accuracy=net.accuracy, layers=[dataclasses.asdict(l) for l in net.layers],
                    input_scale=net.input_scale, input_zero_point=net.input_zero_point,
                    state=net.model.state_dict() if net.model is not None else None), tmp)
    os.replace(tmp, path)
    return net


def _sweep_stale(path: Path) -> None:
    """Remove ``path``'s temporaries (``NAME.PID.tmp``) left by trainings that were killed."""
    for tmp in path.parent.glob(f"{path.stem}.*.tmp"):
        pid = tmp.suffixes[-2][1:] if len(tmp.suffixes) >= 2 else ""
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except PermissionError:
            pass


# ----------------------------------------------------------------------------- shipped weights
# One .npz per variant, no pickles: integer arrays in their narrowest exact dtype
# (read back as int64), scales as float64, the float model's state as float32.

_INTS = ("input_zero_point", "output_zero_point", "act_min", "act_max", "stride", "padding")


def write_weights(net: QuantNet, path) -> Path:
    """Write ``net`` as a shipped-weights file (format above); return the path."""
    arrays = {"variant": np.array(net.variant), "seed": np.array(net.seed, dtype=np.int64),
              "code_version": np.array(CODE_VERSION), "accuracy": np.array(net.accuracy, dtype=np.float64)}
    if net.layers:
        arrays["input_scale"] = np.array(net.input_scale, dtype=np.float64)
        arrays["input_zero_point"] = np.array(net.input_zero_point, dtype=np.int64)
    for l in net.layers:
        arrays.update({f"{l.name}/w": l.w.numpy().astype(np.int8), f"{l.name}/bias": l.bias.numpy().astype(np.int32),
                       f"{l.name}/mult": l.mult.numpy().astype(np.int64), f"{l.name}/shift": l.shift.numpy().astype(np.int8),
                       f"{l.name}/weight_scale": l.weight_scale.numpy().astype(np.float64),
                       f"{l.name}/ints": np.array([getattr(l, k) for k in _INTS], dtype=np.int64),
                       f"{l.name}/scales": np.array([l.input_scale, l.output_scale,
                                                     np.nan if l.alpha is None else l.alpha], dtype=np.float64)})
    if net.model is not None:
        arrays.update({f"state/{k}": v.detach().numpy() for k, v in net.model.state_dict().items()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def read_weights(path) -> QuantNet | None:
    """A shipped-weights file as a QuantNet (``source="shipped"``); None if it was written
    for another :data:`CODE_VERSION`."""
    with np.load(path, allow_pickle=False) as f:
        if str(f["code_version"]) != CODE_VERSION:
            return None
        layers = []
        for name, kind, *_ in ARCH:
            if f"{name}/w" not in f.files:
                continue
            ints = dict(zip(_INTS, (int(v) for v in f[f"{name}/ints"])))
            s_in, s_out, alpha = (float(v) for v in f[f"{name}/scales"])
            i64 = lambda k: torch.from_numpy(f[f"{name}/{k}"].astype(np.int64))
            layers.append(Layer(name, kind, i64("w"), i64("bias"), i64("mult"), i64("shift"), **ints,
                                input_scale=s_in, output_scale=s_out,
                                weight_scale=torch.from_numpy(f[f"{name}/weight_scale"].astype(np.float64)),
                                alpha=None if np.isnan(alpha) else alpha))
        state = {k[len("state/"):]: torch.from_numpy(f[k].copy()) for k in f.files if k.startswith("state/")}
        model = None
        if state:
            model = DigitsCNN()
            model.load_state_dict(state)
            model.eval()
        scale = float(f["input_scale"]) if "input_scale" in f.files else None
        zp = int(f["input_zero_point"]) if "input_zero_point" in f.files else None
        return QuantNet(str(f["variant"]), int(f["seed"]), float(f["accuracy"]), layers, scale, zp, model,
                        source="shipped")


def ship(seed: int = 0, directory=WEIGHTS, cache_dir=None) -> list[Path]:
    """Train every variant from ``seed`` on this machine (or take them from the cache) and
    write them as shipped weights: what a maintainer runs after changing the training."""
    return [write_weights(build(v, seed, cache_dir, retrain=True), Path(directory) / f"digits_{v}_seed{seed}.npz")
            for v in VARIANTS]
