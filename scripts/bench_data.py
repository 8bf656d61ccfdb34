"""Data loading speed: the training Dataset (slices of memory-mapped caches) beside the pattern of the
public starter notebooks (pandas reads the sample's EEG and spectrogram parquet files, then slices them
with iloc / a boolean mask), on the same rows; and the peak memory of building the caches.

    python scripts/bench_data.py [--root datamount/synthetic] [--samples 400] [--rebuild] [--passes 3]
        [--default-malloc]

Both paths run in one process on rows they have read once before (steady state: what every epoch after
the first sees, with the files in the page cache); the first, cold pass is printed too. Both return the
same arrays (checked; the cache stores NaN as 0). The Dataset is timed unflipped (validation) and with
the training flips (left/right and front/back, p = 0.5 each) and a 1 s time shift. Like training on a
CPU (trainer.keep_cpu_memory), the process keeps freed memory for reuse unless --default-malloc.
With --rebuild the caches are built again, in a fresh process, into a temporary folder, and the peak
resident memory of that process and of its workers is printed: it streams file by file, so it does not
grow with the data set (compare a set made with `make_synthetic.py --patients 4x`).
"""
import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from hms.data.dataset import HMSDataset
from hms.data.kaggle import DataError, eeg_path, run_main, spectrogram_path
from hms.layout import EEG_RATE, EEG_WINDOW, SPEC_WINDOW_SECONDS
from hms.data.prepare import load_prepared, prepare_data
from hms.train.cpu_memory import keep_freed_cpu_memory

PREPARE = Path(__file__).resolve().parent / "prepare_data.py"


def notebook_sample(root: Path, row) -> tuple[np.ndarray, np.ndarray]:
    """The starter notebooks' loader: read both parquet files with pandas and slice the window."""
    eeg = pd.read_parquet(eeg_path(root, "train", row.eeg_id))
    start = int(row.eeg_label_offset_seconds * EEG_RATE)
    eeg = eeg.iloc[start:start + EEG_WINDOW].to_numpy()
    spec = pd.read_parquet(spectrogram_path(root, "train", row.spectrogram_id))
    offset = row.spectrogram_label_offset_seconds
    spec = spec.loc[(spec.time > offset) & (spec.time < offset + SPEC_WINDOW_SECONDS)].iloc[:, 1:].to_numpy()
    return eeg, spec


def interleaved_rates(paths: dict, passes: int) -> tuple[dict, dict, dict]:
    """paths: name -> (fn, n). Runs a cold pass and then `passes` warm passes of every path in turn, so
    that all of them see the same machine (this VM's speed drifts). Returns per name the cold rate, the
    median warm rate and the results of the last pass."""
    seconds = {name: [] for name in paths}
    results = {name: None for name in paths}
    for _ in range(passes + 1):
        for name, (fn, n) in paths.items():
            results[name] = None  # a pass's windows are freed before the next allocates its own
            start = time.perf_counter()
            results[name] = [fn(i) for i in range(n)]
            seconds[name].append(time.perf_counter() - start)
    cold = {name: n / seconds[name][0] for name, (_, n) in paths.items()}
    warm = {name: n / statistics.median(seconds[name][1:]) for name, (_, n) in paths.items()}
    return cold, warm, results


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (from /proc; 0 once it has ended)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            stack += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
        rss = [line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")]  # none: a zombie
        total += int(rss[0]) * 1024 if rss else 0
    return total


def build_peak(root: Path) -> None:
    """Build the caches in a fresh process; peak resident memory of it and its workers together, sampled
    every 20 ms (ru_maxrss would count the parent's image that the child was forked from)."""
    with tempfile.TemporaryDirectory() as tmp:
        start, peak = time.perf_counter(), 0
        cmd = [sys.executable, str(PREPARE), "--root", str(root), "--cache-dir", str(Path(tmp) / "cache")]
        with subprocess.Popen(cmd, stdout=subprocess.DEVNULL) as process:
            while process.poll() is None:
                peak = max(peak, tree_rss(process.pid))
                time.sleep(0.02)
        if process.returncode:
            raise subprocess.CalledProcessError(process.returncode, cmd)
        seconds = time.perf_counter() - start
        size = sum(f.stat().st_size for f in (Path(tmp) / "cache").iterdir()) / 2**30
    print(f"cache build of {root}: {seconds:.1f} s, {size:.2f} GB of caches, "
          f"peak resident memory {peak / 2**30:.2f} GB (the preparing process and its 2 workers together)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="datamount/synthetic")
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--notebook-samples", type=int, default=60, help="the slow path needs fewer for its rate")
    parser.add_argument("--passes", type=int, default=3, help="timed passes after the cold one (median)")
    parser.add_argument("--rebuild", action="store_true", help="also time and measure a fresh cache build")
    parser.add_argument("--default-malloc", action="store_true", help="glibc's default allocator")
    args = parser.parse_args()
    if not args.default_malloc:
        keep_freed_cpu_memory()
    root = Path(args.root)
    try:
        if args.rebuild:
            build_peak(root)
        prepared = load_prepared(prepare_data(root, progress=False))
    except (DataError, subprocess.CalledProcessError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    rows = prepared.rows
    picks = np.random.default_rng(0).choice(len(rows), size=min(args.samples, len(rows)), replace=False)
    plain = HMSDataset(prepared, picks)
    training = HMSDataset(prepared, picks, flip_lr_p=0.5, flip_fb_p=0.5, time_shift_seconds=1.0)

    n_nb = min(len(picks), args.notebook_samples)
    cold, warm, results = interleaved_rates({
        "plain": (lambda i: plain[i], len(plain)),
        "training": (lambda i: training[i], len(training)),
        "notebook": (lambda i: notebook_sample(root, rows.iloc[picks[i]]), n_nb),
    }, args.passes)
    from_cache, from_files = results["plain"], results["notebook"]
    for item, (eeg, spec) in zip(from_cache, from_files):  # the same window either way
        np.testing.assert_array_equal(item["eeg"].numpy().T, np.nan_to_num(eeg, nan=0.0))
        np.testing.assert_array_equal(item["spec"].numpy()[:len(spec)], spec)  # NaN kept (array_equal: NaN == NaN)
    print(f"windows per second, one process ({len(picks)} rows; cold first pass in brackets):")
    for name, label in (("plain", "Dataset, unflipped"), ("training", "Dataset, flips p=0.5 + 1 s shift"),
                        ("notebook", "notebook pattern (pandas parquet)")):
        print(f"  {label:34s} {warm[name]:8.1f}  ({cold[name]:.1f})")
    print(f"ratio {warm['plain'] / warm['notebook']:.0f}x unflipped, "
          f"{warm['training'] / warm['notebook']:.0f}x with training flips")
    return 0


if __name__ == "__main__":
    run_main(main)
