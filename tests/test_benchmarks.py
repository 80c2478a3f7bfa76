"""The speed benchmarks stay runnable: `benchmarks/train_speed.py` on a generated sample and `benchmarks/jax_batch_speed.py`
on random images print their ratios. Slow (a few minutes here: each figure is measured in a fresh process), so they run
with `make test-all`; `benchmarks/seeded_aug_speed.py` takes seconds and always runs."""
import os, re, subprocess, sys
from pathlib import Path

import pytest

from face_report.data import make_sample_utkface

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_train_speed_prints_ratios(tmp_path):
    data = make_sample_utkface(tmp_path / "UTKFace", n=240)
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks/train_speed.py"), "--size", "32", "--images", "64",
                        "--batch", "16", "--skip-other", "--data", str(data)], capture_output=True, text=True, timeout=3000,
                       env={**os.environ, "FACE_REPORT_CACHE": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    for kind in ("A", "B1", "B2"):
        m = re.search(rf"^{kind}\s+ours \((float32|mixed_bfloat16)\)/naive\s+([\d.]+)x", r.stdout, re.M)
        assert m and float(m.group(2)) > 0, r.stdout
    assert re.search(r"^B forward only \(inference\)\s+[\d.]+ images/s", r.stdout, re.M), r.stdout


@pytest.mark.slow
def test_jax_batch_speed_prints_ratios():
    pytest.importorskip("jax")
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks/jax_batch_speed.py"), "--size", "32", "--images", "64",
                        "--epochs", "2", "--batch", "16"], capture_output=True, text=True, timeout=1200,
                       env={**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert re.search(r"^augmentation\s+layer by layer\s+[\d.]+ ms/batch\s+compiled\s+[\d.]+ ms/batch\s+ratio [\d.]+x", r.stdout, re.M), r.stdout
    for kind in ("A", "B1"):
        m = re.search(rf"^{kind}\s+epoch time per training batch\s+before\s+([\d.]+) ms\s+ours\s+([\d.]+) ms", r.stdout, re.M)
        assert m and float(m.group(1)) > 0 and float(m.group(2)) > 0, r.stdout


def test_seeded_aug_speed_prints_ratio_and_repeatability():
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks/seeded_aug_speed.py"), "--size", "32", "--images", "256",
                        "--batch", "16", "--repeats", "1"], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    m = re.search(r"^ratio ours/before: ([\d.]+)x", r.stdout, re.M)
    assert m and float(m.group(1)) > 0, r.stdout
    assert re.search(r"^seeded per batch \(ours\)\s+the same epoch twice: 16 of 16 batches equal", r.stdout, re.M), r.stdout
