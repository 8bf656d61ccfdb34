"""Which rows a run trains and validates on, and how an epoch draws them: the `sampling` config group.

Where the data is (`data=`) and how rows are chosen (`sampling=`) are separate, so each recipe picks its
own rule: a vote threshold, a de-duplication rule among the overlapping windows of one annotation,
one window per EEG per epoch, a time shift, and quality stages (the first epochs on another threshold).
"""
import numpy as np
import pandas as pd

from hms.data.prepare import assign_folds
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


def keep_max_votes_spaced(rows: pd.DataFrame, spacing_seconds: float, first_only: bool = False) -> np.ndarray:
    """15th place (its README; the CSVs and the script are not published): per eeg_id the rows with the
    most votes, then, in offset order, a row only if it starts at least `spacing_seconds` after the last
    one kept (non-overlapping windows for 50 s); `first_only` keeps the first of those (lowest
    eeg_sub_id), the 15th-place validation row."""
    most = rows.n_votes.to_numpy() == rows.groupby("eeg_id").n_votes.transform("max").to_numpy()
    keep = np.zeros(len(rows), dtype=bool)
    candidates = rows[most].sort_values(["eeg_id", "eeg_label_offset_seconds"], kind="stable")
    for _, group in candidates.groupby("eeg_id", sort=False):
        last = -np.inf
        for position, offset in zip(group.index, group.eeg_label_offset_seconds.to_numpy()):
            if offset >= last + spacing_seconds:
                keep[rows.index.get_loc(position)], last = True, offset
                if first_only:
                    break
    return keep


def raw_votes(rows: pd.DataFrame) -> np.ndarray:
    """The raw vote counts [n, 6] (the prepared vote columns are fractions of n_votes)."""
    return np.rint(rows[list(VOTE_COLUMNS)].to_numpy() * rows.n_votes.to_numpy()[:, None]).astype(int)


def vote_vector_groups(rows: pd.DataFrame, sort: bool = False) -> np.ndarray:
    """The group number of each row's (eeg_id, raw vote vector): numbered in order of first appearance, or
    (sort) in order of eeg_id and then the vote counts, as pandas' groupby numbers them."""
    keys = pd.DataFrame(raw_votes(rows), index=rows.index, columns=list(VOTE_COLUMNS))
    keys.insert(0, "eeg_id", rows.eeg_id.to_numpy())
    return keys.groupby(list(keys.columns), sort=sort).ngroup().to_numpy()


def keep_max_overlap_per_vote_vector(rows: pd.DataFrame, first_per_eeg: bool = False) -> np.ndarray:
    """3rd place (scripts/filter_train.py): per (eeg_id, raw vote vector), in order of first appearance,
    the row whose 600 s spectrogram window overlaps the group's other windows most (the sum over the
    group of |[o_i, o_i + 600) & [o_j, o_j + 600)| for the integer offsets o; the first on ties);
    `first_per_eeg` then keeps only the first group of each eeg_id (its golden validation set)."""
    group = vote_vector_groups(rows)
    offsets = rows.spectrogram_label_offset_seconds.to_numpy().astype(int)
    keep = np.zeros(len(rows), dtype=bool)
    chosen = {}
    for g, members in pd.Series(group).groupby(group).indices.items():
        o = offsets[members]
        score = np.maximum(0, 600 - np.abs(o[:, None] - o[None, :])).sum(axis=1)
        chosen[g] = members[int(np.argmax(score))]  # argmax: the first on ties
    eeg_ids = rows.eeg_id.to_numpy()
    seen = set()
    for g in sorted(chosen):  # group numbers follow first appearance
        position = chosen[g]
        if first_per_eeg and eeg_ids[position] in seen:
            continue
        seen.add(eeg_ids[position])
        keep[position] = True
    return keep


def keep_centre_per_eeg(rows: pd.DataFrame) -> np.ndarray:
    """16th place (CenterSubrecord): per eeg_id the row at index len // 2 of its rows in eeg_sub_id order."""
    order = rows.sort_values(["eeg_id", "eeg_sub_id"], kind="stable")
    rank = order.groupby("eeg_id").cumcount().to_numpy()
    size = order.groupby("eeg_id").eeg_id.transform("size").to_numpy()
    return rows.index.isin(order.index[rank == size // 2])


def cmb_confident(rows: pd.DataFrame) -> np.ndarray:
    """Cranjis-McB's two-stage split (9a cells 8-10): a row is "good" with 5+ votes, or with 4 votes all for
    one class; the rest (fewer than 4, or 4 split between classes) is "noisy"."""
    n_votes = rows.n_votes.to_numpy()
    unanimous = (rows[list(VOTE_COLUMNS)].to_numpy() == 1.0).any(axis=1)
    return (n_votes >= 5) | ((n_votes == 4) & unanimous)


def keep_first_per_vote_vector(rows: pd.DataFrame, subset: str = "all") -> np.ndarray:
    """Cranjis-McB (every notebook, cell 3): one row per (eeg_id, raw vote vector), its first row in file
    order (groupby(...).agg("first") keeps the first spectrogram_id, patient_id and label_id); `subset`
    "noisy" / "good" keeps only the groups of that two-stage split (cmb_confident)."""
    first = ~pd.Series(vote_vector_groups(rows)).duplicated().to_numpy()
    if subset == "all":
        return first
    good = cmb_confident(rows)
    return first & (good if subset == "good" else ~good)


# sampling.dedup / sampling.val_dedup: name -> rows -> mask of the rows kept
DEDUP_RULES = {
    "none": keep_all,
    "vote_vector": keep_central_per_vote_vector,
    "max_votes_25s": lambda rows: keep_max_votes_spaced(rows, 25.0),  # 15th place, training
    "max_votes_50s": lambda rows: keep_max_votes_spaced(rows, 50.0),  # 15th place, pretraining
    "max_votes_50s_first": lambda rows: keep_max_votes_spaced(rows, 50.0, first_only=True),  # its validation
    "max_overlap": keep_max_overlap_per_vote_vector,  # 3rd place, training
    "max_overlap_first_per_eeg": lambda rows: keep_max_overlap_per_vote_vector(rows, first_per_eeg=True),  # golden
    "centre_per_eeg": keep_centre_per_eeg,  # 16th place, validation and test
    "first_per_vote_vector": keep_first_per_vote_vector,  # Cranjis-McB, with sampling.window=group_middle
    "first_per_vote_vector_noisy": lambda rows: keep_first_per_vote_vector(rows, "noisy"),  # its stage 1
    "first_per_vote_vector_good": lambda rows: keep_first_per_vote_vector(rows, "good"),  # its stage 2
}


def window_offsets(rows: pd.DataFrame, rule: str) -> dict[str, np.ndarray]:
    """Where each row's windows start (sampling.window), as {offset column: seconds per row}: "row", the row's
    own offsets (empty dict); "group_middle" (Cranjis-McB, cell 10 of every notebook), the middle of the offsets
    of the row's (eeg_id, vote vector) group: the spectrogram window at row r = (min + max) // 4 of the file
    (offset 2 r: a Kaggle spectrogram's row r lies at 2 r + 1 s), the EEG window at (min + max) / 2 s (the
    EEG-spectrogram cache it keyed by eeg_id, min and max EEG offset is unpublished: the middle is our guess)."""
    if rule == "row":
        return {}
    if rule != "group_middle":
        raise ValueError(f"sampling.window must be row or group_middle, not {rule!r}")
    group = vote_vector_groups(rows)
    out = {}
    for column, middle in (("spectrogram_label_offset_seconds", lambda lo, hi: 2 * ((lo + hi) // 4)),
                           ("eeg_label_offset_seconds", lambda lo, hi: (lo + hi) / 2)):
        offsets = rows[column].groupby(group)
        out[column] = middle(offsets.transform("min").to_numpy(), offsets.transform("max").to_numpy()).astype(float)
    return out


def group_folds(rows: pd.DataFrame, n_folds: int, seed: int) -> np.ndarray:
    """Cranjis-McB's folds (cell 7): StratifiedGroupKFold(n_folds, shuffle, seed) on the (eeg_id, vote vector)
    groups in pandas' sorted group order, y = the first row's expert_consensus, groups = its patient_id; every
    row gets its group's fold."""
    group = vote_vector_groups(rows, sort=True)
    firsts = rows.assign(_group=group).drop_duplicates("_group").sort_values("_group")
    return assign_folds(firsts.reset_index(drop=True), n_folds, seed)[group]


def sampling_folds(rows: pd.DataFrame, rule: str, n_folds: int, seed: int) -> np.ndarray:
    """The fold of each row (sampling.folds): "data", the prepared folds (patient-grouped over all rows);
    "vote_vector_groups", group_folds."""
    if rule == "data":
        return rows.fold.to_numpy()
    if rule != "vote_vector_groups":
        raise ValueError(f"sampling.folds must be data or vote_vector_groups, not {rule!r}")
    return group_folds(rows, n_folds, seed)


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


def pseudo_label_rows(path, rows: pd.DataFrame, fold: int, dedup: str) -> np.ndarray:
    """Positions of the training rows (not in `fold`, after `dedup`) that a pseudo-label file names by
    label_id: they train on their pseudo-label whatever their vote count (16th place, stage 2)."""
    named = set(pd.read_csv(path, usecols=["label_id"]).label_id)
    return np.intersect1d(select_rows(rows, fold, "train", 0, dedup), np.flatnonzero(rows.label_id.isin(named)))


def stage_min_votes(sampling, epoch: int) -> int:
    """The vote threshold of an epoch: each of `sampling.stages` ({epochs, min_votes}) in turn, then
    `sampling.train_min_votes` for the remaining epochs."""
    end = 0
    for stage in sampling.stages:
        end += stage.epochs
        if epoch < end:
            return stage.min_votes
    return sampling.train_min_votes
