"""Whole-epoch training speed with and without tf.data autotuning: Model A, Model B phase 1 and phase 2.

Trains each model for a few epochs on the `paper` profile's splits (4,000 training / 1,000 validation images) with
`make_dataset` as it is (fixed parallelism, autotuning off) and with `tf.data` autotuning switched back on, and prints
per epoch: wall seconds, the wait for its first batch (refilling the shuffle buffer), the median step and the
validation seconds. Each configuration runs in its own process, so that thread pools start fresh.

    python benchmarks/epoch_speed.py [--epochs 3] [--models A B1 B2] [--size 96] [--data PATH]
"""
import argparse, json, os, subprocess, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

def one(kind, autotune, epochs, size, data):
    "Train `kind` for `epochs` epochs in this process; return one dict per epoch."
    import numpy as np, keras, tensorflow as tf
    from face_report.data import prepare_splits, make_dataset
    from face_report.training import resolve_params, choose_precision
    from train_speed import build  # the models as train_speed.py times them (this folder is on sys.path)
    p = resolve_params("paper")
    sp = prepare_splits(data, p["n_images"], p["val_fraction"], p["test_size"], p["seed"], size, duplicates=p["duplicates"])
    def feed(split, batch, train):
        ds = make_dataset(sp.images[split], sp.frames[split], batch, shuffle=train, augment=train, seed=p["seed"])
        if autotune:
            o = tf.data.Options(); o.autotune.enabled = True; ds = ds.with_options(o)
        return ds
    m = build(kind, size, choose_precision("auto", kind))
    rows = []
    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None): self.t0, self.ends = time.perf_counter(), []
        def on_train_batch_end(self, batch, logs=None): self.ends.append(time.perf_counter())
        def on_test_begin(self, logs=None): self.v0 = time.perf_counter()
        def on_epoch_end(self, epoch, logs=None):
            now = time.perf_counter()
            rows.append({"epoch": epoch + 1, "seconds": now - self.t0, "first_batch": self.ends[0] - self.t0,
                         "median_step_ms": 1000*float(np.median(np.diff(self.ends))), "validation": now - self.v0})
    m.fit(feed("train", p["batch_size"], True), validation_data=feed("val", p["eval_batch_size"], False),
          epochs=epochs, verbose=0, callbacks=[Timer()], shuffle=False)
    return rows

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3); ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--models", nargs="+", default=["A", "B1", "B2"], choices=["A", "B1", "B2"])
    ap.add_argument("--data", default=None); ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:  # child process: one model, one setting
        print(json.dumps(one(a.one[0], a.one[1] == "on", a.epochs, a.size, a.data))); return
    summary = []
    for kind in a.models:
        for autotune in ("off", "on"):
            cmd = [sys.executable, __file__, "--one", kind, autotune, "--epochs", str(a.epochs), "--size", str(a.size)]
            out = subprocess.run(cmd + (["--data", a.data] if a.data else []), capture_output=True, text=True)
            if out.returncode: sys.exit(f"{kind} autotune {autotune} failed:\n{out.stderr[-3000:]}")
            rows = json.loads(out.stdout.strip().splitlines()[-1])
            for r in rows:
                print(f"{kind:3s} autotune {autotune:3s} epoch {r['epoch']}: {r['seconds']:5.1f} s  first batch "
                      f"{r['first_batch']:4.1f} s  median step {r['median_step_ms']:4.0f} ms  validation {r['validation']:3.1f} s", flush=True)
            later = [r["seconds"] for r in rows[1:]] or [rows[0]["seconds"]]  # epoch 1 also traces the graphs
            summary.append((kind, autotune, sum(later)/len(later)))
    print(f"\n{a.size}px, paper splits, {os.cpu_count()} CPU cores; "
          + (f"mean of epochs 2-{a.epochs} (epoch 1 also traces the graphs):" if a.epochs > 1 else "epoch 1 only:"))
    for kind in a.models:
        off, on = (s for k, _, s in summary if k == kind)
        print(f"{kind:3s} autotune off {off:5.1f} s/epoch, on {on:5.1f} s/epoch: {on/off:.2f}x faster off")

if __name__ == "__main__": sys.exit(main())
