"""The Kaggle readers on the real competition files (tests/fixtures/hms)."""
import numpy as np
import pandas as pd
import pytest

from hms import layout
from hms.data.kaggle import (DataError, check_window, eeg_path, read_eeg, read_spectrogram,
                             read_submission_csv, read_test_csv, read_train_csv, spectrogram_path)


def test_test_csv_and_sample_submission(real_hms):
    test = read_test_csv(real_hms / "test.csv")
    assert list(test.columns) == list(layout.TEST_COLUMNS)
    assert test.to_dict("records") == [{"spectrogram_id": 853520, "eeg_id": 3911565283, "patient_id": 6885}]
    assert all(test[c].dtype == np.int64 for c in test.columns)
    sub = read_submission_csv(real_hms / "sample_submission.csv")
    assert list(sub.columns) == list(layout.SUBMISSION_COLUMNS)
    assert sub["eeg_id"].tolist() == [3911565283]
    np.testing.assert_allclose(sub[list(layout.VOTE_COLUMNS)].to_numpy(), np.full((1, 6), 1 / 6))


def test_paths(real_hms):
    assert eeg_path(real_hms, "test", 3911565283) == real_hms / "test_eegs" / "3911565283.parquet"
    assert spectrogram_path(real_hms, "train", 7) == real_hms / "train_spectrograms" / "7.parquet"
    with pytest.raises(ValueError, match="split"):
        eeg_path(real_hms, "val", 1)


def test_test_eeg(real_hms):
    eeg = read_eeg(eeg_path(real_hms, "test", 3911565283))
    assert eeg.shape == (10_000, 20) and eeg.dtype == np.float32
    assert not np.isnan(eeg).any()
    # First row, Fp1 F3 C3 and EKG, as stored in the file.
    np.testing.assert_allclose(eeg[0, [0, 1, 2, 19]], [9.21, -47.46, 15.10, 171.68], atol=1e-4)
    np.testing.assert_allclose(eeg[-1, [0, 19]], [-3.26, -54.95], atol=1e-4)
    np.testing.assert_allclose(eeg.astype(np.float64).mean(axis=0)[:2], [-19.991, -33.769], atol=1e-3)


def test_train_eeg_matches_pandas(real_hms):
    path = eeg_path(real_hms, "train", 1000913311)
    eeg = read_eeg(path)
    assert eeg.shape == (10_000, 20)
    expected = pd.read_parquet(path)[list(layout.EEG_COLUMNS)].to_numpy(np.float32)
    np.testing.assert_array_equal(eeg, expected)
    np.testing.assert_allclose(eeg[0, [0, 19]], [-105.85, 1404.93], atol=1e-3)
    check_window(len(eeg), 0.0, path)
    with pytest.raises(DataError, match="too short"):
        check_window(len(eeg), 2.0, path)


def test_spectrogram(real_hms):
    time, power = read_spectrogram(spectrogram_path(real_hms, "test", 853520))
    assert time.dtype == np.int64 and power.dtype == np.float32
    assert power.shape == (300, 400)
    np.testing.assert_array_equal(time, np.arange(1, 600, 2))
    assert not np.isnan(power).any()
    np.testing.assert_allclose(power[0, :3], [14.91, 17.11, 11.66], atol=1e-4)  # LL_0.59 .. LL_0.98
    np.testing.assert_allclose(power[-1, -3:], [0.46, 0.54, 0.29], atol=1e-4)  # RP_19.53 .. RP_19.92
    check_window(len(time), 0.0, "spec", kind="spectrogram")
    with pytest.raises(DataError, match="too short"):
        check_window(len(time), 2.0, "spec", kind="spectrogram")


def test_train_highvote_rows(real_hms):
    rows = read_train_csv(real_hms / "train_highvote_rows.csv")
    assert list(rows.columns) == list(layout.TRAIN_COLUMNS)
    assert len(rows) == 5939 and rows["patient_id"].nunique() == 1063
    assert rows["label_id"].is_unique and rows["eeg_id"].nunique() == 5939
    assert rows["eeg_id"].dtype == np.int64 and rows["eeg_label_offset_seconds"].dtype == np.float64
    first = rows.iloc[0]
    assert (first["eeg_id"], first["label_id"], first["patient_id"]) == (2334759994, 2122005863, 37778)
    assert first["expert_consensus"] == "Other" and first["eeg_label_offset_seconds"] == 10.0
    votes = rows[list(layout.VOTE_COLUMNS)].sum(axis=1)
    assert (votes.median(), votes.min(), votes.max()) == (15, 10, 28)
    assert (rows["expert_consensus"] == "Other").mean() == pytest.approx(0.51, abs=0.01)


def test_test_csv_repeated_rows_pass_and_conflicting_ones_are_refused(tmp_path):
    rows = "spectrogram_id,eeg_id,patient_id\n853520,3911565283,6885\n853520,3911565283,6885\n"
    (tmp_path / "repeated.csv").write_text(rows)
    assert len(read_test_csv(tmp_path / "repeated.csv")) == 2  # MLE-bench graders repeat rows
    (tmp_path / "conflict.csv").write_text(rows + "9,3911565283,6885\n")
    with pytest.raises(DataError, match="conflict.csv.*3911565283.*another spectrogram_id"):
        read_test_csv(tmp_path / "conflict.csv")
