"""Pack what `gpu_paper_run.py` needs on a GPU machine that has no network and no UTKFace archive:
the exact files of a profile's splits (an uncompressed tar of JPEGs: 33 MiB for `paper`'s train and validation
images, 46 MiB with its test split too) and a CSV of the splits, so the GPU run trains and evaluates on the very
images of the CPU run. The device tool carries at most 64 MiB with the repository and the wheels, hence the
`--splits` choice.

    python benchmarks/gpu_bundle.py --profile paper --out .bundle
"""
import argparse, tarfile
from pathlib import Path

import pandas as pd

from face_report.cli import parse_value
from face_report.data import load_utkface, make_splits
from face_report.training import resolve_params


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="paper"); ap.add_argument("--data", default=None)
    ap.add_argument("--out", default=".bundle")
    ap.add_argument("--splits", default="train,val", help="comma-separated splits to pack (train, val, test)")
    ap.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"), help="a split parameter, e.g. -p n_images 1000 (as in face-report)")
    a = ap.parse_args(argv)
    p = resolve_params(a.profile, data=a.data, **{k: parse_value(v) for k, v in a.param})
    frames = make_splits(load_utkface(p["data"]), p["n_images"], p["val_fraction"], p["test_size"], p["seed"])
    frames = {k: f for k, f in frames.items() if k in a.splits.split(",")}
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tarfile.open(out / "images.tar", "w") as tar:
        for split, f in frames.items():
            for path in f["path"]: tar.add(path, arcname=f"UTKFace/{Path(path).name}")
            rows.append(f.assign(split=split, file=f["path"].map(lambda s: Path(s).name)).drop(columns="path"))
    pd.concat(rows).to_csv(out / "splits.csv", index=False)
    print(f"{out}: {sum(len(f) for f in frames.values())} images, "
          f"{(out / 'images.tar').stat().st_size / 2**20:.1f} MiB; splits " + ", ".join(f"{k} {len(v)}" for k, v in frames.items()))


if __name__ == "__main__":
    main()
