"""Model B phase 2: images/s of the training step as `face_report` runs it and under variants that did not make it
clearly faster on the 2-core Xeon: XLA, `steps_per_execution=4`, the folded BatchNormalization's scale and shift as
constants, the frozen backbone layers in mixed_bfloat16, the last two together, and oneDNN's float32 convolutions
computing in bf16 on AMX (ONEDNN_DEFAULT_FPMATH_MODE=BF16; "as trained" runs with the variable as the shell sets it). The real data pipeline of
`benchmarks/train_speed.py` (cached images, augmentation, prefetch), float32, each variant in a fresh process,
`--repeats` times, alternating; `--only` picks variants (always timed against "as trained").

    python benchmarks/phase2_variants.py [--size 96] [--images 640] [--repeats 2] [--only VARIANT ...] [--data PATH]
"""
import argparse, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

LEVERS = {"xla": "compiled with jit_compile=True",
          "spe=4": "four steps per call of the compiled training function",
          "bn constants": "each folded BN's scale and shift computed once, as graph constants",
          "frozen bf16": "the frozen backbone layers in mixed_bfloat16",  # `main` says which (`frozen_layers`)
          "fpmath bf16": "oneDNN's float32 convolutions computing in bf16 (ONEDNN_DEFAULT_FPMATH_MODE=BF16)"}
VARIANTS = {"as trained": (), "xla": ("xla",), "steps_per_execution=4": ("spe=4",), "bn constants": ("bn constants",),
            "frozen bf16": ("frozen bf16",), "spe=4 + frozen bf16": ("spe=4", "frozen bf16"),
            "fpmath bf16": ("fpmath bf16",)}  # variant: its levers

BATCH = 32

def frozen_layers(backbone):
    "The layers of Lite0's `backbone` that phase 2 keeps frozen: all but its input and the last `n_unfreeze`."
    from face_report.training import resolve_params
    return backbone.layers[1:len(backbone.layers) - resolve_params(backbone="efficientnet_lite0")["n_unfreeze"]]

def measure(variant, a):
    levers = VARIANTS[variant]
    if "fpmath bf16" in levers: os.environ["ONEDNN_DEFAULT_FPMATH_MODE"] = "BF16"  # read at oneDNN's first primitive
    import tensorflow as tf, keras
    from keras import ops
    from face_report.data import make_dataset
    from face_report.models import FoldableBatchNormalization
    from train_speed import build, timed_fit
    from _cli import prepare_splits_naming_data
    if "bn constants" in levers:
        computed = FoldableBatchNormalization.scale_and_shift
        def constant_scale_and_shift(self):
            if not hasattr(self, "_constants"):
                with tf.init_scope(): self._constants = [ops.convert_to_numpy(v) for v in computed(self)]
            return tuple(tf.constant(v) for v in self._constants)
        FoldableBatchNormalization.scale_and_shift = constant_scale_and_shift
    sp = prepare_splits_naming_data(a.data, n_images=a.images + 150, val_fraction=0.1, test_size=50, seed=0, image_size=a.size)
    # whole batches only: `.repeat()` would put a last, short batch among the timed steps, counted as a whole one
    steps = min(a.images, len(sp.frames["train"])) // BATCH
    ds = make_dataset(sp.images["train"][:steps*BATCH], sp.frames["train"].iloc[:steps*BATCH], BATCH, shuffle=True, augment=True, seed=0).repeat()
    spe = 4 if "spe=4" in levers else 1
    m = build("B2", a.size, "float32", jit_compile="xla" in levers, steps_per_execution=spe)
    if "frozen bf16" in levers:
        for layer in frozen_layers(m.get_layer("backbone")): layer.dtype_policy = keras.DTypePolicy("mixed_bfloat16")
    return steps * BATCH / timed_fit(m, ds, steps, warm=max(spe, 2))

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=96); ap.add_argument("--images", type=int, default=640)
    ap.add_argument("--repeats", type=int, default=2); ap.add_argument("--data", default=None)
    ap.add_argument("--only", nargs="+", choices=list(VARIANTS), default=list(VARIANTS), help="the variants to time")
    ap.add_argument("--one", choices=list(VARIANTS), help="time one variant in this process")
    a = ap.parse_args()
    if a.images < BATCH: ap.error(f"--images {a.images}: give at least one batch ({BATCH})")
    if a.one: print(measure(a.one, a)); return
    from train_speed import fresh_figure
    variants = ["as trained"] + [v for v in a.only if v != "as trained"]
    levers = dict(LEVERS)
    if any("frozen bf16" in VARIANTS[v] for v in variants):  # which layers, from the backbone itself (no weights needed)
        from face_report.models import build_backbone
        frozen = frozen_layers(build_backbone("efficientnet_lite0", None, a.size))
        levers["frozen bf16"] = f"the {len(frozen)} frozen backbone layers ({frozen[0].name} to {frozen[-1].name}) in mixed_bfloat16"
    res = {v: [] for v in variants}
    for r in range(a.repeats):
        for v in variants:
            res[v].append(fresh_figure(__file__, "--one", v, "--size", a.size, "--images", a.images,
                                       *(["--data", a.data] if a.data else [])))
            print(f"run {r + 1} {v:22s} {res[v][-1]:7.1f} images/s", flush=True)
    print(f"\nModel B phase 2, {a.size} px, batch {BATCH}, float32, {os.cpu_count()} CPU cores, each figure in a fresh process")
    base = res["as trained"]
    for v in variants:
        text = " and ".join(levers[l] for l in VARIANTS[v]) or "the training step of `train_model_b`'s phase 2"
        ratios = " / ".join(f"{x / b:.2f}x" for x, b in zip(res[v], base))
        print(f"{v:22s} {' / '.join(f'{x:.1f}' for x in res[v]):>16s} images/s  {ratios:>14s}  {text}")

if __name__ == "__main__":
    from _cli import run_main
    sys.exit(run_main(main))
