"""Decoded-image cache: the first full decode of the splits' images vs the cached second load.

    python benchmarks/data_speed.py [--data PATH] [--n-images 5000] [--size 128]

The first load decodes and resizes every JPEG into an on-disk uint8 array (in a fresh, temporary cache folder);
the second maps that array (after checking the cache key: file list, sizes, mtimes).
"""
import argparse, sys, tempfile, time
import numpy as np
from face_report.data import DataError, load_utkface, make_splits, decode_images

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data"); ap.add_argument("--n-images", type=int, default=5000); ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()
    df = load_utkface(a.data)
    try: paths = make_splits(df, a.n_images, 0.2, 0, a.seed)
    except DataError as e: raise DataError(f"{df.attrs['source']}: {e}") from None  # (the message names no file)
    paths = [p for k in ("train", "val") for p in paths[k]["path"]]
    with tempfile.TemporaryDirectory() as cache:
        t = time.perf_counter(); first = decode_images(paths, a.size, cache); t1 = time.perf_counter() - t
        t = time.perf_counter(); second = decode_images(paths, a.size, cache); _ = float(np.asarray(second).mean()); t2 = time.perf_counter() - t
        assert np.array_equal(np.asarray(first), np.asarray(second))
    print(f"{len(paths):,} images at {a.size} px")
    print(f"first load (decode + resize + write cache): {t1:7.2f} s  ({len(paths)/t1:,.0f} images/s)")
    print(f"second load (check key + map cache, read) :  {t2:7.2f} s  ({len(paths)/t2:,.0f} images/s)")
    print(f"ratio: {t1/t2:.1f}x faster from the cache")

if __name__ == "__main__":
    from _cli import run_main
    sys.exit(run_main(main))
