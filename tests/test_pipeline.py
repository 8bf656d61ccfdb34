"""run_train.sh end to end on a tiny synthetic set: Hydra multirun of two models x two folds, the
pseudo-label stage (--pseudo-label: stage 1 on the high-vote rows, pseudo-labels of the low ones, stage 2
on both), blend, predict, score. One pipeline run (about a minute and a half on 2 cores) feeds every
check of its outputs; the option checks stop before Python starts."""
import json
import math
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hms.layout import SUBMISSION_COLUMNS, VOTE_COLUMNS
from hms.metric import score_submission
from tests.helpers import HMS15_TINY

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "run_train.sh"
MODELS = ["spec_attn", "stft"]
FOLDS = ["fold0", "fold1"]

# The repo's pytest warning filters, also when this file runs under another config.
_PYTEST = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
pytestmark = [pytest.mark.filterwarnings(f) for f in _PYTEST.get("filterwarnings", [])]

# Tiny: 12 patients, 1 epoch of at most 2 optimizer steps of 4 samples, no loader workers.
TINY = {"QUICK_PATIENTS": "12", "QUICK_EPOCHS": "1", "QUICK_MAX_STEPS": "2", "QUICK_BATCH": "4",
        "QUICK_WORKERS": "0", "QUICK_FOLDS": "0,1"}


def run_script(*args, env_extra=None, cwd=REPO, timeout=300) -> subprocess.CompletedProcess:
    # One torch thread: on 2 shared cores two threads spin against each other (see test_predict.py).
    env = {**os.environ, "PYTHON": sys.executable, "HF_HUB_OFFLINE": "1", "LAUNCHER": "basic",
           "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """(data root, output folder, finished process) of one tiny --quick --pseudo-label run, launched from
    the temp folder with relative paths (they are relative to the caller, not to the repo). The plain
    --quick run differs only in training on every row and blending stage 1 (train/), not train_pl/."""
    base = tmp_path_factory.mktemp("pipeline")
    done = run_script("--quick", "--pseudo-label", "--out", "pipe", env_extra={**TINY, "QUICK_ROOT": "data"},
                      cwd=base)
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    return base / "data", base / "pipe", done


@pytest.mark.slow
def test_quick_trains_every_model_on_every_fold(pipeline):
    root, out, done = pipeline
    assert (root / "stats.json").exists()  # generated under QUICK_ROOT, not datamount/
    assert json.loads((root / "stats.json").read_text())["generator"]["patients"] == 12
    assert sorted(p.name for p in (out / "train").iterdir() if p.is_dir()) == MODELS
    for model in MODELS:
        assert sorted(p.name for p in (out / "train" / model).iterdir()) == FOLDS
        for fold in FOLDS:
            run = out / "train" / model / fold
            assert (run / "checkpoint.pt").is_file()
            assert len(pd.read_csv(run / "oof.csv")) > 0
            metrics = json.loads((run / "metrics.json").read_text())
            assert metrics["steps"] == 2 and metrics["fold"] == int(fold[-1])  # QUICK_MAX_STEPS reached
    assert done.stdout.strip().splitlines()[-1] == f"pipeline: {out}"


@pytest.mark.slow
def test_blend_has_a_weight_per_model_and_six_class_biases(pipeline):
    _, out, _ = pipeline
    blend = json.loads((out / "blend.json").read_text())
    assert sorted(blend["weights"]) == MODELS
    assert all(math.isfinite(w) for w in blend["weights"].values())
    assert len(blend["class_bias"]) == 6 and all(math.isfinite(b) for b in blend["class_bias"])


@pytest.mark.slow
def test_submission_has_one_row_per_test_eeg_summing_to_one(pipeline):
    root, out, _ = pipeline
    submission = pd.read_csv(out / "submission.csv")
    test = pd.read_csv(root / "test.csv")
    assert list(submission.columns) == list(SUBMISSION_COLUMNS)
    assert list(SUBMISSION_COLUMNS) == ["eeg_id", "seizure_vote", "lpd_vote", "gpd_vote", "lrda_vote",
                                        "grda_vote", "other_vote"]
    assert submission.eeg_id.is_unique
    assert sorted(submission.eeg_id) == sorted(test.eeg_id.unique())
    probs = submission[list(VOTE_COLUMNS)].to_numpy()
    assert np.isfinite(probs).all() and (probs > 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.slow
def test_score_is_what_score_py_computes(pipeline):
    root, out, _ = pipeline
    printed = (out / "score.txt").read_text().strip().splitlines()[-1]
    score = float(printed)
    assert math.isfinite(score) and score > 0
    again = subprocess.run([sys.executable, str(REPO / "scripts/score.py"), str(root / "solution.csv"),
                            str(out / "submission.csv")], capture_output=True, text=True, cwd=REPO)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().splitlines()[-1] == printed
    expected, rows = score_submission(root / "solution.csv", out / "submission.csv")
    assert rows == len(pd.read_csv(out / "submission.csv"))
    assert score == pytest.approx(expected, abs=5e-7)  # score.py prints 6 decimals


@pytest.mark.parametrize("args, message", [
    (["--fast"], "run_train.sh: unknown option --fast (see the header of this file)"),
    (["--quick", "--out"], "run_train.sh: --out needs a value (see the header of this file)"),
])
def test_a_bad_option_exits_2_with_one_line(tmp_path, args, message):
    done = run_script(*args, cwd=tmp_path, timeout=30)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [message]
    assert done.stdout == ""
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_an_output_folder_with_other_folds_is_refused(tmp_path):
    (tmp_path / "pipe/train/stft/fold4").mkdir(parents=True)
    done = run_script("--quick", "--out", tmp_path / "pipe", env_extra={**TINY, "QUICK_ROOT": str(tmp_path / "data")},
                      timeout=30)
    assert done.returncode == 2
    assert "holds fold4, not in --folds 0,1" in done.stderr
    assert not (tmp_path / "data").exists()  # refused before any training or data generation




@pytest.mark.slow
def test_a_staged_recipe_pretrains_then_starts_the_main_run_from_its_weights(small_set, tmp_path):
    done = run_script("--experiments", "hms15_cfg1", "--folds", "0", "--data-root", small_set, "--out", tmp_path / "out",
                      "--", *HMS15_TINY, timeout=600)
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    pretrain, main = tmp_path / "out/pretrain/hms15_cfg1/fold0", tmp_path / "out/train/hms15_cfg1/fold0"
    first = torch.load(pretrain / "checkpoint.pt", weights_only=True)
    second = torch.load(main / "checkpoint.pt", weights_only=True)
    assert first["config"]["name"] == "hms15_pretrain" and first["config"]["optim"]["lr"] == 1e-5
    assert first["config"]["seed"] == 1001 and second["config"]["name"] == "hms15_cfg1"
    assert second["config"]["init_from"] == str(pretrain / "checkpoint.pt")
    assert second["config"]["sched"]["_target_"].endswith("cosine_per_epoch")
    assert (tmp_path / "out/submission.csv").is_file() and "== pretrain stage hms15_pretrain" in done.stdout


@pytest.mark.slow
def test_quick_with_pseudo_labels_trains_a_second_stage_on_them(pipeline):
    _, out, done = pipeline
    labels = pd.read_csv(out / "pseudo_labels.csv")
    assert len(labels) > 0 and (labels.n_votes <= 7).all()
    for model in MODELS:
        for fold in FOLDS:
            stage1 = torch.load(out / "train" / model / fold / "checkpoint.pt", weights_only=True)
            assert stage1["config"]["sampling"]["train_min_votes"] == 8  # stage 1: the high rows only
            stage2 = json.loads((out / "train_pl" / model / fold / "metrics.json").read_text())
            assert stage2["steps"] == 2 and math.isfinite(stage2["val_kl_all"])
    assert done.stdout.count("val_kl stage 1") == len(MODELS) * len(FOLDS)
