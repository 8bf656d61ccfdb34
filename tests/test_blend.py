"""Blending recovers known weights and biases, beats the mean on held-out folds, survives identical
inputs, refuses misaligned files; score.py matches a hand computation."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import softmax

from hms.data.layout import PRED_COLUMNS, VOTE_COLUMNS
from hms.ensemble.blend import BlendError, align, apply_blend, blend_logits, blend_report, fit_blend, read_oof

REPO = Path(__file__).resolve().parent.parent


def synthesise(n=3000, weights=(0.8, 0.3), bias=(0.1, 0.3, -0.2, 0.4, -0.1, -0.5), seed=0):
    """Two models' log-probs and targets drawn from softmax(sum w log p + b)."""
    rng = np.random.default_rng(seed)
    logp = np.stack([np.log(softmax(rng.normal(0, 1.5, (n, 6)), axis=1)) for _ in weights])
    truth = softmax(blend_logits(logp, np.array(weights), np.array(bias)), axis=1)
    votes = np.stack([rng.multinomial(200, p) for p in truth])
    return logp, votes / votes.sum(axis=1, keepdims=True)


def frames(logp, target, seed=0):
    rng = np.random.default_rng(seed)
    n = target.shape[1] if target.ndim == 3 else len(target)
    base = pd.DataFrame({"eeg_id": np.arange(n), "label_id": np.arange(n) + 10**6,
                         "patient_id": rng.integers(0, 300, n), "n_votes": 15})
    base[list(VOTE_COLUMNS)] = target
    out = []
    for i, lp in enumerate(logp):
        f = base.copy()
        f[list(PRED_COLUMNS)] = np.exp(lp)
        out.append((f"model{i}", f))
    return out


def test_recovers_known_weights_and_bias():
    logp, target = synthesise()
    w, b = fit_blend(logp, target, l2=0.0)
    np.testing.assert_allclose(w, [0.8, 0.3], atol=0.05)
    true_bias = np.array([0.1, 0.3, -0.2, 0.4, -0.1, -0.5])
    np.testing.assert_allclose(b - b.mean(), true_bias - true_bias.mean(), atol=0.08)


def test_blend_beats_the_mean_on_held_out_folds():
    logp, target = synthesise(seed=1)
    named = frames(logp, target)
    base, aligned = align(named)
    result = blend_report([n for n, _ in named], base, aligned, l2=1e-3)
    r = result["report"]
    assert r["blend_cross_validated"]["kl_10plus"] < r["mean_of_probabilities"]["kl_10plus"] - 0.02
    assert set(result["weights"]) == {"model0", "model1"} and len(result["class_bias"]) == 6


def test_identical_inputs_share_the_weight():
    logp, target = synthesise(seed=2)
    twin = np.stack([logp[0], logp[0]])
    w, b = fit_blend(twin, target, l2=1e-3)
    assert np.all(np.isfinite(w)) and w[0] == pytest.approx(w[1], abs=1e-4)
    single_w, single_b = fit_blend(twin[:1], target, l2=0.0)
    assert w.sum() == pytest.approx(single_w[0], rel=0.05)


def test_misaligned_or_different_targets_are_refused():
    logp, target = synthesise(n=200)
    named = frames(logp, target)
    with pytest.raises(BlendError, match="model1: its rows differ"):
        align([named[0], ("model1", named[1][1].iloc[:-1])])
    changed = named[1][1].copy()
    changed.loc[0, VOTE_COLUMNS[0]] += 0.1
    with pytest.raises(BlendError, match="model1: its targets differ"):
        align([named[0], ("model1", changed)])


def test_fold_folders_are_concatenated_and_apply_matches(tmp_path):
    logp, target = synthesise(n=400)
    (_, frame), = frames(logp[:1], target)
    for k, part in enumerate((frame.iloc[:200], frame.iloc[200:])):
        (tmp_path / "stft" / f"fold{k}").mkdir(parents=True)
        part.to_csv(tmp_path / "stft" / f"fold{k}" / "oof.csv", index=False)
    name, oof = read_oof(tmp_path / "stft")
    assert name == "stft" and len(oof) == 400
    blend = {"weights": {"stft": 1.0}, "class_bias": [0.0] * 6}
    np.testing.assert_allclose(apply_blend(blend, {"stft": np.exp(logp[0])}), np.exp(logp[0]), atol=1e-6)


def test_blend_script_writes_blend_json(tmp_path):
    logp, target = synthesise(n=500)
    paths = []
    for name, f in frames(logp, target):
        f.to_csv(tmp_path / f"{name}.csv", index=False)
        paths.append(str(tmp_path / f"{name}.csv"))
    done = subprocess.run([sys.executable, str(REPO / "scripts/blend_weights.py"), *paths, "--out",
                           str(tmp_path / "blend.json")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    blend = json.loads((tmp_path / "blend.json").read_text())
    assert set(blend) >= {"weights", "class_bias", "report"}


def test_score_matches_a_hand_computation(tmp_path):
    solution = pd.DataFrame({"eeg_id": [1, 2], **{c: v for c, v in zip(VOTE_COLUMNS, [[1, 0.5], [0, 0.5], [0, 0], [0, 0], [0, 0], [0, 0]])}})
    submission = pd.DataFrame({"eeg_id": [1, 2], **{c: v for c, v in zip(VOTE_COLUMNS, [[0.5, 0.25], [0.5, 0.25], [0, 0.5], [0, 0], [0, 0], [0, 0]])}})
    solution.to_csv(tmp_path / "solution.csv", index=False)
    submission.to_csv(tmp_path / "submission.csv", index=False)
    # row 1: 1*log(1/0.5); row 2: 0.5*log(0.5/0.25)*2; the zero predictions are clipped but y=0 there
    expected = (np.log(2) + np.log(2)) / 2
    done = subprocess.run([sys.executable, str(REPO / "scripts/score.py"), str(tmp_path / "solution.csv"),
                           str(tmp_path / "submission.csv")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.strip().splitlines()[-1]) == pytest.approx(expected, abs=1e-6)
    # a zero prediction where the target is not zero is clipped to 1e-15, not infinite
    submission.loc[0, VOTE_COLUMNS[0]], submission.loc[0, VOTE_COLUMNS[1]] = 0.0, 1.0
    submission.to_csv(tmp_path / "submission.csv", index=False)
    done = subprocess.run([sys.executable, str(REPO / "scripts/score.py"), str(tmp_path / "solution.csv"),
                           str(tmp_path / "submission.csv")], capture_output=True, text=True)
    assert float(done.stdout.strip().splitlines()[-1]) == pytest.approx((-np.log(1e-15) + np.log(2)) / 2, rel=1e-6)
    submission.loc[1, VOTE_COLUMNS[0]] = 0.9  # row no longer sums to 1
    submission.to_csv(tmp_path / "submission.csv", index=False)
    done = subprocess.run([sys.executable, str(REPO / "scripts/score.py"), str(tmp_path / "solution.csv"),
                           str(tmp_path / "submission.csv")], capture_output=True, text=True)
    assert done.returncode == 1 and "submission.csv" in done.stderr and "sum to 1" in done.stderr
