"""Depthwise-kernel gradient: oneDNN/TensorFlow's `DepthwiseConv2dNativeBackpropFilter` against
`face_report.models.depthwise_kernel_grad`, per EfficientNet-Lite0 depthwise layer at the given image size (batch 32,
float32), then Model B's phase-2 training step with the backbone's `DepthwiseConv2DFastGrad` layers on and off.

    python benchmarks/depthwise_grad.py [--size 112] [--batch 32] [--reps 20] [--steps 12]
"""
import argparse, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np

def ms_per_call(f, *args, reps=20):
    for _ in range(3): f(*args)
    t = time.perf_counter()
    for _ in range(reps): f(*args).numpy()
    return (time.perf_counter() - t) / reps * 1000

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=112); ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--reps", type=int, default=20); ap.add_argument("--steps", type=int, default=12)
    a = ap.parse_args()
    import tensorflow as tf
    from face_report.models import lite_block_specs, depthwise_kernel_grad, DepthwiseConv2DFastGrad
    from train_speed import build, timed_fit
    rng = np.random.default_rng(0)
    native = tf.function(lambda x, dy, k, s: tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
        input=x, filter_sizes=[k, k, x.shape[-1], 1], out_backprop=dy, strides=[1, s, s, 1], padding="SAME"))
    ours = tf.function(depthwise_kernel_grad)
    n, totals = -(-a.size // 2), {"native": 0.0, "ours": 0.0, "layer": 0.0}  # the stem halves the input
    print(f"{'layer':8s} {'map':>5s} {'kernel':>6s} {'stride':>6s} {'channels':>8s} {'native ms':>10s} {'ours ms':>8s}  layer uses")
    for i, sp in enumerate(lite_block_specs()):
        c, k, s = sp["cin"] * sp["expand"], sp["kernel"], sp["stride"]
        x = tf.constant(rng.normal(0, 1, (a.batch, n, n, c)), "float32")
        dy = tf.constant(rng.normal(0, 1, (a.batch, -(-n // s), -(-n // s), c)), "float32")
        t_native, t_ours = ms_per_call(native, x, dy, k, s, reps=a.reps), ms_per_call(ours, x, dy, k, s, reps=a.reps)
        uses = DepthwiseConv2DFastGrad(k, strides=s, padding="same")._fast(x)
        totals["native"] += t_native; totals["ours"] += t_ours; totals["layer"] += t_ours if uses else t_native
        print(f"block{i:<3d} {n:5d} {k:6d} {s:6d} {c:8d} {t_native:10.2f} {t_ours:8.2f}  {'ours' if uses else 'native'}",
              flush=True)
        n = -(-n // s)
    print(f"sum over the 16 layers: native {totals['native']:.1f} ms, ours {totals['ours']:.1f} ms, "
          f"as the layer chooses {totals['layer']:.1f} ms ({totals['native']/totals['layer']:.2f}x)")
    x = rng.uniform(0, 255, (a.batch * 4, a.size, a.size, 3)).astype("float32")
    y = {"gender": rng.integers(0, 2, (a.batch * 4, 1)).astype("float32"), "age": rng.uniform(1, 90, (a.batch * 4, 1)).astype("float32")}
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(a.batch).repeat().prefetch(2)
    speed = {}
    for fast in (False, True, False, True):  # twice each, alternating, best of two
        speed[fast] = max(speed.get(fast, 0), a.steps * a.batch / timed_fit(build("B2", a.size, fast_grad=fast), ds, a.steps))
    print(f"Model B phase 2 training, {a.size}px batch {a.batch}: Keras's DepthwiseConv2D {speed[False]:.1f} images/s, "
          f"DepthwiseConv2DFastGrad {speed[True]:.1f} images/s ({speed[True]/speed[False]:.2f}x)")

if __name__ == "__main__": sys.exit(main())
