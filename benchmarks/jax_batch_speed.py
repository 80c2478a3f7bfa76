"""Per-batch cost of training on Keras's JAX backend (the GPU runs' path): this project's batches and callbacks against
the way they were until 4 December 2026, when an H200 trained Model A at about 50 ms per batch of 32.

1. Augmentation alone, ms per batch: `build_augmenter`'s layers called one by one and converted to NumPy (the earlier
   `ArrayBatches`) against `stateless_augmenter`'s one compiled call (waited for here, to time it).
2. Training epochs through `training.fit_phase` (its callbacks, early stopping, backup, history) on random images,
   median over the epochs after the first (which compiles) of an epoch's wall time (its validation and epoch-end saves
   included) per training batch, in ms: as the package trains now ("ours") against
   "before": the layer-by-layer augmentation, and the callbacks' batch hooks run in the loop, waiting for every step
   (one callback without `async_safe` makes Keras do so, as the NaN check, the backup and the checkpoint did).
Each configuration runs in its own process. Prints the figures and the ratios before/ours.

    KERAS_BACKEND=jax python benchmarks/jax_batch_speed.py [--size 128] [--images 1024] [--epochs 3] [--models A B1]
"""
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import pandas as pd


def random_splits(n:int, size:int, seed:int=0):
    "A `Splits` of random uint8 images: `n` training and n/4 validation images."
    from face_report.data import Splits
    rng = np.random.default_rng(seed)
    def part(k): return (pd.DataFrame({"gender": rng.integers(0, 2, k), "age": rng.integers(1, 90, k), "file": ""}),
                         rng.integers(0, 256, (k, size, size, 3), dtype=np.uint8))
    (ft, it), (fv, iv) = part(n), part(max(n//4, 1))
    return Splits({"train": ft, "val": fv}, {"train": it, "val": iv}, "random", f"train {n}, val {len(fv)}")


def augmentation_ms(size:int, batch:int, repeats:int=20) -> dict:
    "Ms per batch: the augmentation layer by layer (converted to NumPy), and compiled (`stateless_augmenter`)."
    import keras
    from face_report.data import build_augmenter, stateless_augmenter
    x = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    aug, compiled = build_augmenter(0), stateless_augmenter(build_augmenter(0), x.shape[1:])
    def layers(i): return np.clip(keras.ops.convert_to_numpy(aug(x.astype(np.float32), training=True)), 0, 255)
    def one_call(i): return np.asarray(compiled(x, i))
    out = {}
    for name, f in (("layer by layer", layers), ("compiled", one_call)):
        f(0); f(1)  # warm: traces and compiles
        t = time.perf_counter()
        for i in range(repeats): f(i)
        out[name] = (time.perf_counter() - t)/repeats*1e3
    return out


def epoch_ms(kind:str, variant:str, size:int, images:int, epochs:int, batch:int) -> list[float]:
    "Ms per training batch of each epoch of `kind` (A or B1) trained by `fit_phase`, `variant` 'ours' or 'before'."
    import keras
    import face_report.training as T
    from face_report.data import _augmenter
    from face_report.models import build_model_a, build_model_b, freeze_backbone
    if variant == "before":
        make_dataset = T.make_dataset
        class LayerByLayer(keras.utils.PyDataset):  # `ArrayBatches` until 4 December 2026: the layers called one by one
            def __init__(self, plain, aug): super().__init__(); self.plain, self.aug = plain, aug
            def __len__(self): return len(self.plain)
            def __getitem__(self, i):
                x, y = self.plain[i]
                return np.clip(keras.ops.convert_to_numpy(self.aug(x, training=True)), 0., 255.), y
            def on_epoch_end(self): self.plain.on_epoch_end()
        T.make_dataset = lambda images, frame, bs, shuffle=False, augment=False, seed=42: (
            LayerByLayer(make_dataset(images, frame, bs, shuffle, seed=seed), _augmenter(augment, seed)) if augment
            else make_dataset(images, frame, bs))
        callbacks = T._callbacks
        class WaitsForEachStep(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None): pass
        def waiting(*a, **k):
            cbs, ckpt = callbacks(*a, **k); return cbs + [WaitsForEachStep()], ckpt
        T._callbacks = waiting
    p = T.resolve_params("paper", image_size=size, batch_size=batch, patience=epochs, lr_patience=epochs)
    splits = random_splits(images, size)
    if kind == "A": model = build_model_a(image_size=size, l2=p["l2"]); lr, w = p["lr_a"], p["age_weight_a"]
    else: model = build_model_b(p["backbone"], None, image_size=size); freeze_backbone(model); lr, w = p["lr_b1"], p["age_weight_b"]
    T.compile_multitask(model, lr, w, p["label_smoothing"])
    with tempfile.TemporaryDirectory() as d:
        T.fit_phase(model, splits, Path(d), kind, 1, epochs, p, log=lambda *a: None)
        h = pd.read_csv(Path(d)/f"history_{kind[0]}.csv")
    return (h.wall_seconds*1e3/-(-images//batch)).round(1).tolist()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128); ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--epochs", type=int, default=3); ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--models", nargs="+", default=["A", "B1"], choices=["A", "B1"])
    ap.add_argument("--one", nargs=2, metavar=("KIND", "VARIANT"), help=argparse.SUPPRESS)  # a child process's work
    a = ap.parse_args(argv)
    if a.one:
        print("RESULT", json.dumps(epoch_ms(*a.one, a.size, a.images, a.epochs, a.batch))); return
    import keras
    from face_report.training import backend_devices
    print(f"Keras {keras.__version__} on {keras.backend.backend()}, devices {backend_devices()}; {a.size} px, batch {a.batch}")
    aug = augmentation_ms(a.size, a.batch)
    print(f"augmentation      layer by layer {aug['layer by layer']:7.1f} ms/batch   compiled {aug['compiled']:7.1f} ms/batch   "
          f"ratio {aug['layer by layer']/aug['compiled']:.2f}x", flush=True)
    for kind in a.models:
        ms = {}
        for variant in ("before", "ours"):
            r = subprocess.run([sys.executable, __file__, "--one", kind, variant, "--size", str(a.size), "--images", str(a.images),
                                "--epochs", str(a.epochs), "--batch", str(a.batch)], capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")]))})
            line = next((l for l in r.stdout.splitlines() if l.startswith("RESULT ")), None)
            if line is None: sys.exit(f"{kind} {variant} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
            ms[variant] = json.loads(line[7:])
        before, ours = (float(np.median(ms[v][1:] or ms[v])) for v in ("before", "ours"))
        print(f"{kind:<3} epoch time per training batch   before {before:7.1f} ms   ours {ours:7.1f} ms   ratio {before/ours:.2f}x   "
              f"(per epoch: before {ms['before']}, ours {ms['ours']})", flush=True)


if __name__ == "__main__":
    main()
