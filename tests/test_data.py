"""Data: generated samples with every awkward case, the command line, and the real archive when it is present."""
import hashlib, os, subprocess, sys, tarfile
from pathlib import Path

import pytest

from face_report.data import (DataError, extract_archive, load_utkface, make_sample_utkface, make_splits,
                              rejected_files, rejected_summary)

FACE_REPORT = str(Path(sys.executable).parent / "face-report")

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
    r = subprocess.run([FACE_REPORT, "data", "--data", str(folder), "--n-images", "20",
                        "--test-size", "5", "--image-size", "32"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "train" in r.stdout and "Rejected files:" in r.stdout and "decoded-image cache ready" in r.stdout
    assert (r.stdout + r.stderr).count("images usable") == 1 and "5 rejected" in r.stdout  # the summary, once
    r = subprocess.run([FACE_REPORT, "cache"], capture_output=True, text=True, env=env)  # what the command left in the cache
    assert r.returncode == 0 and f"cache {tmp_path / 'cache'} (FACE_REPORT_CACHE): 4 entries" in r.stdout, r.stdout + r.stderr
    assert [line.split()[:2] for line in r.stdout.splitlines()[3:]] == [["arrays", "3"], ["validation", "1"]], r.stdout
    r = subprocess.run([FACE_REPORT, "cache", "--clear"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "removed from" in r.stdout and ": 4 entries" in r.stdout, r.stdout + r.stderr
    assert not any((tmp_path / "cache").rglob("*.npy")) and not any((tmp_path / "cache").rglob("*.json"))


@pytest.mark.skipif(not REAL.exists(), reason="real UTKFace archive not present")
def test_real_archive_counts_and_deterministic_splits(tmp_path):
    df = load_utkface(REAL)
    with tarfile.open(REAL) as t: n_files = sum(m.isfile() for m in t.getmembers())
    assert n_files == 21707
    assert len(df) + len(rejected_files(df)) == n_files          # every file accounted for
    assert df.age.between(0, 120).all() and df.gender.isin([0, 1]).all()
    # the same image under other names (319 sets): one kept of the 98 sets whose labels agree, none of the 221 others
    assert rejected_summary(df) == ("UTKFace: 21,153 images usable (0 converted), 554 rejected: 454 same image as other files, "
                                    "with other labels: none is kept; 100 same image and labels as another file: that one is kept")
    a, b = make_splits(df, 5000, 0.2, 2000, 42), make_splits(df, 5000, 0.2, 2000, 42)
    assert [len(a[k]) for k in ("train", "val", "test")] == [4000, 1000, 2000]
    digest = lambda f: {hashlib.sha1(Path(p).read_bytes()).hexdigest() for p in f.path}
    assert not digest(a["test"]) & (digest(a["train"]) | digest(a["val"])) and not digest(a["val"]) & digest(a["train"])  # no image in two splits
    r = subprocess.run([FACE_REPORT, "data", "--data", str(REAL)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.count(".jpg.chip.jpg: same image") == 20 and "  ... and 534 more" in r.stdout, r.stdout + r.stderr
    kept = load_utkface(REAL, duplicates="keep", report=False)
    assert len(kept) == n_files and kept.path.map(lambda p: hashlib.sha1(Path(p).read_bytes()).hexdigest()).nunique() == n_files - 333  # 306 pairs, 12 triples, one four
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


def test_cli_data_with_a_name_that_is_not_utf8(tmp_path):
    "One file name that is not UTF-8 is listed as rejected (escaped); the other images load."
    folder = make_sample_utkface(tmp_path / "UTKFace", n=30, with_bad=False)
    good = next(folder.iterdir())
    (Path(os.fsdecode(bytes(folder) + b"/25_1_0_2017\xff.jpg.chip.jpg"))).write_bytes(good.read_bytes())
    env = {**os.environ, "FACE_REPORT_CACHE": str(tmp_path / "cache")}
    r = subprocess.run([FACE_REPORT, "data", "--data", str(folder), "--n-images", "20", "--test-size", "5", "--image-size", "32"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "30 images usable (0 converted), 1 rejected: 1 file name not valid UTF-8" in r.stdout
    assert "25_1_0_2017\\xff.jpg.chip.jpg" in r.stdout


@pytest.fixture
def small_disk(tmp_path):
    "A 640 KiB tmpfs (needs root), unmounted afterwards."
    if os.geteuid() != 0: pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "small"; disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=640k", "tmpfs", str(disk)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_full_disk_while_decoding_is_an_error_not_sigbus(tmp_path, small_disk):
    "The free-space check passes (as when another process fills the disk after it), then the disk is too small: a DataError."
    folder = make_sample_utkface(tmp_path / "UTKFace", n=8, with_bad=False)
    code = f"""
import shutil, sys
from unittest import mock
from face_report.data import DataError, decode_images
with mock.patch("shutil.disk_usage", return_value=shutil._ntuple_diskusage(2**40, 0, 2**40)):  # "plenty free"
    try: decode_images(sys.argv[1:], 200, {str(small_disk)!r})
    except DataError as e: print("DataError:", e)
"""
    r = subprocess.run([sys.executable, "-c", code, *map(str, sorted(folder.iterdir()))], capture_output=True, text=True)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])  # not killed by SIGBUS (-7)
    assert f"DataError: {small_disk / 'arrays'}: 8 images at 200 px need 0.9 MiB" in r.stdout, r.stdout
    assert "FACE_REPORT_CACHE" in r.stdout
    assert not list((small_disk / "arrays").iterdir())  # no partial file left


def test_full_disk_while_extracting_is_not_a_bad_archive(tmp_path, small_disk):
    folder = make_sample_utkface(tmp_path / "UTKFace", n=100, with_bad=False)
    arc = tmp_path / "UTKFace.tar"
    with tarfile.open(arc, "w") as t: t.add(folder, arcname="UTKFace")
    with pytest.raises(DataError, match=r"extracting UTKFace.tar needs .* MiB, .* MiB are free; point FACE_REPORT_CACHE at a larger disk"):
        extract_archive(arc, small_disk)
    assert not list((small_disk / "extracted").glob("*.partial"))


@pytest.mark.parametrize("backend", ["numpy", "jax"])  # numpy takes PyTorch's branch of `ArrayBatches` (no PyTorch installed here)
def test_array_batches_resumed_draw_the_uninterrupted_augmentation(tmp_path, backend):
    "On the backends without tf.data, `skip_epochs` gives the batches (order and augmentation) of an uninterrupted run."
    if backend == "jax": pytest.importorskip("jax")
    code = """
        import hashlib, numpy as np, pandas as pd
        from face_report.data import make_dataset, skip_epochs
        rng = np.random.default_rng(0); images = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
        frame = pd.DataFrame({"gender": rng.integers(0, 2, 40), "age": rng.integers(1, 90, 40)})
        def epoch(ds): return hashlib.sha1(b"".join(np.asarray(ds[i][0]).tobytes() for i in range(len(ds)))).hexdigest()
        whole = make_dataset(images, frame, 16, shuffle=True, augment=True, seed=1)
        seen = []
        for _ in range(3): seen.append(epoch(whole)); whole.on_epoch_end()
        resumed = skip_epochs(make_dataset(images, frame, 16, shuffle=True, augment=True, seed=1), 2)
        assert type(whole).__name__ == "ArrayBatches" and len(set(seen)) == 3 and epoch(resumed) == seen[2], seen
        print("RESUMED OK")
    """
    import textwrap
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "KERAS_BACKEND": backend, "FACE_REPORT_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 0 and "RESUMED OK" in r.stdout, r.stdout[-2000:] + r.stderr[-3000:]
