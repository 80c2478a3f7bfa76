"""Pack what `gpu_paper_run.py` needs on a GPU machine that has no network and no UTKFace archive:
the exact files of a profile's splits (an uncompressed tar of JPEGs: 33 MiB for `paper`'s train and validation
images, 46 MiB with its test split too), a CSV of the splits and `bundle.json`, what drew them (profile, seed,
val_fraction, n_images, test_size, the data), so the GPU run trains and evaluates on the very images of the CPU run and
records how they were drawn. The device tool carries at most 64 MiB with the repository and the wheels, hence the
`--splits` choice (train and val are needed).

    python benchmarks/gpu_bundle.py --profile paper --out .bundle
"""
import argparse, sys, tarfile
from pathlib import Path

import pandas as pd

from face_report.cli import parse_value
from face_report.data import DataError, load_utkface, make_splits
from face_report.training import resolve_params, write_json

SPLITS = ("train", "val", "test")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="paper"); ap.add_argument("--data", default=None)
    ap.add_argument("--out", default=".bundle")
    ap.add_argument("--splits", default="train,val", help="comma-separated splits to pack: train and val, and test if wanted")
    ap.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"), help="a split parameter, e.g. -p n_images 1000 (as in face-report)")
    a = ap.parse_args(argv)
    packed = a.splits.split(",")
    if unknown := [s for s in packed if s not in SPLITS]: ap.error(f"--splits {a.splits}: unknown split(s) {', '.join(map(repr, unknown))}; choose from {', '.join(SPLITS)}")
    if missing := [s for s in ("train", "val") if s not in packed]: ap.error(f"--splits {a.splits}: the GPU run needs {' and '.join(missing)} too")
    p = resolve_params(a.profile, data=a.data, **{k: parse_value(v) for k, v in a.param})
    df = load_utkface(p["data"], duplicates=p["duplicates"])
    try: frames = make_splits(df, p["n_images"], p["val_fraction"], p["test_size"], p["seed"])
    except DataError as e: raise DataError(f"{df.attrs['source']}: {e}") from None  # (the message names no file)
    frames = {k: f for k, f in frames.items() if k in packed}
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tarfile.open(out / "images.tar", "w") as tar:
        for split, f in frames.items():
            for path in f["path"]: tar.add(path, arcname=f"UTKFace/{Path(path).name}")
            rows.append(f.assign(split=split, file=f["path"].map(lambda s: Path(s).name)).drop(columns="path"))
    pd.concat(rows).to_csv(out / "splits.csv", index=False)
    # how the splits were drawn: the GPU run records its seed and val_fraction from here, gpu_evaluate.py its test_size and data
    write_json(out / "bundle.json", {**{k: p[k] for k in ("profile", "seed", "val_fraction", "n_images", "test_size", "duplicates")},
                                     "data": str(Path(df.attrs["source"]).resolve()), "splits": list(frames)})
    print(f"{out}: {sum(len(f) for f in frames.values())} images, "
          f"{(out / 'images.tar').stat().st_size / 2**20:.1f} MiB; splits " + ", ".join(f"{k} {len(v)}" for k, v in frames.items()))


if __name__ == "__main__":
    from _cli import run_main
    sys.exit(run_main(main))
