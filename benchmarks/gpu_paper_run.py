"""Train a profile's protocol (default `paper`) on a GPU machine from a bundle made by `gpu_bundle.py`, with Keras
on JAX or PyTorch: no TensorFlow, no network, no UTKFace archive needed there; the split sizes are the bundle's, and
so are the seed and val_fraction recorded in params.json (its bundle.json, copied into the run folder after training
for `gpu_evaluate.py`). Prints the per-epoch lines, then the metrics and wall times; the run folder holds the usual
artefacts (params.json, history_{A,B}.csv, metrics.json, predictions/).

    KERAS_BACKEND=jax python benchmarks/gpu_paper_run.py --bundle .bundle --image-size 128 --run-dir /tmp/runs/gpu
"""
import argparse, json, sys, tarfile, time
from pathlib import Path

import numpy as np
import pandas as pd


def bundle_splits(bundle:Path, work:Path, image_size:int):
    """The `Splits` of a bundle: its JPEGs extracted to `work`, decoded at `image_size` (cached), with the seed and
    val_fraction that drew them where its bundle.json records them (bundles made before it: None, the profile's), and
    `duplicates` (bundles made before it was recorded kept every copy: "keep")."""
    from face_report.data import Splits, decode_images
    from face_report.training import RUN_KEYS_ADDED, read_json
    if missing := [f for f in ("images.tar", "splits.csv") if not (bundle / f).is_file()]:
        raise FileNotFoundError(f"{bundle}: no {' or '.join(missing)}, not a bundle; give the folder gpu_bundle.py wrote (its --out)")
    if not (work / "UTKFace").exists():  # extract once, then move into place (another process may be reading)
        with tarfile.open(bundle / "images.tar") as tar: tar.extractall(work / "partial", filter="data")
        (work / "partial" / "UTKFace").rename(work / "UTKFace")
    rows = pd.read_csv(bundle / "splits.csv")
    rows["path"] = [str(work / "UTKFace" / f) for f in rows["file"]]
    frames = {s: rows[rows["split"] == s].drop(columns=["split", "file"]).reset_index(drop=True) for s in ("train", "val", "test")}
    if empty := [s for s in ("train", "val") if frames[s].empty]:  # (no validation images: every val_loss would be nan)
        raise ValueError(f"{bundle / 'splits.csv'}: no {' or '.join(empty)} images; make the bundle with gpu_bundle.py --splits train,val")
    images = {s: decode_images(f["path"].tolist(), image_size) if len(f) else np.zeros((0, image_size, image_size, 3), np.uint8)
              for s, f in frames.items()}
    drawn = read_json(bundle / "bundle.json")
    return Splits(frames, images, source=str(bundle), summary=", ".join(f"{s} {len(f)}" for s, f in frames.items()),
                  seed=drawn.get("seed"), val_fraction=drawn.get("val_fraction"), duplicates=drawn.get("duplicates", RUN_KEYS_ADDED["duplicates"]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=".bundle"); ap.add_argument("--profile", default="paper")
    ap.add_argument("--image-size", type=int, default=128); ap.add_argument("--run-dir", default="/tmp/runs/gpu")
    ap.add_argument("--models", default="AB", help="A, B or AB (two processes may train A and B side by side on one GPU)")
    ap.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"), help="any training parameter, e.g. -p epochs_a 2 (as in face-report)")
    a = ap.parse_args(argv)
    import keras
    from face_report.cli import parse_value
    from face_report.training import backend_devices, read_json, resolve_params, splits_params, train_all, write_json
    t0 = time.time()
    bundle = Path(a.bundle)
    splits = bundle_splits(bundle, Path(a.run_dir).parent / "bundle", a.image_size)
    # the bundle's images set the split sizes: test_size 0 for a bundle without its test split (gpu_evaluate.py)
    p = resolve_params(a.profile, run_dir=a.run_dir,  # (`data`: the bundle, as the splits record it)
                       **{**splits_params(splits), **{k: parse_value(v) for k, v in a.param}})
    whose = "" if splits.seed is not None else " (no bundle.json: the profile's, maybe not the bundle's)"
    print(f"Keras {keras.__version__} on {keras.backend.backend()}, devices {backend_devices()}; {splits.summary}, seed "
          f"{p['seed']}, val_fraction {p['val_fraction']}{whose}; data ready in {time.time() - t0:.1f} s", flush=True)
    m = train_all(p, models=a.models, splits=splits)
    if drawn := read_json(bundle / "bundle.json"):  # gpu_evaluate.py draws the test split again as the bundle was drawn
        write_json(Path(a.run_dir) / "bundle.json", drawn)  # (atomic: the A and B processes both write it)
    print("RESULT", json.dumps({"backend": keras.backend.backend(), "image_size": a.image_size, "wall_seconds": m["wall_seconds"],
                                **{t: {s: {k: round(v, 4) for k, v in m[t][s].items()} for s in m[t]} for t in a.models}}))
    print(f"total {time.time() - t0:.1f} s")


if __name__ == "__main__":
    from _cli import run_main
    sys.exit(run_main(main))
