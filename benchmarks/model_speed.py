"""Inference speed of Model A and Model B on this machine.

Prints the parameter counts, then for each precision policy (float32, mixed_bfloat16) and batch size (1, 64) the
throughput (images/s) and latency (ms/image) of both models at the given input size. Models are rebuilt after each
`keras.mixed_precision.set_global_policy` call, as the policy only applies to layers created afterwards. Timings are
the median of `--repeats` calls of a compiled `predict_on_batch`, after one warm-up call; on a shared machine they
vary with the load of other users.

    .venv/bin/python benchmarks/model_speed.py [--image-size 128] [--backbone efficientnet_lite0] [--repeats 5]
"""
import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pandas as pd

from face_report.models import BACKBONES, build_model_a, build_model_b, parameter_table
from face_report.training import REPORT_UNFREEZE


def time_model(model, batch:int, repeats:int) -> float:
    "Median seconds of one `predict_on_batch` call on a random batch (after one warm-up call)."
    x = np.random.default_rng(0).uniform(0, 255, (batch, *model.input.shape[1:])).astype("float32")
    model.predict_on_batch(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_on_batch(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--backbone", default="efficientnet_lite0", choices=BACKBONES)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--policies", nargs="+", default=["float32", "mixed_bfloat16"])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    weights = None if args.backbone == "efficientnet_b0" else "imagenet"  # B0's ImageNet weights need internet

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; keras {keras.__version__} "
          f"({keras.backend.backend()}); input {args.image_size}x{args.image_size}; backbone {args.backbone}")
    keras.mixed_precision.set_global_policy("float32")
    table = parameter_table(build_model_a(args.image_size), build_model_b(args.backbone, weights, args.image_size),
                            REPORT_UNFREEZE[args.backbone])  # phase 2 as training unfreezes it
    print("\nparameters\n" + table.to_string())

    rows = []
    for policy in args.policies:
        keras.mixed_precision.set_global_policy(policy)
        models = {"A": build_model_a(args.image_size), "B": build_model_b(args.backbone, weights, args.image_size)}
        for name, model in models.items():
            for batch in args.batch_sizes:
                seconds = time_model(model, batch, args.repeats)
                rows.append(dict(model=name, policy=policy, batch=batch, images_per_s=batch / seconds,
                                 ms_per_image=1000 * seconds / batch))
                print(f"  {name} {policy:15s} batch {batch:3d}: {batch / seconds:8.1f} images/s "
                      f"{1000 * seconds / batch:8.2f} ms/image", flush=True)
    keras.mixed_precision.set_global_policy("float32")
    print("\ninference speed\n" + pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()
