"""Augmentation speed: the report's augmentation as Keras's six layers (flip, rotation, zoom, translation, contrast,
brightness) vs this project's `build_augmenter` (flip, rotation, zoom and translation as one `random_affine`
resampling, then contrast and brightness), per batch in a `tf.function` and as a prefetching `tf.data` map; then one
epoch's worth of Model A training steps fed by each.

    python benchmarks/aug_speed.py [--size 96] [--batch 32] [--steps 20]
"""
import argparse, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
from train_speed import timed_fit

def keras_six(seed=42):
    "The same ranges as `build_augmenter`, one Keras layer per transform (this project's pipeline before `random_affine`)."
    import keras
    from keras import layers
    return keras.Sequential([layers.RandomFlip("horizontal", seed=seed),
                             layers.RandomRotation(0.05, fill_mode="reflect", seed=seed + 1),
                             layers.RandomZoom(0.1, fill_mode="reflect", seed=seed + 2),
                             layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed + 3),
                             layers.RandomContrast((0.2, 0.2), value_range=(0, 255), seed=seed + 4),
                             layers.RandomBrightness(0.2, value_range=(0, 255), seed=seed + 5)], name="keras_six")

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=96); ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    import tensorflow as tf
    from face_report.data import build_augmenter
    from face_report.models import build_model_a
    from face_report.training import compile_multitask
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(0, 255, (a.batch, a.size, a.size, 3)).astype("float32"))
    y = {"gender": tf.zeros((a.batch, 1)), "age": tf.fill((a.batch, 1), 30.)}
    res = {}
    for name, aug in (("keras six layers", keras_six()), ("build_augmenter", build_augmenter())):
        f = tf.function(lambda v, aug=aug: aug(v, training=True)); f(x); t = time.time()
        for _ in range(a.steps*2): r = f(x)
        r.numpy(); graph = (time.time() - t)/(a.steps*2)*1000
        ds = tf.data.Dataset.from_tensors((x, y)).repeat().map(lambda v, w, aug=aug: (tf.clip_by_value(aug(v, training=True), 0., 255.), w),
                                                               num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
        m = build_model_a(image_size=a.size); compile_multitask(m, 2e-4, 0.3)
        step = timed_fit(m, ds, a.steps, warm=3)/a.steps*1000
        res[name] = (graph, step)
        print(f"{name:18s} augmentation {graph:6.1f} ms/batch   Model A training step with it {step:6.0f} ms", flush=True)
    (g0, s0), (g1, s1) = res.values()
    print(f"\n{a.size}px, batch {a.batch}, {os.cpu_count()} CPU cores: augmentation {g0/g1:.2f}x faster, "
          f"Model A step {s0/s1:.2f}x ({s0 - s1:+.0f} ms)")

if __name__ == "__main__": sys.exit(main())
