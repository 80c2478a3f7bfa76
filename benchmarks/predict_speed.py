"""Inference speed of Model A and Model B on this machine: images/s and per-image latency at batch 1 and 64.

Run: .venv/bin/python benchmarks/predict_speed.py [--size 128] [--seconds 5]
Untrained weights (weights=None): speed does not depend on them. "model" rows time the compiled model alone
(face_report.predict.predict_arrays); "end to end" rows time predict_paths on JPEG files (reading, resizing, batching).
"""
import argparse, os, platform, tempfile, time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tensorflow as tf

from face_report.data import make_sample_utkface
from face_report.models import build_model_a, build_model_b
from face_report.predict import predict_arrays, predict_paths


def time_calls(fn, seconds:float, min_calls:int=3) -> float:
    "Seconds per call of `fn`, after one warm-up call, over about `seconds` of calls."
    fn()
    n, start = 0, time.perf_counter()
    while n < min_calls or time.perf_counter() - start < seconds:
        fn(); n += 1
    return (time.perf_counter() - start)/n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128, help="input size in pixels (default 128)")
    ap.add_argument("--seconds", type=float, default=5, help="timing budget per measurement (default 5)")
    args = ap.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, TensorFlow {tf.__version__}, "
          f"input {args.size} px")
    models = {"A": build_model_a(image_size=args.size),
              "B (efficientnet_lite0)": build_model_b(backbone="efficientnet_lite0", weights=None, image_size=args.size)}
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        files = sorted(make_sample_utkface(Path(d)/"jpegs", n=128, with_bad=False).glob("*.jpg"))
        print(f"{'model':<24}{'what':<12}{'batch':>6}{'images/s':>10}{'ms/image':>10}{'ms/batch':>10}")
        for name, m in models.items():
            for batch in (1, 64):
                x = rng.uniform(0, 255, (batch, args.size, args.size, 3)).astype(np.float32)
                s = time_calls(lambda: predict_arrays(m, x), args.seconds)
                print(f"{name:<24}{'model':<12}{batch:>6}{batch/s:>10.1f}{1000*s/batch:>10.2f}{1000*s:>10.1f}")
            s = time_calls(lambda: predict_paths(m, files, batch_size=64, progress=False), args.seconds, 1)
            print(f"{name:<24}{'end to end':<12}{64:>6}{len(files)/s:>10.1f}{1000*s/len(files):>10.2f}{'':>10}")


if __name__ == "__main__":
    main()
