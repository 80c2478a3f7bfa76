"""Seeded augmentation in `tf.data`: `make_dataset`'s training pipeline (each batch's draws a function of the seed and
its step, `stateless_augmenter`) vs the pipeline before 5 December 2026 (the same layers drawing from their own seed
counters in the parallel map, not repeatable), in images/s over whole epochs of random uint8 images; then how many batches of
an epoch each gives again when built twice.

    python benchmarks/seeded_aug_speed.py [--size 112] [--images 4000] [--batch 32] [--repeats 3]
"""
import argparse, hashlib, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import pandas as pd

def counter_pipeline(images, frame, batch_size, seed):
    "The training pipeline of `make_dataset` before it was seeded per batch (commit 2ba9d89)."
    import tensorflow as tf
    from face_report.data import build_augmenter
    aug = build_augmenter(seed)
    y = {"gender": frame["gender"].to_numpy(np.float32)[:, None], "age": frame["age"].to_numpy(np.float32)[:, None]}
    ds = tf.data.Dataset.from_tensor_slices((images, y)).shuffle(len(frame), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(lambda x, y: (tf.clip_by_value(aug(tf.cast(x, tf.float32), training=True), 0., 255.), y),
                                  num_parallel_calls=os.cpu_count() or 1)
    options = tf.data.Options(); options.autotune.enabled = False
    return ds.prefetch(2).with_options(options)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=112); ap.add_argument("--images", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=32); ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    from face_report.data import make_dataset
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (a.images, a.size, a.size, 3), dtype=np.uint8)
    frame = pd.DataFrame({"gender": rng.integers(0, 2, a.images), "age": rng.integers(1, 90, a.images)})
    makers = {"seeded per batch (ours)": lambda: make_dataset(images, frame, a.batch, shuffle=True, augment=True, seed=42),
              "seed counters (before)": lambda: counter_pipeline(images, frame, a.batch, 42)}
    speed = {k: [] for k in makers}
    for _ in range(a.repeats):  # interleaved, so that a slower minute of a shared machine falls on both
        for name, make in makers.items():
            ds = make()
            for _ in ds.take(3): pass  # traced and warm
            t = time.perf_counter(); n = sum(int(x.shape[0]) for x, _ in ds); speed[name].append(n/(time.perf_counter() - t))
    for name, s in speed.items(): print(f"{name:24s} {np.median(s):7,.0f} images/s (runs: {', '.join(f'{v:,.0f}' for v in s)})")
    ours, before = (np.median(s) for s in speed.values())
    print(f"ratio ours/before: {ours/before:.2f}x  ({a.size} px, batch {a.batch}, {os.cpu_count()} CPU cores)")
    for name, make in makers.items():  # one epoch, twice
        first, second = ([hashlib.sha1(np.asarray(x).tobytes()).digest() for x, _ in make()] for _ in range(2))
        print(f"{name:24s} the same epoch twice: {sum(u == v for u, v in zip(first, second))} of {len(first)} batches equal")

if __name__ == "__main__": sys.exit(main())
