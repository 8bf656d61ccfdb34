"""Read the Kaggle HMS layout (csvs and parquet files) with schema checks.

Every reader either returns exactly the documented columns, order and dtypes, or raises DataError
with a one-line message that starts with the offending file (or file:line). Refused as well as
malformed: a csv with a header and no rows; a vote count above MAX_VOTES (hms/metric.py, 100 per
class; the real data has at most 28 per row); an id out of the int64 range; an eeg_id or
spectrogram_id given to several patient_ids (its rows would spread over patient-grouped folds);
an EEG whose amplitude is implausible for microvolts (EEG_AMPLITUDE_UV below); a spectrogram with
negative power or a median power above SPEC_POWER_MAX.

Documented repairs, logged on the "hms.data" logger:
- train.csv rows with zero votes are dropped (warning with the count);
- +-inf in EEG / spectrogram files (or a float64 value beyond the float32 range) is read as NaN,
  with a warning counting them: downstream, inf is treated exactly like NaN;
- NaN samples are KEPT as NaN by the readers (the models repair them on the device); NaN rows are
  logged with their count at DEBUG level, channels that are entirely NaN as a warning naming them.
"""
import logging
import math
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hms import layout
from hms.metric import MAX_VOTES

log = logging.getLogger("hms.data")

_TRAIN_INT = ("eeg_id", "eeg_sub_id", "spectrogram_id", "spectrogram_sub_id", "label_id", "patient_id",
              *layout.VOTE_COLUMNS)
_TRAIN_FLOAT = ("eeg_label_offset_seconds", "spectrogram_label_offset_seconds")

# The median |value| of a microvolt EEG's 19 scalp channels (EKG aside), over their finite non-zero
# samples. Measured on the real files: 30 uV (the public test EEG) and 51 uV (the train fixture), each
# channel 15-180 uV. A file below 0.01 uV is in volts (about 3e-5) or another unit, so it is refused;
# so is a file with any scalp channel above 1e5 uV (0.1 V: an EEG scaled up, or one broken channel
# that would swamp the montage). Flat (exactly zero) and NaN samples take no part in the medians.
EEG_AMPLITUDE_UV = (0.01, 1e5)
# The median power of a Kaggle spectrogram, over its finite values: 0.31 on the real public test file;
# a 1e5 uV EEG would give about 3e6.
SPEC_POWER_MAX = 1e7


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
        raise DataError(f"{path}: not a readable CSV file ({first_line(e)})") from None
    problem = _column_problem(frame.columns, columns)
    if problem:
        raise DataError(f"{path}: {problem}")
    if frame.empty:
        raise DataError(f"{path}: no data rows (only a header)")
    return frame


def first_line(error: BaseException) -> str:
    """An exception as one line: its message's first line, or its type's name."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _first_bad(path, frame, column, bad_mask, what) -> DataError:
    i = int(np.flatnonzero(bad_mask)[0])
    # Line numbers count the header as line 1, so a user can jump straight to the row.
    return DataError(f"{path}:{i + 2}: column {column} value {frame[column].iloc[i]!r} {what} "
                     f"({int(bad_mask.sum())} bad rows)")


def _to_int(path, frame, column, non_negative=False, maximum=None, unit="") -> pd.Series:
    values = pd.to_numeric(frame[column].str.strip(), errors="coerce")
    whole = values.notna() & np.isfinite(values) & (values == values.round())
    if not whole.all():
        raise _first_bad(path, frame, column, ~whole.to_numpy(), "is not an integer")
    if (values.abs() >= 2**63).any():
        raise _first_bad(path, frame, column, (values.abs() >= 2**63).to_numpy(), "is out of the int64 range")
    if non_negative and (values < 0).any():
        raise _first_bad(path, frame, column, (values < 0).to_numpy(), "is negative")
    if maximum is not None and (values > maximum).any():
        raise _first_bad(path, frame, column, (values > maximum).to_numpy(), f"is more than {maximum} {unit}")
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

    Raises DataError on a bad header, no rows, non-numeric / negative values, a vote count above
    MAX_VOTES, an unknown expert_consensus, a duplicate label_id or an eeg_id / spectrogram_id with
    several patient_ids. Rows with zero votes are dropped with a logged count.
    """
    frame = _read_csv(path, layout.TRAIN_COLUMNS)
    out = pd.DataFrame(index=frame.index)
    for column in layout.TRAIN_COLUMNS:
        if column in layout.VOTE_COLUMNS:
            out[column] = _to_int(path, frame, column, non_negative=True, maximum=MAX_VOTES, unit="votes")
        elif column in _TRAIN_INT:
            out[column] = _to_int(path, frame, column)
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
    for column in ("eeg_id", "spectrogram_id"):
        _check_one_patient(path, out, column)
    no_votes = (out[list(layout.VOTE_COLUMNS)].sum(axis=1) == 0).to_numpy()
    if no_votes.all():
        raise DataError(f"{path}: no row has any votes ({len(out)} rows)")
    if no_votes.any():
        log.warning("%s: dropped %d rows with zero votes (label_id %s ...)", path, no_votes.sum(),
                    out["label_id"][no_votes].iloc[0])
        out = out[~no_votes]
    return out.reset_index(drop=True)


def _check_one_patient(path, rows: pd.DataFrame, column: str) -> None:
    """Every row of one eeg_id (or spectrogram_id) must name the same patient: folds group by patient."""
    patients = rows.groupby(column).patient_id.unique()
    several = patients[patients.map(len) > 1]
    if len(several):
        source_id = several.index[0]
        line = int(np.flatnonzero(rows[column].to_numpy() == source_id)[0]) + 2
        raise DataError(f"{path}:{line}: {column} {source_id} has several patient_ids "
                        f"{sorted(several.iloc[0].tolist())} (its rows would spread over patient-grouped folds; "
                        f"{len(several)} {column}s like it)")


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
        raise DataError(f"{path}: truncated or corrupt parquet file ({first_line(e)})") from None


def _stack_float32(path, table: pa.Table, columns) -> np.ndarray:
    """The columns as float32 [rows, columns]; +-inf (and float64 values beyond the float32 range,
    which the cast makes inf) become NaN, counted in a warning."""
    out = np.empty((table.num_rows, len(columns)), dtype=np.float32)
    with np.errstate(over="ignore"):
        for j, c in enumerate(columns):
            out[:, j] = table.column(c).to_numpy()
    infinite = np.isinf(out)
    if infinite.any():
        log.warning("%s: %d infinite values (or beyond float32) read as NaN", path, infinite.sum())
        out[infinite] = np.nan
    return out


def _robust_amplitude(values: np.ndarray) -> float | None:
    """Median |value| over the finite, non-zero entries; None when there are none."""
    magnitude = np.abs(values[np.isfinite(values)])
    magnitude = magnitude[magnitude > 0]
    return float(np.median(magnitude)) if magnitude.size else None


def _check_amplitude(path, eeg: np.ndarray) -> None:
    """Refuse an EEG that cannot be in microvolts (EEG_AMPLITUDE_UV)."""
    low, high = EEG_AMPLITUDE_UV
    scalp = [j for j, c in enumerate(layout.EEG_COLUMNS) if c != "EKG"]
    level = _robust_amplitude(eeg[:, scalp])
    if level is not None and level < low:
        raise DataError(f"{path}: median |value| of the scalp channels is {level:.3g}, implausible for "
                        f"microvolts (below {low:g} uV; in volts? EEG files hold microvolts)")
    for j in scalp:
        level = _robust_amplitude(eeg[:, j])
        if level is not None and level > high:
            raise DataError(f"{path}: channel {layout.EEG_COLUMNS[j]} has median |value| {level:.3g}, implausible "
                            f"for microvolts (above {high:.0e} uV)")


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

    The length must be a whole, non-zero number of seconds at 200 Hz and the amplitude plausible for
    microvolts (EEG_AMPLITUDE_UV); inf is read as NaN; NaN rows and all-NaN channels are logged (see
    the module docstring).
    """
    table = _read_parquet(path, layout.EEG_COLUMNS, lambda c, t: pa.types.is_floating(t))
    n = table.num_rows
    if n == 0 or n % layout.EEG_RATE:
        raise DataError(f"{path}: {n} rows is not a whole number of seconds at {layout.EEG_RATE} Hz")
    eeg = _stack_float32(path, table, layout.EEG_COLUMNS)
    _check_amplitude(path, eeg)
    _report_nan(path, eeg, layout.EEG_COLUMNS)
    return eeg


def read_spectrogram(path) -> tuple[np.ndarray, np.ndarray]:
    """Spectrogram parquet -> (time int64 [n_rows], power float32 [n_rows, 400]).

    `time` must be integer odd seconds 1, 3, 5, ... (row i is time 2i + 1); power columns in
    layout.SPEC_POWER_COLUMNS order, non-negative with a median of at most SPEC_POWER_MAX; inf read as
    NaN, NaN kept as NaN (NaN rows logged).
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
    power = _stack_float32(path, table, layout.SPEC_POWER_COLUMNS)
    negative = np.argwhere(power < 0)
    if len(negative):
        i, j = negative[0]
        raise DataError(f"{path}: power column {layout.SPEC_POWER_COLUMNS[j]} is {power[i, j]:.3g} at row {i}: "
                        f"power is never negative ({len(negative)} negative values)")
    level = _robust_amplitude(power)
    if level is not None and level > SPEC_POWER_MAX:
        raise DataError(f"{path}: median power {level:.3g} is implausible for a Kaggle spectrogram "
                        f"(above {SPEC_POWER_MAX:g}; the real files have about 0.3)")
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


def output_file(path) -> Path:
    """`path` as a file a script may write at its end, checked at its start (a long prediction or fit
    should not fail at its last line): not a folder, below a folder that exists or can be made there, and
    writable. Nothing is created. Raises a one-line OSError naming the path."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder; give a file name")
    existing = next(p for p in path.absolute().parents if p.exists())
    if not existing.is_dir():
        raise NotADirectoryError(f"{path}: cannot create its folder ({existing} is a file)")
    if not os.access(existing, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise PermissionError(f"{path}: not writable")
    return path


def run_main(main) -> None:
    """The top-level handler of a script: exit with main()'s code; a user error (bad data, a missing
    file, an --out that cannot be written: DataError, any ValueError or OSError) is one line `error: ...`
    on stderr and exit 1, Ctrl-C one line `interrupted` and exit 130, never a traceback. HMS_DEBUG=1 shows
    the traceback anyway."""
    try:
        code = main()
    except (ValueError, OSError) as error:
        if os.environ.get("HMS_DEBUG"):
            raise
        print(f"error: {first_line(error)}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        if os.environ.get("HMS_DEBUG"):
            raise
        print("interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)
