"""Read the Kaggle HMS layout (csvs and parquet files) with schema checks.

Every reader either returns exactly the documented columns, order and dtypes, or raises DataError
with a one-line message that starts with the offending file (or file:line). Documented repairs,
logged on the "hms.data" logger:
- train.csv rows with zero votes are dropped (warning with the count);
- NaN samples in EEG / spectrogram files are KEPT as NaN by the readers (the Dataset repairs them
  to 0); NaN rows are logged with their count at INFO level, channels that are entirely NaN are
  logged as a warning naming the channels (a montage built on them sees zeros after the repair).
"""
import logging
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hms import layout

log = logging.getLogger("hms.data")

_TRAIN_INT = ("eeg_id", "eeg_sub_id", "spectrogram_id", "spectrogram_sub_id", "label_id", "patient_id",
              *layout.VOTE_COLUMNS)
_TRAIN_FLOAT = ("eeg_label_offset_seconds", "spectrogram_label_offset_seconds")


class DataError(ValueError):
    """Bad input data; the message is one line starting with the offending file (or file:line)."""


def eeg_path(root, split: str, eeg_id) -> Path:
    """<root>/<split>_eegs/<eeg_id>.parquet for split "train" or "test"."""
    return Path(root) / f"{_split(split)}_eegs" / f"{int(eeg_id)}.parquet"


def spectrogram_path(root, split: str, spectrogram_id) -> Path:
    """<root>/<split>_spectrograms/<spectrogram_id>.parquet for split "train" or "test"."""
    return Path(root) / f"{_split(split)}_spectrograms" / f"{int(spectrogram_id)}.parquet"


def _split(split: str) -> str:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return split


# ----------------------------------------------------------------------------------------- csvs
def _column_problem(found, expected) -> str | None:
    """Describe how a header differs from the expected one (missing, unexpected, misplaced names)."""
    found, expected = list(found), list(expected)
    if found == expected:
        return None
    missing = [c for c in expected if c not in found]
    unexpected = [c for c in found if c not in expected]
    parts = []
    if missing:
        parts.append(f"missing columns {missing}")
    if unexpected:
        parts.append(f"unexpected columns {unexpected}")
    if not parts:
        misplaced = [c for c, e in zip(found, expected) if c != e]
        parts.append(f"misplaced columns {misplaced} (expected order {expected})")
    return "; ".join(parts)


def _read_csv(path, columns) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        # Rows longer than the header would silently become an index (or lose data): make it an error.
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, index_col=False)
    except (pd.errors.ParserError, pd.errors.ParserWarning, pd.errors.EmptyDataError,
            UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable CSV file ({_first_line(e)})") from None
    problem = _column_problem(frame.columns, columns)
    if problem:
        raise DataError(f"{path}: {problem}")
    return frame


def _first_line(error: Exception) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


def _first_bad(path, frame, column, bad_mask, what) -> DataError:
    i = int(np.flatnonzero(bad_mask)[0])
    # Line numbers count the header as line 1, so a user can jump straight to the row.
    return DataError(f"{path}:{i + 2}: column {column} value {frame[column].iloc[i]!r} {what} "
                     f"({int(bad_mask.sum())} bad rows)")


def _to_int(path, frame, column, non_negative=False) -> pd.Series:
    values = pd.to_numeric(frame[column].str.strip(), errors="coerce")
    whole = values.notna() & np.isfinite(values) & (values == values.round())
    if not whole.all():
        raise _first_bad(path, frame, column, ~whole.to_numpy(), "is not an integer")
    if non_negative and (values < 0).any():
        raise _first_bad(path, frame, column, (values < 0).to_numpy(), "is negative")
    return values.astype(np.int64)


def _to_float(path, frame, column, non_negative=False) -> pd.Series:
    values = pd.to_numeric(frame[column].str.strip(), errors="coerce")
    finite = values.notna() & np.isfinite(values)
    if not finite.all():
        raise _first_bad(path, frame, column, ~finite.to_numpy(), "is not a finite number")
    if non_negative and (values < 0).any():
        raise _first_bad(path, frame, column, (values < 0).to_numpy(), "is negative")
    return values.astype(np.float64)


def read_train_csv(path) -> pd.DataFrame:
    """train.csv: layout.TRAIN_COLUMNS in order; ids and votes int64, offsets float64.

    Raises DataError on a bad header, non-numeric / negative values, an unknown expert_consensus or a
    duplicate label_id. Rows with zero votes are dropped with a logged count.
    """
    frame = _read_csv(path, layout.TRAIN_COLUMNS)
    out = pd.DataFrame(index=frame.index)
    for column in layout.TRAIN_COLUMNS:
        if column in _TRAIN_INT:
            out[column] = _to_int(path, frame, column, non_negative=column in layout.VOTE_COLUMNS)
        elif column in _TRAIN_FLOAT:
            out[column] = _to_float(path, frame, column, non_negative=True)
        else:
            known = frame[column].isin(layout.CONSENSUS_NAMES).to_numpy()
            if not known.all():
                raise _first_bad(path, frame, column, ~known,
                                 f"is not one of {list(layout.CONSENSUS_NAMES)}")
            out[column] = frame[column].astype(object)
    duplicated = out["label_id"].duplicated(keep=False).to_numpy()
    if duplicated.any():
        raise _first_bad(path, frame, "label_id", duplicated, "is a duplicate label_id")
    no_votes = (out[list(layout.VOTE_COLUMNS)].sum(axis=1) == 0).to_numpy()
    if no_votes.any():
        log.warning("%s: dropped %d rows with zero votes (label_id %s ...)", path, no_votes.sum(),
                    out["label_id"][no_votes].iloc[0])
        out = out[~no_votes]
    return out.reset_index(drop=True)


def read_test_csv(path) -> pd.DataFrame:
    """test.csv: layout.TEST_COLUMNS in order, all int64. A repeated eeg_id is fine when its rows are
    identical (MLE-bench-style graders repeat rows); with another spectrogram or patient it is a DataError."""
    frame = _read_csv(path, layout.TEST_COLUMNS)
    out = pd.DataFrame({c: _to_int(path, frame, c) for c in layout.TEST_COLUMNS})
    distinct = out.drop_duplicates()
    conflicting = out.eeg_id.isin(distinct.eeg_id[distinct.eeg_id.duplicated()]).to_numpy()
    if conflicting.any():
        raise _first_bad(path, frame, "eeg_id", conflicting, "is repeated with another spectrogram_id or patient_id")
    return out


def read_submission_csv(path) -> pd.DataFrame:
    """A submission: eeg_id int64 then six non-negative float64 probabilities (rows sum to 1)."""
    frame = _read_csv(path, layout.SUBMISSION_COLUMNS)
    out = pd.DataFrame({"eeg_id": _to_int(path, frame, "eeg_id")})
    for column in layout.VOTE_COLUMNS:
        out[column] = _to_float(path, frame, column, non_negative=True)
    duplicated = out["eeg_id"].duplicated(keep=False).to_numpy()
    if duplicated.any():
        raise _first_bad(path, frame, "eeg_id", duplicated, "is a duplicate eeg_id")
    off = (out[list(layout.VOTE_COLUMNS)].sum(axis=1) - 1).abs().to_numpy() > 1e-3
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise DataError(f"{path}:{i + 2}: probabilities sum to "
                        f"{out[list(layout.VOTE_COLUMNS)].iloc[i].sum():.6g}, not 1 ({off.sum()} bad rows)")
    return out


# ------------------------------------------------------------------------------------- parquet
def _read_parquet(path, columns, is_value_type) -> pa.Table:
    """Open a parquet file and read `columns` after checking magic bytes, header and column types."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{path}: empty file")
    with open(path, "rb") as f:
        head = f.read(256)
        f.seek(max(size - 4, 0))
        tail = f.read(4)
    if head[:4] != b"PAR1":
        if b"," in head and b"\x00" not in head:
            raise DataError(f"{path}: looks like a CSV file, not parquet (starts {head[:40]!r})")
        raise DataError(f"{path}: not a parquet file (no PAR1 magic bytes)")
    if tail != b"PAR1":
        raise DataError(f"{path}: truncated or corrupt parquet file (no PAR1 footer)")
    try:
        with pq.ParquetFile(path) as pf:
            schema = pf.schema_arrow
            names = [n for n in schema.names if not n.startswith("__index_level_")]
            problem = _column_problem(names, columns)
            if problem:
                raise DataError(f"{path}: {problem}")
            bad = [c for c in columns if not is_value_type(c, schema.field(c).type)]
            if bad:
                raise DataError(f"{path}: non-numeric or wrongly typed columns "
                                f"{[f'{c}: {schema.field(c).type}' for c in bad]}")
            # One thread: the cache builder already reads files in parallel worker processes.
            return pf.read(columns=list(columns), use_threads=False)
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{path}: truncated or corrupt parquet file ({_first_line(e)})") from None


def _stack_float32(table: pa.Table, columns) -> np.ndarray:
    out = np.empty((table.num_rows, len(columns)), dtype=np.float32)
    for j, c in enumerate(columns):
        out[:, j] = table.column(c).to_numpy()
    return out


def _report_nan(path, values: np.ndarray, names) -> None:
    nan = np.isnan(values)
    if not nan.any():
        return
    # debug: a cache build reads thousands of files and logs their total once
    log.debug("%s: %d of %d rows hold NaN (kept as NaN)", path, nan.any(axis=1).sum(), len(values))
    empty = [n for n, all_nan in zip(names, nan.all(axis=0)) if all_nan]
    if empty:
        log.warning("%s: all-NaN channels %s (repaired to 0 by the Dataset)", path, empty)


def read_eeg(path) -> np.ndarray:
    """EEG parquet -> float32 [n_samples, 20] in layout.EEG_COLUMNS order, NaN kept as NaN.

    The length must be a whole, non-zero number of seconds at 200 Hz; NaN rows and all-NaN
    channels are logged (see the module docstring).
    """
    table = _read_parquet(path, layout.EEG_COLUMNS, lambda c, t: pa.types.is_floating(t))
    n = table.num_rows
    if n == 0 or n % layout.EEG_RATE:
        raise DataError(f"{path}: {n} rows is not a whole number of seconds at {layout.EEG_RATE} Hz")
    eeg = _stack_float32(table, layout.EEG_COLUMNS)
    _report_nan(path, eeg, layout.EEG_COLUMNS)
    return eeg


def read_spectrogram(path) -> tuple[np.ndarray, np.ndarray]:
    """Spectrogram parquet -> (time int64 [n_rows], power float32 [n_rows, 400]).

    `time` must be integer odd seconds 1, 3, 5, ... (row i is time 2i + 1); power columns in
    layout.SPEC_POWER_COLUMNS order, NaN kept as NaN (NaN rows logged).
    """
    table = _read_parquet(path, layout.SPEC_COLUMNS,
                          lambda c, t: pa.types.is_integer(t) if c == "time" else pa.types.is_floating(t))
    if table.num_rows == 0:
        raise DataError(f"{path}: no rows")
    if table.column("time").null_count:
        raise DataError(f"{path}: column time holds {table.column('time').null_count} missing values")
    time = table.column("time").to_numpy().astype(np.int64)
    steps = np.diff(time)
    # Row i covers time 2i + 1, so readers can slice windows by row position.
    if time[0] != 1 or (steps != layout.SPEC_STEP_SECONDS).any():
        i = 0 if time[0] != 1 else int(np.flatnonzero(steps != layout.SPEC_STEP_SECONDS)[0]) + 1
        raise DataError(f"{path}: time must be odd seconds 1, 3, 5, ... {layout.SPEC_STEP_SECONDS} s apart, "
                        f"row {i} is {time[i]}")
    power = _stack_float32(table, layout.SPEC_POWER_COLUMNS)
    _report_nan(path, power, layout.SPEC_POWER_COLUMNS)
    return time, power


def check_window(n, offset_seconds, path, kind: str = "eeg") -> None:
    """Raise DataError unless a file of `n` rows covers the window starting at `offset_seconds`.

    kind "eeg": n samples at 200 Hz must cover offset + 50 s; kind "spectrogram": n rows, one every
    2 s, must cover offset + 600 s.
    """
    if kind == "eeg":
        need = math.ceil((offset_seconds + layout.EEG_WINDOW_SECONDS) * layout.EEG_RATE - 1e-6)
        have = f"{n} samples ({n / layout.EEG_RATE:g} s)"
        window = layout.EEG_WINDOW_SECONDS
    elif kind == "spectrogram":
        need = math.ceil((offset_seconds + layout.SPEC_WINDOW_SECONDS) / layout.SPEC_STEP_SECONDS - 1e-6)
        have = f"{n} rows ({n * layout.SPEC_STEP_SECONDS:g} s)"
        window = layout.SPEC_WINDOW_SECONDS
    else:
        raise ValueError(f"kind must be 'eeg' or 'spectrogram', got {kind!r}")
    if n < need:
        raise DataError(f"{path}: too short: {have} does not cover offset {offset_seconds:g} s "
                        f"+ {window} s")
