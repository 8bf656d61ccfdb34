"""Data loading speed: the training Dataset (slices of memory-mapped caches) beside reading the parquet
files of every sample, as per-sample loaders do; and the peak memory of building the caches.

    python scripts/bench_data.py [--root datamount/synthetic] [--samples 200] [--rebuild]

The parquet path reads the sample's EEG and spectrogram files and slices the same window; both paths
return the same arrays (checked). With --rebuild the caches are built again into a temporary folder
and the peak resident memory of that build is printed (it streams file by file, so it does not grow
with the data set).
"""
import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hms.data.dataset import HMSDataset
from hms.data.kaggle import DataError, eeg_path, read_eeg, read_spectrogram, spectrogram_path
from hms.data.layout import EEG_RATE, EEG_WINDOW, SPEC_WINDOW_SECONDS
from hms.data.prepare import load_prepared, prepare_data


def parquet_sample(root: Path, row) -> tuple[np.ndarray, np.ndarray]:
    eeg = read_eeg(eeg_path(root, "train", row.eeg_id))
    start = int(round(row.eeg_label_offset_seconds * EEG_RATE))
    time_, power = read_spectrogram(spectrogram_path(root, "train", row.spectrogram_id))
    offset = row.spectrogram_label_offset_seconds
    return eeg[start:start + EEG_WINDOW], power[(time_ > offset) & (time_ < offset + SPEC_WINDOW_SECONDS)]


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="datamount/synthetic")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--rebuild", action="store_true", help="also time and measure a fresh cache build")
    args = parser.parse_args()
    root = Path(args.root)
    try:
        if args.rebuild:
            with tempfile.TemporaryDirectory() as tmp:
                before, start = peak_gb(), time.perf_counter()
                prepare_data(root, Path(tmp) / "cache", workers=2)
                print(f"cache build: {time.perf_counter() - start:.1f} s, peak memory {peak_gb():.2f} GB "
                      f"(process before: {before:.2f} GB)")
        prepared = load_prepared(prepare_data(root, progress=False))
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    rows = prepared.rows
    picks = np.random.default_rng(0).choice(len(rows), size=min(args.samples, len(rows)), replace=False)
    dataset = HMSDataset(prepared, picks)

    start = time.perf_counter()
    from_cache = [dataset[i] for i in range(len(dataset))]
    cache_rate = len(dataset) / (time.perf_counter() - start)

    n_parquet = min(len(picks), 40)  # slow: a few dozen are enough for the rate
    start = time.perf_counter()
    from_files = [parquet_sample(root, rows.iloc[p]) for p in picks[:n_parquet]]
    parquet_rate = n_parquet / (time.perf_counter() - start)

    for item, (eeg, _) in zip(from_cache, from_files):  # the same window either way (the cache stores NaN as 0)
        np.testing.assert_array_equal(item["eeg"].numpy().T, np.nan_to_num(eeg, nan=0.0))
    print(f"Dataset (memory-mapped caches): {cache_rate:9.1f} samples/s")
    print(f"per-sample parquet reads:       {parquet_rate:9.1f} samples/s")
    print(f"ratio {cache_rate / parquet_rate:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
