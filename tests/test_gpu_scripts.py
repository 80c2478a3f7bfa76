"""Training without TensorFlow, as on GPU images that hold only JAX or PyTorch: pack a bundle of a profile's training
and validation images with `benchmarks/gpu_bundle.py`, train both models from it on Keras's JAX backend with
`benchmarks/gpu_paper_run.py` in a process where importing TensorFlow fails, then score them on the test split with
`benchmarks/gpu_evaluate.py` where the archive is. The bundle records how its splits were drawn (bundle.json), the run
records that seed, and the scripts refuse bad input in one line."""
import json, os, shutil, subprocess, sys, tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from face_report.data import make_sample_utkface

ROOT = Path(__file__).resolve().parents[1]

NO_TENSORFLOW = """
import importlib.abc, os, runpy, sys
class NoTensorFlow(importlib.abc.MetaPathFinder):  # as on a machine without TensorFlow
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "tensorflow": raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, NoTensorFlow())
import keras
assert keras.backend.backend() == "jax"
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(sys.argv[0]))  # as `python script.py` does
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.slow  # (2-3 minutes on two cores; `make test-all` runs it, as before a GPU run)
def test_bundle_then_train_on_jax_without_tensorflow_then_evaluate(tmp_path):
    pytest.importorskip("jax")
    data = tmp_path / "UTKFace"; make_sample_utkface(data, n=40)
    env = {**os.environ, "FACE_REPORT_CACHE": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, ROOT / "benchmarks/gpu_bundle.py", "--profile", "quick", "--data", str(data),
                    "--out", str(tmp_path / "bundle"), "-p", "n_images", "24", "-p", "test_size", "8", "-p", "seed", "7"],
                   check=True, env=env, cwd=tmp_path)
    rows = pd.read_csv(tmp_path / "bundle/splits.csv")
    assert rows.split.value_counts().to_dict() == {"train": 19, "val": 5}  # no test split by default
    with tarfile.open(tmp_path / "bundle/images.tar") as tar:
        assert sorted(m.name for m in tar.getmembers()) == sorted("UTKFace/" + f for f in rows.file)
    run = tmp_path / "runs/jax"
    out = subprocess.run([sys.executable, "-c", NO_TENSORFLOW, ROOT / "benchmarks/gpu_paper_run.py", "--bundle", str(tmp_path / "bundle"),
                          "--profile", "quick", "--image-size", "32", "--run-dir", str(run), "-p", "epochs_a", "2",
                          "-p", "epochs_b1", "1", "-p", "epochs_b2", "1", "-p", "weights", "none", "-p", "batch_size", "8"],
                         env={**env, "KERAS_BACKEND": "jax"}, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(next(l for l in out.stdout.splitlines() if l.startswith("RESULT "))[7:])
    assert result["backend"] == "jax" and result["A"]["val"]["n"] == 5 and result["B"]["train"]["n"] == 19 and "test" not in result["A"]
    params = json.loads((run / "params.json").read_text())
    assert params["keras_backend"] == "jax" and params["jax_version"] and "tensorflow_version" not in params
    assert (params["n_images"], params["test_size"]) == (24, 0)  # the bundle's split sizes
    assert (params["seed"], params["val_fraction"]) == (7, 0.2)  # how the bundle drew them (bundle.json), not the profile's seed
    assert params["weights"] is None and params["weights_source"] == "none (random initialisation)"
    for tag in "AB":
        h = pd.read_csv(run / f"history_{tag}.csv")
        assert np.isfinite(h[["loss", "val_loss"]].to_numpy()).all()
        assert (run / f"model_{tag}.keras").exists() and not (run / "predictions" / f"{tag}_test.csv").exists()
    assert pd.read_csv(run / "history_B.csv").phase.tolist() == [1, 2]
    gpu_val = json.loads((run / "metrics.json").read_text())["A"]["val"]

    evaluate = [sys.executable, ROOT / "benchmarks/gpu_evaluate.py", str(run), "--data", str(data)]
    wrong = subprocess.run(evaluate + ["--test-size", "9"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert wrong.returncode != 0 and "are not the run's: test_size 9 here, 8 in" in wrong.stderr  # another draw is refused
    out = subprocess.run(evaluate[:3], env=env, cwd=tmp_path, capture_output=True, text=True)  # test_size and data: the bundle's
    assert out.returncode == 0, out.stdout + out.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    for tag in "AB":
        test = pd.read_csv(run / "predictions" / f"{tag}_test.csv")
        assert len(test) == 8 and metrics[tag]["test"]["n"] == 8 and not {Path(f).name for f in test.file} & set(rows.file)
    assert metrics["A"]["val"] == gpu_val and "8 test images" in metrics["test_evaluated"]


def test_paper_run_script_usage():
    "`--help` prints the usage and starts nothing; a budget or sizes that are not numbers are refused before anything runs."
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_paper_run.sh"
    r = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "BUDGET_SECONDS SIZES" in r.stdout and not r.stderr, r
    for args in (["help"], ["540", "12a"], ["540", "128,"], ["60", "128"], ["0", "128"]):  # (60 s are kept for packing)
        r = subprocess.run(["bash", str(script), *args], capture_output=True, text=True)
        assert r.returncode == 2 and r.stderr.startswith("usage: ") and not r.stdout, (args, r)


def test_paper_run_script_stops_when_no_time_is_left(tmp_path):
    "A budget spent before training (here: decoding) stops the script with a message and exit code 1; nothing is trained."
    script = (ROOT / "benchmarks/gpu_paper_run.sh").read_text()
    for where in ("/tmp/runs", "/tmp/site", "/tmp/cache"): script = script.replace(where, str(tmp_path / where[5:]))
    (tmp_path / "run.sh").write_text(script)
    stubs = tmp_path / "bin"; stubs.mkdir()
    (stubs / "nvidia-smi").write_text("#!/bin/sh\necho 'a GPU, 80000 MiB'\n")
    (stubs / "python3").write_text(f"""#!/bin/sh
case "$*" in
  *"print(round"*) exec {sys.executable} "$@";;  # the memory fraction
  *bundle_splits*) sleep 2;;  # decoding takes 2 s: more than the 1 s a budget of 61 s leaves
  *) touch {tmp_path}/trained;;
esac
""")
    for stub in stubs.iterdir(): stub.chmod(0o755)
    r = subprocess.run(["bash", "run.sh", "61", "32"], capture_output=True, text=True, cwd=tmp_path, timeout=60,
                       env={**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "OUT": str(tmp_path / "out")})
    assert r.returncode == 1 and r.stderr.startswith("no time left to train: ") and not (tmp_path / "trained").exists(), r


def test_bundle_refuses_unknown_splits_or_no_validation(tmp_path):
    for splits, said in (("train,vall", "unknown split(s) 'vall'"), ("train,test", "the GPU run needs val too")):
        r = subprocess.run([sys.executable, ROOT / "benchmarks/gpu_bundle.py", "--splits", splits, "--out", str(tmp_path / "bundle")],
                           capture_output=True, text=True, cwd=tmp_path)
        assert r.returncode == 2 and f"gpu_bundle.py: error: --splits {splits}: {said}" in r.stderr, r
        assert not (tmp_path / "bundle").exists()


def test_bundle_records_its_draw_and_gpu_evaluate_redraws_it(tmp_path):
    """The bundle's seed and val_fraction reach the run's parameters (as gpu_paper_run.py makes them); gpu_evaluate.py
    takes the bundle's test_size and archive from its bundle.json, and matches a run that had the test split too. Also
    the one-line refusals of a bundle that is none, one without validation images and an archive too small."""
    data = tmp_path / "UTKFace"; make_sample_utkface(data, n=40)
    env = {**os.environ, "FACE_REPORT_CACHE": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    env.pop("FACE_REPORT_DATA", None)  # the archive comes from bundle.json
    bundle = tmp_path / "bundle"
    r = subprocess.run([sys.executable, ROOT / "benchmarks/gpu_bundle.py", "--profile", "quick", "--data", str(data), "--out", str(bundle),
                        "--splits", "train,val,test", "-p", "n_images", "24", "-p", "test_size", "8", "-p", "seed", "7"],
                       env=env, cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r
    assert json.loads((bundle / "bundle.json").read_text()) == dict(profile="quick", seed=7, val_fraction=0.2, n_images=24, test_size=8, duplicates="drop",
                                                                     data=str(data.resolve()), splits=["train", "val", "test"])
    run = tmp_path / "runs/s32"  # the run folder gpu_paper_run.py starts: its params.json, and bundle.json copied
    make_run = f"""
from pathlib import Path
from benchmarks.gpu_paper_run import bundle_splits
from face_report.training import resolve_params, splits_params, splits_fingerprint, start_run
splits = bundle_splits(Path({str(bundle)!r}), Path({str(run.parent / "bundle")!r}), 32)
start_run({{**resolve_params("quick", run_dir={str(run)!r}, **splits_params(splits)), "splits_fingerprint": splits_fingerprint(splits)}})
assert splits.duplicates == "drop"
import json, shutil  # a bundle made before bundle.json recorded `duplicates` kept every copy
old = Path({str(tmp_path / "old_bundle")!r}); shutil.copytree(Path({str(bundle)!r}), old)
drawn = json.loads((old / "bundle.json").read_text()); del drawn["duplicates"]; (old / "bundle.json").write_text(json.dumps(drawn))
assert bundle_splits(old, Path({str(tmp_path / "old_work")!r}), 32).duplicates == "keep"
"""
    subprocess.run([sys.executable, "-c", make_run], env=env, cwd=tmp_path, check=True)
    shutil.copy(bundle / "bundle.json", run / "bundle.json")
    params = json.loads((run / "params.json").read_text())
    assert (params["seed"], params["val_fraction"], params["n_images"], params["test_size"]) == (7, 0.2, 24, 8)

    evaluate = [sys.executable, ROOT / "benchmarks/gpu_evaluate.py", str(run)]
    r = subprocess.run(evaluate, env=env, cwd=tmp_path, capture_output=True, text=True)  # the splits match: no models to score
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1] == f"gpu_evaluate.py: error: {run}: no model_A.keras or model_B.keras in the run folder", r
    r = subprocess.run(evaluate + ["--test-size", "500"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr and r.stderr.strip().splitlines()[-1] == (
        f"gpu_evaluate.py: error: {run}: cannot draw the run's splits again from {data} with test_size 500: "
        "asked for 24 + 500 test images but only 44 usable images exist"), r

    no_val = tmp_path / "no_val"; shutil.copytree(bundle, no_val)
    rows = pd.read_csv(no_val / "splits.csv"); rows[rows.split != "val"].to_csv(no_val / "splits.csv", index=False)
    for folder, said in ((tmp_path / "nobundle", f"{tmp_path / 'nobundle'}: no images.tar or splits.csv, not a bundle"),
                         (no_val, f"{no_val / 'splits.csv'}: no val images")):
        r = subprocess.run([sys.executable, ROOT / "benchmarks/gpu_paper_run.py", "--bundle", str(folder), "--profile", "quick",
                            "--run-dir", str(tmp_path / "runs/x")], env=env, cwd=tmp_path, capture_output=True, text=True)
        assert r.returncode == 1 and "Traceback" not in r.stderr and r.stderr.strip().splitlines()[-1].startswith(f"gpu_paper_run.py: error: {said}"), r
