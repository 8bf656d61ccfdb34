"""Bad input: one test per case, each on a damaged copy of a real fixture built in tmp_path.

Each case must give a one-line DataError naming the file and the problem, or a documented,
logged repair (NaN kept, inf read as NaN, all-NaN channel warned, zero-vote rows dropped, a short
spectrogram window zero-padded and counted). The scripts (check_data.py, score.py, prepare_data.py)
run as subprocesses: exit code, one stderr line, no traceback (unless HMS_DEBUG=1), nothing written.
"""
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from torch.utils.data import DataLoader

from hms import layout
from hms.data.check import check_data_folder, check_folder
from hms.data.dataset import HMSDataset, TestDataset
from hms.data.kaggle import DataError, read_eeg, read_spectrogram, read_train_csv, run_main
from hms.data.prepare import load_prepared, prepare_data
from hms.metric import kl_per_row
from tests.helpers import SCRIPTS

TEST_EEG = "test_eegs/3911565283.parquet"
TEST_SPEC = "test_spectrograms/853520.parquet"


def raises_one_line(match, reader, path):
    """Call reader(path), expecting a one-line DataError that names the file and matches `match`."""
    with pytest.raises(DataError, match=match) as info:
        reader(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path)), message
    return message


def eeg_frame(real_hms) -> pd.DataFrame:
    return pd.read_parquet(real_hms / TEST_EEG)


def train_rows(real_hms, n=5) -> pd.DataFrame:
    return pd.read_csv(real_hms / "train_highvote_rows.csv", nrows=n)


def test_missing_file(tmp_path):
    raises_one_line("file not found", read_eeg, tmp_path / "1.parquet")


def test_truncated_parquet(real_hms, tmp_path):
    data = (real_hms / TEST_EEG).read_bytes()
    path = tmp_path / "truncated.parquet"
    path.write_bytes(data[: len(data) // 2])
    raises_one_line("truncated or corrupt parquet", read_eeg, path)


def test_corrupt_parquet_footer(real_hms, tmp_path):
    data = bytearray((real_hms / TEST_SPEC).read_bytes())
    # Scramble the metadata just before the footer length; the magic bytes stay intact.
    data[-200:-8] = bytes(range(192))
    path = tmp_path / "corrupt.parquet"
    path.write_bytes(bytes(data))
    raises_one_line("truncated or corrupt parquet", read_spectrogram, path)


def test_csv_saved_as_parquet(real_hms, tmp_path):
    path = tmp_path / "3911565283.parquet"
    eeg_frame(real_hms).head(400).to_csv(path, index=False)
    raises_one_line("looks like a CSV file", read_eeg, path)


def test_missing_and_unexpected_columns(real_hms, tmp_path):
    path = tmp_path / "renamed.parquet"
    eeg_frame(real_hms).rename(columns={"Cz": "CZ"}).to_parquet(path, index=False)
    message = raises_one_line("missing columns", read_eeg, path)
    assert "'Cz'" in message and "unexpected columns ['CZ']" in message


def test_reordered_columns(real_hms, tmp_path):
    path = tmp_path / "reordered.parquet"
    frame = eeg_frame(real_hms)
    names = list(frame.columns)
    names[0], names[1] = names[1], names[0]
    frame[names].to_parquet(path, index=False)
    message = raises_one_line("misplaced columns", read_eeg, path)
    assert "'Fp1'" in message and "'F3'" in message and "'C3'" not in message.split("(expected")[0]


def test_reordered_csv_header(real_hms, tmp_path):
    path = tmp_path / "train.csv"
    rows = train_rows(real_hms)
    rows[["eeg_sub_id", "eeg_id", *rows.columns[2:]]].to_csv(path, index=False)
    raises_one_line(r"misplaced columns \['eeg_sub_id', 'eeg_id'\]", read_train_csv, path)


def test_non_numeric_parquet_column(real_hms, tmp_path):
    path = tmp_path / "text.parquet"
    frame = eeg_frame(real_hms)
    frame["T3"] = frame["T3"].astype(str)
    frame.to_parquet(path, index=False)
    raises_one_line(r"non-numeric or wrongly typed columns \['T3: ", read_eeg, path)


def test_non_numeric_csv_value(real_hms, tmp_path):
    path = tmp_path / "train.csv"
    rows = train_rows(real_hms).astype({"lpd_vote": object})
    rows.loc[3, "lpd_vote"] = "three"
    rows.to_csv(path, index=False)
    # Line 5: the header is line 1, row 3 is line 5.
    raises_one_line(r"train.csv:5: column lpd_vote value 'three' is not an integer", read_train_csv, path)


def test_nan_rows_kept_and_counted(real_hms, tmp_path, caplog):
    path = tmp_path / "nan.parquet"
    frame = eeg_frame(real_hms)
    frame.iloc[100:300, :] = np.nan
    frame.to_parquet(path, index=False)
    with caplog.at_level(logging.DEBUG, logger="hms.data"):
        eeg = read_eeg(path)
    assert np.isnan(eeg[100:300]).all() and not np.isnan(eeg[:100]).any() and not np.isnan(eeg[300:]).any()
    assert f"{path}: 200 of 10000 rows hold NaN" in caplog.text


def test_all_nan_channel_warned(real_hms, tmp_path, caplog):
    path = tmp_path / "dead_channel.parquet"
    frame = eeg_frame(real_hms)
    frame["O2"] = np.nan
    frame.to_parquet(path, index=False)
    with caplog.at_level(logging.WARNING, logger="hms.data"):
        eeg = read_eeg(path)
    assert np.isnan(eeg[:, layout.EEG_COLUMNS.index("O2")]).all()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"{path}: all-NaN channels ['O2'] (repaired to 0 by the Dataset)"]


def test_eeg_not_whole_seconds(real_hms, tmp_path):
    path = tmp_path / "odd_length.parquet"
    eeg_frame(real_hms).head(9_950).to_parquet(path, index=False)
    raises_one_line("9950 rows is not a whole number of seconds", read_eeg, path)


def test_eeg_shorter_than_its_offsets(real_hms, tmp_path):
    # A 50 s train EEG labelled at offset 10 s needs 60 s.
    (tmp_path / "train_eegs").mkdir()
    (tmp_path / "train_spectrograms").mkdir()
    shutil.copy(real_hms / "train_eegs/1000913311.parquet", tmp_path / "train_eegs")
    pq.write_table(pa.table({"time": pa.array(np.arange(1, 1200, 2), pa.int16()),
                             **{c: pa.array(np.ones(600, np.float32)) for c in layout.SPEC_POWER_COLUMNS}}),
                   tmp_path / "train_spectrograms" / "175871552.parquet")
    rows = train_rows(real_hms, 1).assign(eeg_id=1000913311, spectrogram_id=175871552,
                                          eeg_label_offset_seconds=10.0, spectrogram_label_offset_seconds=10.0)
    rows.to_csv(tmp_path / "train.csv", index=False)
    eeg = tmp_path / "train_eegs" / "1000913311.parquet"
    assert check_data_folder(tmp_path, progress=False, only="train") == [
        f"{eeg}: too short: 10000 samples (50 s) does not cover offset 10 s + 50 s"]


def test_zero_vote_rows_dropped(real_hms, tmp_path, caplog):
    path = tmp_path / "train.csv"
    rows = train_rows(real_hms)
    rows.loc[[1, 2], list(layout.VOTE_COLUMNS)] = 0
    rows.to_csv(path, index=False)
    with caplog.at_level(logging.WARNING, logger="hms.data"):
        out = read_train_csv(path)
    assert out["label_id"].tolist() == rows["label_id"].drop([1, 2]).tolist()
    assert f"{path}: dropped 2 rows with zero votes" in caplog.text


def test_duplicate_label_id(real_hms, tmp_path):
    path = tmp_path / "train.csv"
    rows = train_rows(real_hms)
    rows.loc[4, "label_id"] = rows.loc[1, "label_id"]
    rows.to_csv(path, index=False)
    raises_one_line(rf"train.csv:3: column label_id value '{rows.loc[1, 'label_id']}' is a duplicate",
                    read_train_csv, path)


def test_spectrogram_time_not_odd_seconds(real_hms, tmp_path):
    path = tmp_path / "time.parquet"
    table = pq.read_table(real_hms / TEST_SPEC)
    time = table.column("time").to_numpy().copy()
    time[5] = 12
    pq.write_table(table.set_column(0, "time", pa.array(time, pa.int16())), path)
    raises_one_line(r"time must be odd seconds 1, 3, 5, \.\.\. 2 s apart, row 5 is 12", read_spectrogram, path)


# ================================================================================================
# The reliability campaign's classes: each case is refused in one line naming the file (or key),
# or is a documented, counted repair; a refused input writes nothing.
# ================================================================================================
TRAIN_EEG = "train_eegs/1000913311.parquet"


def run_script(name, *args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPTS / name), *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})}, cwd=SCRIPTS.parent)


def refused_in_one_line(done, *names) -> str:
    """A CLI run that failed with exactly one stderr line, naming `names`, and no traceback."""
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for name in names:
        assert str(name) in lines[0], lines[0]
    return lines[0]


def snapshot(folder: Path) -> dict:
    """Every file under `folder` with its size and mtime: what "nothing was written" compares."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def write_train(rows: pd.DataFrame, root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rows.to_csv(root / "train.csv", index=False)
    return root / "train.csv"


@pytest.fixture
def tiny_train(real_hms, tmp_path) -> Path:
    """A train folder of 3 patients from real files: the real train EEG as 100-102 and the real test
    spectrogram (300 rows, 10 min) as 200-202, one row each at offset 0."""
    root = tmp_path / "tiny"
    for folder in ("train_eegs", "train_spectrograms"):
        (root / folder).mkdir(parents=True)
    for i in range(3):
        shutil.copy(real_hms / TRAIN_EEG, root / f"train_eegs/{100 + i}.parquet")
        shutil.copy(real_hms / TEST_SPEC, root / f"train_spectrograms/{200 + i}.parquet")
    rows = train_rows(real_hms, 3).assign(eeg_id=[100, 101, 102], spectrogram_id=[200, 201, 202], eeg_sub_id=0,
                                          spectrogram_sub_id=0, eeg_label_offset_seconds=0.0,
                                          spectrogram_label_offset_seconds=0.0, patient_id=[1, 2, 3])
    write_train(rows, root)
    return root


def prepare(root, **kwargs) -> Path:
    return prepare_data(root, n_folds=2, workers=1, progress=False, **kwargs)


def test_fixture_tiny_train_prepares(tiny_train):
    prepared = load_prepared(prepare(tiny_train))
    assert len(prepared.rows) == 3 and prepared.sources["eeg"].data.shape == (20, 30_000)


# ---------------------------------------------------- 2. an id with several patients (a fold leak)
@pytest.mark.parametrize("column", ["eeg_id", "spectrogram_id"])
def test_an_id_given_to_several_patients_is_refused_before_any_cache(tiny_train, column):
    rows = pd.read_csv(tiny_train / "train.csv")
    rows.loc[2, column] = rows.loc[0, column]  # row 2 (line 4) now shares row 0's id, not its patient
    path = write_train(rows, tiny_train)
    message = raises_one_line(rf"train.csv:2: {column} {rows.loc[0, column]} has several patient_ids \[1, 3\] "
                              r"\(its rows would spread over patient-grouped folds", read_train_csv, path)
    with pytest.raises(DataError, match="several patient_ids") as info:
        prepare(tiny_train)
    assert str(info.value) == message and not (tiny_train / "cache").exists()


def test_prepare_data_script_refuses_a_patient_leak_in_one_line(tiny_train):
    rows = pd.read_csv(tiny_train / "train.csv").assign(eeg_id=100)
    write_train(rows, tiny_train)
    done = run_script("prepare_data.py", "--root", tiny_train, "--no-progress")
    assert refused_in_one_line(done, tiny_train / "train.csv", "eeg_id 100").startswith("error: ")
    assert not (tiny_train / "cache").exists() and done.stdout == ""
    debug = run_script("prepare_data.py", "--root", tiny_train, "--no-progress", env={"HMS_DEBUG": "1"})
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "several patient_ids" in debug.stderr


# ---------------------------------------------------- 4. implausible votes, ids, signals; short windows
@pytest.mark.parametrize("value, problem", [
    ("1e12", "is more than 100 votes"),
    ("101", "is more than 100 votes"),
    ("2.5", "is not an integer"),
    ("-1", "is negative"),
    ("inf", "is not an integer"),
    ("", "is not an integer"),
])
def test_implausible_vote_counts_are_refused(real_hms, tmp_path, value, problem):
    rows = train_rows(real_hms).astype({"gpd_vote": object})
    rows.loc[2, "gpd_vote"] = value
    path = write_train(rows, tmp_path)
    raises_one_line(rf"train.csv:4: column gpd_vote value {re.escape(repr(value))} {problem} \(1 bad rows\)",
                    read_train_csv, path)


def test_an_id_beyond_int64_is_refused(real_hms, tmp_path):
    rows = train_rows(real_hms).astype({"eeg_id": object})
    rows.loc[1, "eeg_id"] = "1e30"
    raises_one_line(r"train.csv:3: column eeg_id value '1e30' is out of the int64 range", read_train_csv,
                    write_train(rows, tmp_path))


def scaled(column, factor):
    def change(frame):
        columns = [c for c in frame.columns if c != "EKG"] if column is None else [column]
        frame[columns] = frame[columns].astype(np.float64) * factor
    return change


@pytest.mark.parametrize("change, problem", [
    (scaled(None, 1e-6), r"median \|value\| of the scalp channels is \d\.\d+e-05, implausible for microvolts "
                         r"\(below 0\.01 uV; in volts\?"),
    (scaled(None, 1e30), r"channel Fp1 has median \|value\| \d\.\d+e\+31, implausible for microvolts \(above 1e\+05 uV\)"),
    (scaled("C3", 1e6), r"channel C3 has median \|value\| 1\.\d+e\+07, implausible for microvolts"),
])
def test_an_eeg_not_in_microvolts_is_refused(real_hms, tmp_path, change, problem):
    frame = eeg_frame(real_hms)
    change(frame)
    path = tmp_path / "scaled.parquet"
    frame.astype(np.float32).to_parquet(path, index=False)
    raises_one_line(problem, read_eeg, path)


def test_flat_and_nan_samples_take_no_part_in_the_amplitude(real_hms, tmp_path):
    frame = eeg_frame(real_hms)
    frame.iloc[:, :12] = 0.0  # 12 flat channels: the median of all samples would be 0
    frame.iloc[:5000, 12:] = np.nan
    path = tmp_path / "flat.parquet"
    frame.to_parquet(path, index=False)
    assert read_eeg(path).shape == (10_000, 20)


@pytest.mark.parametrize("reader, source, column, value", [
    (read_eeg, TEST_EEG, "T3", np.inf),
    (read_eeg, TEST_EEG, "O2", -np.inf),
    (read_eeg, TEST_EEG, "Fz", 1e39),  # a float64 beyond float32: the cast makes it inf
    (read_spectrogram, TEST_SPEC, "RL_5.86", np.inf),
])
def test_inf_is_read_as_nan_and_counted(real_hms, tmp_path, caplog, reader, source, column, value):
    frame = pd.read_parquet(real_hms / source)
    frame[column] = frame[column].astype(np.float64)
    frame.loc[[3, 7, 11], column] = value
    path = tmp_path / "inf.parquet"
    frame.to_parquet(path, index=False)
    with caplog.at_level(logging.WARNING, logger="hms.data"):
        out = reader(path)
    values = out if reader is read_eeg else out[1]
    names = layout.EEG_COLUMNS if reader is read_eeg else layout.SPEC_POWER_COLUMNS
    j = names.index(column)
    assert np.isnan(values[[3, 7, 11], j]).all() and np.isfinite(values).sum() == values.size - 3
    assert f"{path}: 3 infinite values (or beyond float32) read as NaN" in caplog.text


@pytest.mark.parametrize("change, problem", [
    (lambda f: f.assign(**{"LP_2.54": -f["LP_2.54"]}), r"power column LP_2\.54 is -\d.* at row 0: power is never negative"),
    (lambda f: f.assign(**{c: f[c] * 1e30 for c in layout.SPEC_POWER_COLUMNS}),
     r"median power 3\.1e\+29 is implausible for a Kaggle spectrogram"),
])
def test_implausible_spectrogram_power_is_refused(real_hms, tmp_path, change, problem):
    path = tmp_path / "power.parquet"
    change(pd.read_parquet(real_hms / TEST_SPEC)).to_parquet(path, index=False)
    raises_one_line(problem, read_spectrogram, path)


def test_an_eeg_in_volts_is_refused_by_training_with_no_partial_cache(tiny_train, real_hms):
    frame = eeg_frame(real_hms) * 1e-6
    frame.to_parquet(tiny_train / "train_eegs/101.parquet", index=False)
    with pytest.raises(DataError, match=r"train_eegs/101.parquet: median \|value\|.*implausible") as info:
        prepare(tiny_train)
    assert "\n" not in str(info.value)
    cache = tiny_train / "cache"
    assert not any(cache.glob("eeg*")), sorted(p.name for p in cache.iterdir())  # no eeg.npy, tmp file or manifest


def test_a_train_eeg_shorter_than_its_window_is_refused_before_anything_is_written(tiny_train):
    rows = pd.read_csv(tiny_train / "train.csv")
    rows.loc[1, "eeg_label_offset_seconds"] = 4.0
    write_train(rows, tiny_train)
    with pytest.raises(DataError) as info:
        prepare(tiny_train)
    assert str(info.value) == (f"{tiny_train}/train_eegs/101.parquet: too short: 50 s does not cover offset 4 s + 50 s "
                               f"(label_id {rows.label_id[1]}; 1 rows like it)")
    assert not (tiny_train / "cache").exists()


def test_a_short_train_spectrogram_window_is_zero_padded_and_counted_alike(tiny_train, caplog):
    rows = pd.read_csv(tiny_train / "train.csv")
    rows.loc[2, "spectrogram_label_offset_seconds"] = 10.0  # 5 rows past the end of a 600 s file
    write_train(rows, tiny_train)
    spec = tiny_train / "train_spectrograms/202.parquet"
    with caplog.at_level(logging.WARNING, logger="hms.data"):
        prepared = load_prepared(prepare(tiny_train))
    assert (f"{spec}: too short: 600 s does not cover offset 10 s + 600 s (label_id {rows.label_id[2]}; "
            "1 rows like it): zero-padded") in caplog.text
    window = HMSDataset(prepared, [2])[0]["spec"].numpy()
    assert window.shape == (300, 400) and (window[-5:] == 0).all() and (window[:-5] > 0).all()
    report = check_folder(tiny_train, progress=False, only="train")
    assert report.problems == [] and report.notes == [
        f"{spec}: too short: 300 rows (600 s) does not cover offset 10 s + 600 s: zero-padded (as training and "
        "prediction do)"]


@pytest.fixture
def test_folder(real_hms, tmp_path) -> Path:
    """A copy of the real public test pair, plus a second row (eeg 5, spectrogram 6) to damage."""
    root = tmp_path / "test_folder"
    for folder in ("test_eegs", "test_spectrograms"):
        (root / folder).mkdir(parents=True)
    for source, target in ((TEST_EEG, "test_eegs/3911565283.parquet"), (TEST_EEG, "test_eegs/5.parquet"),
                           (TEST_SPEC, "test_spectrograms/853520.parquet"), (TEST_SPEC, "test_spectrograms/6.parquet")):
        shutil.copy(real_hms / source, root / target)
    pd.DataFrame({"spectrogram_id": [853520, 6], "eeg_id": [3911565283, 5], "patient_id": [6885, 7]}).to_csv(
        root / "test.csv", index=False)
    return root


def test_a_30_s_test_eeg_is_refused_alike_by_prediction_and_check_data(test_folder, real_hms):
    eeg_frame(real_hms).head(6_000).to_parquet(test_folder / "test_eegs/5.parquet", index=False)
    path = test_folder / "test_eegs/5.parquet"
    with pytest.raises(DataError) as info:
        TestDataset(test_folder)
    assert str(info.value) == f"{path}: too short: 30 s does not cover offset 0 s + 50 s (1 eeg files like it)"
    assert check_folder(test_folder, progress=False, only="test").problems == [
        f"{path}: too short: 6000 samples (30 s) does not cover offset 0 s + 50 s"]


def test_a_short_test_spectrogram_is_zero_padded_counted_and_batches(test_folder, real_hms, caplog):
    path = test_folder / "test_spectrograms/6.parquet"
    pd.read_parquet(real_hms / TEST_SPEC).head(250).to_parquet(path, index=False)
    with caplog.at_level(logging.WARNING, logger="hms.data"):
        dataset = TestDataset(test_folder)
    assert f"{path}: too short: 500 s does not cover offset 0 s + 600 s: zero-padded (1 spec files like it)" in caplog.text
    assert dataset.padded == [path]
    batch = next(iter(DataLoader(dataset, batch_size=2)))
    assert batch["spec"].shape == (2, 300, 400) and (batch["spec"][1, 250:] == 0).all()
    assert batch["eeg"].shape == (2, 20, 10_000)
    assert check_folder(test_folder, progress=False, only="test").notes == [
        f"{path}: too short: 250 rows (500 s) does not cover offset 0 s + 600 s: zero-padded (as training and "
        "prediction do)"]


def test_a_missing_test_file_is_refused_before_predicting(test_folder):
    (test_folder / "test_eegs/5.parquet").unlink()
    with pytest.raises(DataError) as info:
        TestDataset(test_folder)
    assert str(info.value) == f"{test_folder}/test_eegs/5.parquet: file not found (referenced by test.csv)"


# ---------------------------------------------------- 7. check_data says what it checked, fails on what must exist
def header_only(root, name, columns):
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(",".join(columns) + "\n")


@pytest.mark.parametrize("damage, problem", [
    (lambda root: (root / "train.csv").unlink(), "train.csv: file not found (a test-only folder: --only test)"),
    (lambda root: header_only(root, "train.csv", layout.TRAIN_COLUMNS), "train.csv: no data rows (only a header)"),
    (lambda root: header_only(root, "test.csv", layout.TEST_COLUMNS), "test.csv: no data rows (only a header)"),
    (lambda root: write_train(pd.read_csv(root / "train.csv").assign(**{c: 0 for c in layout.VOTE_COLUMNS}), root),
     "train.csv: no row has any votes (3 rows)"),
    (lambda root: shutil.rmtree(root / "train_eegs"), "train_eegs: folder not found (3 files referenced)"),
])
def test_check_data_fails_on_what_must_exist(tiny_train, test_folder, damage, problem):
    for item in test_folder.iterdir():  # one folder with both parts
        shutil.move(str(item), str(tiny_train / item.name))
    damage(tiny_train)
    before = snapshot(tiny_train)
    done = run_script("check_data.py", "--root", tiny_train, "--no-progress")
    refused_in_one_line(done, "check_data found 1 problem", tiny_train)
    lines = done.stdout.splitlines()
    assert lines[0] == f"{tiny_train}/{problem}" and lines[-1] == f"check_data: 1 problem, 0 notes in {tiny_train}"
    assert lines[-2].startswith("check_data: checked train.csv ") and "; test.csv " in lines[-2]
    assert snapshot(tiny_train) == before


def test_check_data_lists_what_it_checked(tiny_train, test_folder):
    for item in test_folder.iterdir():
        shutil.move(str(item), str(tiny_train / item.name))
    report = check_folder(tiny_train, progress=False)
    assert report.problems == [] and report.checked == [
        "train.csv (3 rows)", "test.csv (2 rows)", "sample_submission.csv absent", "3 train_eegs files",
        "3 train_spectrograms files", "2 test_eegs files", "2 test_spectrograms files"]


def test_check_data_turns_reader_warnings_into_notes(test_folder, real_hms):
    frame = eeg_frame(real_hms)
    frame.loc[5, "Cz"] = np.inf
    frame.to_parquet(test_folder / "test_eegs/5.parquet", index=False)
    report = check_folder(test_folder, progress=False, only="test")
    assert report.problems == [] and report.notes == [
        f"{test_folder}/test_eegs/5.parquet: 1 infinite values (or beyond float32) read as NaN"]


# ---------------------------------------------------- 8. scoring edge cases
def probabilities(eeg_ids, seed=0) -> pd.DataFrame:
    values = np.random.default_rng(seed).dirichlet(np.ones(6), len(eeg_ids))
    return pd.DataFrame({"eeg_id": eeg_ids, **dict(zip(layout.VOTE_COLUMNS, values.T))})


VOTES = pd.DataFrame({"eeg_id": [1, 2, 3], **dict(zip(layout.VOTE_COLUMNS, np.array(
    [[3, 0, 0, 0, 0, 1], [0, 2, 2, 0, 0, 0], [0, 0, 0, 0, 5, 9]]).T))})
FRACTIONS = VOTES.assign(**{c: VOTES[c] / VOTES[list(layout.VOTE_COLUMNS)].sum(axis=1) for c in layout.VOTE_COLUMNS})


@pytest.mark.parametrize("solution, submission, problem", [
    (VOTES, probabilities([1, 2, 3]).assign(seizure_vote=lambda f: f.seizure_vote + 2),
     "submission.csv rows must sum to 1 (row 1 sums to 3; 3 rows off by more than 0.001)"),
    (VOTES, probabilities([1, 2, 3, 4]), "submission.csv: 1 eeg_ids are not in"),
    (FRACTIONS, probabilities([1, 2]), "submission.csv: no prediction for 1 eeg_ids, e.g. [3]"),
    (probabilities([1, 2, 3]), FRACTIONS, "solution.csv:2: [0.1"),  # swapped: a model's output as the solution
    (VOTES, VOTES, "submission.csv rows must sum to 1 (row 1 sums to 4; 3 rows off by more than 0.001) "
                   "(vote counts: is it the solution? usage: score.py SOLUTION SUBMISSION)"),
    (FRACTIONS, FRACTIONS.assign(spectrogram_id=7), "submission.csv: a submission holds only"),
    (VOTES, probabilities([1, 2, 3]).iloc[:0], "submission.csv: no data rows (only a header)"),
    (VOTES, probabilities([1, 2, 3]).astype({"eeg_id": object}).assign(eeg_id=["1", "2x", "3"]),
     "submission.csv:3: column eeg_id value '2x' is not an integer"),
    (VOTES, probabilities([1, 2, 3]).assign(lpd_vote=[0.2, np.nan, 0.1]),
     "submission.csv:3: column lpd_vote value nan is not a finite number"),
    (VOTES.assign(other_vote=[1, 1, 1e12]), probabilities([1, 2, 3]), "solution.csv:4: more than 100 votes for a class"),
])
def test_score_refuses_in_one_line_and_writes_nothing(tmp_path, solution, submission, problem):
    solution.to_csv(tmp_path / "solution.csv", index=False)
    submission.to_csv(tmp_path / "submission.csv", index=False)
    before = snapshot(tmp_path)
    done = run_script("score.py", tmp_path / "solution.csv", tmp_path / "submission.csv")
    line = refused_in_one_line(done)
    assert problem in line and line.startswith(f"error: {tmp_path}/"), line
    assert done.stdout == "" and snapshot(tmp_path) == before


def test_a_swapped_solution_is_refused_and_hms_debug_shows_the_traceback(tmp_path):
    FRACTIONS.to_csv(tmp_path / "solution.csv", index=False)
    probabilities([1, 2, 3]).to_csv(tmp_path / "submission.csv", index=False)
    assert run_script("score.py", tmp_path / "solution.csv", tmp_path / "submission.csv").returncode == 0
    done = run_script("score.py", tmp_path / "submission.csv", tmp_path / "solution.csv")
    assert "is it a submission? (usage: score.py SOLUTION SUBMISSION)" in refused_in_one_line(done, "submission.csv:2")
    debug = run_script("score.py", tmp_path / "submission.csv", tmp_path / "solution.csv", env={"HMS_DEBUG": "1"})
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_an_oof_whose_rows_sum_to_3_gets_no_kl():
    target = FRACTIONS[list(layout.VOTE_COLUMNS)].to_numpy()
    with pytest.raises(ValueError, match=r"^prediction rows must sum to 1 \(row 1 sums to 3; 3 rows"):
        kl_per_row(target, np.full((3, 6), 0.5))
    with pytest.raises(ValueError, match=r"^target holds negative or non-finite probabilities \(row 2"):
        kl_per_row(np.where([[False], [True], [False]], np.nan, target), np.full((3, 6), 1 / 6))


# ---------------------------------------------------- 10. stale caches: what the cache key covers
def test_a_same_size_train_csv_edit_with_its_mtime_kept_rebuilds_the_rows(tiny_train):
    cache = prepare(tiny_train)
    csv = tiny_train / "train.csv"
    stat, text = csv.stat(), csv.read_text()
    lines = text.splitlines()
    first = lines[1].split(",")
    first[-1] = first[-1][:-1] + str((int(first[-1][-1]) + 1) % 10)  # other_vote of row 0: one digit for another
    csv.write_text("\n".join([lines[0], ",".join(first), *lines[2:]]) + "\n")
    os.utime(csv, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert csv.stat().st_size == stat.st_size and csv.stat().st_mtime_ns == stat.st_mtime_ns
    before = (cache / "rows.parquet").stat().st_mtime_ns
    prepare(tiny_train)
    assert (cache / "rows.parquet").stat().st_mtime_ns != before
    assert load_prepared(cache).rows.n_votes[0] == sum(int(v) for v in first[-6:])


def test_a_same_size_parquet_edit_with_its_mtime_kept_rebuilds_its_cache(tiny_train, real_hms):
    path = tiny_train / "train_eegs/101.parquet"
    table = pq.read_table(real_hms / TRAIN_EEG)
    pq.write_table(table, path, compression="none", use_dictionary=False)
    cache = prepare(tiny_train)
    stat = path.stat()
    edited = table.set_column(2, "C3", pa.array(table.column("C3").to_numpy() + 1))
    pq.write_table(edited, path, compression="none", use_dictionary=False)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    prepare(tiny_train)
    eeg = load_prepared(cache).sources["eeg"]
    c3 = eeg.data[layout.EEG_COLUMNS.index("C3"), eeg.start[101]: eeg.start[101] + 10_000]
    np.testing.assert_array_equal(c3, edited.column("C3").to_numpy())


def test_rebuild_rebuilds_what_the_key_cannot_see(tiny_train):
    cache = prepare(tiny_train)
    stamps = {name: (cache / name).stat().st_mtime_ns for name in ("rows.parquet", "eeg.npy", "spec.npy")}
    prepare(tiny_train)
    assert {name: (cache / name).stat().st_mtime_ns for name in stamps} == stamps
    prepare(tiny_train, rebuild=True)
    assert all((cache / name).stat().st_mtime_ns != stamp for name, stamp in stamps.items())


# ---------------------------------------------------- 9. a truncated or damaged cache file
@pytest.mark.parametrize("name, damage, problem", [
    ("eeg.npy", "truncate", "truncated or changed cache file"),
    ("spec_index.parquet", "truncate", "truncated or changed cache file"),
    ("rows.parquet", "truncate", "truncated or changed cache file"),
    ("eeg_index.parquet", "scramble", "unreadable cache file"),
    ("spec.npy", "delete", "missing cache file"),
])
def test_a_damaged_cache_file_is_one_line_naming_it_and_prepare_rebuilds_it(tiny_train, name, damage, problem):
    cache = prepare(tiny_train)
    path = cache / name
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "scramble":
        path.write_bytes(bytes(len(data)))  # same size, all zeros
    else:
        path.unlink()
    with pytest.raises(DataError) as info:
        load_prepared(cache)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: {problem}")
    assert message.endswith(f"rebuild it: scripts/prepare_data.py --root {tiny_train} --rebuild (or delete {cache})")
    prepare(tiny_train)  # the manifest's sizes make the damaged part stale
    assert len(load_prepared(cache).rows) == 3 and path.read_bytes() == data


# ---------------------------------------------------- every entry point: one handler, HMS_DEBUG=1 re-raises
@pytest.mark.parametrize("error, code, printed", [
    (DataError("some.csv:3: a problem"), 1, "error: some.csv:3: a problem\n"),
    (IsADirectoryError(21, "Is a directory", "out.csv"), 1, "error: [Errno 21] Is a directory: 'out.csv'\n"),
    (KeyboardInterrupt(), 130, "interrupted\n"),
])
def test_run_main_prints_one_line_or_reraises_under_hms_debug(monkeypatch, capsys, error, code, printed):
    def main():
        raise error

    monkeypatch.delenv("HMS_DEBUG", raising=False)
    with pytest.raises(SystemExit) as info:
        run_main(main)
    assert info.value.code == code and capsys.readouterr().err == printed
    monkeypatch.setenv("HMS_DEBUG", "1")
    with pytest.raises(type(error)):
        run_main(main)
    with pytest.raises(SystemExit) as info:
        run_main(lambda: 0)
    assert info.value.code == 0
