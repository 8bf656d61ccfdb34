"""Blending out-of-fold predictions: softmax(sum_m A_m(log p_m) + b), a map A_m of each model's
log-probabilities and a class bias b, fitted by minimising the KL; every estimate is cross-fitted by
patient (eeg_id without patient_id), so a reported figure never saw its own rows.

Methods (`fit_method`; A_m is a weight, 6 weights or a 6x6 matrix):
- logprob: one weight per model (or per model and class) by L-BFGS; the L2 penalty pulls the weights
  towards the plain average 1/M (not 0), so identical or nearly identical inputs share their weight
  instead of drifting apart in opposite directions.
- hms3: the 3rd-place HMS blend as published (darraghdog/kaggle-hms-3rd-place-solution,
  scripts/blend_weights.py; ../shared/RECIPES.md 2.9): one weight per model shared by the classes and
  a class bias, plain SGD on mini-batches, 5 shuffled refits averaged.
- stack: a 6x6 matrix per model, i.e. a linear map of all M*6 log-probabilities to the 6 logits,
  L2-penalised towards the plain average; the penalty is chosen by an inner CV grouped by patient.
Greedy forward selection with replacement (`--select greedy`; Caruana et al. 2004, "Ensemble selection
from libraries of models", ICML) may first choose the inputs, with multiplicity, that a method is fitted on.
"""
import inspect
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax, xlogy
from sklearn.model_selection import GroupKFold, KFold
from threadpoolctl import threadpool_limits

from hms.layout import HIGH_VOTE_MIN, PRED_COLUMNS, SUBMISSION_COLUMNS, VOTE_COLUMNS
from hms.metric import check_probabilities, kl_per_row, read_csv_with

EPS = 1e-7  # probabilities are clipped before the log: a model's hard 0 must not dominate the blend
# stack's penalty grid, largest first: each fit starts from the previous (more penalised) solution
PENALTIES = tuple(float(p) for p in np.logspace(0, -6, 10))
# oof.csv holds probabilities, so every method reads their logs; for hms3 that is a departure
LOGIT_NOTE = ("hms3: fitted on log-probabilities (oof.csv stores no logits); a log-probability is its logit "
              "minus one constant per row, which the softmax ignores")


class BlendError(ValueError):
    """One-line message starting with the offending file or input name."""


def _read_csv(path: Path, columns) -> pd.DataFrame:
    try:
        return read_csv_with(path, columns)
    except ValueError as error:
        raise BlendError(str(error)) from None


def _check_probs(probs: np.ndarray, where) -> None:
    """Every row a probability vector summing to 1 (hms.metric.check_probabilities), else a BlendError
    naming `where`: an OOF whose rows sum to 3 would otherwise score, and be weighted, as the best."""
    try:
        check_probabilities(probs, str(where))
    except ValueError as error:
        raise BlendError(str(error)) from None


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
    _check_probs(frame[list(PRED_COLUMNS)].to_numpy(np.float64), f"{path} predictions")
    _check_probs(frame[list(VOTE_COLUMNS)].to_numpy(np.float64), f"{path} targets")
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
    """logp [M, N, 6], weights [M], [M, 6] (per class) or [M, 6, 6] (stack: input class x logit), bias [6]
    -> logits [N, 6]."""
    if weights.ndim == 3:
        return np.einsum("mnc,mcd->nd", logp, weights) + bias
    w = weights if weights.ndim == 2 else weights[:, None]
    return np.einsum("mnc,mc->nc", logp, np.broadcast_to(w, (logp.shape[0], 6))) + bias


def kl_of_logits(target: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """KL(target || softmax(logits)) per row, along the last axis (no clipping: the fits' objective)."""
    return (xlogy(target, target) - target * log_softmax(logits, axis=-1)).sum(axis=-1)


def _kl_and_gradient(logits: np.ndarray, target: np.ndarray, axis: int = 1) -> tuple[float, np.ndarray]:
    """Mean KL(target || softmax(logits)) over the rows and its gradient with respect to the logits; the
    classes lie along `axis` (one exp per entry: scipy's log_softmax and softmax would take two, and
    this runs in every L-BFGS step)."""
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=axis, keepdims=True)
    rows = target.shape[1 - axis]
    kl = (xlogy(target, target) - target * (shifted - np.log(total))).sum() / rows
    return kl, (exp / total - target) / rows


def fit_blend(logp: np.ndarray, target: np.ndarray, non_negative: bool = False, l2: float = 1e-3,
              per_class: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """logprob: (weights [M] or [M, 6], bias [6]) minimising mean KL(target || softmax(blend)) +
    l2 |w - 1/M|^2. L-BFGS from the plain average (w = 1/M, b = 0): deterministic."""
    m = logp.shape[0]
    shape = (m, 6) if per_class else (m,)
    n_w = int(np.prod(shape))
    start = np.concatenate([np.full(n_w, 1.0 / m), np.zeros(6)])

    def loss_and_grad(x):
        w, b = x[:n_w].reshape(shape), x[n_w:]
        kl, dz = _kl_and_gradient(blend_logits(logp, w, b), target)
        gw = np.einsum("mnc,nc->mc", logp, dz)
        gw = (gw if per_class else gw.sum(axis=1)) + 2 * l2 * (w - 1.0 / m)
        return kl + l2 * ((w - 1.0 / m) ** 2).sum(), np.concatenate([gw.ravel(), dz.sum(axis=0)])

    bounds = [(0, None)] * n_w + [(None, None)] * 6 if non_negative else None
    result = minimize(loss_and_grad, start, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 1000})
    return result.x[:n_w].reshape(shape), result.x[n_w:]


def fit_hms3(logp: np.ndarray, target: np.ndarray, epochs: int = 801, lr: float = 0.1, batch_size: int = 1024,
             decay_epochs: int = 10, gamma: float = 0.95, refits: int = 5, seed: int = 1
             ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """hms3, the 3rd-place blend as published (darraghdog/kaggle-hms-3rd-place-solution
    scripts/blend_weights.py:71-171; ../shared/RECIPES.md 2.9): (weights [M], bias [6], notes).

    Weights initialised 1/M, shared by the 6 classes, unconstrained; a class bias initialised 0; loss
    KL (batchmean) of log_softmax(sum_m w_m x_m + c); plain SGD (no momentum) at `lr` times StepLR's
    factor gamma ** (step // (decay_epochs * batches per epoch)), stepped per batch; `epochs` epochs
    of shuffled batches with drop_last; one fit on each training part of KFold(refits, shuffle=True,
    random_state=seed), weights and bias averaged over them (`refits=1`: one fit on every row).
    float32 as published. The SGD step is written out (the loss's gradient with respect to the logits
    is (softmax - target) / batch): torch's autograd, optimizer and scheduler cost 2.3 ms a step here
    against 0.3 ms, for the same numbers (tests/ensemble/test_blend.py checks them against the
    published loop). The shuffles come from a torch generator seeded with `seed` (the published one
    was unseeded), so a fit is reproducible. Departure: a refit with fewer rows than `batch_size`
    trains on one batch of all of them (drop_last would leave no batch and train nothing); the notes
    say so."""
    import torch  # here rather than at the top: the other methods and --apply do not pay torch's import

    m, n, _ = logp.shape
    # [N, 6, M], the published layout, contiguous (torch.tensor keeps a transposed array's strides, and
    # gathering batches from those made every step 3x slower)
    x = torch.tensor(np.ascontiguousarray(logp.transpose(1, 2, 0)), dtype=torch.float32)
    y = torch.tensor(target, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    splits = KFold(refits, shuffle=True, random_state=seed).split(target) if refits > 1 else [(np.arange(n), None)]
    weights, biases, small = [], [], False
    threads = torch.get_num_threads()
    # one thread: steps this small gain nothing from two, and on this busy 2-core machine two took 12x longer
    torch.set_num_threads(1)
    try:
        for train, _ in splits:
            per_batch = min(batch_size, len(train))
            if per_batch < batch_size:
                small = True
            batches = len(train) // per_batch
            w, c, step = torch.full((m,), 1.0 / m), torch.zeros(6), 0
            train = torch.from_numpy(train)
            for _ in range(epochs):
                order = train[torch.randperm(len(train), generator=generator)][: batches * per_batch]
                for rows in order.view(batches, per_batch):
                    dz = (torch.softmax(x[rows] @ w + c, dim=1) - y[rows]) / per_batch
                    rate = lr * gamma ** (step // (decay_epochs * batches))
                    w -= rate * torch.einsum("bcm,bc->m", x[rows], dz)
                    c -= rate * dz.sum(dim=0)
                    step += 1
            weights.append(w.numpy().astype(np.float64))
            biases.append(c.numpy().astype(np.float64))
    finally:
        torch.set_num_threads(threads)
    # worded without counts, so that the notes of every cross-fit collapse into one line of the report
    notes = [f"hms3: refits with fewer rows than one batch of {batch_size} trained on one batch of all their rows "
             "per epoch (drop_last would leave none)"] if small else []
    return np.mean(weights, axis=0), np.mean(biases, axis=0), notes


def grouped_folds(groups: np.ndarray, folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) row indices of min(folds, number of groups) folds, no group on both sides."""
    k = min(folds, len(np.unique(groups)))
    if k < 2:
        raise BlendError(f"cross-fitting needs at least 2 patients (or eeg_ids); the rows hold {k}")
    return list(GroupKFold(n_splits=k).split(np.zeros(len(groups)), groups=groups))


def _fit_maps(features: np.ndarray, target: np.ndarray, penalties, prior: np.ndarray) -> list[tuple]:
    """[(map [M*6, 6], bias [6]) per penalty, in order] minimising mean KL(target || softmax(features @
    map + bias)) + penalty |map - prior|^2: L-BFGS with analytic gradients from the plain average (map =
    prior, bias 0), then from the previous penalty's solution.

    Why the change of coordinates: the models' log-probabilities are strongly correlated, which makes
    the problem ill-conditioned. The features are centred (their mean goes into the unpenalised bias)
    and turned to their principal axes V; the fit runs on u with map = prior + V diag(d) u, d =
    (variance + 2 penalty)^-1/2, the inverse square root of the objective's curvature along each axis
    up to the softmax's factor. L-BFGS then needs 6x fewer evaluations to the same optimum (124
    against 734 along the whole grid, scripts/bench_blend.py's 20 models x 16,000 rows). ftol 1e-8
    stops it once a step gains under 1e-8 of the loss: the penalty choice compares KLs that differ in
    the 4th decimal."""
    mean = features.mean(axis=0)
    centred = features - mean
    variance, axes = np.linalg.eigh(centred.T @ centred / len(centred))
    # class-major [6, N] logits and [M*6, N] features: these products run 2x faster than row-major ones
    rotated, base, target = (centred @ axes).T.copy(), (centred @ prior).T, target.T.copy()
    gap, bias, fits = np.zeros_like(prior), np.zeros(6), []
    for penalty in penalties:
        scale = 1 / np.sqrt(np.clip(variance, 0, None) + 2 * penalty)[:, None]
        scaled = rotated * scale

        def loss_and_grad(params):
            u, b = params[:-6].reshape(prior.shape), params[-6:]
            kl, dz = _kl_and_gradient(base + u.T @ scaled + b[:, None], target, axis=0)
            grad_u = scaled @ dz.T + 2 * penalty * scale ** 2 * u
            return kl + penalty * ((scale * u) ** 2).sum(), np.concatenate([grad_u.ravel(), dz.sum(axis=1)])

        start = np.concatenate([(axes.T @ gap / scale).ravel(), bias])
        params = minimize(loss_and_grad, start, jac=True, method="L-BFGS-B",
                          options={"maxiter": 1000, "ftol": 1e-8}).x
        gap, bias = axes @ (scale * params[:-6].reshape(prior.shape)), params[-6:]
        fits.append((prior + gap, bias - mean @ (prior + gap)))
    return fits


def fit_stack(logp: np.ndarray, target: np.ndarray, groups: np.ndarray, penalties=PENALTIES,
              inner_folds: int = 5) -> tuple[np.ndarray, np.ndarray, dict]:
    """stack: (maps [M, 6, 6], bias [6], info) of logits = sum_m log p_m @ maps[m] + bias, penalised
    (L2) towards the plain average (maps[m] = I/M). The penalty is the one of `penalties` with the lowest
    inner cross-fitted KL (folds grouped by `groups`), each inner fold walking the grid from the largest
    penalty down (_fit_maps); the final fit starts from the plain average. info holds the penalty and
    every penalty's inner KL."""
    penalties = sorted(penalties, reverse=True)
    if not penalties or penalties[-1] <= 0:
        raise BlendError(f"stack: penalties must be positive numbers; got {penalties}")
    m = logp.shape[0]
    features = logp.transpose(1, 0, 2).reshape(logp.shape[1], -1)  # [N, M*6]: column m*6 + c is log p_m(c)
    prior = np.tile(np.eye(6) / m, (m, 1))
    held_out = np.zeros(len(penalties))
    # one BLAS thread: products this thin gain little from a second one, and on this busy 2-core machine
    # two threads took 125 s where one took 8 s (20 models x 16,000 rows)
    with threadpool_limits(1, user_api="blas"):
        for train, test in grouped_folds(groups, inner_folds):
            for i, (w, b) in enumerate(_fit_maps(features[train], target[train], penalties, prior)):
                held_out[i] += kl_of_logits(target[test], features[test] @ w + b).sum()
        best = penalties[int(np.argmin(held_out))]
        (w, b), = _fit_maps(features, target, [best], prior)
    info = {"penalty": best, "inner_cv_kl": {f"{p:.3g}": float(k / len(target)) for p, k in zip(penalties, held_out)}}
    return w.reshape(m, 6, 6), b, info


def greedy_select(logp: np.ndarray, target: np.ndarray, max_steps: int = 50, tol: float = 1e-5) -> np.ndarray:
    """How many times each input is chosen [M]: greedy forward selection with replacement (Caruana et al.
    2004). Start from the best single model; at each step add the input whose addition gives the
    lowest mean KL of softmax(mean of the chosen log-probabilities, with multiplicity); stop when the
    best addition improves the KL by `tol` or less, or after `max_steps` choices."""
    counts = np.zeros(len(logp), int)
    scores = kl_of_logits(target, logp).mean(axis=1)
    best = int(np.argmin(scores))
    counts[best], total, score = 1, logp[best].copy(), scores[best]
    while counts.sum() < max_steps:
        scores = kl_of_logits(target, (total + logp) / (counts.sum() + 1)).mean(axis=1)
        best = int(np.argmin(scores))
        if score - scores[best] <= tol:
            break
        counts[best], total, score = counts[best] + 1, total + logp[best], scores[best]
    return counts


FIT_FUNCTIONS = {"logprob": fit_blend, "hms3": fit_hms3, "stack": fit_stack}  # their keyword options: `options`
METHODS = tuple(FIT_FUNCTIONS)


def check_method(method: str, select: str | None) -> None:
    if method not in METHODS or select not in (None, "greedy"):
        raise BlendError(f"unknown blend method {method!r} or selection {select!r} "
                         f"(methods {list(METHODS)}, selection greedy or none)")


@dataclass
class Fit:
    """A fitted blend: weights [M], [M, 6] or [M, 6, 6] (zero for inputs the selection dropped), bias [6],
    the selection's counts (None without a selection) and what the method reports (penalty, notes)."""
    weights: np.ndarray
    bias: np.ndarray
    counts: np.ndarray | None = None
    info: dict = field(default_factory=dict)


def fit_method(logp: np.ndarray, target: np.ndarray, groups: np.ndarray, method: str = "logprob",
               select: str | None = None, options: dict | None = None) -> Fit:
    """One blend of the inputs' log-probabilities [M, N, 6] by `method` (METHODS), after the greedy
    selection when `select` is "greedy": the method is then fitted on the chosen inputs with their
    multiplicity (an input chosen k times is k identical inputs) and their weights are summed per input.
    `options` holds keyword arguments per function: {"logprob": fit_blend's, "hms3": fit_hms3's,
    "stack": fit_stack's, "greedy": greedy_select's}. `groups` (patients) are stack's inner folds."""
    options = options or {}
    check_method(method, select)
    counts = greedy_select(logp, target, **options.get("greedy", {})) if select else np.ones(len(logp), int)
    copies = np.repeat(np.arange(len(logp)), counts)
    info = {}
    if method == "logprob":
        w, bias = fit_blend(logp[copies], target, **options.get("logprob", {}))
    elif method == "hms3":
        w, bias, notes = fit_hms3(logp[copies], target, **options.get("hms3", {}))
        info["notes"] = [LOGIT_NOTE, *notes]
    else:
        w, bias, info = fit_stack(logp[copies], target, groups, **options.get("stack", {}))
    weights = np.zeros((len(logp), *w.shape[1:]))
    np.add.at(weights, copies, w)
    return Fit(weights, bias, counts if select else None, info)


def cross_fitted(logp: np.ndarray, target: np.ndarray, groups: np.ndarray, fit_mask: np.ndarray, folds: int = 5,
                 **method) -> tuple[np.ndarray, list[Fit]]:
    """(blend probabilities [N, 6], the folds' fits): each fold (grouped by `groups`) is predicted by a
    blend (selection, penalty choice and all) fitted on the other folds' `fit_mask` rows; `method` is
    fit_method's method, select and options."""
    out, fits = np.zeros_like(target), []
    for train, test in grouped_folds(groups, folds):
        use = train[fit_mask[train]]
        if len(use) == 0:  # no high-vote row in the other folds: fall back to all of them
            use = train
        fit = fit_method(logp[:, use], target[use], groups[use], **method)
        out[test] = softmax(blend_logits(logp[:, test], fit.weights, fit.bias), axis=1)
        fits.append(fit)
    return out, fits


def method_label(method: str, select: str | None = None, options: dict | None = None) -> str:
    """How the report names a method: 'stack', 'greedy+stack', 'logprob per-class', ..."""
    per_class = method == "logprob" and (options or {}).get("logprob", {}).get("per_class", False)
    return f"{select + '+' if select else ''}{method}{' per-class' if per_class else ''}"


def compared_methods(options: dict | None = None) -> dict[str, dict]:
    """--compare: {label: fit_method's method, select and options} of every method, with `options`."""
    options = options or {}
    per_class = {**options, "logprob": {**options.get("logprob", {}), "per_class": True}}
    no_per_class = {**options, "logprob": {**options.get("logprob", {}), "per_class": False}}
    specs = [("logprob", None, no_per_class), ("logprob", None, per_class), ("hms3", None, options),
             ("stack", None, options), ("stack", "greedy", options)]
    return {method_label(*s): {"method": s[0], "select": s[1], "options": s[2]} for s in specs}


def _effective(function, given: dict) -> dict:
    """The keyword options `function` ran with: `given`, else its defaults (recorded in blend.json)."""
    return {name: given.get(name, p.default) for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _fit_summary(fit: Fit, names: list[str]) -> dict:
    """What a fit chose: the inputs kept with their counts (greedy) and the penalty (stack)."""
    summary = {"selection": {n: int(c) for n, c in zip(names, fit.counts) if c}} if fit.counts is not None else {}
    return {**summary, **({"penalty": fit.info["penalty"]} if "penalty" in fit.info else {})}


def blend_report(names: list[str], base: pd.DataFrame, logp: np.ndarray, min_votes: int = HIGH_VOTE_MIN,
                 folds: int = 5, method: str = "logprob", select: str | None = None, compare: bool = False,
                 options: dict | None = None) -> dict:
    """The blend.json content: the blend of `method` (and `select`; see fit_method for `options`) fitted
    on every row with n_votes >= min_votes (all rows when none has), and a report of each input's,
    the mean's and the cross-fitted blend's KL; with `compare`, also every method's cross-fitted KL.

    Keys: weights {input: weight, 6 weights or a 6x6 matrix}, class_bias [6], method, select, inputs
    (every input fitted on; with greedy, weights holds only the kept ones), penalty (stack), report
    (with the chosen method's cross-fitted KL as blend_cross_validated), options."""
    options = options or {}
    check_method(method, select)  # before any fit: --compare runs long
    target = base[list(VOTE_COLUMNS)].to_numpy(np.float64)
    groups = (base.patient_id if "patient_id" in base.columns else base.eeg_id).to_numpy()
    every = np.ones(len(base), bool)
    high = base.n_votes.to_numpy() >= min_votes if "n_votes" in base.columns else every
    fit_mask = high if high.any() else every
    mean = np.exp(logp).mean(axis=0)
    mean /= mean.sum(axis=1, keepdims=True)

    def kls(pred):
        masks = {f"kl_{min_votes}plus": high, "kl_all": every}
        return {k: float(kl_per_row(target[m], pred[m]).mean()) if m.any() else None for k, m in masks.items()}

    chosen = method_label(method, select, options)
    specs = {**(compared_methods(options) if compare else {}),
             chosen: {"method": method, "select": select, "options": options}}
    cv = {label: cross_fitted(logp, target, groups, fit_mask, folds, **spec) for label, spec in specs.items()}
    final = fit_method(logp[:, fit_mask], target[fit_mask], groups[fit_mask], method, select, options)
    every_fit = [final] + [f for _, fits in cv.values() for f in fits]
    report = {"models": {n: kls(np.exp(lp)) for n, lp in zip(names, logp)},
              "mean_of_probabilities": kls(mean), "blend_cross_validated": kls(cv[chosen][0]), "method": chosen,
              **_fit_summary(final, names), "cv_folds": [_fit_summary(f, names) for f in cv[chosen][1]],
              **({"inner_cv_kl": final.info["inner_cv_kl"]} if "inner_cv_kl" in final.info else {}),
              "notes": sorted({note for f in every_fit for note in f.info.get("notes", [])}),
              "rows": int(len(base)), "rows_min_votes": int(high.sum()), "fit_rows": int(fit_mask.sum()),
              "cv_groups": "patient_id" if "patient_id" in base.columns else "eeg_id"}
    if compare:
        report["compare"] = {"mean": kls(mean), **{label: kls(probs) for label, (probs, _) in cv.items()}}
    kept = final.counts if final.counts is not None else np.ones(len(names), int)
    used = {method: FIT_FUNCTIONS[method], **({"greedy": greedy_select} if select else {})}
    return {"weights": {n: w.tolist() for n, w, k in zip(names, final.weights, kept) if k},
              "class_bias": final.bias.tolist(), "method": method, "select": select, "inputs": list(names),
              **({"penalty": final.info["penalty"]} if method == "stack" else {}), "report": report,
              "options": {"min_votes": min_votes, "folds": folds, "method": method, "select": select,
                          **({"l2_towards": "1/M"} if method != "hms3" else {}),
                          **{k: _effective(f, options.get(k, {})) for k, f in used.items()}}}


def format_report(result: dict) -> str:
    """The report as a small text table (what blend_weights.py prints)."""
    report = result["report"]
    columns = list(report["mean_of_probabilities"])
    fmt = lambda v: f"{v:10.4f}" if v is not None else f"{'-':>10s}"
    lines = [f"{'input':40s}" + "".join(f"{c:>10s}" for c in columns)]
    rows = [*report["models"].items(), ("mean of probabilities", report["mean_of_probabilities"]),
            (f"blend {report.get('method', '')} (cross-validated)", report["blend_cross_validated"])]
    rows += [(f"compare: {label}", kl) for label, kl in report.get("compare", {}).items()]
    lines += [f"{name[:40]:40s}" + "".join(fmt(kl[c]) for c in columns) for name, kl in rows]
    lines.append(f"rows {report['rows']}, fitted on {report['fit_rows']}, folds grouped by {report['cv_groups']}")
    if "selection" in report:
        lines.append(f"greedy selection kept {report['selection']} (dropped "
                     f"{[n for n in report['models'] if n not in report['selection']]})")
    if "penalty" in report:
        lines.append(f"stack penalty {report['penalty']:.3g} (outer folds: "
                     f"{[round(f['penalty'], 8) for f in report['cv_folds']]})")
    lines += [f"note: {note}" for note in report.get("notes", [])]
    return "\n".join(lines)


def plot_report(result: dict, path) -> None:
    """A PNG bar chart of the report: every input's KL, the mean's and each method's cross-validated KL,
    on the rows with min_votes or more (all rows when there are none)."""
    from matplotlib.figure import Figure  # here: the fits and --apply do not pay matplotlib's import

    report = result["report"]
    column = next(c for c in report["mean_of_probabilities"] if report["mean_of_probabilities"][c] is not None)
    methods = report.get("compare", {report["method"]: report["blend_cross_validated"]})
    bars = [*((n, kl, "tab:blue") for n, kl in report["models"].items()),
            ("mean of probabilities", report["mean_of_probabilities"], "tab:gray"),
            *((f"{label} (CV)", kl, "tab:green" if label == report["method"] else "tab:olive")
              for label, kl in methods.items() if label != "mean")]
    fig = Figure(figsize=(8, 1.5 + 0.3 * len(bars)))
    ax = fig.subplots()
    ax.barh([b[0] for b in bars][::-1], [b[1][column] for b in bars][::-1], color=[b[2] for b in bars][::-1])
    for y, (_, kl, _) in enumerate(bars[::-1]):
        ax.text(kl[column], y, f" {kl[column]:.4f}", va="center", fontsize=8)
    ax.set_xlabel(f"KL ({column}); blends cross-validated by {report['cv_groups']}")
    ax.set_title(f"blend {report['method']}: {report['rows']} rows, fitted on {report['fit_rows']}")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def parse_blend(blend: dict, source="blend.json") -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
    """(blended input names, weights [M], [M, 6] or [M, 6, 6], class bias [6], every input it was fitted
    on) of a blend.json's content; a one-line BlendError naming `source` for anything missing,
    malformed or not finite (a NaN weight would make every blended row NaN)."""
    try:
        names = list(blend["weights"])
        weights = np.array([blend["weights"][n] for n in names], dtype=np.float64)
        bias = np.array(blend["class_bias"], dtype=np.float64)
        inputs = list(blend.get("inputs", names))
    except (KeyError, TypeError, ValueError) as error:
        raise BlendError(f"{source}: missing or malformed entry ({error})") from None
    if not names or bias.shape != (6,) or weights.shape[1:] not in ((), (6,), (6, 6)):
        raise BlendError(f"{source}: expected 6 class biases and, per input, one weight, 6 or a 6x6 matrix")
    bad = [n for n, w in zip(names, weights) if not np.isfinite(w).all()]
    bad += [] if np.isfinite(bias).all() else ["class_bias"]
    if bad:
        raise BlendError(f"{source}: non-finite weights or bias: {bad}")
    if not set(names) <= set(inputs):
        raise BlendError(f"{source}: blends {sorted(set(names) - set(inputs))}, which are not among its inputs")
    return names, weights, bias, inputs


def match_inputs(names: list[str], inputs: list[str], given: list[str], match_by_order: bool = False,
                 source="blend.json") -> dict[str, str]:
    """{blend input name: given name}. By name: every blended input must be given, and nothing it was
    not fitted on (a greedy blend's dropped inputs are ignored, with a note). With `match_by_order`,
    the given names take the blend's names in order (as many as its inputs, or as it blends), printed."""
    if match_by_order:
        order = next((o for o in (inputs, names) if len(o) == len(given)), None)
        if order is None:
            raise BlendError(f"{source}: --match-by-order needs {len(names)} predictions (or {len(inputs)}, "
                             f"one per input it was fitted on); got {len(given)}")
        pairs = dict(zip(order, given))
        print(f"note: {source} inputs matched by order: " + ", ".join(f"{g} as {n}" for n, g in pairs.items()),
              file=sys.stderr)
        return {n: pairs[n] for n in names}
    if set(names) <= set(given) <= set(inputs):
        if set(given) - set(names):
            print(f"note: ignoring {sorted(set(given) - set(names))} (not kept by {source}'s selection)",
                  file=sys.stderr)
        return {n: n for n in names}
    fitted = f" (fitted on {inputs})" if inputs != names else ""
    raise BlendError(f"{source} needs predictions of {names}{fitted}; got {given} "
                     "(name them as the blend's inputs, or pass --match-by-order)")


def read_blend(path) -> dict:
    """blend.json's content, checked (parse_blend) before any long inference starts."""
    try:
        blend = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BlendError(f"{path}: not a readable blend.json ({error})") from None
    parse_blend(blend, path)
    return blend


def apply_blend(blend: dict, named_probs: dict, match_by_order: bool = False, source="blend.json") -> np.ndarray:
    """blend.json (any method) applied to per-model probabilities {name: [N, 6]} -> probabilities
    [N, 6]; inputs matched as match_inputs says. A non-finite blended row is a BlendError naming `source`."""
    names, weights, bias, inputs = parse_blend(blend, source)
    pairs = match_inputs(names, inputs, list(named_probs), match_by_order, source)
    probs = {n: np.asarray(named_probs[pairs[n]], np.float64) for n in names}
    logp = np.stack([np.log(np.clip(probs[n], EPS, 1)) for n in names])
    blended = softmax(blend_logits(logp, weights, bias), axis=1)
    bad = ~np.isfinite(blended).all(axis=1)
    if bad.any():
        culprits = [pairs[n] for n in names if not np.isfinite(probs[n]).all()]
        raise BlendError(f"{source}: {bad.sum()} of {len(blended)} blended rows are not finite (first: row "
                         f"{np.argmax(bad)}; non-finite predictions in {culprits or 'none of the inputs'})")
    return blended


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
