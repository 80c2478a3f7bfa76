"""Training without TensorFlow, as on GPU images that hold only JAX or PyTorch: pack a bundle of a profile's training
and validation images with `benchmarks/gpu_bundle.py`, train both models from it on Keras's JAX backend with
`benchmarks/gpu_paper_run.py` in a process where importing TensorFlow fails, then score them on the test split with
`benchmarks/gpu_evaluate.py` where the archive is."""
import json, os, subprocess, sys, tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from face_report.data import make_sample_utkface

ROOT = Path(__file__).resolve().parents[1]

NO_TENSORFLOW = """
import importlib.abc, runpy, sys
class NoTensorFlow(importlib.abc.MetaPathFinder):  # as on a machine without TensorFlow
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "tensorflow": raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, NoTensorFlow())
import keras
assert keras.backend.backend() == "jax"
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.slow  # (2-3 minutes on two cores; `make test-all` runs it, as before a GPU run)
def test_bundle_then_train_on_jax_without_tensorflow_then_evaluate(tmp_path):
    pytest.importorskip("jax")
    data = tmp_path / "UTKFace"; make_sample_utkface(data, n=40)
    env = {**os.environ, "FACE_REPORT_CACHE": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, ROOT / "benchmarks/gpu_bundle.py", "--profile", "quick", "--data", str(data),
                    "--out", str(tmp_path / "bundle"), "-p", "n_images", "24", "-p", "test_size", "8"], check=True, env=env, cwd=tmp_path)
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
    assert params["weights"] is None and params["weights_source"] == "none (random initialisation)"
    for tag in "AB":
        h = pd.read_csv(run / f"history_{tag}.csv")
        assert np.isfinite(h[["loss", "val_loss"]].to_numpy()).all()
        assert (run / f"model_{tag}.keras").exists() and not (run / "predictions" / f"{tag}_test.csv").exists()
    assert pd.read_csv(run / "history_B.csv").phase.tolist() == [1, 2]
    gpu_val = json.loads((run / "metrics.json").read_text())["A"]["val"]

    evaluate = [sys.executable, ROOT / "benchmarks/gpu_evaluate.py", str(run), "--data", str(data)]
    wrong = subprocess.run(evaluate + ["--test-size", "9"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert wrong.returncode != 0 and "are not the run's" in wrong.stderr  # another draw of the splits is refused
    out = subprocess.run(evaluate + ["--test-size", "8"], env=env, cwd=tmp_path, capture_output=True, text=True)
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
    for args in (["help"], ["540", "12a"], ["540", "128,"]):
        r = subprocess.run(["bash", str(script), *args], capture_output=True, text=True)
        assert r.returncode == 2 and r.stderr.startswith("usage: ") and not r.stdout, (args, r)
