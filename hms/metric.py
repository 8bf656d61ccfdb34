"""Kaggle's KL divergence for HMS, and the helpers every stage uses to score probabilities."""
import numpy as np
import pandas as pd

from hms.layout import SUBMISSION_COLUMNS, VOTE_COLUMNS

EPS = 1e-15


def normalise_votes(votes) -> np.ndarray:
    """Vote counts [N, 6] -> probabilities; rows with zero votes are an error, not NaN."""
    votes = np.asarray(votes, dtype=np.float64)
    totals = votes.sum(axis=1, keepdims=True)
    if (totals <= 0).any():
        raise ValueError(f"{int((totals <= 0).sum())} rows have no votes")
    return votes / totals


def kl_per_row(target, pred) -> np.ndarray:
    """sum_c y*log(y/p) per row; the prediction is clipped like Kaggle's, zero targets add 0."""
    target = np.asarray(target, dtype=np.float64)
    pred = np.clip(np.asarray(pred, dtype=np.float64), EPS, 1 - EPS)
    safe = np.where(target > 0, target, 1.0)
    return np.where(target > 0, target * (np.log(safe) - np.log(pred)), 0.0).sum(axis=1)


def check_probabilities(frame, name: str, atol: float = 1e-3) -> None:
    """Raise ValueError (one line, starting with `name`) unless every row is a probability vector."""
    frame = np.asarray(frame, dtype=np.float64)
    if not np.isfinite(frame).all() or (frame < 0).any():
        raise ValueError(f"{name} holds negative or non-finite probabilities")
    worst = np.abs(frame.sum(axis=1) - 1).max(initial=0.0)
    if worst > atol:
        raise ValueError(f"{name} rows must sum to 1 (off by up to {worst:.3g})")


def kaggle_kl(target, pred, check: bool = True) -> float:
    """Mean KL over rows. With `check`, both frames must be probabilities (rows sum to 1)."""
    if check:
        check_probabilities(target, "solution")
        check_probabilities(pred, "submission")
    return float(kl_per_row(target, pred).mean())


def prior_kl(train_target, eval_target) -> float:
    """KL of predicting the mean training target for every evaluated row: the score to beat."""
    prior = np.asarray(train_target, dtype=np.float64).mean(axis=0, keepdims=True)
    eval_target = np.asarray(eval_target, dtype=np.float64)
    return float(kl_per_row(eval_target, np.repeat(prior, len(eval_target), axis=0)).mean())


def read_csv_with(path, columns) -> pd.DataFrame:
    """A csv that must hold `columns`; ValueError (one line, naming the file) otherwise."""
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a readable csv ({str(error).splitlines()[0]})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    return frame


def _read_probabilities(path, normalise: bool) -> tuple[pd.DataFrame, np.ndarray]:
    """(frame, checked probabilities [N, 6]) of a csv with eeg_id + the six vote columns."""
    frame = read_csv_with(path, SUBMISSION_COLUMNS)
    try:
        probs = frame[list(VOTE_COLUMNS)].to_numpy(np.float64)
        probs = normalise_votes(probs) if normalise else probs
    except (ValueError, TypeError) as error:
        raise ValueError(f"{path}: {error}") from None
    check_probabilities(probs, str(path))
    return frame, probs


def score_submission(solution_path, submission_path) -> tuple[float, int]:
    """(Kaggle KL, scored rows) of two csv files, rows matched by eeg_id. The solution's votes are
    normalised. Repeated eeg_ids (MLE-bench scores one row per test row) are fine on both sides if the
    submission gives every row of one eeg_id the same prediction. ValueError naming the file otherwise."""
    solution, target = _read_probabilities(solution_path, normalise=True)
    submission, _ = _read_probabilities(submission_path, normalise=False)
    distinct = submission.drop_duplicates(list(SUBMISSION_COLUMNS))
    if distinct.eeg_id.duplicated().any():
        example = distinct.eeg_id[distinct.eeg_id.duplicated()].iloc[0]
        raise ValueError(f"{submission_path}: eeg_id {example} is repeated with different predictions")
    predicted = distinct.set_index("eeg_id")
    missing = sorted(set(solution.eeg_id) - set(predicted.index))
    if missing:
        raise ValueError(f"{submission_path}: no prediction for {len(missing)} eeg_ids, e.g. {missing[:3]}")
    pred = predicted.loc[solution.eeg_id, list(VOTE_COLUMNS)].to_numpy(np.float64)
    return kaggle_kl(target, pred, check=False), len(solution)
