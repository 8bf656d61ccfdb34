"""The global standardisation constants of a Cranjis-McB spectrogram image, from a data set's training rows.

    python scripts/spectrogram_constants.py --root DIR [--features panels|global|percentiles]
                                            [--order fixed|published] [--limit N]

Cranjis-McB's constants (RECIPES.md 4.2: 7a -0.08340271 / 1.9072835, 7b 0.07975473 / 1.9484872) are the mean of
the per-image np.nanmean and of the per-image np.nanstd over every train row (one per eeg_id and vote vector,
its window at the middle of the group; effb2-global-cutmix cells 10-11). --order published computes them as the
notebooks did, on log(clip(features(raw power))); --order fixed (the fix of the 7b quirk) on features(log(clip(raw
power))), which is how the images apply them. Both orders agree for features=panels. Prints the two numbers as
model.norm_stats for a preset.
"""
import argparse
import math

import numpy as np
import torch
from tqdm import tqdm

from hms.data.dataset import HMSDataset
from hms.data.kaggle import run_main
from hms.data.prepare import load_prepared, prepare_data
from hms.data.sampling import dedup_mask, window_offsets
from hms.models.spectrogram_cnn import FEATURES, SPEC_BINS, SPEC_REGIONS, plane_features, spectrogram_planes


def image_before_standardising(spec: torch.Tensor, features: str, order: str) -> torch.Tensor:
    """spec [B, 300, 400] -> the unstandardised image [B, 400, 300] in `order` (see the module docstring)."""
    if order == "fixed":
        return plane_features(spectrogram_planes(spec), features)
    raw = spec.float().unflatten(-1, (SPEC_REGIONS, SPEC_BINS)).permute(0, 2, 3, 1)  # [B, 4, 100, T]
    return torch.log(plane_features(raw, features).clamp(min=math.exp(-4), max=math.exp(8)))


def constants(root, features: str = "global", order: str = "fixed", limit: int | None = None,
              batch_size: int = 64) -> tuple[float, float]:
    """(mean of the per-image means, mean of the per-image stds), NaN ignored as np.nanmean / np.nanstd do."""
    if features not in FEATURES:
        raise ValueError(f"--features must be one of {FEATURES}, not {features!r}")
    if order not in ("fixed", "published"):
        raise ValueError(f"--order must be fixed or published, not {order!r}")
    prepared = load_prepared(prepare_data(root, inputs=["spec"]), ["spec"])
    rows = prepared.rows
    positions = np.flatnonzero(dedup_mask(rows, "first_per_vote_vector"))[:limit]
    dataset = HMSDataset(prepared, positions, window_offsets=window_offsets(rows, "group_middle"))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size)
    means, stds = [], []
    for batch in tqdm(loader, desc="images"):
        image = image_before_standardising(batch["spec"], features, order).flatten(1).double()
        valid = ~torch.isnan(image)
        count = valid.sum(dim=1)
        mean = torch.where(valid, image, 0).sum(dim=1) / count
        std = (torch.where(valid, image - mean[:, None], 0) ** 2).sum(dim=1).div(count).sqrt()
        means.append(mean.numpy())
        stds.append(std.numpy())
    means, stds = np.concatenate(means), np.concatenate(stds)
    return float(np.nanmean(means)), float(np.nanmean(stds))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="data folder in the Kaggle HMS layout")
    parser.add_argument("--features", default="global", help=f"one of {FEATURES}")
    parser.add_argument("--order", default="fixed", help="fixed (features of log power) or published")
    parser.add_argument("--limit", type=int, default=None, help="only the first N rows (a quick estimate)")
    args = parser.parse_args()
    mean, std = constants(args.root, args.features, args.order, args.limit)
    print(f"model.norm_stats=[{mean:.8g},{std:.8g}]")
    return 0


if __name__ == "__main__":
    run_main(main)
