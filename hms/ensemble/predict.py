"""Inference: checkpoints x flip TTA over a Kaggle-layout test folder, averaged per model, blended."""
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.utils.data import DataLoader
from tqdm import tqdm

from hms.data.dataset import TestDataset
from hms.train.augment import TTA_FLIPS, flip_batch


def load_model(path, device) -> tuple[str, torch.nn.Module]:
    """(model name, model in eval mode) from a run's checkpoint.pt; it carries its resolved config."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    state = torch.load(path, map_location=device, weights_only=True)
    model = instantiate(OmegaConf.create(state["config"]["model"]))
    model.load_state_dict(state["model"])
    return state["config"].get("name", path.parent.name), model.to(device).eval()


@torch.no_grad()
def predict_folder(root, checkpoints, batch_size=8, tta=True, device=None, progress=True):
    """{model name: probabilities [N, 6]} for test.csv's rows (folds of one name averaged), and ids."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dataset = TestDataset(root)
    per_name = defaultdict(list)
    for path in checkpoints:
        name, model = load_model(path, device)
        probs = []
        loader = DataLoader(dataset, batch_size=batch_size)
        for batch in tqdm(loader, desc=f"predict {Path(path).parent.name}", disable=not progress):
            batch = {k: v.to(device) for k, v in batch.items()}
            flips = TTA_FLIPS if tta else TTA_FLIPS[:1]
            p = sum(model(flip_batch(batch, lr, fb))["logits"].float().softmax(1) for lr, fb in flips)
            probs.append((p / len(flips)).cpu().numpy())
        per_name[name].append(np.concatenate(probs))
    return {n: np.mean(p, axis=0) for n, p in per_name.items()}, dataset.rows
