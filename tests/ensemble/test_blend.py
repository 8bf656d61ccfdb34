"""Blending recovers known weights and biases, beats the mean on held-out folds, survives identical
inputs, refuses misaligned files; every method (logprob, hms3, stack, greedy selection) gives its known
answer on synthetic OOFs, round-trips through blend.json into --apply and predict's combine_models, and a
bad or mismatched blend.json is refused in one line."""
import json
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.special import log_softmax, softmax
from sklearn.model_selection import KFold

from hms.layout import PRED_COLUMNS, VOTE_COLUMNS
from hms.ensemble.blend import (BlendError, align, apply_blend, blend_logits, blend_report, fit_blend, fit_hms3,
                                fit_method, format_report, greedy_select, kl_of_logits, read_oof)
from hms.ensemble.predict import combine_models
from hms.metric import kl_per_row

from tests.helpers import run_script_here
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


def run_script(capsys, *args) -> subprocess.CompletedProcess:
    return run_script_here(capsys, "blend_weights.py", *args)


def known_answer(n=1200, noise_models=3, seed=0):
    """Log-probabilities [2 + noise_models, n, 6] and targets with a known answer: targets from a
    Dirichlet over the 6 classes; two informative models, each the true log-target plus its own noise;
    pure-noise models, confident (random logits of scale 2: a near-uniform one would help the mean of
    log-probabilities as a smoother, and greedy selection rightly keeps such a model)."""
    rng = np.random.default_rng(seed)
    target = rng.dirichlet(np.full(6, 0.5), n)
    log_target = np.log(np.clip(target, 1e-4, 1))
    informative = [log_softmax(log_target + rng.normal(0, 1.0, (n, 6)), axis=1) for _ in range(2)]
    noise = [log_softmax(rng.normal(0, 2.0, (n, 6)), axis=1) for _ in range(noise_models)]
    return np.stack(informative + noise), target


def write_oofs(directory, logp, target) -> list:
    """oof csvs <name>.csv of `frames`, the inputs of blend_weights.py."""
    paths = []
    for name, frame in frames(logp, target):
        paths.append(directory / f"{name}.csv")
        frame.to_csv(paths[-1], index=False)
    return paths


def write_predictions(directory, names, probs) -> list:
    """Per-model test prediction csvs (the sample_submission format), named <name>.csv."""
    paths = []
    for name, p in zip(names, probs):
        paths.append(directory / f"{name}.csv")
        pd.DataFrame({"eeg_id": np.arange(len(p)), **dict(zip(VOTE_COLUMNS, p.T))}).to_csv(paths[-1], index=False)
    return paths


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
    result = blend_report([n for n, _ in named], base, aligned, options={"logprob": {"l2": 1e-3}})
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


def test_script_refuses_a_misaligned_file_naming_it(tmp_path, capsys):
    logp, target = synthesise(n=200)
    (_, a), (_, b) = frames(logp, target)
    a.to_csv(tmp_path / "a.csv", index=False)
    b.assign(eeg_id=b.eeg_id + 1).to_csv(tmp_path / "b.csv", index=False)
    done = run_script(capsys, tmp_path / "a.csv", tmp_path / "b.csv", "--out", tmp_path / "blend.json")
    assert done.returncode == 1 and "b: its rows" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "blend.json").exists()
    b.drop(columns=[PRED_COLUMNS[0]]).to_csv(tmp_path / "b.csv", index=False)
    done = run_script(capsys, tmp_path / "a.csv", tmp_path / "b.csv", "--out", tmp_path / "blend.json")
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


def test_script_fits_then_applies_by_name_or_with_match_by_order(tmp_path, capsys):
    logp, target = synthesise(n=600)
    paths = write_oofs(tmp_path, logp, target)
    done = run_script(capsys, *paths, "--out", tmp_path / "blend.json")
    assert done.returncode == 0, done.stderr
    assert "blend logprob (cross-validated)" in done.stdout and "mean of probabilities" in done.stdout
    blend = json.loads((tmp_path / "blend.json").read_text())
    assert set(blend["weights"]) == {"model0", "model1"} and blend["options"]["min_votes"] == 10
    assert set(blend["report"]["models"]["model0"]) == {"kl_10plus", "kl_all"} and blend["method"] == "logprob"
    assert (tmp_path / "blend.png").read_bytes()[:4] == b"\x89PNG"  # the chart, written by default

    # per-model test predictions, named like the blend's inputs, then renamed (refused unless --match-by-order)
    test_logp = logp[:, :5]
    expected = softmax(blend_logits(np.log(np.clip(np.exp(test_logp), 1e-7, 1)),
                                    np.array([blend["weights"]["model0"], blend["weights"]["model1"]]),
                                    np.array(blend["class_bias"])), axis=1)
    for stems, flags in ((("model0", "model1"), []), (("first", "second"), ["--match-by-order"])):
        preds = write_predictions(tmp_path, stems, np.exp(test_logp))
        done = run_script(capsys, "--apply", tmp_path / "blend.json", *preds, *flags, "--out", tmp_path / "sub.csv")
        assert done.returncode == 0, done.stderr
        sub = pd.read_csv(tmp_path / "sub.csv")
        assert sub.eeg_id.tolist() == list(range(5))
        np.testing.assert_allclose(sub[list(VOTE_COLUMNS)], expected, atol=1e-9)
    assert "matched by order: first as model0, second as model1" in done.stderr
    (tmp_path / "sub.csv").unlink()
    done = run_script(capsys, "--apply", tmp_path / "blend.json", *preds, "--out", tmp_path / "sub.csv")
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "sub.csv").exists()
    assert "needs predictions of ['model0', 'model1']; got ['first', 'second']" in done.stderr
    done = run_script(capsys, "--apply", tmp_path / "blend.json", preds[0], "--match-by-order",
                      "--out", tmp_path / "sub.csv")
    assert done.returncode == 1 and "--match-by-order needs 2 predictions" in done.stderr


def known_answer_report(n=1200, **method):
    logp, target = known_answer(n)
    named = frames(logp, target)
    base, aligned = align(named)
    return blend_report([n for n, _ in named], base, aligned, folds=3, **method), base, aligned


def test_stack_beats_the_mean_and_greedy_drops_the_pure_noise_models():
    stack, _, _ = known_answer_report(method="stack", options={"stack": {"inner_folds": 3}})
    r = stack["report"]
    assert r["blend_cross_validated"]["kl_10plus"] < r["mean_of_probabilities"]["kl_10plus"] - 0.1
    assert stack["penalty"] in stack["options"]["stack"]["penalties"] and len(r["cv_folds"]) == 3
    assert np.array(stack["weights"]["model0"]).shape == (6, 6)

    logp, target = known_answer()
    counts = greedy_select(logp, target)
    assert counts[0] > 0 and counts[1] > 0 and not counts[2:].any()
    greedy, _, _ = known_answer_report(method="stack", select="greedy", options={"stack": {"inner_folds": 3}})
    kept = {"model0", "model1"}
    assert set(greedy["weights"]) == kept and set(greedy["report"]["selection"]) == kept
    assert all(set(fold["selection"]) == kept for fold in greedy["report"]["cv_folds"])  # selected inside each fold
    assert greedy["inputs"] == [f"model{m}" for m in range(5)]
    assert "greedy selection kept {'model0': 1, 'model1': 1}" in format_report(greedy)


ROUND_TRIPS = {"logprob": ("logprob", None, {}),
               "logprob per-class": ("logprob", None, {"logprob": {"per_class": True}}),
               "hms3": ("hms3", None, {"hms3": {"epochs": 3, "batch_size": 128}}),
               "stack": ("stack", None, {"stack": {"penalties": [1e-2, 1e-4], "inner_folds": 3}}),
               "greedy+stack": ("stack", "greedy", {"stack": {"penalties": [1e-2, 1e-4], "inner_folds": 3}}),
               "greedy+logprob": ("logprob", "greedy", {})}


@pytest.mark.parametrize("label", ROUND_TRIPS)
def test_every_method_round_trips_through_apply_and_predict(label, tmp_path, capsys):
    method, select, options = ROUND_TRIPS[label]
    result, base, aligned = known_answer_report(n=600, method=method, select=select, options=options)
    assert result["report"]["method"] == label and result["method"] == method
    (tmp_path / "blend.json").write_text(json.dumps(result))
    # the in-process blend: the same fit, applied to new rows without going through blend.json
    target, groups = base[list(VOTE_COLUMNS)].to_numpy(), base.patient_id.to_numpy()
    fit = fit_method(aligned, target, groups, method, select, options)
    test_probs = np.exp(known_answer(n=7, seed=1)[0])
    expected = softmax(blend_logits(np.log(np.clip(test_probs, 1e-7, 1)), fit.weights, fit.bias), axis=1)

    names = result["inputs"]
    done = run_script(capsys, "--apply", tmp_path / "blend.json", *write_predictions(tmp_path, names, test_probs),
                      "--out", tmp_path / "sub.csv")
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(pd.read_csv(tmp_path / "sub.csv")[list(VOTE_COLUMNS)], expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(combine_models(dict(zip(names, test_probs)), result), expected, rtol=0, atol=1e-9)
    if select:  # the dropped inputs are not needed, and given ones are ignored with a note
        assert "ignoring ['model2', 'model3', 'model4']" in done.stderr
        kept = {n: p for n, p in zip(names, test_probs) if n in result["weights"]}
        np.testing.assert_allclose(combine_models(kept, result), expected, rtol=0, atol=1e-9)


class PublishedNet(torch.nn.Module):
    """The published blend model (darraghdog/kaggle-hms-3rd-place-solution scripts/blend_weights.py:71-78)."""

    def __init__(self, n_models):
        super().__init__()
        self.fc = torch.nn.Linear(n_models, 1, bias=False)
        self.fc_c = torch.nn.Parameter(torch.zeros(6)[None, :])
        self.fc.load_state_dict({"weight": torch.ones(n_models)[None, :] / n_models})

    def forward(self, x):
        return self.fc(x).squeeze(-1) + self.fc_c


def published_hms3(logp, target, epochs, lr, batch_size, decay_epochs, gamma, refits, seed):
    """The published loop (scripts/blend_weights.py:88-171) as it stands, with torch's autograd, SGD and
    StepLR; its DataLoader's shuffle is one randperm per epoch from a seeded generator. Checks on the
    way that StepLR's rate after k steps is lr * gamma ** (k // step_size)."""
    x = torch.from_numpy(logp.transpose(1, 2, 0).copy()).float()
    y = torch.from_numpy(target).float()
    generator = torch.Generator().manual_seed(seed)
    weights, biases = [], []
    for train, _ in KFold(refits, shuffle=True, random_state=seed).split(target):
        model = PublishedNet(len(logp))
        loss_fn = torch.nn.KLDivLoss(reduction="batchmean")
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        batches = len(train) // batch_size
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=decay_epochs * batches, gamma=gamma)
        for epoch in range(epochs):
            order = torch.from_numpy(train)[torch.randperm(len(train), generator=generator)]
            for k in range(batches):
                rows = order[k * batch_size:(k + 1) * batch_size]
                loss = loss_fn(torch.nn.functional.log_softmax(model(x[rows]), dim=1), y[rows])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                scheduler.step()
                steps, step_size = epoch * batches + k + 1, decay_epochs * batches
                assert optimizer.param_groups[0]["lr"] == pytest.approx(lr * gamma ** (steps // step_size))
        weights.append(model.fc.weight.detach().numpy()[0])
        biases.append(model.fc_c.detach().numpy()[0])
    return np.mean(weights, axis=0), np.mean(biases, axis=0)


def test_hms3_equals_a_reimplementation_of_the_published_loop():
    logp, target = known_answer(n=300)
    # 2 refits of 150 rows: 2 batches of 64 per epoch (22 rows dropped), the rate halved every 2 epochs
    settings = dict(epochs=6, lr=0.1, batch_size=64, decay_epochs=2, gamma=0.5, refits=2, seed=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as fit_hms3 runs: two threads on tiny steps spin against each other
    try:
        want_w, want_b = published_hms3(logp, target, **settings)
    finally:
        torch.set_num_threads(threads)
    w, b, notes = fit_hms3(logp, target, **settings)
    np.testing.assert_allclose(w, want_w, rtol=0, atol=1e-6)
    np.testing.assert_allclose(b, want_b, rtol=0, atol=1e-6)
    assert notes == [] and np.abs(w - 1 / len(logp)).max() > 1e-3  # it trained


def test_hms3_on_fewer_rows_than_a_batch_trains_on_one_batch_and_says_so():
    logp, target = known_answer(n=200)
    w, b, notes = fit_hms3(logp, target, epochs=20, refits=1)
    assert len(notes) == 1 and "fewer rows than one batch of 1024" in notes[0]
    start = kl_of_logits(target, blend_logits(logp, np.full(len(logp), 1 / len(logp)), np.zeros(6))).mean()
    assert kl_of_logits(target, blend_logits(logp, w, b)).mean() < start - 0.01
    report, _, _ = known_answer_report(n=300, method="hms3", options={"hms3": {"epochs": 2}})
    assert sum("fewer rows than one batch" in n for n in report["report"]["notes"]) == 1  # one line for all fits
    assert any("log-probabilities (oof.csv stores no logits)" in n for n in report["report"]["notes"])


def test_script_compares_every_method_and_charts_them(tmp_path, capsys):
    logp, target = known_answer(n=400)
    paths = write_oofs(tmp_path, logp, target)
    done = run_script(capsys, *paths, "--method", "hms3", "--compare", "--hms3-epochs", "2", "--folds", "3",
                      "--out", tmp_path / "blend.json")
    assert done.returncode == 0, done.stderr
    blend = json.loads((tmp_path / "blend.json").read_text())
    assert list(blend["report"]["compare"]) == ["mean", "logprob", "logprob per-class", "hms3", "stack",
                                                "greedy+stack"]
    assert blend["method"] == "hms3" and blend["options"]["hms3"]["epochs"] == 2
    assert blend["report"]["compare"]["hms3"] == blend["report"]["blend_cross_validated"]
    assert "compare: greedy+stack" in done.stdout and "note: hms3: fitted on log-probabilities" in done.stdout
    assert (tmp_path / "blend.png").stat().st_size > 1000


@pytest.mark.parametrize("entry, value", [("weights", {"model0": float("nan"), "model1": 0.5}),
                                          ("class_bias", [0.0] * 5 + [float("inf")]),
                                          ("weights", {"model0": [1.0, 2.0], "model1": 0.5})])
def test_a_bad_blend_json_is_refused_in_one_line_naming_it(entry, value, tmp_path, capsys):
    blend = {"weights": {"model0": 0.5, "model1": 0.5}, "class_bias": [0.0] * 6, entry: value}
    (tmp_path / "bad_blend.json").write_text(json.dumps(blend))
    preds = write_predictions(tmp_path, ["model0", "model1"], np.full((2, 3, 6), 1 / 6))
    done = run_script(capsys, "--apply", tmp_path / "bad_blend.json", *preds, "--out", tmp_path / "sub.csv")
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith(f"error: {tmp_path / 'bad_blend.json'}: ") and not (tmp_path / "sub.csv").exists()
    with pytest.raises(BlendError, match="^blend.json: "):
        combine_models({"model0": np.full((3, 6), 1 / 6), "model1": np.full((3, 6), 1 / 6)}, blend)


def test_non_finite_predictions_or_other_names_are_refused_by_predicts_combination():
    blend = {"weights": {"a": 0.5, "b": 0.5}, "class_bias": [0.0] * 6}
    good, bad = np.full((3, 6), 1 / 6), np.full((3, 6), 1 / 6)
    bad[1] = np.nan
    with pytest.raises(BlendError, match=r"blend.json: 1 of 3 blended rows are not finite .*predictions in \['b'\]"):
        combine_models({"a": good, "b": bad}, blend)
    with pytest.raises(BlendError, match=r"needs predictions of \['a', 'b'\]; got \['x', 'y'\]"):
        combine_models({"x": good, "y": good}, blend)
    np.testing.assert_allclose(combine_models({"x": good, "y": good}, blend, match_by_order=True), good)


def test_bench_blend_runs_on_a_tiny_size(capsys):
    done = run_script_here(capsys, "bench_blend.py", "--models", "3", "--rows", "300", "--compare", "--hms3-epochs", "2")
    out = done.stdout
    assert done.returncode == 0, done.stderr
    assert "stack with nested CV" in out and " s\n" in out
    assert all(label in out for label in ("logprob per-class", "hms3", "greedy+stack"))


@pytest.mark.parametrize("columns, value, problem", [
    (PRED_COLUMNS, 0.5, "model1.csv predictions rows must sum to 1 (row 4 sums to 3"),
    (PRED_COLUMNS[:1], -0.1, "model1.csv predictions holds negative or non-finite probabilities (row 4"),
    (PRED_COLUMNS[:1], np.nan, "model1.csv predictions holds negative or non-finite probabilities (row 4"),
    (VOTE_COLUMNS, 0.5, "model1.csv targets rows must sum to 1 (row 4 sums to 3"),
])
def test_oof_rows_that_are_not_probabilities_are_refused_naming_the_file(tmp_path, capsys, columns, value, problem):
    # an OOF summing to 3 would otherwise get the lowest KL and the largest weight
    logp, target = synthesise(n=200)
    paths = write_oofs(tmp_path, logp, target)
    frame = pd.read_csv(paths[1])
    frame.loc[3, list(columns)] = value
    frame.to_csv(paths[1], index=False)
    done = run_script(capsys, *paths, "--out", tmp_path / "blend.json")
    assert done.returncode == 1 and problem in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "blend.json").exists()


def test_test_predictions_that_are_not_probabilities_are_refused_by_apply(tmp_path, capsys):
    (tmp_path / "blend.json").write_text(json.dumps({"weights": {"a": 0.5, "b": 0.5}, "class_bias": [0.0] * 6}))
    probs = np.full((2, 3, 6), 1 / 6)
    probs[1, 2] = 0.5
    preds = write_predictions(tmp_path, ["a", "b"], probs)
    done = run_script(capsys, "--apply", tmp_path / "blend.json", *preds, "--out", tmp_path / "sub.csv")
    assert done.returncode == 1 and "b.csv rows must sum to 1 (row 3 sums to 3" in done.stderr, done.stderr
    assert not (tmp_path / "sub.csv").exists()
