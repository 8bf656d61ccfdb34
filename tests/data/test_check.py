"""check_data_folder and scripts/check_data.py on the real fixtures and on a damaged copy."""
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from hms.data.check import check_data_folder

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
    assert check_data_folder(real_hms, progress=False) == []


def test_damaged_copy_problems(damaged):
    assert check_data_folder(damaged, progress=False) == [
        f"{damaged}/sample_submission.csv: eeg_ids do not match test.csv (missing [123], unexpected [])",
        f"{damaged}/train_eegs/1000913311.parquet: too short: 10000 samples (50 s) does not cover offset 10 s + 50 s",
        f"{damaged}/train_spectrograms/175871552.parquet: file not found",
        f"{damaged}/test_eegs/3911565283.parquet: 9800 samples, test eeg files must hold exactly 10000",
        f"{damaged}/test_eegs/123.parquet: file not found",
        f"{damaged}/test_spectrograms/456.parquet: file not found",
    ]


def test_folder_without_csvs(tmp_path):
    assert check_data_folder(tmp_path, progress=False) == [f"{tmp_path}: neither train.csv nor test.csv found"]
    assert check_data_folder(tmp_path / "nope", progress=False) == [f"{tmp_path / 'nope'}: data folder not found"]


def test_script_exit_codes(real_hms, damaged):
    good = subprocess.run([sys.executable, str(SCRIPT), "--root", str(real_hms), "--no-progress"],
                          capture_output=True, text=True, timeout=120)
    assert good.returncode == 0, good.stderr
    assert good.stdout.splitlines() == [f"check_data: 0 problems in {real_hms}"]
    bad = subprocess.run([sys.executable, str(SCRIPT), "--root", str(damaged), "--no-progress"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    lines = bad.stdout.splitlines()
    assert len(lines) == 7 and lines[-1] == f"check_data: 6 problems in {damaged}"
    assert "Traceback" not in bad.stderr
