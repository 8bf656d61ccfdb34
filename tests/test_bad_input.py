"""Bad input: one test per case, each on a damaged copy of a real fixture built in tmp_path.

Each case must give a one-line DataError naming the file and the problem, or a documented,
logged repair (NaN kept, all-NaN channel warned, zero-vote rows dropped).
"""
import logging
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hms import layout
from hms.data.check import check_data_folder
from hms.data.kaggle import DataError, read_eeg, read_spectrogram, read_train_csv

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
    assert check_data_folder(tmp_path, progress=False) == [
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
