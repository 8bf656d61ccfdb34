"""check_data_folder and scripts/check_data.py on the real fixtures and on a damaged copy."""
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from hms.data.check import check_data_folder, check_folder

from tests.helpers import SCRIPTS

SCRIPT = SCRIPTS / "check_data.py"


@pytest.fixture
def damaged(real_hms, tmp_path) -> Path:
    """A copy of the fixtures with one problem of each kind the folder check looks for."""
    root = tmp_path / "damaged"
    for folder in ("test_eegs", "test_spectrograms", "train_eegs", "train_spectrograms"):
        (root / folder).mkdir(parents=True)
    # The test EEG is 49 s instead of 50 s.
    pd.read_parquet(real_hms / "test_eegs/3911565283.parquet").head(9_800).to_parquet(
        root / "test_eegs/3911565283.parquet", index=False)
    shutil.copyfile(real_hms / "test_spectrograms/853520.parquet", root / "test_spectrograms/853520.parquet")
    shutil.copyfile(real_hms / "train_eegs/1000913311.parquet", root / "train_eegs/1000913311.parquet")
    # A second test row whose files do not exist and which the sample submission lacks.
    test = pd.read_csv(real_hms / "test.csv")
    pd.concat([test, pd.DataFrame({"spectrogram_id": [456], "eeg_id": [123], "patient_id": [1]})]).to_csv(
        root / "test.csv", index=False)
    shutil.copyfile(real_hms / "sample_submission.csv", root / "sample_submission.csv")
    # A train row at offset 10 s on a 50 s EEG, its spectrogram missing.
    train = pd.read_csv(real_hms / "train_highvote_rows.csv", nrows=1).assign(
        eeg_id=1000913311, spectrogram_id=175871552, eeg_label_offset_seconds=10.0)
    train.to_csv(root / "train.csv", index=False)
    return root


def test_real_fixtures_have_no_problems(real_hms):
    report = check_folder(real_hms, progress=False, only="test")
    assert report.problems == [] and report.notes == []
    assert report.checked == ["train.csv skipped (--only test)", "test.csv (1 row)", "sample_submission.csv (1 row)",
                              "1 test_eegs file", "1 test_spectrograms file"]


def test_damaged_copy_problems(damaged):
    assert check_data_folder(damaged, progress=False) == [
        f"{damaged}/sample_submission.csv: eeg_ids do not match test.csv (missing [123], unexpected [])",
        f"{damaged}/train_eegs/1000913311.parquet: too short: 10000 samples (50 s) does not cover offset 10 s + 50 s",
        f"{damaged}/train_spectrograms/175871552.parquet: file not found",
        f"{damaged}/test_eegs/3911565283.parquet: too short: 9800 samples (49 s) does not cover offset 0 s + 50 s",
        f"{damaged}/test_eegs/123.parquet: file not found",
        f"{damaged}/test_spectrograms/456.parquet: file not found",
    ]


def test_folder_without_csvs(tmp_path):
    assert check_data_folder(tmp_path, progress=False) == [
        f"{tmp_path}/train.csv: file not found (a test-only folder: --only test)",
        f"{tmp_path}/test.csv: file not found (a train-only folder: --only train)"]
    assert check_data_folder(tmp_path / "nope", progress=False) == [f"{tmp_path / 'nope'}: data folder not found"]


def test_script_exit_codes(real_hms, damaged):
    good = subprocess.run([sys.executable, str(SCRIPT), "--root", str(real_hms), "--no-progress", "--only", "test"],
                          capture_output=True, text=True, timeout=120)
    assert good.returncode == 0, good.stderr
    assert good.stdout.splitlines() == [
        "check_data: checked train.csv skipped (--only test); test.csv (1 row); sample_submission.csv (1 row); "
        "1 test_eegs file; 1 test_spectrograms file", f"check_data: 0 problems, 0 notes in {real_hms}"]
    assert good.stderr == ""
    bad = subprocess.run([sys.executable, str(SCRIPT), "--root", str(damaged), "--no-progress"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    lines = bad.stdout.splitlines()
    assert len(lines) == 8 and lines[-1] == f"check_data: 6 problems, 0 notes in {damaged}"
    assert lines[-2].startswith("check_data: checked train.csv (1 row); test.csv (2 rows);")
    assert bad.stderr.splitlines() == [f"error: check_data found 6 problems in {damaged} (listed on stdout)"]


def test_a_longer_test_file_is_a_note_not_a_problem(real_hms, tmp_path):
    root = tmp_path / "longer"
    shutil.copytree(real_hms, root, ignore=shutil.ignore_patterns("train_*"))
    eeg = pd.read_parquet(real_hms / "test_eegs/3911565283.parquet")
    pd.concat([eeg, eeg.head(2_000)]).to_parquet(root / "test_eegs/3911565283.parquet", index=False)
    report = check_folder(root, progress=False, only="test")
    assert report.problems == [] and report.notes == [
        f"{root}/test_eegs/3911565283.parquet: 12000 samples, longer than Kaggle's test eeg files (10000): "
        "prediction reads its first window"]
