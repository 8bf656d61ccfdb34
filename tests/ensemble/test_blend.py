"""Blending recovers known weights and biases, beats the mean on held-out folds, survives identical
inputs, refuses misaligned files, and its script fits and applies blend.json."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy.special import softmax

from hms.layout import PRED_COLUMNS, VOTE_COLUMNS
from hms.ensemble.blend import (BlendError, align, apply_blend, blend_logits, blend_report, fit_blend,
                                read_oof)
from hms.metric import kl_per_row

from tests.helpers import REPO
TRUE_BIAS = np.array([0.1, 0.3, -0.2, 0.4, -0.1, -0.5])


def synthesise(n=3000, weights=(0.8, 0.3), bias=TRUE_BIAS, seed=0):
    """M models' log-probs and 200-vote targets drawn from softmax(sum w log p + b)."""
    rng = np.random.default_rng(seed)
    logp = np.stack([np.log(softmax(rng.normal(0, 1.5, (n, 6)), axis=1)) for _ in weights])
    truth = softmax(blend_logits(logp, np.array(weights), np.array(bias)), axis=1)
    votes = np.stack([rng.multinomial(200, p) for p in truth])
    return logp, votes / votes.sum(axis=1, keepdims=True)


def frames(logp, target, n_votes=15, seed=0):
    """oof.csv-like frames, one per model, with patient ids for grouped cross-fitting."""
    rng = np.random.default_rng(seed)
    n = len(target)
    base = pd.DataFrame({"eeg_id": np.arange(n), "label_id": np.arange(n) + 10**6,
                         "patient_id": rng.integers(0, 300, n), "n_votes": n_votes})
    base[list(VOTE_COLUMNS)] = target
    out = []
    for i, lp in enumerate(logp):
        f = base.copy()
        f[list(PRED_COLUMNS)] = np.exp(lp)
        out.append((f"model{i}", f))
    return out


def run_script(*args):
    return subprocess.run([sys.executable, str(REPO / "scripts/blend_weights.py"), *map(str, args)],
                          capture_output=True, text=True)


def test_recovers_known_weights_and_bias():
    logp, target = synthesise()
    w, b = fit_blend(logp, target, l2=0.0)
    np.testing.assert_allclose(w, [0.8, 0.3], atol=0.05)
    # softmax is shift-invariant, so the bias is known up to a constant
    np.testing.assert_allclose(b - b.mean(), TRUE_BIAS - TRUE_BIAS.mean(), atol=0.08)


def test_per_class_and_non_negative_options():
    logp, target = synthesise(weights=(0.8, -0.2), seed=3)
    w, _ = fit_blend(logp, target, l2=0.0, per_class=True)
    assert w.shape == (2, 6)
    np.testing.assert_allclose(w, [[0.8] * 6, [-0.2] * 6], atol=0.15)
    w, _ = fit_blend(logp, target, l2=0.0, non_negative=True)
    assert w[1] == pytest.approx(0.0, abs=1e-6) and w[0] > 0.5


def test_blend_beats_the_mean_on_held_out_folds():
    logp, target = synthesise(seed=1)
    named = frames(logp, target)
    base, aligned = align(named)
    result = blend_report([n for n, _ in named], base, aligned, l2=1e-3)
    r = result["report"]
    assert r["blend_cross_validated"]["kl_10plus"] < r["mean_of_probabilities"]["kl_10plus"] - 0.02
    assert r["cv_groups"] == "patient_id" and r["fit_rows"] == 3000
    assert set(result["weights"]) == {"model0", "model1"} and len(result["class_bias"]) == 6


def test_fit_uses_only_high_vote_rows():
    logp, target = synthesise(n=1000, seed=4)
    named = frames(logp, target, n_votes=np.where(np.arange(1000) < 600, 3, 12))
    base, aligned = align(named)
    result = blend_report(["a", "b"], base, aligned)
    assert result["report"]["fit_rows"] == 400 and result["report"]["rows_min_votes"] == 400
    w, b = fit_blend(aligned[:, 600:], target[600:])
    np.testing.assert_allclose([result["weights"]["a"], result["weights"]["b"]], w, atol=1e-6)


@pytest.mark.parametrize("l2", [0.0, 1e-3])
def test_identical_inputs_share_the_weight(l2):
    logp, target = synthesise(seed=2)
    twin = np.stack([logp[0], logp[0] + 1e-9])
    w, b = fit_blend(twin, target, l2=l2)
    assert np.all(np.isfinite(w)) and np.all(np.isfinite(b))
    assert w[0] == pytest.approx(w[1], abs=1e-3)
    single_w, single_b = fit_blend(twin[:1], target, l2=0.0)
    twin_kl = kl_per_row(target, softmax(blend_logits(twin, w, b), axis=1)).mean()
    single_kl = kl_per_row(target, softmax(blend_logits(twin[:1], single_w, single_b), axis=1)).mean()
    assert twin_kl == pytest.approx(single_kl, abs=1e-4)


def test_misaligned_or_different_targets_are_refused():
    logp, target = synthesise(n=200)
    named = frames(logp, target)
    with pytest.raises(BlendError, match="model1: its rows"):
        align([named[0], ("model1", named[1][1].iloc[:-1])])
    shuffled = named[1][1].sample(frac=1.0, random_state=0)  # same rows, other order: fine
    align([named[0], ("model1", shuffled)])
    changed = named[1][1].copy()
    changed.loc[0, VOTE_COLUMNS[0]] += 0.1
    with pytest.raises(BlendError, match="model1: its targets differ"):
        align([named[0], ("model1", changed)])


def test_script_refuses_a_misaligned_file_naming_it(tmp_path):
    logp, target = synthesise(n=200)
    (_, a), (_, b) = frames(logp, target)
    a.to_csv(tmp_path / "a.csv", index=False)
    b.assign(eeg_id=b.eeg_id + 1).to_csv(tmp_path / "b.csv", index=False)
    done = run_script(tmp_path / "a.csv", tmp_path / "b.csv", "--out", tmp_path / "blend.json")
    assert done.returncode == 1 and "b: its rows" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "blend.json").exists()
    b.drop(columns=[PRED_COLUMNS[0]]).to_csv(tmp_path / "b.csv", index=False)
    done = run_script(tmp_path / "a.csv", tmp_path / "b.csv", "--out", tmp_path / "blend.json")
    assert done.returncode == 1 and "b.csv: missing columns ['seizure_pred']" in done.stderr


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


def test_script_fits_then_applies_by_name_and_by_order(tmp_path):
    logp, target = synthesise(n=600)
    paths = []
    for name, f in frames(logp, target):
        f.to_csv(tmp_path / f"{name}.csv", index=False)
        paths.append(tmp_path / f"{name}.csv")
    done = run_script(*paths, "--out", tmp_path / "blend.json")
    assert done.returncode == 0, done.stderr
    assert "blend (cross-validated)" in done.stdout and "mean of probabilities" in done.stdout
    blend = json.loads((tmp_path / "blend.json").read_text())
    assert set(blend["weights"]) == {"model0", "model1"} and blend["options"]["min_votes"] == 10
    assert set(blend["report"]["models"]["model0"]) == {"kl_10plus", "kl_all"}

    # per-model test predictions, named like the blend's inputs, then renamed (matched by order)
    test_logp = logp[:, :5]
    expected = softmax(blend_logits(np.log(np.clip(np.exp(test_logp), 1e-7, 1)),
                                    np.array([blend["weights"]["model0"], blend["weights"]["model1"]]),
                                    np.array(blend["class_bias"])), axis=1)
    for stems in (("model0", "model1"), ("first", "second")):
        preds = []
        for stem, lp in zip(stems, test_logp):
            pd.DataFrame({"eeg_id": np.arange(5), **dict(zip(VOTE_COLUMNS, np.exp(lp).T))}).to_csv(
                tmp_path / f"{stem}.csv", index=False)
            preds.append(tmp_path / f"{stem}.csv")
        done = run_script("--apply", tmp_path / "blend.json", *preds, "--out", tmp_path / "sub.csv")
        assert done.returncode == 0, done.stderr
        sub = pd.read_csv(tmp_path / "sub.csv")
        assert sub.eeg_id.tolist() == list(range(5))
        np.testing.assert_allclose(sub[list(VOTE_COLUMNS)], expected, atol=1e-9)
    assert "matched by order" in done.stderr
    done = run_script("--apply", tmp_path / "blend.json", preds[0], "--out", tmp_path / "sub.csv")
    assert done.returncode == 1 and "needs predictions of ['model0', 'model1']" in done.stderr
