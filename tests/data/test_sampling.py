"""Row selection: de-duplication rules, splits, vote thresholds and quality stages."""
import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from hms.data.sampling import (dedup_mask, keep_central_per_vote_vector, keep_max_overlap_per_vote_vector,
                                keep_max_votes_spaced, select_rows,
                                stage_min_votes)
from hms.layout import VOTE_COLUMNS


def test_dedup_keeps_the_most_central_window():
    rows = pd.DataFrame({"eeg_id": [1, 1, 1, 1, 2], "eeg_label_offset_seconds": [0.0, 10, 20, 4, 0],
                         **{c: [3, 3, 3, 0, 1] for c in VOTE_COLUMNS}})
    rows.loc[3, "seizure_vote"] = 5  # a different vote vector on EEG 1
    kept = keep_central_per_vote_vector(rows)
    assert kept.tolist() == [False, True, False, True, True]
    assert dedup_mask(rows, "none").all()
    with pytest.raises(ValueError, match="dedup rule 'central' is not one of"):
        dedup_mask(rows, "central")


def test_select_rows_splits_by_fold_and_votes():
    rows = pd.DataFrame({"eeg_id": np.arange(6), "eeg_label_offset_seconds": 0.0, "fold": [0, 0, 1, 1, 2, 2],
                         "n_votes": [3, 12, 3, 12, 3, 12], **{c: 1 for c in VOTE_COLUMNS}})
    assert select_rows(rows, 0, "val", 1, "none").tolist() == [0, 1]
    assert select_rows(rows, 0, "train", 10, "none").tolist() == [3, 5]
    assert select_rows(rows, -1, "train", 10, "vote_vector").tolist() == [1, 3, 5]  # fold -1: everything
    with pytest.raises(ValueError, match="split must be train or val"):
        select_rows(rows, 0, "test", 1, "none")


def test_stages_set_the_vote_threshold_epoch_by_epoch():
    sampling = OmegaConf.create({"train_min_votes": 10, "stages": [{"epochs": 2, "min_votes": 1},
                                                                    {"epochs": 1, "min_votes": 5}]})
    assert [stage_min_votes(sampling, e) for e in range(5)] == [1, 1, 5, 10, 10]
    assert stage_min_votes(OmegaConf.create({"train_min_votes": 7, "stages": []}), 0) == 7


def test_the_15th_place_rule_keeps_spaced_max_vote_rows():
    rows = pd.DataFrame({
        "eeg_id": [1, 1, 1, 1, 1, 2, 2],
        "eeg_sub_id": [0, 1, 2, 3, 4, 0, 1],
        "eeg_label_offset_seconds": [0.0, 10, 30, 56, 70, 0, 8],
        "n_votes": [14, 14, 14, 14, 3, 2, 2]})
    assert keep_max_votes_spaced(rows, 25.0).tolist() == [True, False, True, True, False, True, False]
    assert keep_max_votes_spaced(rows, 50.0).tolist() == [True, False, False, True, False, True, False]
    assert keep_max_votes_spaced(rows, 50.0, first_only=True).tolist() == [True, False, False, False, False, True, False]
    assert dedup_mask(rows, "max_votes_25s").sum() == 4 and dedup_mask(rows, "max_votes_50s_first").sum() == 2


def test_the_3rd_place_rule_keeps_the_most_overlapping_window_per_vote_vector():
    # EEG 1: one vote vector on offsets 0, 300, 400 (300 overlaps the group most: 300 + 600 + 500)
    # and a second vote vector; EEG 2: one row. Raw votes: the same normalised vector with another count
    # is another group (1 vote vs 2 votes of seizure).
    rows = pd.DataFrame({
        "eeg_id": [1, 1, 1, 1, 2, 2],
        "spectrogram_label_offset_seconds": [0.0, 300, 400, 10, 0, 50],
        "n_votes": [10, 10, 10, 12, 1, 2]})
    target = np.zeros((6, 6))
    target[:3, 1] = 1.0
    target[3, 2] = 1.0
    target[4:, 0] = 1.0
    rows[list(VOTE_COLUMNS)] = target
    assert keep_max_overlap_per_vote_vector(rows).tolist() == [False, True, False, True, True, True]
    assert keep_max_overlap_per_vote_vector(rows, first_per_eeg=True).tolist() == [False, True, False, False, True, False]
    assert dedup_mask(rows, "max_overlap").sum() == 4 and dedup_mask(rows, "max_overlap_first_per_eeg").sum() == 2


def test_the_16th_place_validation_row_is_the_centre_sub_record():
    rows = pd.DataFrame({"eeg_id": [5, 5, 5, 5, 7, 7, 7], "eeg_sub_id": [3, 0, 1, 2, 0, 1, 2],
                         "eeg_label_offset_seconds": [6.0, 0, 2, 4, 0, 2, 4]})
    assert dedup_mask(rows, "centre_per_eeg").tolist() == [False, False, False, True, False, True, False]
