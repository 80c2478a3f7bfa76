"""Keras's JAX backend (the GPU runs' path, see `benchmarks/gpu_paper_run.py`): the compiled augmentation draws what the
layers draw, batches are a function of the seed and the epoch, the training callbacks let Keras dispatch steps without
waiting for each one, and a NaN loss still stops training with the clear message."""
import os, subprocess, sys, textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import numpy as np, pandas as pd, keras, jax, pytest
from pathlib import Path
from face_report.data import build_augmenter, stateless_augmenter, make_dataset, make_sample_utkface, prepare_splits
from face_report.training import TrainingError, _callbacks, resolve_params, train_model_a
assert keras.backend.backend() == "jax"

yy, xx = np.mgrid[0:48, 0:48].astype("float32")
smooth = np.stack([128 + 100*np.sin(xx/9)*np.cos(yy/7), 128 + 80*np.cos((xx + yy)/11), 128 + 60*np.sin(yy/5)], -1)
smooth = np.stack([smooth, smooth[::-1]])
first_call = np.clip(np.asarray(build_augmenter(7)(smooth, training=True)), 0, 255)  # the layers' own first draws
augment = stateless_augmenter(build_augmenter(7), smooth.shape[1:])
out = augment(smooth, 0)
assert isinstance(out, jax.Array)  # left on the device
np.testing.assert_allclose(np.asarray(out), first_call, atol=1e-3)
assert np.abs(np.asarray(augment(smooth, 1)) - first_call).mean() > 5

rng = np.random.default_rng(0)
images = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
frame = pd.DataFrame({"gender": rng.integers(0, 2, 40), "age": rng.integers(1, 90, 40)})
def batches(epochs):
    ds = make_dataset(images, frame, 16, shuffle=True, augment=True, seed=3)
    for _ in range(epochs - 1): ds.on_epoch_end()
    return [np.asarray(ds[i][0]) for i in range(len(ds))]
a, b = batches(2), batches(2)
assert all(np.array_equal(x, y) for x, y in zip(a, b))  # the same seed and epoch: the same batches
assert all(0 <= x.min() and x.max() <= 255 and x.dtype == np.float32 for x in a)
assert not np.array_equal(batches(1)[0], a[0])  # another epoch: other draws (and order)

p = resolve_params("quick", n_images=30, test_size=8, image_size=32, epochs_a=2, batch_size=8, eval_batch_size=4,
                   run_dir="run", data="UTKFace")
callbacks, _ = _callbacks(Path("run"), "A", 1, 0, 2, {**p, "ema_momentum": 0.9}, "A", val_sizes=[16])
hooks = keras.callbacks.CallbackList(callbacks)
assert hooks._async_train and hooks._async_test  # no callback makes Keras wait for every step
# NaNStop runs in Keras's thread pool: it must not sync the training state into the model (the `model` property does on
# JAX), which would race the step or validation that donates those buffers meanwhile
class NoSync(keras.Model):
    def jax_state_sync(self): raise AssertionError("NaNStop synced the model's state from Keras's thread pool")
nan_stop = next(c for c in callbacks if type(c).__name__ == "NaNStop")
nan_stop.set_model(NoSync()); nan_stop.on_batch_end(0, {"loss": float("nan")})
assert nan_stop._model.stop_training and nan_stop._model.face_report_nan

make_sample_utkface("UTKFace", n=40)
s = prepare_splits(p["data"], p["n_images"], p["val_fraction"], p["test_size"], p["seed"], p["image_size"], cache_dir="cache")
said = []
m = train_model_a(s, params=p, log=said.append)
assert any("backend trains on the CPU here" in line for line in said) == (jax.default_backend() == "cpu")
h = pd.read_csv("run/history_A.csv")
assert h.epoch.tolist() == [1, 2] and np.isfinite(h[["loss", "val_gender_loss", "val_age_loss"]].to_numpy()).all()
assert len(s.frames["val"]) % p["eval_batch_size"]  # a smaller last batch: the validation losses are still means over images
np.testing.assert_allclose(h.val_age_loss, h.val_age_mae, rtol=1e-5)
s.frames["train"] = s.frames["train"].assign(age=np.nan)
with pytest.raises(TrainingError, match="NaN.*Kept"):
    train_model_a(s, params={**p, "run_dir": "run_nan"}, log=lambda *a: None)
print("OK")
"""


def test_jax_backend_batches_callbacks_and_nan(tmp_path):
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(CHILD)], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip().endswith("OK"), out.stdout + out.stderr[-3000:]
