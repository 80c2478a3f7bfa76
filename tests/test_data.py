"""Data: generated samples with every awkward case, the command line, and the real archive when it is present."""
import os, subprocess, sys, tarfile
from pathlib import Path

import pytest

from face_report.data import (DataError, extract_archive, load_utkface, make_sample_utkface, make_splits,
                              rejected_files)

REAL = Path(os.environ.get("FACE_REPORT_DATA") or Path(__file__).resolve().parents[2] / "shared/data/UTKFace.tar.gz")


def test_sample_parsed_and_rejected(tmp_path):
    folder = make_sample_utkface(tmp_path / "UTKFace", n=20)
    df = load_utkface(folder, cache_dir=tmp_path / "cache")
    rej = rejected_files(df)
    assert len(df) + len(rej) == len(list(folder.iterdir()))
    reasons = " | ".join(rej.reason)
    for why in ("age outside 0-120", "gender not 0 or 1", "PNG", "corrupt", "pattern"):
        assert why in reasons, why
    assert df.race.isna().sum() == 1  # the name without a race field is kept, race unknown


def test_missing_data_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("FACE_REPORT_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="official UTKFace page.*data/UTKFace.tar.gz"):
        load_utkface()


def test_interrupted_extraction_is_not_reused(tmp_path):
    folder = make_sample_utkface(tmp_path / "UTKFace", n=5, with_bad=False)
    arc = tmp_path / "UTKFace.tar.gz"
    with tarfile.open(arc, "w:gz") as t: t.add(folder, arcname="UTKFace")
    out = extract_archive(arc, tmp_path / "cache")
    (out.parent / ".complete").unlink()          # as if the process died before finishing
    next(out.iterdir()).unlink()
    again = extract_archive(arc, tmp_path / "cache")
    assert len(list(again.iterdir())) == 5


def test_cli_data(tmp_path):
    folder = make_sample_utkface(tmp_path / "UTKFace", n=30)
    env = {**os.environ, "FACE_REPORT_CACHE": str(tmp_path / "cache")}
    r = subprocess.run([str(Path(sys.executable).parent / "face-report"), "data", "--data", str(folder), "--n-images", "20",
                        "--test-size", "5", "--image-size", "32"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "train" in r.stdout and "Rejected files:" in r.stdout and "decoded-image cache ready" in r.stdout
    assert (r.stdout + r.stderr).count("images usable") == 1 and "5 rejected" in r.stdout  # the summary, once


@pytest.mark.skipif(not REAL.exists(), reason="real UTKFace archive not present")
def test_real_archive_counts_and_deterministic_splits(tmp_path):
    df = load_utkface(REAL)
    with tarfile.open(REAL) as t: n_files = sum(m.isfile() for m in t.getmembers())
    assert n_files == 21707
    assert len(df) + len(rejected_files(df)) == n_files          # every file accounted for
    assert df.age.between(0, 120).all() and df.gender.isin([0, 1]).all()
    a, b = make_splits(df, 5000, 0.2, 2000, 42), make_splits(df, 5000, 0.2, 2000, 42)
    assert [len(a[k]) for k in ("train", "val", "test")] == [4000, 1000, 2000]
    for k in a: assert a[k].path.tolist() == b[k].path.tolist()
    assert make_splits(df, 5000, 0.2, 2000, 7)["val"].path.tolist() != a["val"].path.tolist()


def test_concurrent_extractions_share_one_complete_folder(tmp_path):
    "Three processes reading the same archive with an empty cache: one extracts, the others wait, all see every image."
    folder = make_sample_utkface(tmp_path / "UTKFace", n=1500, with_bad=False)
    arc = tmp_path / "UTKFace.tar.gz"
    with tarfile.open(arc, "w:gz") as t: t.add(folder, arcname="UTKFace")
    code = f"from face_report.data import load_utkface; print('IMAGES', len(load_utkface({str(arc)!r}, {str(tmp_path / 'cache')!r}, report=False)))"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert [o.split("IMAGES")[-1].split() for o in outs] == [["1500"]] * 3, outs
