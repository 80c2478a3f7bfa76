"""Score a GPU run's models (`gpu_paper_run.sh`) on the test split, on a machine that has the UTKFace archive.
The device tool carries at most 64 MiB, so `gpu_bundle.py` packs only the training and validation images by default
and the run has no test split. This draws the profile's splits again with the run's seed and val_fraction, and the
test_size and archive of the bundle (its bundle.json in the run folder; runs made before it: the profile's test_size,
FACE_REPORT_DATA), checks that their training and validation images (and test images, where the run had them) are the
run's (`splits_fingerprint` in params.json), predicts the test images with the run's
`model_{A,B}.keras` in float32 and writes `predictions/{A,B}_test.csv` and each model's `test` metrics into the run's
metrics.json (`test_evaluated` says where). The validation split is scored again as a check against the GPU's figures.

    python benchmarks/gpu_evaluate.py runs/gpu/s128 [--data UTKFace.tar.gz] [--test-size 2000]
"""
import argparse, dataclasses, os, platform, sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras

from face_report.data import DataError, data_source, prepare_splits
from face_report.predict import load_predictor
from face_report.training import RUN_KEYS_ADDED, evaluate_model, read_json, resolve_params, splits_fingerprint, write_json


def only(splits, *keep:str):
    "`splits` with every split but those in `keep` emptied (`evaluate_model` skips empty splits)."
    return dataclasses.replace(splits, frames={k: f if k in keep else f.iloc[:0] for k, f in splits.frames.items()},
                               images={k: x if k in keep else x[:0] for k, x in splits.images.items()})


def show(m:dict) -> str: return f"{m['gender_accuracy']:.2%} / {m['age_mae']:.3f} y (n={m['n']})"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", help="a run folder unpacked from gpu_paper_run.sh's run.tar.gz.part-* (e.g. runs/gpu/s128)")
    ap.add_argument("--data", default=None, help="UTKFace archive or folder (default: the bundle's, where it is here, else FACE_REPORT_DATA)")
    ap.add_argument("--test-size", type=int, default=None, help="test images the splits were drawn with (default: the run's, the bundle's, else the run's profile's)")
    a = ap.parse_args(argv)
    run = Path(a.run_dir); p = read_json(run/"params.json")
    if not p: raise SystemExit(f"{run}: no params.json; give a run folder of gpu_paper_run.sh")
    p = {**RUN_KEYS_ADDED, **p}  # a run made before a key was added trained with its old value (`duplicates`: every copy kept)
    drawn = read_json(run/"bundle.json")  # how the bundle's splits were drawn
    test_size = (a.test_size if a.test_size is not None else p["test_size"] or  # (0: the run had no test split)
                 drawn.get("test_size", resolve_params(p["profile"])["test_size"]))
    source = data_source(a.data or (drawn["data"] if drawn.get("data") and Path(drawn["data"]).exists() else None))
    try: splits = prepare_splits(source, p["n_images"], p["val_fraction"], test_size, p["seed"], p["image_size"], report=False, duplicates=p["duplicates"])
    except DataError as e: raise DataError(f"{run}: cannot draw the run's splits again from {source} with test_size {test_size}: {e}") from None
    # compare like with like: the run's fingerprint holds its test split only where the bundle packed one
    if splits_fingerprint(splits.frames if p["test_size"] else only(splits, "train", "val").frames) != p["splits_fingerprint"]:
        here = dict(test_size=test_size, data=str(source.resolve()), seed=p["seed"], val_fraction=p["val_fraction"], duplicates=p["duplicates"])
        differ = [f"{k} {v} here, {drawn[k]} in {run/'bundle.json'}" for k, v in here.items() if k in drawn and v != drawn[k]]
        why = ("; ".join(differ) if differ else f"{source} holds other images than the bundle's" if drawn else
               f"{run} has no bundle.json to say how they were drawn; give the --test-size and --data the bundle was made with")
        raise SystemExit(f"{run}: the training and validation images drawn here (seed {p['seed']}, {p['n_images']} images, "
                         f"test_size {test_size}, from {source}) are not the run's: {why}")
    metrics, models = read_json(run/"metrics.json"), load_predictor(run)
    for tag, model in models.items():
        if tag not in metrics: print(f"{tag}: no metrics in {run/'metrics.json'} (not trained to the end); skipped"); continue
        val = evaluate_model(model, only(splits, "val"), label_smoothing=p["label_smoothing"])["val"]  # nothing written
        metrics[tag]["test"] = evaluate_model(model, only(splits, "test"), run, tag, label_smoothing=p["label_smoothing"])["test"]
        print(f"{tag}: validation {show(metrics[tag]['val'])} on the GPU, {show(val)} here; test {show(metrics[tag]['test'])}")
    metrics["test_evaluated"] = (f"{platform.machine()} CPU ({os.cpu_count()} cores), Keras {keras.__version__} on {keras.backend.backend()}, float32, "
                                 f"{len(splits.frames['test'])} test images drawn with test_size={test_size}")
    write_json(run/"metrics.json", metrics)


if __name__ == "__main__":
    from _cli import run_main
    sys.exit(run_main(main))
