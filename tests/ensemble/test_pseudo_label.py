"""Pseudo-labels: stage-1 checkpoints label the low-vote rows, stage 2 trains on them (16th place, any family)."""
import subprocess
import sys

import numpy as np
import pandas as pd
import torch

import hms.train.loop as loop
from hms.ensemble.pseudo_label import pseudo_label
from hms.layout import PRED_COLUMNS
from tests.helpers import SCRIPTS
from tests.train.test_loop import QUICK, run


def test_stage_one_labels_the_low_rows_and_stage_two_trains_on_them(small_set, tmp_path, monkeypatch):
    run(small_set, tmp_path / "stage1", *QUICK, "sampling.train_min_votes=8")
    checkpoint = tmp_path / "stage1/checkpoint.pt"
    every = pseudo_label(small_set, [checkpoint], max_votes=7, other_threshold=1.01, tta=True, progress=False)
    rows = pd.read_parquet(small_set / "cache/rows.parquet")
    low = rows[rows.n_votes <= 7]
    assert sorted(every.label_id) == sorted(low.label_id) and (every.n_votes <= 7).all()
    np.testing.assert_allclose(every[list(PRED_COLUMNS)].sum(axis=1), 1.0, atol=1e-5)
    # an EEG with any pseudo-label other >= the threshold loses all its rows
    threshold = float(every.other_pred.median())
    kept = pseudo_label(small_set, [checkpoint, checkpoint], other_threshold=threshold, tta=True, progress=False)
    ruled_out = set(every.eeg_id[every.other_pred >= threshold])
    assert ruled_out and not set(kept.eeg_id) & ruled_out and set(kept.eeg_id) == set(every.eeg_id) - ruled_out

    # the script writes the file stage 2 reads
    done = subprocess.run([sys.executable, str(SCRIPTS / "pseudo_label.py"), "--data-root", str(small_set),
                           "--checkpoints", str(checkpoint), "--out", str(tmp_path / "pl.csv"), "--other-threshold",
                           str(threshold)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(pd.read_csv(tmp_path / "pl.csv")) == len(kept)

    entering = []
    real = loop.augment_batch
    monkeypatch.setattr(loop, "augment_batch", lambda b, i, a: (entering.append((b["row"].clone(), b["target"].clone())),
                                                               real(b, i, a))[1])
    run(small_set, tmp_path / "stage2", *QUICK, "sampling.train_min_votes=8", f"sampling.pseudo_labels={tmp_path / 'pl.csv'}")
    seen = torch.cat([r for r, _ in entering]).numpy()
    targets = torch.cat([t for _, t in entering]).numpy()
    labelled = rows.label_id.iloc[seen].to_numpy()
    pl = kept.set_index("label_id")[list(PRED_COLUMNS)]
    is_pl = np.isin(labelled, pl.index)
    assert is_pl.any() and (rows.n_votes.iloc[seen[~is_pl]] >= 8).all()  # low rows train only when pseudo-labelled
    np.testing.assert_allclose(targets[is_pl], pl.loc[labelled[is_pl]].to_numpy(), atol=1e-6)


def test_the_merge_rules_combine_checkpoints():
    from hms.ensemble.pseudo_label import MERGE_RULES
    p = np.array([[[0.7, 0.1, 0.1, 0.05, 0.05, 0.0]], [[0.1, 0.7, 0.1, 0.05, 0.05, 0.0]], [[0.6, 0.2, 0.1, 0.05, 0.05, 0.0]]])
    np.testing.assert_allclose(MERGE_RULES["mean"](p), [[1.4 / 3, 1.0 / 3, 0.1, 0.05, 0.05, 0.0]])
    median = MERGE_RULES["median"](p)
    np.testing.assert_allclose(median.sum(), 1.0)
    np.testing.assert_allclose(median[0, :2] / median[0, 0], [1, 0.2 / 0.6])
