"""Inference: checkpoints x flip TTA over a Kaggle-layout test folder, averaged per model name.

Flip TTA averages the probabilities of four views: identity, left/right, front/back and both; each
input declares how a flip acts on it (hms/data/inputs.py), and validation uses the same function.
Each checkpoint reads the inputs its training config named (config["data"]["inputs"]).

Model names: a checkpoint's name is its config["name"] (the train config's `name`, by default the model
choice; a multirun writes <sweep>/<name>/fold<k>/, so it is also the folder scripts/blend_weights.py
names that model's OOF by). Checkpoints of one name (the folds) are averaged; they must share the model
config, else pass explicit names.
"""
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from hms.data.dataset import TestDataset
from hms.data.inputs import get_inputs, tta_probabilities
from hms.data.kaggle import first_line, read_test_csv
from hms.layout import VOTE_COLUMNS
from hms.ensemble.blend import apply_blend


class CheckpointError(ValueError):
    """One-line message starting with the checkpoint's path."""


def no_backbone_weights(node):
    """A model config with every backbone set to random init: the checkpoint's weights replace them anyway,
    and an offline notebook must not try to fetch ImageNet weights for a model it already holds."""
    if isinstance(node, dict):
        return {k: (False if k == "pretrained" else None if k == "weights_path" else no_backbone_weights(v))
                for k, v in node.items()}
    return [no_backbone_weights(v) for v in node] if isinstance(node, list) else node


def load_model(path, device="cpu") -> tuple[str, dict, torch.nn.Module]:
    """(name, resolved config, model in eval mode) from a checkpoint.pt written by the training loop."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        config = state["config"]
        model = instantiate(OmegaConf.create(no_backbone_weights(config["model"])))
        model.load_state_dict(state["model"])
    except KeyError as error:
        raise CheckpointError(f"{path}: no {error} entry (not a checkpoint of this codebase)") from None
    except Exception as error:  # unpickling, instantiation and state-dict errors all mean a bad checkpoint
        raise CheckpointError(f"{path}: cannot load the model ({first_line(error)})") from None
    return str(config["name"]), config, model.to(device).eval()


@torch.inference_mode()
def predict_dataset(model, dataset, inputs=("eeg", "spec"), batch_size=8, tta=True, device="cpu", progress=True,
                    desc="predict", flip_inputs=None, tta_flips=("lr", "fb")) -> np.ndarray:
    """Probabilities [len(dataset), 6] of one model, which reads the named inputs of each item; TTA
    flips `flip_inputs` (None: all of them), as the model's training flips did."""
    inputs = get_inputs(inputs)
    flipped = {n: inp for n, inp in inputs.items() if flip_inputs is None or n in flip_inputs}
    probs = []
    for batch in tqdm(DataLoader(dataset, batch_size=batch_size), desc=desc, disable=not progress):
        views = {name: batch[name].to(device) for name in inputs}
        probs.append(tta_probabilities(model, views, flipped, tta, tta_flips).cpu().numpy())
    return np.concatenate(probs).astype(np.float64)


def predict_folder(root, checkpoints, batch_size=8, tta=True, device=None, progress=True,
                   names=None) -> tuple[dict, pd.DataFrame]:
    """({model name: probabilities [len(test.csv), 6]}, test.csv rows) for a Kaggle-layout folder.

    Each distinct (eeg_id, spectrogram_id) of test.csv is predicted once; every row then gets the mean
    over its eeg_id's windows, so rows repeating an eeg_id carry identical predictions. Checkpoints of
    one name are averaged. `names` (one per checkpoint) overrides the names stored in them."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if names is not None and len(names) != len(checkpoints):
        raise CheckpointError(f"{len(names)} names given for {len(checkpoints)} checkpoints")
    datasets = {}  # one per tuple of inputs the checkpoints read

    def windows(inputs: tuple) -> Subset:
        if inputs not in datasets:
            dataset = TestDataset(root, inputs)
            datasets[inputs] = Subset(dataset, distinct_rows(dataset.rows).index.tolist())
        return datasets[inputs]

    rows = read_test_csv(Path(root) / "test.csv").reset_index(drop=True)
    distinct = distinct_rows(rows)
    per_name, model_configs = defaultdict(list), {}
    for i, path in enumerate(checkpoints):
        name, config, model = load_model(path, device)
        inputs = tuple(config["data"]["inputs"])
        name = names[i] if names is not None else name
        first = model_configs.setdefault(name, (path, config["model"]))
        if first[1] != config["model"]:
            raise CheckpointError(f"{path}: its model config differs from {first[0]}'s, yet both are named "
                                  f"'{name}' (train with name=<model name>, or pass names)")
        probs = predict_dataset(model, windows(inputs), inputs, batch_size, tta, device, progress,
                                desc=f"{name} {Path(path).parent.name}", flip_inputs=config["aug"]["flip_inputs"],
                                tta_flips=config["aug"]["tta_flips"])
        per_eeg = pd.DataFrame(probs, index=distinct.eeg_id.to_numpy()).groupby(level=0).mean()
        per_name[name].append(per_eeg.loc[rows.eeg_id].to_numpy())
        del model  # one model in memory at a time
    return {name: np.mean(p, axis=0) for name, p in per_name.items()}, rows


def distinct_rows(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.reset_index(drop=True).drop_duplicates(["eeg_id", "spectrogram_id"])


def combine_models(per_model: dict, blend: dict | None = None, match_by_order: bool = False,
                   source="blend.json") -> np.ndarray:
    """One probability matrix from {name: [N, 6]}: blend.json's content when given (any method; its inputs
    matched by name, or with `match_by_order` by order: hms.ensemble.blend.apply_blend), else the plain mean."""
    if blend:
        return apply_blend(blend, per_model, match_by_order, source)
    return np.mean(list(per_model.values()), axis=0)


def submission_frame(rows: pd.DataFrame, probs: np.ndarray, repeat_rows: bool = False) -> pd.DataFrame:
    """The sample_submission format, rows renormalised to sum to 1: one row per eeg_id, or with
    `repeat_rows` one per test.csv row (rows of one eeg_id hold identical predictions)."""
    probs = probs / probs.sum(axis=1, keepdims=True)
    frame = pd.DataFrame({"eeg_id": rows.eeg_id.to_numpy(), **dict(zip(VOTE_COLUMNS, probs.T))})
    return frame if repeat_rows else frame.drop_duplicates("eeg_id").reset_index(drop=True)
