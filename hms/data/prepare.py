"""Preparing a data set for training: folds, quality flags, de-duplication and memory-mapped caches.

prepare_data(root) reads train.csv once and every EEG / spectrogram file once, streaming them into
two memory-mapped float32 arrays (eeg.npy [20, samples], channel-major, and spec.npy [rows, 400]) with an
index, so a training window is a slice that the Dataset copies once (no transpose, no parsing). Peak
memory is a few files at a time, whatever the size of the data set.
It is skipped when a manifest of the inputs and parameters says the caches are up to date.
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
import pyarrow.parquet as pq
from sklearn.model_selection import StratifiedGroupKFold
from tqdm import tqdm

from hms.data.kaggle import DataError, eeg_path, read_eeg, read_spectrogram, read_train_csv, spectrogram_path
from hms.data.layout import EEG_COLUMNS, EEG_RATE, EEG_WINDOW, SPEC_POWER_COLUMNS, SPEC_STEP_SECONDS, VOTE_COLUMNS

log = logging.getLogger("hms.data")
CACHE_VERSION = 2  # 2: channel-major EEG


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


def mark_kept(rows: pd.DataFrame) -> np.ndarray:
    """One window per (eeg_id, vote vector): the most central one, whose offset is closest to the
    median offset of its group (it overlaps the others most)."""
    keys = [rows.eeg_id] + [rows[c] for c in VOTE_COLUMNS]
    median = rows.groupby(keys).eeg_label_offset_seconds.transform("median")
    distance = (rows.eeg_label_offset_seconds - median).abs()
    order = rows.assign(_d=distance).sort_values(["_d", "eeg_label_offset_seconds"], kind="stable")
    kept = order.drop_duplicates(subset=["eeg_id", *VOTE_COLUMNS], keep="first").index
    return rows.index.isin(kept)


def select_rows(rows: pd.DataFrame, fold: int, split: str, min_votes: int = 10, dedup: bool = True) -> np.ndarray:
    """Positions of the rows of a split: "train" = not in `fold` (all rows when fold == -1), "val" = in it."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be train or val, not {split!r}")
    in_fold = rows.fold.to_numpy() == fold
    mask = (~in_fold if split == "train" else in_fold) & (rows.n_votes.to_numpy() >= min_votes)
    if dedup:
        mask &= rows.is_kept.to_numpy()
    return np.flatnonzero(mask)


def _write_one(kind: str, npy: Path, header: int, total: int, start: int, length: int,
               path: Path) -> tuple[int, int]:
    """Read one parquet file, repair its NaN to 0 and write it at `start` of the cache file (a worker's job:
    only two numbers travel back, and the main process never holds a signal). Returns (NaN count, first time)."""
    if kind == "eeg":
        data, first_time = read_eeg(path), 0
    else:
        time, data = read_spectrogram(path)
        first_time = int(time[0])
    if len(data) != length:  # it would overwrite its neighbour in the cache
        raise DataError(f"{path}: {len(data)} rows read, its parquet metadata says {length}")
    nan = int(np.isnan(data).sum())
    data = np.nan_to_num(data, nan=0.0)
    fd = os.open(npy, os.O_WRONLY)
    try:
        if kind == "eeg":  # channel-major: one run per channel
            for channel, samples in enumerate(np.ascontiguousarray(data.T)):
                os.pwrite(fd, samples.tobytes(), header + 4 * (channel * total + start))
        else:
            os.pwrite(fd, data.tobytes(), header + 4 * start * data.shape[1])
    finally:
        os.close(fd)
    return nan, first_time


def _build_cache(kind: str, paths: list[Path], ids: list[int], out: Path, workers: int, progress: bool):
    """Stream files into one .npy (+ an index of id -> start, length): EEG as [20, total] so that a window
    of every channel is 20 contiguous runs, spectrograms as [total, 400] (a window is one run). Workers
    write their file straight into the cache, so memory holds a few files whatever the data set size."""
    lengths = []
    for path in paths:
        if not path.exists():
            raise DataError(f"{path}: file not found (referenced by train.csv)")
        try:
            lengths.append(pq.ParquetFile(path).metadata.num_rows)
        except Exception as error:  # noqa: BLE001 - any parquet failure becomes one line
            raise DataError(f"{path}: not a readable parquet file ({type(error).__name__})") from None
    width = len(EEG_COLUMNS) if kind == "eeg" else len(SPEC_POWER_COLUMNS)
    total = int(sum(lengths))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    npy = out / f"{kind}.tmp.npy"
    shape = (width, total) if kind == "eeg" else (total, width)
    header = np.lib.format.open_memmap(npy, mode="w+", dtype=np.float32, shape=shape).offset  # a sparse file
    write = partial(_write_one, kind, npy, header, total)
    first_time, nan_total = [], 0
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        results = pool.map(write, starts.tolist(), lengths, paths, chunksize=8)
        for nan, first in tqdm(results, total=len(paths), desc=f"cache {kind}", disable=not progress):
            nan_total += nan
            first_time.append(first)
    npy.replace(out / f"{kind}.npy")
    index = pd.DataFrame({"id": ids, "start": starts, "length": lengths})
    if kind == "spec":
        index["first_time"] = first_time
    index.to_parquet(out / f"{kind}_index.parquet", index=False)
    if nan_total:
        log.warning("%s: %d NaN values in %s files repaired to 0", out, nan_total, kind)


def _manifest(root: Path, files: list[Path], params: dict) -> str:
    h = hashlib.sha256(json.dumps({**params, "version": CACHE_VERSION}, sort_keys=True).encode())
    for f in files:
        stat = f.stat() if f.exists() else None
        h.update(f"{f.name}:{stat.st_size if stat else -1}:{stat.st_mtime_ns if stat else -1}".encode())
    return h.hexdigest()


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
                 progress: bool = True) -> Path:
    """Build (or reuse) the caches of a data folder in the Kaggle layout; returns the cache dir."""
    root = Path(root)
    out = Path(cache_dir) if cache_dir else root / "cache"
    rows = add_labels(read_train_csv(root / "train.csv"))
    eeg_ids = sorted(rows.eeg_id.unique().tolist())
    spec_ids = sorted(rows.spectrogram_id.unique().tolist())
    eeg_files = [eeg_path(root, "train", i) for i in eeg_ids]
    spec_files = [spectrogram_path(root, "train", i) for i in spec_ids]
    digest = _manifest(root, [root / "train.csv", *eeg_files, *spec_files], {"folds": n_folds, "seed": seed})
    if (out / "manifest.json").exists() and json.loads((out / "manifest.json").read_text()).get("digest") == digest:
        return out
    out.mkdir(parents=True, exist_ok=True)
    rows["fold"] = assign_folds(rows, n_folds, seed)
    rows["is_kept"] = mark_kept(rows)
    _build_cache("eeg", eeg_files, eeg_ids, out, workers, progress)
    _build_cache("spec", spec_files, spec_ids, out, workers, progress)
    rows.reset_index(drop=True).to_parquet(out / "rows.parquet", index=False)
    check_windows(rows, out)
    (out / "manifest.json").write_text(json.dumps({"digest": digest, "root": str(root)}))
    return out


def check_windows(rows: pd.DataFrame, out: Path) -> None:
    """Every row's EEG window must lie inside its file (spectrograms are padded, as Kaggle's may end early)."""
    eeg_index = pd.read_parquet(out / "eeg_index.parquet").set_index("id")
    lengths = eeg_index.loc[rows.eeg_id, "length"].to_numpy()
    need = (rows.eeg_label_offset_seconds.to_numpy() * EEG_RATE).astype(int) + EEG_WINDOW
    short = np.flatnonzero(lengths < need)
    if len(short):
        r = rows.iloc[short[0]]
        raise DataError(f"train_eegs/{r.eeg_id}.parquet: {lengths[short[0]] / EEG_RATE:.0f} s is shorter than "
                        f"offset {r.eeg_label_offset_seconds:g} s + 50 s (label_id {r.label_id}; "
                        f"{len(short)} rows like it)")


@dataclass
class Prepared:
    """The caches of a prepared data set: rows + memory-mapped signals and their indexes."""
    rows: pd.DataFrame
    eeg: np.ndarray
    spec: np.ndarray
    eeg_start: dict
    eeg_length: dict
    spec_start: dict
    spec_length: dict
    spec_first_time: dict

    def eeg_window(self, eeg_id: int, offset_seconds: float, shift_samples: int = 0) -> np.ndarray:
        """[20, 10000] samples of one window (a view of the memmap), shifted inside the file."""
        start, length = self.eeg_start[eeg_id], self.eeg_length[eeg_id]
        first = int(round(offset_seconds * EEG_RATE)) + shift_samples
        first = min(max(first, 0), length - EEG_WINDOW)
        return self.eeg[:, start + first: start + first + EEG_WINDOW]

    def spec_window(self, spectrogram_id: int, offset_seconds: float, rows: int = 300) -> np.ndarray:
        """[300, 400]: the rows with time in (offset, offset + 600), zero-padded past the file's end."""
        start, length = self.spec_start[spectrogram_id], self.spec_length[spectrogram_id]
        first = int(np.ceil((offset_seconds - self.spec_first_time[spectrogram_id] + 1e-6) / SPEC_STEP_SECONDS))
        first = min(max(first, 0), length)
        window = self.spec[start + first: start + min(first + rows, length)]
        if len(window) < rows:
            window = np.concatenate([window, np.zeros((rows - len(window), window.shape[1]), np.float32)])
        return window


def load_prepared(cache_dir) -> Prepared:
    cache_dir = Path(cache_dir)
    if not (cache_dir / "manifest.json").exists():
        raise DataError(f"{cache_dir}: no prepared caches; run scripts/prepare_data.py first")
    eeg_index = pd.read_parquet(cache_dir / "eeg_index.parquet")
    spec_index = pd.read_parquet(cache_dir / "spec_index.parquet")
    return Prepared(
        rows=pd.read_parquet(cache_dir / "rows.parquet"),
        # plain ndarray views of the memmaps: np.memmap's Python-level __getitem__ costs more than the copy
        eeg=np.load(cache_dir / "eeg.npy", mmap_mode="r").view(np.ndarray),
        spec=np.load(cache_dir / "spec.npy", mmap_mode="r").view(np.ndarray),
        eeg_start=dict(zip(eeg_index.id, eeg_index.start)), eeg_length=dict(zip(eeg_index.id, eeg_index.length)),
        spec_start=dict(zip(spec_index.id, spec_index.start)),
        spec_length=dict(zip(spec_index.id, spec_index.length)),
        spec_first_time=dict(zip(spec_index.id, spec_index.first_time)),
    )
