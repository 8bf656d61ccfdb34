"""Pseudo-labels (the 16th place's stage 2, for any model family): trained checkpoints predict every
low-vote training row, window by window (each sub-record), with each checkpoint's own inputs and flip TTA;
the mean over checkpoints becomes the row's target in a second training stage
(`sampling.pseudo_labels=<file>`), and every row of an EEG with any pseudo-label `other >= threshold`
is dropped, as the 16th place did (RECIPES.md 3.8)."""
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hms.data.dataset import HMSDataset
from hms.data.prepare import load_prepared, prepare_data
from hms.ensemble.predict import load_model, predict_dataset
from hms.layout import CLASSES, PRED_COLUMNS


MERGE_RULES = {"mean": lambda p: np.mean(p, axis=0),  # the 16th place
               "median": lambda p: np.median(p, axis=0) / np.median(p, axis=0).sum(axis=1, keepdims=True)}


def pseudo_label(root, checkpoints, max_votes: int = 7, other_threshold: float = 0.8, tta: bool = True,
                 batch_size: int = 8, device=None, progress: bool = True, cache_dir=None,
                 merge: str = "mean") -> pd.DataFrame:
    """label_id, eeg_id, n_votes and the six merged probabilities (<class>_pred) of every training row with
    at most `max_votes` votes, without the EEGs that an `other` pseudo-label >= other_threshold rules out.
    merge: how the checkpoints' probabilities combine, mean (as published) or a renormalised median."""
    if merge not in MERGE_RULES:
        raise ValueError(f"merge must be one of {sorted(MERGE_RULES)}, not {merge!r}")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    models = [load_model(path, device) for path in checkpoints]
    names = sorted({name for _, config, _ in models for name in config["data"]["inputs"]})
    prepared = load_prepared(prepare_data(root, cache_dir, workers=2, progress=progress, inputs=names), names)
    rows = prepared.rows
    low = np.flatnonzero(rows.n_votes.to_numpy() <= max_votes)
    if len(low) == 0:
        raise ValueError(f"{root}: no training row has {max_votes} votes or fewer to pseudo-label")
    dataset = HMSDataset(prepared, low)  # every low row as it is: no flips, no shift
    probs = []
    for (name, config, model), path in zip(models, checkpoints):
        probs.append(predict_dataset(model, dataset, tuple(config["data"]["inputs"]), batch_size, tta, device,
                                     progress, desc=f"pseudo-label {Path(path).parent.name}",
                                     flip_inputs=config["aug"]["flip_inputs"], tta_flips=config["aug"]["tta_flips"]))
        del model
    labels = rows.iloc[low][["label_id", "eeg_id", "n_votes"]].reset_index(drop=True)
    labels[list(PRED_COLUMNS)] = MERGE_RULES[merge](np.stack(probs))
    other = labels[PRED_COLUMNS[CLASSES.index("other")]] >= other_threshold
    return labels[~labels.eeg_id.isin(labels.eeg_id[other])].reset_index(drop=True)
