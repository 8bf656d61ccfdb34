"""Blending out-of-fold predictions (3rd place HMS): one weight per model plus a per-class bias on
log-probabilities, softmax(sum_m w_m log p_m + b), fitted by minimising the KL; cross-fitted by patient
for an honest estimate."""
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax
from sklearn.model_selection import GroupKFold

from hms.data.layout import PRED_COLUMNS, VOTE_COLUMNS
from hms.ensemble.metric import kl_per_row

EPS = 1e-7


class BlendError(ValueError):
    pass


def read_oof(path) -> tuple[str, pd.DataFrame]:
    """A run dir (oof.csv inside), a folder of fold run dirs (their oof.csv concatenated) or a csv."""
    path = Path(path)
    if path.is_file():
        files, name = [path], path.stem
    elif (path / "oof.csv").exists():
        files, name = [path / "oof.csv"], path.name
    else:
        files, name = sorted(path.glob("*/oof.csv")), path.name
    if not files:
        raise BlendError(f"{path}: no oof.csv found (give run dirs, folders of fold run dirs or csv files)")
    frame = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    missing = [c for c in ("eeg_id", *VOTE_COLUMNS, *PRED_COLUMNS) if c not in frame.columns]
    if missing:
        raise BlendError(f"{path}: missing columns {missing}")
    return name, frame


def align(named: list[tuple[str, pd.DataFrame]]) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows aligned by (eeg_id, label_id) or eeg_id; returns the base frame (ids, targets) and the
    log-probabilities [M, N, 6]. Different rows or targets are refused naming the file."""
    base_name, base = named[0]
    keys = ["eeg_id", "label_id"] if all("label_id" in f.columns for _, f in named) else ["eeg_id"]
    base = base.sort_values(keys).reset_index(drop=True)
    logs = []
    for name, frame in named:
        frame = frame.sort_values(keys).reset_index(drop=True)
        if len(frame) != len(base) or not (frame[keys].to_numpy() == base[keys].to_numpy()).all():
            raise BlendError(f"{name}: its rows differ from {base_name}'s ({len(frame)} vs {len(base)} rows)")
        if not np.allclose(frame[list(VOTE_COLUMNS)], base[list(VOTE_COLUMNS)], atol=1e-6):
            raise BlendError(f"{name}: its targets differ from {base_name}'s")
        logs.append(np.log(np.clip(frame[list(PRED_COLUMNS)].to_numpy(np.float64), EPS, 1)))
    return base, np.stack(logs)


def blend_logits(logp: np.ndarray, weights: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """logp [M, N, 6], weights [M] or [M, 6], bias [6] -> logits [N, 6]."""
    w = weights if weights.ndim == 2 else weights[:, None]
    return np.einsum("mnc,mc->nc", logp, np.broadcast_to(w, (logp.shape[0], 6))) + bias


def fit_blend(logp, target, non_negative=False, l2=1e-3, per_class=False):
    """Weights and bias minimising mean KL(target || softmax(blend)) + l2 * |w - 1/M|^2 (the penalty
    pulls towards the plain average, so identical inputs share their weight)."""
    m = logp.shape[0]
    shape = (m, 6) if per_class else (m,)
    n_w = int(np.prod(shape))
    start = np.concatenate([np.full(n_w, 1.0 / m), np.zeros(6)])

    def loss_and_grad(x):
        w, b = x[:n_w].reshape(shape), x[n_w:]
        z = blend_logits(logp, w, b)
        logq = log_softmax(z, axis=1)
        safe = np.where(target > 0, target, 1.0)
        loss = np.where(target > 0, target * (np.log(safe) - logq), 0).sum(axis=1).mean()
        dz = (softmax(z, axis=1) - target) / len(target)
        gw = np.einsum("mnc,nc->mc", logp, dz)
        gw = gw if per_class else gw.sum(axis=1)
        loss += l2 * ((w - 1.0 / m) ** 2).sum()
        gw = gw + 2 * l2 * (w - 1.0 / m)
        return loss, np.concatenate([gw.ravel(), dz.sum(axis=0)])

    bounds = [(0, None)] * n_w + [(None, None)] * 6 if non_negative else None
    result = minimize(loss_and_grad, start, jac=True, method="L-BFGS-B", bounds=bounds,
                      options={"maxiter": 500})
    return result.x[:n_w].reshape(shape), result.x[n_w:]


def cross_fitted(base, logp, fit_mask, folds=5, **options) -> np.ndarray:
    """Blend probabilities where each fold is predicted by a blend fitted on the other folds."""
    groups = base.patient_id if "patient_id" in base.columns else base.eeg_id
    target = base[list(VOTE_COLUMNS)].to_numpy()
    out = np.zeros_like(target)
    k = min(folds, groups.nunique())
    for train, test in GroupKFold(n_splits=k).split(base, groups=groups):
        use = train[fit_mask[train]]
        w, b = fit_blend(logp[:, use], target[use], **options)
        out[test] = softmax(blend_logits(logp[:, test], w, b), axis=1)
    return out


def blend_report(names, base, logp, min_votes=10, folds=5, **options) -> dict:
    target = base[list(VOTE_COLUMNS)].to_numpy()
    high = base.n_votes.to_numpy() >= min_votes if "n_votes" in base.columns else np.ones(len(base), bool)
    fit_mask = high if high.any() else np.ones(len(base), bool)
    cv = cross_fitted(base, logp, fit_mask, folds, **options)
    mean = np.exp(logp).mean(axis=0)
    mean /= mean.sum(axis=1, keepdims=True)

    def kl(pred, mask):
        return float(kl_per_row(target[mask], pred[mask]).mean()) if mask.any() else None

    every = np.ones(len(base), bool)
    report = {"models": {n: {"kl_10plus": kl(np.exp(lp), high), "kl_all": kl(np.exp(lp), every)}
                         for n, lp in zip(names, logp)},
              "mean_of_probabilities": {"kl_10plus": kl(mean, high), "kl_all": kl(mean, every)},
              "blend_cross_validated": {"kl_10plus": kl(cv, high), "kl_all": kl(cv, every)},
              "rows": int(len(base)), "rows_10plus": int(high.sum())}
    weights, bias = fit_blend(logp[:, fit_mask], target[fit_mask], **options)
    return {"weights": {n: np.asarray(w).tolist() for n, w in zip(names, weights)},
            "class_bias": bias.tolist(), "report": report,
            "options": {"min_votes": min_votes, "folds": folds, **options}}


def apply_blend(blend: dict, named_probs: dict) -> np.ndarray:
    """Apply blend.json to per-model probabilities {name: [N, 6]} -> [N, 6]."""
    missing = [n for n in blend["weights"] if n not in named_probs]
    if missing:
        raise BlendError(f"blend.json needs predictions of {missing}; got {sorted(named_probs)}")
    names = list(blend["weights"])
    logp = np.stack([np.log(np.clip(named_probs[n], EPS, 1)) for n in names])
    weights = np.array([blend["weights"][n] for n in names])
    return softmax(blend_logits(logp, weights, np.array(blend["class_bias"])), axis=1)
