"""Which rows a run trains and validates on, and how an epoch draws them: the `sampling` config group.

Where the data is (`data=`) and how rows are chosen (`sampling=`) are separate, so each recipe picks its
own rule: a vote threshold, a de-duplication rule among the overlapping windows of one annotation,
one window per EEG per epoch, a time shift, and quality stages (the first epochs on another threshold).
"""
import numpy as np
import pandas as pd

from hms.layout import VOTE_COLUMNS


def keep_all(rows: pd.DataFrame) -> np.ndarray:
    return np.ones(len(rows), dtype=bool)


def keep_central_per_vote_vector(rows: pd.DataFrame) -> np.ndarray:
    """One window per (eeg_id, vote vector): the most central one, whose offset is closest to the
    median offset of its group (it overlaps the others most)."""
    keys = [rows.eeg_id] + [rows[c] for c in VOTE_COLUMNS]
    median = rows.groupby(keys).eeg_label_offset_seconds.transform("median")
    distance = (rows.eeg_label_offset_seconds - median).abs()
    order = rows.assign(_d=distance).sort_values(["_d", "eeg_label_offset_seconds"], kind="stable")
    kept = order.drop_duplicates(subset=["eeg_id", *VOTE_COLUMNS], keep="first").index
    return rows.index.isin(kept)


# sampling.dedup / sampling.val_dedup: name -> rows -> mask of the rows kept
DEDUP_RULES = {"none": keep_all, "vote_vector": keep_central_per_vote_vector}


def dedup_mask(rows: pd.DataFrame, rule: str) -> np.ndarray:
    if rule not in DEDUP_RULES:
        raise ValueError(f"sampling dedup rule {rule!r} is not one of {sorted(DEDUP_RULES)}")
    return DEDUP_RULES[rule](rows)


def select_rows(rows: pd.DataFrame, fold: int, split: str, min_votes: int, dedup: str) -> np.ndarray:
    """Positions of the rows of a split: "train" = not in `fold` (all rows when fold == -1), "val" = in
    it; with at least `min_votes` votes, after the `dedup` rule."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be train or val, not {split!r}")
    in_fold = rows.fold.to_numpy() == fold
    mask = (~in_fold if split == "train" else in_fold) & (rows.n_votes.to_numpy() >= min_votes)
    return np.flatnonzero(mask & dedup_mask(rows, dedup))


def stage_min_votes(sampling, epoch: int) -> int:
    """The vote threshold of an epoch: each of `sampling.stages` ({epochs, min_votes}) in turn, then
    `sampling.train_min_votes` for the remaining epochs."""
    end = 0
    for stage in sampling.stages:
        end += stage.epochs
        if epoch < end:
            return stage.min_votes
    return sampling.train_min_votes
