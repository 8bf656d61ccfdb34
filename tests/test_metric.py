"""score.py matches a hand computation (clipping, zero targets), handles repeated eeg_ids, and refuses
bad submissions with a one-line error naming the file."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hms.layout import VOTE_COLUMNS

REPO = Path(__file__).resolve().parent.parent


def table(eeg_ids, rows) -> pd.DataFrame:
    return pd.DataFrame({"eeg_id": eeg_ids, **dict(zip(VOTE_COLUMNS, np.array(rows, dtype=float).T))})


def score(tmp_path, solution, submission):
    solution.to_csv(tmp_path / "solution.csv", index=False)
    submission.to_csv(tmp_path / "submission.csv", index=False)
    return subprocess.run([sys.executable, str(REPO / "scripts/score.py"), str(tmp_path / "solution.csv"),
                           str(tmp_path / "submission.csv")], capture_output=True, text=True)


# raw votes: normalised to [1, 0, ...] and [0.5, 0.5, 0, ...]
SOLUTION = table([1, 2], [[3, 0, 0, 0, 0, 0], [2, 2, 0, 0, 0, 0]])


def test_matches_a_hand_computation(tmp_path):
    submission = table([2, 1], [[0.25, 0.25, 0.5, 0, 0, 0], [0.5, 0.5, 0, 0, 0, 0]])  # other order
    done = score(tmp_path, SOLUTION, submission)
    assert done.returncode == 0, done.stderr
    # row 1: 1*log(1/0.5); row 2: 2 * 0.5*log(0.5/0.25); zero targets add nothing
    assert float(done.stdout.strip().splitlines()[-1]) == pytest.approx(np.log(2), abs=1e-6)


def test_a_zero_prediction_is_clipped_not_infinite(tmp_path):
    submission = table([1, 2], [[0, 1, 0, 0, 0, 0], [0.25, 0.25, 0.5, 0, 0, 0]])
    done = score(tmp_path, SOLUTION, submission)
    expected = (-np.log(1e-15) + np.log(2)) / 2
    assert float(done.stdout.strip().splitlines()[-1]) == pytest.approx(expected, rel=1e-6)


def test_repeated_eeg_ids(tmp_path):
    # MLE-bench style: the solution repeats eeg_id 1 with other votes; every row is scored
    solution = table([1, 1, 2], [[1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0]])
    submission = table([1, 1, 2], [[0.5, 0.5, 0, 0, 0, 0]] * 2 + [[0, 1, 0, 0, 0, 0]])
    done = score(tmp_path, solution, submission)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "rows 3"
    assert float(done.stdout.strip().splitlines()[-1]) == pytest.approx(2 * np.log(2) / 3, abs=1e-6)
    submission.loc[1, VOTE_COLUMNS[0]], submission.loc[1, VOTE_COLUMNS[1]] = 0.9, 0.1
    done = score(tmp_path, solution, submission)
    assert done.returncode == 1 and "eeg_id 1 is repeated with different predictions" in done.stderr


@pytest.mark.parametrize("change, message", [
    (lambda s: s.assign(seizure_vote=[0.9, 0.25]), "submission.csv rows must sum to 1"),
    (lambda s: s.assign(seizure_vote=[-0.5, 0.25], lpd_vote=[1.5, 0.25]), "submission.csv holds negative"),
    (lambda s: s.iloc[:1], "submission.csv: no prediction for 1 eeg_ids, e.g. [2]"),
    (lambda s: s.drop(columns=["grda_vote"]), "submission.csv: missing columns ['grda_vote']"),
])
def test_bad_submissions_are_refused_naming_the_file(tmp_path, change, message):
    submission = table([1, 2], [[0.5, 0.5, 0, 0, 0, 0], [0.25, 0.25, 0.5, 0, 0, 0]])
    done = score(tmp_path, SOLUTION, change(submission))
    assert done.returncode == 1 and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_solution_row_without_votes_is_refused(tmp_path):
    solution = table([1, 2], [[1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    done = score(tmp_path, solution, table([1, 2], [[1, 0, 0, 0, 0, 0]] * 2))
    assert done.returncode == 1 and "solution.csv: 1 rows have no votes" in done.stderr
