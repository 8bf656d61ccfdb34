"""Preparing a data set for training: labels, folds and memory-mapped caches (which rows a run uses is
hms/data/sampling.py).

prepare_data(root, inputs=...) reads train.csv once and, for every declared input (hms/data/inputs.py),
every source file once, streaming them into one memory-mapped array per input (eeg.npy
[20, samples] channel-major, spec.npy [rows, 400]) with an index, so a training window is a slice that
the Dataset copies once (no transpose, no parsing). Peak memory is a few files at a time, whatever the
size of the data set. The rows and each input's cache have their own manifest of the files and
parameters they come from, so adding an input builds only its cache.

Cache keys (a part is rebuilt when its key changes, or always with rebuild=True / prepare_data.py
--rebuild): the rows key is the sha256 of train.csv's content plus the fold count and seed; an input's
key is, per source parquet file, its name, size, mtime, ctime and the sha256 of its footer (the
metadata: schema, row counts, the sizes and min / max statistics of every column chunk), plus the
input's name and version. So a same-size edit is noticed even when the mtime is put back (the ctime
changes with any write; the footer almost always does), without reading 26 GB of signals on every
run; copying the folder elsewhere (new ctimes) rebuilds once. A manifest also records the size of
each cache file it describes: a truncated cache file is rebuilt by prepare_data, and load_prepared
refuses it in one line naming the file and how to rebuild.

Windows: every train row's window must lie inside its file, else DataError naming the file, except
for an input that pads (the Kaggle spectrogram: a window running past the file's end is zero-padded,
as in prediction), which logs a warning counting those rows on every call. Everything is checked
before anything is written: a refused train.csv or window leaves the cache dir as it was (not even
created); a file refused while streaming (hms/data/kaggle.py's readers) leaves no partial cache.
"""
import fcntl
import hashlib
import json
import os
import threading
from contextlib import contextmanager
import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.model_selection import StratifiedGroupKFold
from tqdm import tqdm

from hms.data.inputs import Input, get_inputs
from hms.data.kaggle import DataError, first_line, read_train_csv
from hms.layout import VOTE_COLUMNS

log = logging.getLogger("hms.data")
# 2: channel-major EEG; 3: one cache and manifest per declared input; 4: content cache keys, cache
# file sizes in the manifests, inf read as NaN
CACHE_VERSION = 4


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


def count_rows(inp: Input, path: Path, referenced_by: str = "train.csv") -> int:
    """Rows inp.read(path) will give, from the parquet metadata; one-line DataError naming the file."""
    if not path.exists():
        raise DataError(f"{path}: file not found (referenced by {referenced_by})")
    try:
        return inp.count_rows(path)
    except DataError:
        raise
    except Exception as error:  # noqa: BLE001 - any parquet failure becomes one line
        raise DataError(f"{path}: not a readable parquet file ({type(error).__name__})") from None


def _build_cache(inp: Input, paths: list[Path], ids: list[int], lengths: list[int], out: Path, workers: int,
                 progress: bool) -> None:
    """Stream the files of one input into <name>.npy (+ <name>_index.parquet of id -> start, length,
    first_time): channel-major [width, total] so a window of every channel is `width` contiguous runs,
    or time-major [total, width] (a window is one run). Workers write their file straight into a
    temporary cache file, so memory holds a few files whatever the data set size; it replaces the
    cache only when every file was read (and is removed when one is refused)."""
    total = int(sum(lengths))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    npy = out / f"{inp.name}.tmp.npy"
    shape = (inp.width, total) if inp.channel_major else (total, inp.width)
    header = np.lib.format.open_memmap(npy, mode="w+", dtype=inp.dtype, shape=shape).offset  # a sparse file
    write = partial(_write_one, inp, npy, header, total)
    first_time, nan_total = [], 0
    try:
        with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
            results = pool.map(write, starts.tolist(), lengths, paths, chunksize=8)
            for nan, first in tqdm(results, total=len(paths), desc=f"cache {inp.name}", disable=not progress):
                nan_total += nan
                first_time.append(first)
    except BaseException:
        npy.unlink(missing_ok=True)
        raise
    npy.replace(out / f"{inp.name}.npy")
    index = pd.DataFrame({"id": ids, "start": starts, "length": lengths, "first_time": first_time})
    index.to_parquet(out / f"{inp.name}_index.parquet", index=False)
    if nan_total:
        what = "kept for the model to repair" if inp.nan_fill is None else f"repaired to {inp.nan_fill:g}"
        log.warning("%s: %d NaN values in %s files %s", out, nan_total, inp.name, what)


# ----------------------------------------------------------------------------------- cache keys
def _sha256(path: Path, start: int = 0) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(start)
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fingerprint(path: Path, whole: bool) -> str:
    """What a cache key records of one source file (the module docstring): the content's sha256
    (`whole`, for a csv), else size, mtime, ctime and the sha256 of the parquet footer."""
    if not path.is_file():
        return f"{path.name}:missing"
    if whole:
        return f"{path.name}:{_sha256(path)}"
    stat = path.stat()
    footer_start = 0
    if stat.st_size >= 12:
        with open(path, "rb") as f:
            f.seek(stat.st_size - 8)
            footer_start = max(stat.st_size - 8 - int.from_bytes(f.read(4), "little"), 0)
    return f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}:{_sha256(path, footer_start)}"


def _digest(files: list[Path], params: dict, whole: bool = False) -> str:
    h = hashlib.sha256(json.dumps({**params, "version": CACHE_VERSION}, sort_keys=True).encode())
    for f in files:
        h.update(_fingerprint(f, whole).encode())
    return h.hexdigest()


def _read_manifest(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}  # a damaged manifest: the part is stale


def _up_to_date(manifest: Path, digest: str) -> bool:
    """The manifest's key is `digest` and every cache file it lists has the size it was written with."""
    content = _read_manifest(manifest)
    files = content.get("files")
    return content.get("digest") == digest and bool(files) and all(
        (manifest.parent / name).is_file() and (manifest.parent / name).stat().st_size == size
        for name, size in files.items())


def _write_manifest(manifest: Path, digest: str, root: Path, files: list[str]) -> None:
    sizes = {name: (manifest.parent / name).stat().st_size for name in files}
    manifest.write_text(json.dumps({"digest": digest, "root": str(root), "files": sizes}))


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
                 progress: bool = True, inputs=("eeg", "spec"), rebuild: bool = False) -> Path:
    """Build (or reuse) the rows and the caches of the named inputs of a Kaggle-layout folder; returns
    the cache dir. Each part is rebuilt only when its cache key changed (the module docstring), every
    part with `rebuild`. Everything is checked before anything is written."""
    root = Path(root)
    out = Path(cache_dir) if cache_dir else root / "cache"
    csv = root / "train.csv"
    rows = add_labels(read_train_csv(csv))
    rows_digest = _digest([csv], {"folds": n_folds, "seed": seed}, whole=True)
    rows_stale = rebuild or not _up_to_date(out / "rows.manifest.json", rows_digest)
    if rows_stale:
        rows["fold"] = assign_folds(rows, n_folds, seed)
    builds, indexes = [], {}
    for inp in get_inputs(inputs).values():
        ids = sorted(rows[inp.id_column].unique().tolist())
        files = [inp.path(root, "train", i) for i in ids]
        digest = _digest(files, {"input": inp.name, "input_version": inp.version})
        manifest = out / f"{inp.name}.manifest.json"
        index = None if rebuild or not _up_to_date(manifest, digest) else _read_index(out, inp, _read_manifest(manifest))
        if index is None:  # stale, or its index is unreadable
            lengths = [count_rows(inp, f) for f in files]
            builds.append((inp, files, ids, lengths, digest))
            index = pd.DataFrame({"id": ids, "length": lengths, "first_time": 0.0})
        indexes[inp.name] = index
        problem = None if inp.pad_past_end else windows_past_end(rows, inp, index, root)
        if problem:
            raise DataError(problem)
    out.mkdir(parents=True, exist_ok=True)
    if rows_stale:
        rows.reset_index(drop=True).to_parquet(out / "rows.parquet", index=False)
        _write_manifest(out / "rows.manifest.json", rows_digest, root, ["rows.parquet"])
    for inp, files, ids, lengths, digest in builds:
        _build_cache(inp, files, ids, lengths, out, workers, progress)
        _write_manifest(out / f"{inp.name}.manifest.json", digest, root, [f"{inp.name}.npy", f"{inp.name}_index.parquet"])
        indexes[inp.name] = pd.read_parquet(out / f"{inp.name}_index.parquet")
    for inp in get_inputs(inputs).values():
        problem = windows_past_end(rows, inp, indexes[inp.name], root) if inp.pad_past_end else None
        if problem:
            log.warning("%s: zero-padded", problem)
    return out


def _read_index(out: Path, inp: Input, manifest: dict) -> pd.DataFrame | None:
    try:
        return _load(out / f"{inp.name}_index.parquet", pd.read_parquet, manifest)
    except DataError:
        return None


def windows_past_end(rows: pd.DataFrame, inp: Input, index: pd.DataFrame, root) -> str | None:
    """A line naming the first row whose window runs past the end of its file, with their count, or
    None. `index` gives each file's id, length (rows) and first_time."""
    index = index.set_index("id")
    lengths = index.loc[rows[inp.id_column], "length"].to_numpy()
    first_times = index.loc[rows[inp.id_column], "first_time"].to_numpy()
    offsets = rows[inp.offset_column].to_numpy()
    short = [i for i, (n, o, t) in enumerate(zip(lengths, offsets, first_times))
             if inp.first_row(float(o), float(t)) + inp.length > n]
    if not short:
        return None
    r = rows.iloc[short[0]]
    return (f"{inp.path(root, 'train', r[inp.id_column])}: too short: {lengths[short[0]] / inp.rate:g} s does not "
            f"cover offset {r[inp.offset_column]:g} s + {inp.length / inp.rate:g} s (label_id {r.label_id}; "
            f"{len(short)} rows like it)")


READERS = ("pread", "map")
_OPENING = threading.Lock()


@dataclass
class Source:
    """One input's cache: the memory-mapped array and where each file's rows start.

    `read` gives a training window as a copy out of the memory map, or by positional reads (pread) of the
    cache file, which touch no page of the map (no page faults, no page tables growing with the data set).
    Both are bound by copying memory: pread's kernel copy ran at ~3.3 GB/s here against ~4.4 for numpy's,
    and the map's first pass was as fast as its later ones (the kernel maps a cached file's pages 16 at a
    time). `window` (a view of the map) serves the rest."""
    input: Input
    data: np.ndarray
    start: dict
    length: dict
    first_time: dict
    path: Path | None = None      # the .npy file and the byte offset of its data, for `read`
    header_bytes: int = 0
    _fd: tuple | None = field(default=None, repr=False, compare=False)  # (pid, fd): opened once per process

    def centre(self, source_id: int, offset_seconds: float, shift_seconds: float) -> int:
        """Where the labelled window's centre lands inside the shifted window, in rows (the 3rd place's
        `centre`: 5000 for an unshifted EEG window)."""
        if shift_seconds == 0:
            return self.input.length // 2
        first_time, n_rows = self.first_time[source_id], self.length[source_id]
        labelled = self.input.window_start(n_rows, first_time, offset_seconds)
        actual = self.input.window_start(n_rows, first_time, offset_seconds, shift_seconds)
        return labelled - actual + self.input.length // 2

    def window(self, source_id: int, offset_seconds: float, shift_seconds: float = 0.0) -> np.ndarray:
        """The window of one row (a view of the memory map where possible)."""
        return self.input.window(self.data, self.start[source_id], self.length[source_id],
                                 self.first_time[source_id], offset_seconds, shift_seconds)

    def read(self, source_id: int, offset_seconds: float, shift_seconds: float = 0.0, order=None,
             reader: str = "map", out: np.ndarray | None = None) -> np.ndarray:
        """`window`'s values, flipped by the block order `order` (Input.flip_order; None: unflipped), in
        `out` (the window's shape and dtype; e.g. a row of a batch buffer) or else a new array. reader
        "map" (and without os.preadv, i.e. Windows): a copy out of the memory map; "pread": read from the
        file, one pread per channel of a channel-major cache (in flipped order, so the flip costs nothing),
        one for a time-major window."""
        inp = self.input
        if reader == "map" or self.path is None or not hasattr(os, "preadv"):
            return inp.flipped_copy(self.window(source_id, offset_seconds, shift_seconds), order, out)
        n_rows, start = self.length[source_id], self.start[source_id]
        first = inp.window_start(n_rows, self.first_time[source_id], offset_seconds, shift_seconds)
        n = min(first + inp.length, n_rows) - first
        if out is None:
            out = np.empty(inp.window_shape, inp.dtype)
        # a time-major window is read whole and then gathered into `out` when flipped
        into = np.empty_like(out) if order is not None and not inp.channel_major else out
        if n < inp.length:  # padded past the file's end
            into[(slice(None),) * inp.time_axis + (slice(n, None),)] = 0
        row_bytes = out.itemsize * (1 if inp.channel_major else inp.width)  # per row of a channel or of the cache
        fd, at = self._file(), self.header_bytes + (start + first) * row_bytes
        if inp.channel_major:
            channels = range(inp.width) if order is None else inp.flip_index(order).tolist()
            rows, stride = out if n == inp.length else out[:, :n], self.data.shape[1] * out.itemsize
            # per window, not per channel, Python's share of the cost: one check of the bytes read
            self._check_read(rows, sum(os.preadv(fd, [row], at + c * stride) for row, c in zip(rows, channels)))
            return out
        self._check_read(into[:n], os.preadv(fd, [into[:n]], at))
        return out if order is None else inp.flipped_copy(into, order, out)

    def _file(self) -> int:
        if self._fd is None or self._fd[0] != os.getpid():  # a forked or spawned worker opens its own
            with _OPENING:  # once, when loader threads (hms.data.loader) ask together
                if self._fd is None or self._fd[0] != os.getpid():
                    self._fd = (os.getpid(), os.open(self.path, os.O_RDONLY))
        return self._fd[1]

    def _check_read(self, into: np.ndarray, n_bytes: int) -> None:
        if n_bytes != into.nbytes:
            raise DataError(f"{self.path}: shorter than its index says (truncated?); rebuild it: "
                            "scripts/prepare_data.py --rebuild")

    def __getstate__(self) -> dict:  # a spawned worker gets no file descriptor of ours
        return self.__dict__ | {"_fd": None}


@dataclass
class Prepared:
    """The caches of a prepared data set: the rows and one Source per input, by input name."""
    rows: pd.DataFrame
    sources: dict


def _load(path: Path, loader, manifest: dict):
    """loader(path) of a cache file, or a one-line DataError naming it and how to rebuild: missing,
    not the size its manifest recorded (truncated), or unreadable."""
    expected = manifest.get("files", {}).get(path.name)
    if not path.is_file():
        problem = "missing cache file"
    elif expected is not None and path.stat().st_size != expected:
        problem = f"truncated or changed cache file ({path.stat().st_size} bytes, {expected} when built)"
    else:
        try:
            return loader(path)
        except (OSError, ValueError, pa.ArrowException) as error:
            problem = f"unreadable cache file ({first_line(error)})"
    raise DataError(f"{path}: {problem}; {_rebuild_hint(manifest, path.parent)}")


def _rebuild_hint(manifest: dict, cache_dir: Path) -> str:
    return f"rebuild it: scripts/prepare_data.py --root {manifest.get('root', '<data root>')} --rebuild (or delete {cache_dir})"


def load_prepared(cache_dir, inputs=("eeg", "spec")) -> Prepared:
    """The rows and the caches of the named inputs (memory-mapped). A missing, truncated or unreadable
    cache file is a one-line DataError naming it and how to rebuild."""
    cache_dir = Path(cache_dir)
    sources = {}
    for name, inp in get_inputs(inputs).items():
        manifest = _read_manifest(cache_dir / f"{name}.manifest.json")
        if not manifest:
            raise DataError(f"{cache_dir}: no prepared {name!r} cache; run scripts/prepare_data.py first")
        index = _load(cache_dir / f"{name}_index.parquet", pd.read_parquet, manifest)
        mapped = _load(cache_dir / f"{name}.npy", lambda p: np.load(p, mmap_mode="r"), manifest)
        # a plain ndarray view of the memmap: np.memmap's Python-level __getitem__ costs more than the copy
        data = mapped.view(np.ndarray)
        total = int(index.length.sum())
        expected = (inp.width, total) if inp.channel_major else (total, inp.width)
        if data.shape != expected:
            raise DataError(f"{cache_dir / f'{name}.npy'}: shape {data.shape}, its index says {expected}; "
                            f"{_rebuild_hint(manifest, cache_dir)}")
        sources[name] = Source(inp, data, start=dict(zip(index.id, index.start)), length=dict(zip(index.id, index.length)),
                               first_time=dict(zip(index.id, index.first_time)),
                               path=cache_dir / f"{name}.npy" if data.flags.c_contiguous else None,
                               header_bytes=mapped.offset)
    rows = _load(cache_dir / "rows.parquet", pd.read_parquet, _read_manifest(cache_dir / "rows.manifest.json"))
    return Prepared(rows=rows, sources=sources)
