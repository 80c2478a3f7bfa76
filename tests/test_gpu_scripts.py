"""The GPU-machine scripts: pack a bundle of a profile's split images, then train from it on Keras's JAX backend."""
import json, os, subprocess, sys, tarfile
from pathlib import Path

import pandas as pd
import pytest

from face_report.data import make_sample_utkface

ROOT = Path(__file__).resolve().parents[1]


def test_bundle_then_train_on_jax(tmp_path):
    pytest.importorskip("jax")
    data = tmp_path / "UTKFace"; make_sample_utkface(data, n=40)
    env = {**os.environ, "FACE_REPORT_CACHE": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    split = ["--param", "n_images=24", "--param", "test_size=8"]
    subprocess.run([sys.executable, ROOT / "benchmarks/gpu_bundle.py", "--profile", "quick", "--data", str(data),
                    "--out", str(tmp_path / "bundle"), *split], check=True, env=env, cwd=tmp_path)
    rows = pd.read_csv(tmp_path / "bundle/splits.csv")
    assert rows.split.value_counts().to_dict() == {"train": 19, "val": 5}  # test not packed by default
    with tarfile.open(tmp_path / "bundle/images.tar") as tar:
        assert sorted(m.name for m in tar.getmembers()) == sorted("UTKFace/" + f for f in rows.file)
    run = tmp_path / "runs/jax"
    out = subprocess.run([sys.executable, ROOT / "benchmarks/gpu_paper_run.py", "--bundle", str(tmp_path / "bundle"),
                          "--profile", "quick", "--image-size", "32", "--run-dir", str(run), *split, "--param", "epochs_a=1",
                          "--param", "epochs_b1=1", "--param", "epochs_b2=1", "--param", "weights=None", "--param", "batch_size=8"],
                         env={**env, "KERAS_BACKEND": "jax"}, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(next(l for l in out.stdout.splitlines() if l.startswith("RESULT "))[7:])
    assert result["backend"] == "jax" and result["A"]["val"]["n"] == 5 and result["B"]["train"]["n"] == 19
    assert json.loads((run / "params.json").read_text())["keras_backend"] == "jax"
    assert pd.read_csv(run / "history_B.csv").phase.tolist() == [1, 2]
