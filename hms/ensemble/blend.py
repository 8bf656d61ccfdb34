"""Blending out-of-fold predictions (3rd place HMS): one weight per model plus a per-class bias on
log-probabilities, softmax(sum_m w_m log p_m + b), fitted by minimising the KL; cross-fitted by patient
for an honest estimate.

The L2 penalty pulls the weights towards the plain average 1/M (not towards 0), so identical or nearly
identical inputs share their weight instead of drifting apart in opposite directions.
"""
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax
from sklearn.model_selection import GroupKFold

from hms.layout import HIGH_VOTE_MIN, PRED_COLUMNS, SUBMISSION_COLUMNS, VOTE_COLUMNS
from hms.metric import kl_per_row, read_csv_with

EPS = 1e-7  # probabilities are clipped before the log: a model's hard 0 must not dominate the blend


class BlendError(ValueError):
    """One-line message starting with the offending file or input name."""


def _read_csv(path: Path, columns) -> pd.DataFrame:
    try:
        return read_csv_with(path, columns)
    except ValueError as error:
        raise BlendError(str(error)) from None


def _check_probs(probs: np.ndarray, where) -> None:
    if not np.isfinite(probs).all() or (probs < 0).any() or (probs > 1 + 1e-6).any():
        raise BlendError(f"{where}: predictions must be finite probabilities in [0, 1]")


def read_oof(path) -> tuple[str, pd.DataFrame]:
    """(input name, oof frame) from a run dir (oof.csv inside), a folder of fold run dirs (a multirun's
    <name>/fold<k>/oof.csv, concatenated) or an oof csv. The name is the folder name or the csv stem."""
    path = Path(path)
    if path.is_file():
        files, name = [path], path.stem
    elif (path / "oof.csv").exists():
        files, name = [path / "oof.csv"], path.name
    else:
        files, name = sorted(path.glob("*/oof.csv")), path.name
    if not files:
        raise BlendError(f"{path}: no oof.csv found (give run dirs, folders of fold run dirs or csv files)")
    columns = ("eeg_id", *VOTE_COLUMNS, *PRED_COLUMNS)
    frame = pd.concat([_read_csv(f, columns) for f in files], ignore_index=True)
    _check_probs(frame[list(PRED_COLUMNS)].to_numpy(np.float64), path)
    return name, frame


def unique_names(names: list[str]) -> list[str]:
    """Suffix repeated names (e.g. two sweeps' 'fusion' folders) with their position: fusion_0, fusion_2."""
    return [f"{n}_{i}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def align(named: list[tuple[str, pd.DataFrame]]) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows aligned by (eeg_id, label_id), or eeg_id when a file has no label_id; returns the first
    input's frame (ids, targets, n_votes, patient_id) and the log-probabilities [M, N, 6]. Inputs with
    other rows or other targets are refused naming the input."""
    base_name, base = named[0]
    keys = ["eeg_id", "label_id"] if all("label_id" in f.columns for _, f in named) else ["eeg_id"]
    base = base.sort_values(keys, kind="stable").reset_index(drop=True)
    logs = []
    for name, frame in named:
        frame = frame.sort_values(keys, kind="stable").reset_index(drop=True)
        if len(frame) != len(base) or not (frame[keys].to_numpy() == base[keys].to_numpy()).all():
            raise BlendError(f"{name}: its rows ({'+'.join(keys)}) differ from {base_name}'s "
                             f"({len(frame)} vs {len(base)} rows)")
        if not np.allclose(frame[list(VOTE_COLUMNS)], base[list(VOTE_COLUMNS)], atol=1e-6):
            raise BlendError(f"{name}: its targets differ from {base_name}'s")
        logs.append(np.log(np.clip(frame[list(PRED_COLUMNS)].to_numpy(np.float64), EPS, 1)))
    return base, np.stack(logs)


def blend_logits(logp: np.ndarray, weights: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """logp [M, N, 6], weights [M] or [M, 6] (per class), bias [6] -> logits [N, 6]."""
    w = weights if weights.ndim == 2 else weights[:, None]
    return np.einsum("mnc,mc->nc", logp, np.broadcast_to(w, (logp.shape[0], 6))) + bias


def fit_blend(logp: np.ndarray, target: np.ndarray, non_negative: bool = False, l2: float = 1e-3,
              per_class: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(weights [M] or [M, 6], bias [6]) minimising mean KL(target || softmax(blend)) + l2 |w - 1/M|^2.
    L-BFGS from the plain average (w = 1/M, b = 0): deterministic."""
    m = logp.shape[0]
    shape = (m, 6) if per_class else (m,)
    n_w = int(np.prod(shape))
    start = np.concatenate([np.full(n_w, 1.0 / m), np.zeros(6)])
    safe = np.where(target > 0, target, 1.0)
    entropy = np.where(target > 0, target * np.log(safe), 0.0).sum(axis=1).mean()

    def loss_and_grad(x):
        w, b = x[:n_w].reshape(shape), x[n_w:]
        z = blend_logits(logp, w, b)
        loss = entropy - (target * log_softmax(z, axis=1)).sum(axis=1).mean() + l2 * ((w - 1.0 / m) ** 2).sum()
        dz = (softmax(z, axis=1) - target) / len(target)
        gw = np.einsum("mnc,nc->mc", logp, dz)
        gw = (gw if per_class else gw.sum(axis=1)) + 2 * l2 * (w - 1.0 / m)
        return loss, np.concatenate([gw.ravel(), dz.sum(axis=0)])

    bounds = [(0, None)] * n_w + [(None, None)] * 6 if non_negative else None
    result = minimize(loss_and_grad, start, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 1000})
    return result.x[:n_w].reshape(shape), result.x[n_w:]


def cross_fitted(base: pd.DataFrame, logp: np.ndarray, fit_mask: np.ndarray, folds: int = 5, **options) -> np.ndarray:
    """Blend probabilities [N, 6] where each fold (grouped by patient_id, else eeg_id) is predicted by
    a blend fitted on the other folds' `fit_mask` rows."""
    groups = base.patient_id if "patient_id" in base.columns else base.eeg_id
    k = min(folds, groups.nunique())
    if k < 2:
        raise BlendError(f"cross-fitting needs at least 2 patients (or eeg_ids); the inputs hold {k}")
    target = base[list(VOTE_COLUMNS)].to_numpy(np.float64)
    out = np.zeros_like(target)
    for train, test in GroupKFold(n_splits=k).split(base, groups=groups):
        use = train[fit_mask[train]]
        if len(use) == 0:  # no high-vote row in the other folds: fall back to all of them
            use = train
        w, b = fit_blend(logp[:, use], target[use], **options)
        out[test] = softmax(blend_logits(logp[:, test], w, b), axis=1)
    return out


def blend_report(names: list[str], base: pd.DataFrame, logp: np.ndarray, min_votes: int = HIGH_VOTE_MIN, folds: int = 5,
                 non_negative: bool = False, l2: float = 1e-3, per_class: bool = False) -> dict:
    """The blend.json content: weights and biases fitted on every row with n_votes >= min_votes (all
    rows when none has), and a report of each input's, the mean's and the cross-fitted blend's KL."""
    options = {"non_negative": non_negative, "l2": l2, "per_class": per_class}
    target = base[list(VOTE_COLUMNS)].to_numpy(np.float64)
    every = np.ones(len(base), bool)
    high = base.n_votes.to_numpy() >= min_votes if "n_votes" in base.columns else every
    fit_mask = high if high.any() else every
    cv = cross_fitted(base, logp, fit_mask, folds, **options)
    mean = np.exp(logp).mean(axis=0)
    mean /= mean.sum(axis=1, keepdims=True)

    def kls(pred):
        masks = {f"kl_{min_votes}plus": high, "kl_all": every}
        return {k: float(kl_per_row(target[m], pred[m]).mean()) if m.any() else None for k, m in masks.items()}

    report = {"models": {n: kls(np.exp(lp)) for n, lp in zip(names, logp)},
              "mean_of_probabilities": kls(mean), "blend_cross_validated": kls(cv),
              "rows": int(len(base)), "rows_min_votes": int(high.sum()), "fit_rows": int(fit_mask.sum()),
              "cv_groups": "patient_id" if "patient_id" in base.columns else "eeg_id"}
    weights, bias = fit_blend(logp[:, fit_mask], target[fit_mask], **options)
    return {"weights": {n: np.asarray(w).tolist() for n, w in zip(names, weights)},
            "class_bias": bias.tolist(), "report": report,
            "options": {"min_votes": min_votes, "folds": folds, "l2_towards": "1/M", **options}}


def format_report(result: dict) -> str:
    """The report as a small text table (what blend_weights.py prints)."""
    report = result["report"]
    columns = list(report["mean_of_probabilities"])
    fmt = lambda v: f"{v:10.4f}" if v is not None else f"{'-':>10s}"
    lines = [f"{'input':32s}" + "".join(f"{c:>10s}" for c in columns)]
    rows = [*report["models"].items(), ("mean of probabilities", report["mean_of_probabilities"]),
            ("blend (cross-validated)", report["blend_cross_validated"])]
    lines += [f"{name[:32]:32s}" + "".join(fmt(kl[c]) for c in columns) for name, kl in rows]
    lines.append(f"rows {report['rows']}, fitted on {report['fit_rows']}, folds grouped by {report['cv_groups']}")
    return "\n".join(lines)


def match_inputs(blend_names: list[str], given_names: list[str]) -> dict[str, str]:
    """{blend input name: given name}: by name, else by order when the counts agree (a note on stderr)."""
    if set(blend_names) <= set(given_names):
        return {n: n for n in blend_names}
    if len(blend_names) == len(given_names):
        pairs = dict(zip(blend_names, given_names))
        print(f"note: blend inputs matched by order: {pairs}", file=sys.stderr)
        return pairs
    raise BlendError(f"blend.json needs predictions of {blend_names}; got {given_names} "
                     "(match them by name, or give as many as the blend has, in its order)")


def read_blend(path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise BlendError(f"{path}: not a readable blend.json ({error})") from None


def apply_blend(blend: dict, named_probs: dict) -> np.ndarray:
    """blend.json applied to per-model probabilities {name: [N, 6]} -> probabilities [N, 6]."""
    try:
        names, bias = list(blend["weights"]), np.asarray(blend["class_bias"], dtype=np.float64)
    except (KeyError, TypeError) as error:
        raise BlendError(f"blend.json: missing or malformed entry {error}") from None
    pairs = match_inputs(names, list(named_probs))
    logp = np.stack([np.log(np.clip(np.asarray(named_probs[pairs[n]], np.float64), EPS, 1)) for n in names])
    weights = np.array([blend["weights"][n] for n in names], dtype=np.float64)
    if bias.shape != (6,) or weights.shape not in ((len(names),), (len(names), 6)):
        raise BlendError("blend.json: expected 6 class biases and one weight (or 6) per input")
    return softmax(blend_logits(logp, weights, bias), axis=1)


def read_predictions(paths) -> tuple[pd.Series, dict]:
    """Per-model test predictions in the sample_submission format -> (eeg_id, {csv stem: [N, 6]}).
    Every file must list the same eeg_ids in the same order."""
    paths = [Path(p) for p in paths]
    frames = {p: _read_csv(p, SUBMISSION_COLUMNS) for p in paths}
    first_path, first = paths[0], frames[paths[0]]
    probs = {}
    for path, frame in frames.items():
        if frame.eeg_id.tolist() != first.eeg_id.tolist():
            raise BlendError(f"{path}: its eeg_ids differ from {first_path}'s")
        p = frame[list(VOTE_COLUMNS)].to_numpy(np.float64)
        _check_probs(p, path)
        probs[path.stem] = p
    if len(probs) != len(paths):
        raise BlendError(f"{paths}: two prediction files share a name")
    return first.eeg_id, probs
