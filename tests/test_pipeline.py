"""run_train.sh end to end: multirun training of two models over two folds, blend, predict, score."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from hms.data.layout import SUBMISSION_COLUMNS, VOTE_COLUMNS
from hms.ensemble.metric import score_submission

REPO = Path(__file__).resolve().parent.parent


def run_pipeline(*args, env=None, cwd=REPO):
    return subprocess.run(["bash", str(REPO / "run_train.sh"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_quick_pipeline_trains_blends_predicts_and_scores(tmp_path):
    root, out = tmp_path / "synthetic", tmp_path / "pipe"
    env = {**os.environ, "PYTHON": sys.executable, "HF_HUB_OFFLINE": "1", "QUICK_PATIENTS": "12",
           "QUICK_EPOCHS": "1", "QUICK_ROOT": str(root)}
    done = run_pipeline("--quick", "--out", str(out), "--", "trainer.max_steps=2", "trainer.batch_size=4",
                        "data.num_workers=0", "seed=3", env=env)
    assert done.returncode == 0, done.stderr[-3000:]

    blend = json.loads((out / "blend.json").read_text())
    assert sorted(blend["weights"]) == ["spec_attn", "stft"]
    assert len(blend["class_bias"]) == 6
    assert sorted(p.name for p in (out / "train" / "stft").iterdir()) == ["fold0", "fold1"]

    submission = pd.read_csv(out / "submission.csv")
    test = pd.read_csv(root / "test.csv")
    assert list(submission.columns) == list(SUBMISSION_COLUMNS)
    assert sorted(submission.eeg_id) == sorted(test.eeg_id.unique())
    np.testing.assert_allclose(submission[list(VOTE_COLUMNS)].sum(axis=1), 1.0, atol=1e-6)

    printed = float((out / "score.txt").read_text().strip().splitlines()[-1])
    expected, _ = score_submission(root / "solution.csv", out / "submission.csv")
    assert np.isfinite(printed) and printed > 0
    assert printed == round(expected, 6)  # score.py prints 6 decimals


def test_an_unknown_option_is_a_one_line_error(tmp_path):
    done = run_pipeline("--fast", env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["run_train.sh: unknown option --fast (see the header of this file)"]
