"""Digits demo networks: accuracy targets, integer test vectors, caching and determinism."""

import hashlib

import numpy as np
import pytest
import torch

from golden import quant
from golden.conv import conv2d_int, linear_int
from golden.layer import LayerVectors
from golden.nets import digits

TARGETS = {"float": 97.0, "sparse": 95.0, "ternary": 94.0}
VECTOR_KEYS = {"name", "kind", "x", "w", "bias", "input_zero_point", "mult", "shift", "output_zero_point",
               "act_min", "act_max", "stride", "padding", "acc", "y"}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("digits-cache")


@pytest.fixture(scope="module")
def nets(cache):
    return {v: digits.build(v, seed=0, cache_dir=cache) for v in digits.VARIANTS}


def _weights_hash(net):
    h = hashlib.sha256()
    for layer in net.layers:
        for t in (layer.w, layer.bias, layer.mult, layer.shift):
            h.update(t.numpy().astype(np.int64).tobytes())
        h.update(repr((layer.input_zero_point, layer.output_zero_point, layer.act_min)).encode())
    return h.hexdigest()


def test_data_split_and_validation():
    x_tr, y_tr, x_te, y_te = digits.load_data(0)
    assert x_tr.shape == (1437, 1, 8, 8) and x_te.shape == (360, 1, 8, 8)
    assert torch.bincount(y_te).min() >= 35  # stratified: about 36 per class
    assert torch.equal(digits.load_data(0)[3], y_te)
    assert 0.0 <= float(x_tr.min()) and float(x_tr.max()) <= 1.0
    with pytest.raises(ValueError, match="'int4'"):
        digits.build("int4")


@pytest.mark.slow
def test_accuracy_targets(nets):
    for v, net in nets.items():
        assert net.variant == v
        print(f"{v}: {net.accuracy:.2f}% sparsity {net.sparsity:.3f} trained in {net.train_seconds:.1f}s")
    assert nets["float"].accuracy >= TARGETS["float"]
    assert nets["int8"].accuracy >= nets["float"].accuracy - 1.0
    assert nets["sparse"].accuracy >= TARGETS["sparse"]
    assert nets["ternary"].accuracy >= TARGETS["ternary"]
    assert nets["sparse"].sparsity >= 0.80
    assert sum(n.train_seconds for n in nets.values()) <= 60  # float is trained only once
    for layer in nets["ternary"].layers:
        assert set(layer.w.unique().tolist()) <= {-1, 0, 1} and layer.alpha > 0
    # accuracy is what the integer pipeline computes
    net = nets["int8"]
    x_q, labels = net.test_inputs()
    assert 100 * float((net.predict(x_q) == labels).double().mean()) == net.accuracy


@pytest.mark.slow
def test_float_variant_has_no_integer_layers(nets, tmp_path):
    net = nets["float"]
    assert net.layers == [] and net.model is not None
    assert net.export_vectors(tmp_path) == []
    with pytest.raises(ValueError, match="float"):
        net.run_int(torch.zeros(1, 1, 8, 8, dtype=torch.int64))


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["int8", "sparse", "ternary"])
def test_exported_vectors_chain(nets, tmp_path, variant):
    net = nets[variant]
    paths = net.export_vectors(tmp_path, n=8)
    assert [p.name for p in paths] == [f"{variant}_{i}_{name}.npz" for i, (name, *_) in enumerate(digits.ARCH)]
    with np.load(paths[0]) as f:  # compact dtypes on disk, the description beside the arrays
        assert {k for k in VECTOR_KEYS if k != "name"} <= set(f.files)
        assert f["x"].dtype == f["w"].dtype == f["y"].dtype == np.int8
        assert f["bias"].dtype == f["acc"].dtype == f["mult"].dtype == f["shift"].dtype == np.int32
    vecs = [LayerVectors.from_npz(p) for p in paths]
    live = list(digits.layer_vectors(net, 8))
    prev_y = None
    for vec, lv in zip(vecs, live):
        assert vec.layer == lv.layer and vec.alpha == lv.alpha
        for k in ("x", "w", "bias", "mult", "shift", "acc", "y"):
            assert np.array_equal(getattr(vec, k), getattr(lv, k)), k
        L = vec.layer
        x, w, b = (torch.from_numpy(a) for a in (vec.x, vec.w, vec.bias))
        if prev_y is not None:
            assert np.array_equal(vec.x, prev_y.reshape(vec.x.shape))
        if L.kind == "conv":
            acc = conv2d_int(x, w, b, L.input_zero_point, L.stride, L.padding)
            shape = (-1, 1, 1)
        else:
            acc = linear_int(x, w, b, L.input_zero_point)
            shape = (-1,)
        assert np.array_equal(acc.numpy(), vec.acc)
        y = quant.requantize(acc, torch.from_numpy(vec.mult).reshape(shape), torch.from_numpy(vec.shift).reshape(shape),
                             L.output_zero_point, L.act_min, L.act_max)
        assert np.array_equal(y.numpy(), vec.y)
        prev_y = vec.y
    x0, _ = net.test_inputs(8)
    assert np.array_equal(vecs[0].x, x0.numpy()) and vecs[0].x.shape == (8, 1, 8, 8)
    assert np.array_equal(net.run_int(x0).numpy(), prev_y) and prev_y.shape == (8, 10)
    if variant == "ternary":
        assert all(v.alpha > 0 and v.ternary for v in vecs)


def test_shipped_weights_load_everywhere_alike(nets):
    """Seed 0 loads the shipped weights (no training, no CPU dependence); the stored
    accuracies are what the integer pipeline and the float model compute from them."""
    for v, net in nets.items():
        assert net.source == "shipped" and net.train_seconds == 0.0, v
        assert digits.read_weights(digits.shipped_path(v)) is not None  # written for this CODE_VERSION
    for v in ("int8", "sparse", "ternary"):
        x_q, labels = nets[v].test_inputs()
        assert 100 * float((nets[v].predict(x_q) == labels).double().mean()) == nets[v].accuracy
    _, _, x, y = digits.load_data(0)
    with torch.no_grad():
        assert 100 * float((nets["float"].model(x).argmax(1) == y).double().mean()) == nets["float"].accuracy
    assert len(y) == digits.TEST_IMAGES
    size = sum(digits.shipped_path(v).stat().st_size for v in digits.VARIANTS)
    assert size < 200_000, f"shipped weights take {size} bytes"


def test_shipped_weights_round_trip(nets, tmp_path):
    for v in ("float", "ternary"):
        back = digits.read_weights(digits.write_weights(nets[v], tmp_path / f"{v}.npz"))
        assert back.accuracy == nets[v].accuracy and _weights_hash(back) == _weights_hash(nets[v])
        assert [l.alpha for l in back.layers] == [l.alpha for l in nets[v].layers]
    assert all(torch.equal(a, b) for a, b in zip(back.layers[0].weight_scale.unsqueeze(0),
                                                 nets["ternary"].layers[0].weight_scale.unsqueeze(0)))


@pytest.mark.slow
def test_retrain_cache_and_determinism(nets, tmp_path):
    """retrain=True trains from the seed on this machine (cached), the same on every run."""
    a = digits.build("float", seed=0, cache_dir=tmp_path / "a", retrain=True)
    assert a.source == "trained" and a.train_seconds > 0
    again = digits.build("float", seed=0, cache_dir=tmp_path / "a", retrain=True)
    assert again.source == "cache" and again.train_seconds == 0.0 and again.accuracy == a.accuracy
    b = digits.build("float", seed=0, cache_dir=tmp_path / "b", retrain=True)
    assert b.accuracy == a.accuracy
    for (k, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(x, y), k
    sparse = digits.build("sparse", seed=0, cache_dir=tmp_path / "a", retrain=True)  # from the retrained float
    assert sparse.source == "trained" and sparse.accuracy >= TARGETS["sparse"] and sparse.sparsity >= 0.80
    assert not list((tmp_path / "a").glob("*.tmp"))
