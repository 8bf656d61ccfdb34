"""Data loading speed: the training Dataset (windows of the prepared caches, read by pread or copied out of
the memory map: data.reader) beside the pattern of the public starter notebooks (pandas reads the sample's
EEG and spectrogram parquet files, then slices them with iloc / a boolean mask), on the same rows; the
DataLoader's epochs with persistent and with per-epoch workers, and the ThreadLoader's (data.loader=threads);
and the peak memory of building the caches.

    python scripts/bench_data.py [--root datamount/synthetic] [--samples 400] [--rebuild] [--passes 3]
        [--workers 2] [--epochs 3] [--default-malloc] [--json PATH]

The cache files are read once first (they sit in the page cache, as at the start of any epoch after the
first); then each path runs a first pass in this process, whose memory map no page of has touched yet
(what a new DataLoader worker sees), and `passes` more (steady state). Both paths return the same arrays
(checked outside the timing; NaN as the caches keep it). The Dataset is timed unflipped (validation) and
with the training flips (left/right and front/back, p = 0.5 each) and a 1 s time shift. Like training on a
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

from torch.utils.data import DataLoader

from hms.benchmark import append_figures, figure, rates
from hms.data.dataset import HMSDataset
from hms.data.loader import ThreadLoader
from hms.data.kaggle import eeg_path, run_main, spectrogram_path
from hms.layout import EEG_RATE, EEG_WINDOW, SPEC_WINDOW_SECONDS
from hms.data.prepare import READERS, load_prepared, prepare_data
from hms.train.cpu_memory import keep_freed_cpu_memory
from hms.train.sampler import EpochSampler

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


def interleaved_seconds(paths: dict, passes: int) -> dict:
    """paths: name -> (fn, n). Runs a first pass and then `passes` more of every path in turn, so that all
    of them see the same machine (this VM's speed drifts). Returns per name the seconds of every pass
    (the first one first). Results are dropped as they come, as a training loop drops its batches."""
    seconds = {name: [] for name in paths}
    for _ in range(passes + 1):
        for name, (fn, n) in paths.items():
            start = time.perf_counter()
            for i in range(n):
                fn(i)
            seconds[name].append(time.perf_counter() - start)
    return seconds


def read_into_page_cache(paths) -> None:
    """Read files once, so that every path starts with them in the page cache (as every epoch but a
    machine's first does) and none pays for the disk on behalf of the others."""
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while f.read(1 << 24):
                pass


def loader_epochs(dataset, batch: int, workers: int, epochs: int, kind: str) -> list[float]:
    """Seconds of each epoch (EpochSampler) over `dataset` of a DataLoader whose workers are "persistent" or
    "new" every epoch (the cost of the latter: every epoch's workers start cold), or of a ThreadLoader
    ("threads": `workers` threads of this process, data.loader=threads)."""
    sampler = EpochSampler(len(dataset), batch, seed=0)
    if kind == "threads":
        loader = ThreadLoader(dataset, batch, sampler, threads=workers, drop_last=True)
    else:
        loader = DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=workers,
                            persistent_workers=kind == "persistent" and workers > 0)
    seconds = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        start = time.perf_counter()
        for _ in loader:
            pass
        seconds.append(time.perf_counter() - start)
    return seconds


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
            raise ChildProcessError(f"{' '.join(cmd)}: exit status {process.returncode}")
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
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for the epoch timings")
    parser.add_argument("--epochs", type=int, default=3, help="DataLoader epochs timed (at least 2)")
    parser.add_argument("--json", default=None, help="append the figures to this JSON list (scripts/bench.py)")
    args = parser.parse_args()
    if not args.default_malloc:
        keep_freed_cpu_memory()
    root = Path(args.root)
    if args.rebuild:
        build_peak(root)
    prepared = load_prepared(prepare_data(root, progress=False))
    rows = prepared.rows
    picks = np.random.default_rng(0).choice(len(rows), size=min(args.samples, len(rows)), replace=False)
    read_into_page_cache(source.path for source in prepared.sources.values())
    plain = {reader: HMSDataset(prepared, picks, reader=reader) for reader in READERS}
    training = HMSDataset(prepared, picks, flip_lr_p=0.5, flip_fb_p=0.5, time_shift_seconds=1.0)
    n_nb = min(len(picks), args.notebook_samples)
    paths = {f"Dataset {reader}, unflipped": (plain[reader].__getitem__, len(picks)) for reader in READERS}
    paths[f"Dataset {training.reader}, flips p=0.5 + 1 s shift"] = (training.__getitem__, len(picks))
    paths["notebook pattern (pandas parquet)"] = (lambda i: notebook_sample(root, rows.iloc[picks[i]]), n_nb)
    seconds = interleaved_seconds(paths, args.passes)
    for i in range(n_nb):  # the same window either way (outside the timing)
        eeg, spec = notebook_sample(root, rows.iloc[picks[i]])
        for reader in READERS:
            item = plain[reader][i]
            np.testing.assert_array_equal(item["eeg"].numpy().T, eeg)  # NaN kept (array_equal: NaN == NaN)
            np.testing.assert_array_equal(item["spec"].numpy()[:len(spec)], spec)

    figures, medians = [], {}
    print(f"windows per second, one process ({len(picks)} rows; the first pass, no page of the map touched yet, "
          "in brackets):")
    for name, (_, n) in paths.items():
        first, steady = rates(n, seconds[name][:1]), rates(n, seconds[name][1:])
        figures += [figure(f"data: {name}, first pass", first, "windows/s"),
                    figure(f"data: {name}, steady", steady, "windows/s")]
        medians[name] = (statistics.median(steady), first[0])
        print(f"  {name:40s} {statistics.median(steady):8.1f}  ({first[0]:.1f})")
    notebook = medians["notebook pattern (pandas parquet)"][0]
    for reader in READERS:
        steady, first = medians[f"Dataset {reader}, unflipped"]
        print(f"  {reader}: {steady / notebook:.0f}x the notebook's steady rate, {first / notebook:.0f}x on its first pass")

    batch = min(32, len(training))
    print(f"DataLoader epochs ({args.workers} workers, batch {batch}, training flips; windows/s of epoch 1, then the "
          f"median of epochs 2-{args.epochs}):")
    for reader in READERS:
        training.reader = reader
        for kind in ("persistent", "new", "threads"):
            seconds = loader_epochs(training, batch, args.workers, args.epochs, kind)
            epoch_rates = rates(batch * (len(training) // batch), seconds)
            label = f"loader {reader}, {args.workers} threads" if kind == "threads" else f"loader {reader}, {kind} workers"
            figures += [figure(f"data: {label}, epoch 1", epoch_rates[:1], "windows/s"),
                        figure(f"data: {label}, later epochs", epoch_rates[1:], "windows/s")]
            print(f"  {label:40s} {epoch_rates[0]:8.1f}  {statistics.median(epoch_rates[1:]):8.1f}")
    append_figures(args.json, figures)
    return 0


if __name__ == "__main__":
    run_main(main)
