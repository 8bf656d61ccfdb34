"""Kaggle's KL divergence for HMS, and the helpers every stage uses to score probabilities."""
import numpy as np

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


def kaggle_kl(target, pred, check: bool = True) -> float:
    """Mean KL over rows. With `check`, both frames must be probabilities (rows sum to 1)."""
    if check:
        for name, frame in (("solution", target), ("submission", pred)):
            frame = np.asarray(frame, dtype=np.float64)
            if not np.isfinite(frame).all() or (frame < 0).any():
                raise ValueError(f"{name} holds negative or non-finite probabilities")
            worst = np.abs(frame.sum(axis=1) - 1).max(initial=0.0)
            if worst > 1e-3:
                raise ValueError(f"{name} rows must sum to 1 (off by up to {worst:.3g})")
    return float(kl_per_row(target, pred).mean())


def prior_kl(train_target, eval_target) -> float:
    """KL of predicting the mean training target for every evaluated row: the score to beat."""
    prior = np.asarray(train_target, dtype=np.float64).mean(axis=0, keepdims=True)
    eval_target = np.asarray(eval_target, dtype=np.float64)
    return float(kl_per_row(eval_target, np.repeat(prior, len(eval_target), axis=0)).mean())
