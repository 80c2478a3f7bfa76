"""oneDNN vs Eigen, TensorFlow's two sets of CPU kernels: training images/s for Model A, Model B phase 1 and phase 2
with this project's pipeline (decoded-image cache, batched augmentation in tf.data), in float32 and mixed_bfloat16.

TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when it is imported, so each setting runs in its own process. It turns
oneDNN on by itself only on CPUs with AVX-512 VNNI/BF16 or AMX; `face_report` sets TF_ENABLE_ONEDNN_OPTS=1 unless it
is set, so the package trains with oneDNN on every x86 CPU. This prints what each setting gives on this machine.

    python benchmarks/onednn_speed.py [--size 96] [--images 640] [--steps 20] [--data PATH] [--skip-bf16]
"""
import argparse, json, os, subprocess, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

KINDS = ("A", "B1", "B2")

def child(a):
    """Measure every model/phase and precision under this process's TF_ENABLE_ONEDNN_OPTS; print one JSON line.
    The images are `train_speed`'s, whole batches only: every timed step is a full batch."""
    from face_report.data import make_dataset
    from face_report.training import onednn_enabled
    from train_speed import build, timed_fit, training_images
    frame, images = training_images(a)
    res = {}
    for kind in KINDS:
        for precision in ("float32",) + (() if a.skip_bf16 else ("mixed_bfloat16",)):
            ds = make_dataset(images, frame, a.batch, shuffle=True, augment=True, seed=0).repeat()
            res[f"{kind} {precision}"] = a.steps*a.batch/timed_fit(build(kind, a.size, precision), ds, a.steps)
    print(json.dumps({"onednn": onednn_enabled(), "training_images": len(frame), "images_per_s": res}))

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=96); ap.add_argument("--images", type=int, default=640)
    ap.add_argument("--batch", type=int, default=32); ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--data", default=None); ap.add_argument("--skip-bf16", action="store_true")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.steps < 1: ap.error(f"--steps {a.steps}: time at least one step")
    if a.batch < 1 or a.images < a.batch: ap.error(f"--images {a.images} must be at least --batch {a.batch}, and that at least 1: each step trains a whole batch")
    if a.child: return child(a)
    runs = {}
    for setting in ("1", "0"):
        out = subprocess.run([sys.executable, __file__, "--child", *sys.argv[1:]], capture_output=True, text=True,
                             env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": setting})
        if out.returncode:  # its error is the last line (the exception, not the traceback above it)
            said = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit code {out.returncode}"
            sys.exit(f"TF_ENABLE_ONEDNN_OPTS={setting} run failed: {said}")
        runs[setting] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"TF_ENABLE_ONEDNN_OPTS={setting}: oneDNN {'on' if runs[setting]['onednn'] else 'off'}", flush=True)
        for k, v in runs[setting]["images_per_s"].items(): print(f"  {k:20s} {v:7.1f} images/s", flush=True)
    on, off = runs["1"]["images_per_s"], runs["0"]["images_per_s"]
    print(f"\nsize {a.size}px, batch {a.batch}, {a.steps} steps over {runs['1']['training_images']} training images, {os.cpu_count()} CPU cores; oneDNN / Eigen:")
    for k in on: print(f"  {k:20s} {on[k]/off[k]:5.2f}x")

if __name__ == "__main__":
    from _cli import run_main
    sys.exit(run_main(main))
