"""Kaggle's KL divergence for HMS, and the helpers every stage uses to score probabilities.

Every KL here refuses what is not a probability: a target or a prediction row that does not sum to 1
(within SUM_TOLERANCE), or holds a negative or non-finite value, is a one-line ValueError; a KL of
such rows would be a number with no meaning (predictions summing to 3 score better than any model).
"""
import numpy as np
import pandas as pd

from hms.layout import SUBMISSION_COLUMNS, VOTE_COLUMNS

EPS = 1e-15
SUM_TOLERANCE = 1e-3  # |row sum - 1| allowed for probabilities
MAX_VOTES = 100  # vote counts above this (per class) are refused; the real data has at most 28 per row


def normalise_votes(votes) -> np.ndarray:
    """Vote counts [N, 6] -> probabilities; rows with zero votes are an error, not NaN."""
    votes = np.asarray(votes, dtype=np.float64)
    totals = votes.sum(axis=1, keepdims=True)
    if (totals <= 0).any():
        raise ValueError(f"{int((totals <= 0).sum())} rows have no votes")
    return votes / totals


def check_probabilities(frame, name: str, atol: float = SUM_TOLERANCE) -> None:
    """Raise ValueError (one line, starting with `name`, naming the first bad row counted from 1)
    unless every row is a probability vector."""
    frame = np.asarray(frame, dtype=np.float64)
    bad = ~np.isfinite(frame).all(axis=1) | (frame < 0).any(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} holds negative or non-finite probabilities (row {i + 1}: "
                         f"{np.round(frame[i], 4).tolist()}; {int(bad.sum())} rows like it)")
    off = np.abs(frame.sum(axis=1) - 1) > atol
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise ValueError(f"{name} rows must sum to 1 (row {i + 1} sums to {frame[i].sum():.6g}; "
                         f"{int(off.sum())} rows off by more than {atol:g})")


def kl_per_row(target, pred, check: bool = True) -> np.ndarray:
    """sum_c y*log(y/p) per row; the prediction is clipped like Kaggle's, zero targets add 0. With
    `check`, both must be probabilities (check_probabilities)."""
    target = np.asarray(target, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    if check:
        check_probabilities(target, "target")
        check_probabilities(pred, "prediction")
    pred = np.clip(pred, EPS, 1 - EPS)
    safe = np.where(target > 0, target, 1.0)
    return np.where(target > 0, target * (np.log(safe) - np.log(pred)), 0.0).sum(axis=1)


def kaggle_kl(target, pred, check: bool = True) -> float:
    """Mean KL over rows. With `check`, both frames must be probabilities (rows sum to 1)."""
    if check:
        check_probabilities(target, "solution")
        check_probabilities(pred, "submission")
    return float(kl_per_row(target, pred, check=False).mean())


def prior_kl(train_target, eval_target) -> float:
    """KL of predicting the mean training target for every evaluated row: the score to beat."""
    prior = np.asarray(train_target, dtype=np.float64).mean(axis=0, keepdims=True)
    eval_target = np.asarray(eval_target, dtype=np.float64)
    return float(kl_per_row(eval_target, np.repeat(prior, len(eval_target), axis=0)).mean())


def read_csv_with(path, columns) -> pd.DataFrame:
    """A csv that must hold `columns` and at least one row; ValueError (one line, naming the file) otherwise."""
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a readable csv ({str(error).splitlines()[0]})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    if frame.empty:
        raise ValueError(f"{path}: no data rows (only a header)")
    return frame


# ----------------------------------------------------------------------------- score.py's files
USAGE = "usage: score.py SOLUTION SUBMISSION"


def _numbers(path, frame, column, integer=False) -> np.ndarray:
    """A column as finite float64 (whole numbers when `integer`); ValueError naming the file's line."""
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values) | ((values != np.round(values)) if integer else False)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = "an integer" if integer else "a finite number"
        raw = frame[column].iloc[i]
        shown = repr(raw) if isinstance(raw, str) else raw
        raise ValueError(f"{path}:{i + 2}: column {column} value {shown} is not {what}")
    return values


def _vote_like(probs: np.ndarray, max_total: int = len(VOTE_COLUMNS) * MAX_VOTES, atol: float = 1e-4) -> np.ndarray:
    """Rows that are normalised votes: k_c / n for whole k_c and some n <= max_total."""
    unmatched = np.arange(len(probs))
    for n in range(1, max_total + 1):
        scaled = probs[unmatched] * n
        unmatched = unmatched[(np.abs(scaled - np.round(scaled)) > atol).any(axis=1)]
        if not unmatched.size:
            break
    like = np.ones(len(probs), bool)
    like[unmatched] = False
    return like


def read_solution(path) -> pd.DataFrame:
    """A solution: eeg_id + the six vote columns (more columns are fine), holding vote counts (whole,
    0 to MAX_VOTES) or normalised votes (fractions k/n that sum to 1); returned with probabilities.
    Anything else, such as a model's probabilities, is refused: the arguments may be swapped."""
    frame = read_csv_with(path, SUBMISSION_COLUMNS)
    eeg_id = _numbers(path, frame, "eeg_id", integer=True)
    votes = np.stack([_numbers(path, frame, c) for c in VOTE_COLUMNS], axis=1)
    negative = (votes < 0).any(axis=1)
    if negative.any():
        raise ValueError(f"{path}:{int(np.flatnonzero(negative)[0]) + 2}: negative votes")
    counts = (votes == np.round(votes)).all() and not (np.abs(votes.sum(axis=1) - 1) <= SUM_TOLERANCE).all()
    if counts:
        too_many = (votes > MAX_VOTES).any(axis=1)
        if too_many.any():
            raise ValueError(f"{path}:{int(np.flatnonzero(too_many)[0]) + 2}: more than {MAX_VOTES} votes for a class")
        try:
            probs = normalise_votes(votes)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
    else:
        not_votes = ~_vote_like(votes)
        if not_votes.any():
            i = int(np.flatnonzero(not_votes)[0])
            raise ValueError(f"{path}:{i + 2}: {np.round(votes[i], 4).tolist()} are neither vote counts nor "
                             f"normalised votes (k/n): is it a submission? ({USAGE})")
        check_probabilities(votes, str(path))
        probs = votes
    return pd.DataFrame({"eeg_id": eeg_id.astype(np.int64), **dict(zip(VOTE_COLUMNS, probs.T))})


def read_submission(path) -> pd.DataFrame:
    """A submission: exactly the sample_submission columns (any order), rows of probabilities that sum
    to 1 within SUM_TOLERANCE."""
    frame = read_csv_with(path, SUBMISSION_COLUMNS)
    extra = [c for c in frame.columns if c not in SUBMISSION_COLUMNS]
    if extra:
        raise ValueError(f"{path}: a submission holds only {list(SUBMISSION_COLUMNS)}; unexpected columns "
                         f"{extra[:5]} (is it the solution? {USAGE})")
    eeg_id = _numbers(path, frame, "eeg_id", integer=True)
    probs = np.stack([_numbers(path, frame, c) for c in VOTE_COLUMNS], axis=1)
    try:
        check_probabilities(probs, str(path))
    except ValueError as error:
        counts = (probs == np.round(probs)).all() and (probs.sum(axis=1) > 1).any()
        raise ValueError(f"{error}{f' (vote counts: is it the solution? {USAGE})' if counts else ''}") from None
    return pd.DataFrame({"eeg_id": eeg_id.astype(np.int64), **dict(zip(VOTE_COLUMNS, probs.T))})


def score_submission(solution_path, submission_path) -> tuple[float, int]:
    """(Kaggle KL, scored rows) of two csv files, rows matched by eeg_id. The solution's votes are
    normalised. Both files must cover the same eeg_ids. Repeated eeg_ids (MLE-bench scores one row
    per test row) are fine on both sides if the submission gives every row of one eeg_id the same
    prediction. ValueError naming the file otherwise (read_solution, read_submission)."""
    solution = read_solution(solution_path)
    submission = read_submission(submission_path)
    distinct = submission.drop_duplicates(list(SUBMISSION_COLUMNS))
    if distinct.eeg_id.duplicated().any():
        example = distinct.eeg_id[distinct.eeg_id.duplicated()].iloc[0]
        raise ValueError(f"{submission_path}: eeg_id {example} is repeated with different predictions")
    predicted = distinct.set_index("eeg_id")
    missing = sorted(set(solution.eeg_id) - set(predicted.index))
    if missing:
        raise ValueError(f"{submission_path}: no prediction for {len(missing)} eeg_ids, e.g. {missing[:3]}")
    extra = sorted(set(predicted.index) - set(solution.eeg_id))
    if extra:
        raise ValueError(f"{submission_path}: {len(extra)} eeg_ids are not in {solution_path}, e.g. {extra[:3]}")
    target = solution[list(VOTE_COLUMNS)].to_numpy(np.float64)
    pred = predicted.loc[solution.eeg_id, list(VOTE_COLUMNS)].to_numpy(np.float64)
    return kaggle_kl(target, pred, check=False), len(solution)
