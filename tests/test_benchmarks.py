"""The speed benchmarks stay runnable: `benchmarks/train_speed.py` on a generated sample and `benchmarks/jax_batch_speed.py`
on random images print their ratios. Slow (a few minutes here: each figure is measured in a fresh process), so they run
with `make test-all`; `benchmarks/seeded_aug_speed.py` takes seconds and always runs, as do the checks that the
benchmarks time whole batches and refuse bad input in one line."""
import argparse, os, re, subprocess, sys
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
    assert ", 64 training images (4 steps), " in r.stdout, r.stdout


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


def test_train_speed_times_whole_batches(tmp_path, monkeypatch):
    "Every figure trains on whole batches only, and on at most the training images the splits hold."
    monkeypatch.setenv("FACE_REPORT_CACHE", str(tmp_path / "cache")); monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from train_speed import training_images
    data = make_sample_utkface(tmp_path / "UTKFace", n=720)
    # max(images, 100) + 50 are drawn for training and validation, 90% of them to train: 135 for 100 and less, 585 for 600
    for images, batch, used in ((40, 16, 32), (64, 16, 64), (100, 32, 96), (600, 32, 576), (600, 600, 0)):
        a = argparse.Namespace(data=str(data), images=images, batch=batch, size=32)
        if not used:
            with pytest.raises(ValueError, match="--batch 600 is more than the 585 training images drawn for --images 600"):
                training_images(a)
            continue
        frame, x = training_images(a)
        assert len(frame) == len(x) == used, (images, batch)


@pytest.mark.parametrize("script, args", [("train_speed.py", ["--images", "16", "--batch", "32"]),
                                          ("phase2_variants.py", ["--images", "16"]), ("onednn_speed.py", ["--steps", "0"])])
def test_speed_scripts_refuse_less_than_one_batch_or_step(script, args):
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and f"{script}: error: " in r.stderr and "Traceback" not in r.stderr, r


def test_benchmarks_name_a_missing_archive_in_one_line(tmp_path):
    "`train_speed.py` (checked before its first child), `data_speed.py`, and a child's error relayed by its last line."
    env = {**os.environ, "FACE_REPORT_CACHE": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    for script, args in (("train_speed.py", []), ("data_speed.py", []), ("phase2_variants.py", ["--only", "as trained", "--repeats", "1"])):
        r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--data", str(tmp_path / "nope.tar.gz"), *args],
                           capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
        last = r.stderr.strip().splitlines()[-1]
        assert r.returncode == 1 and "Traceback" not in r.stderr and f"UTKFace not found at {tmp_path / 'nope.tar.gz'}" in last, (script, r)
