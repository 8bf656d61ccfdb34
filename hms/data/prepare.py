"""Preparing a data set for training: labels, folds and memory-mapped caches (which rows a run uses is
hms/data/sampling.py).

prepare_data(root, inputs=...) reads train.csv once and, for every declared input (hms/data/inputs.py),
every source file once, streaming them into one memory-mapped array per input (eeg.npy
[20, samples] channel-major, spec.npy [rows, 400]) with an index, so a training window is a slice that
the Dataset copies once (no transpose, no parsing). Peak memory is a few files at a time, whatever the
size of the data set. The rows and each input's cache have their own manifest of the files and
parameters they come from, so adding an input builds only its cache.
"""
import fcntl
import hashlib
import json
import os
from contextlib import contextmanager
import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold
from tqdm import tqdm

from hms.data.inputs import Input, get_inputs
from hms.data.kaggle import DataError, read_train_csv
from hms.layout import VOTE_COLUMNS

log = logging.getLogger("hms.data")
CACHE_VERSION = 3  # 2: channel-major EEG; 3: one cache and manifest per declared input


def add_labels(rows: pd.DataFrame) -> pd.DataFrame:
    """n_votes and the normalised targets (the vote columns become probabilities)."""
    votes = rows[list(VOTE_COLUMNS)].to_numpy(np.float64)
    rows = rows.copy()
    rows["n_votes"] = votes.sum(axis=1).astype(int)
    rows[list(VOTE_COLUMNS)] = votes / rows["n_votes"].to_numpy()[:, None]
    return rows


def assign_folds(rows: pd.DataFrame, n_folds: int, seed: int) -> np.ndarray:
    """Patient-grouped folds, stratified by expert consensus; every row of a patient in one fold."""
    n_patients = rows.patient_id.nunique()
    if n_patients < n_folds:
        raise DataError(f"train.csv: {n_patients} patients cannot fill {n_folds} patient-grouped folds")
    labels = rows.expert_consensus
    if labels.value_counts().max() < n_folds:  # too few rows of every class to stratify (tiny sets)
        labels = pd.Series(0, index=rows.index)
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed % 2**32)
    fold = np.full(len(rows), -1)
    for k, (_, val) in enumerate(splitter.split(rows, labels, rows.patient_id)):
        fold[val] = k
    return fold


def _write_one(inp: Input, npy: Path, header: int, total: int, start: int, length: int,
               path: Path) -> tuple[int, float]:
    """Read one source file, fill its NaN as the input says and write it at `start` of the cache file (a worker's job:
    only two numbers travel back, and the main process never holds a signal). Returns (NaN count, first time)."""
    data, first_time = inp.read(path)
    if len(data) != length:  # it would overwrite its neighbour in the cache
        raise DataError(f"{path}: {len(data)} rows read, {length} expected")
    nan = int(np.isnan(data).sum())
    data = inp.fill_nan(data).astype(inp.dtype, copy=False)
    size = np.dtype(inp.dtype).itemsize
    fd = os.open(npy, os.O_WRONLY)
    try:
        if inp.channel_major:  # one run per channel
            for channel, samples in enumerate(np.ascontiguousarray(data.T)):
                os.pwrite(fd, samples.tobytes(), header + size * (channel * total + start))
        else:
            os.pwrite(fd, data.tobytes(), header + size * start * data.shape[1])
    finally:
        os.close(fd)
    return nan, first_time


def _row_count(inp: Input, path: Path) -> int:
    if not path.exists():
        raise DataError(f"{path}: file not found (referenced by train.csv)")
    try:
        return inp.count_rows(path)
    except DataError:
        raise
    except Exception as error:  # noqa: BLE001 - any parquet failure becomes one line
        raise DataError(f"{path}: not a readable parquet file ({type(error).__name__})") from None


def _build_cache(inp: Input, paths: list[Path], ids: list[int], out: Path, workers: int, progress: bool):
    """Stream the files of one input into <name>.npy (+ <name>_index.parquet of id -> start, length,
    first_time): channel-major [width, total] so a window of every channel is `width` contiguous runs,
    or time-major [total, width] (a window is one run). Workers write their file straight into the
    cache, so memory holds a few files whatever the data set size."""
    lengths = [_row_count(inp, path) for path in paths]
    total = int(sum(lengths))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    npy = out / f"{inp.name}.tmp.npy"
    shape = (inp.width, total) if inp.channel_major else (total, inp.width)
    header = np.lib.format.open_memmap(npy, mode="w+", dtype=inp.dtype, shape=shape).offset  # a sparse file
    write = partial(_write_one, inp, npy, header, total)
    first_time, nan_total = [], 0
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        results = pool.map(write, starts.tolist(), lengths, paths, chunksize=8)
        for nan, first in tqdm(results, total=len(paths), desc=f"cache {inp.name}", disable=not progress):
            nan_total += nan
            first_time.append(first)
    npy.replace(out / f"{inp.name}.npy")
    index = pd.DataFrame({"id": ids, "start": starts, "length": lengths, "first_time": first_time})
    index.to_parquet(out / f"{inp.name}_index.parquet", index=False)
    if nan_total:
        what = "kept for the model to repair" if inp.nan_fill is None else f"repaired to {inp.nan_fill:g}"
        log.warning("%s: %d NaN values in %s files %s", out, nan_total, inp.name, what)


def _digest(files: list[Path], params: dict) -> str:
    h = hashlib.sha256(json.dumps({**params, "version": CACHE_VERSION}, sort_keys=True).encode())
    for f in files:
        stat = f.stat() if f.exists() else None
        h.update(f"{f.name}:{stat.st_size if stat else -1}:{stat.st_mtime_ns if stat else -1}".encode())
    return h.hexdigest()


def _up_to_date(manifest: Path, digest: str) -> bool:
    return manifest.exists() and json.loads(manifest.read_text()).get("digest") == digest


@contextmanager
def folder_lock(folder):
    """Hold an exclusive lock next to `folder` (parallel sweep jobs build one data set and cache once)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prepare_data(root, cache_dir=None, n_folds: int = 5, seed: int = 42, workers: int = 2,
                 progress: bool = True, inputs=("eeg", "spec")) -> Path:
    """Build (or reuse) the rows and the caches of the named inputs of a Kaggle-layout folder; returns
    the cache dir. Each part is rebuilt only when the files or parameters it comes from changed."""
    root = Path(root)
    out = Path(cache_dir) if cache_dir else root / "cache"
    out.mkdir(parents=True, exist_ok=True)
    rows = add_labels(read_train_csv(root / "train.csv"))
    digest = _digest([root / "train.csv"], {"folds": n_folds, "seed": seed})
    if not _up_to_date(out / "rows.manifest.json", digest):
        rows["fold"] = assign_folds(rows, n_folds, seed)
        rows.reset_index(drop=True).to_parquet(out / "rows.parquet", index=False)
        (out / "rows.manifest.json").write_text(json.dumps({"digest": digest, "root": str(root)}))
    for inp in get_inputs(inputs).values():
        ids = sorted(rows[inp.id_column].unique().tolist())
        files = [inp.path(root, "train", i) for i in ids]
        digest = _digest(files, {"input": inp.name, "input_version": inp.version})
        manifest = out / f"{inp.name}.manifest.json"
        if not _up_to_date(manifest, digest):
            _build_cache(inp, files, ids, out, workers, progress)
            check_windows(rows, inp, out)
            manifest.write_text(json.dumps({"digest": digest, "root": str(root)}))
    return out


def check_windows(rows: pd.DataFrame, inp: Input, out: Path) -> None:
    """Every row's window must lie inside its file, unless the input pads (Kaggle spectrograms may end early)."""
    index = pd.read_parquet(out / f"{inp.name}_index.parquet").set_index("id")
    lengths = index.loc[rows[inp.id_column], "length"].to_numpy()
    offsets = rows[inp.offset_column].to_numpy()
    short = [i for i, (n, o) in enumerate(zip(lengths, offsets)) if not inp.window_fits(int(n), float(o))]
    if short:
        r = rows.iloc[short[0]]
        raise DataError(f"train_{inp.folder}/{r[inp.id_column]}.parquet: {lengths[short[0]] / inp.rate:.0f} s is "
                        f"shorter than offset {r[inp.offset_column]:g} s + {inp.length / inp.rate:g} s "
                        f"(label_id {r.label_id}; {len(short)} rows like it)")


@dataclass
class Source:
    """One input's cache: the memory-mapped array and where each file's rows start."""
    input: Input
    data: np.ndarray
    start: dict
    length: dict
    first_time: dict

    def centre(self, source_id: int, offset_seconds: float, shift_seconds: float) -> int:
        """Where the labelled window's centre lands inside the shifted window, in rows (the 3rd place's
        `centre`: 5000 for an unshifted EEG window)."""
        first_time, n_rows = self.first_time[source_id], self.length[source_id]
        labelled = self.input.window_start(n_rows, first_time, offset_seconds)
        actual = self.input.window_start(n_rows, first_time, offset_seconds, shift_seconds)
        return labelled - actual + self.input.length // 2

    def window(self, source_id: int, offset_seconds: float, shift_seconds: float = 0.0) -> np.ndarray:
        """The window of one row (a view of the memory map where possible)."""
        return self.input.window(self.data, self.start[source_id], self.length[source_id],
                                 self.first_time[source_id], offset_seconds, shift_seconds)


@dataclass
class Prepared:
    """The caches of a prepared data set: the rows and one Source per input, by input name."""
    rows: pd.DataFrame
    sources: dict


def load_prepared(cache_dir, inputs=("eeg", "spec")) -> Prepared:
    cache_dir = Path(cache_dir)
    sources = {}
    for name, inp in get_inputs(inputs).items():
        if not (cache_dir / f"{name}.manifest.json").exists():
            raise DataError(f"{cache_dir}: no prepared {name!r} cache; run scripts/prepare_data.py first")
        index = pd.read_parquet(cache_dir / f"{name}_index.parquet")
        sources[name] = Source(
            # a plain ndarray view of the memmap: np.memmap's Python-level __getitem__ costs more than the copy
            inp, np.load(cache_dir / f"{name}.npy", mmap_mode="r").view(np.ndarray),
            start=dict(zip(index.id, index.start)), length=dict(zip(index.id, index.length)),
            first_time=dict(zip(index.id, index.first_time)))
    return Prepared(rows=pd.read_parquet(cache_dir / "rows.parquet"), sources=sources)
