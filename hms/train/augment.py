"""Batch augmentations on the device: CropCat, head-size scaling, edge-weighted noise (on the raw
electrodes, or drawn here and applied by the models' front-ends to the filtered differences).

Electrode flips and time shifts happen in the Dataset (they are index permutations and slices);
these act on a whole batch at once so the loader stays a memory slice.
"""
import torch

from hms.data.inputs import Input
from hms.signal.frontend import edge_profile_noise


def swap_quarters(batch: dict, inputs: dict[str, Input], partner: torch.Tensor, quarters: torch.Tensor) -> dict:
    """Sample i takes the time quarters where quarters[i] is 1 from sample partner[i], in every input at
    once (each along its own time axis); targets and loss weights are mixed by the partner's share."""
    n = len(partner)

    def swap(x, axis):  # x [n, ...]: time is `axis`
        x = x.movedim(axis, -1)
        mask = quarters.repeat_interleave(x.shape[-1] // 4, dim=1)
        mask = torch.nn.functional.pad(mask, (0, x.shape[-1] - mask.shape[1]))  # odd lengths keep the tail
        mask = mask.view(n, *([1] * (x.dim() - 2)), -1).bool()
        return torch.where(mask, x[partner], x).movedim(-1, axis)

    share = quarters.float().mean(dim=1, keepdim=True)  # partner's share of the window
    out = dict(batch) | {name: swap(batch[name], inp.time_axis + 1) for name, inp in inputs.items()}
    out["target"] = (1 - share) * batch["target"] + share * batch["target"][partner]
    out["n_votes"] = (1 - share[:, 0]) * batch["n_votes"] + share[:, 0] * batch["n_votes"][partner]
    return out


# Four quarters; pattern 0 swaps the first half, 1 the second half, 2 quarters 0 and 2, 3 quarters 1 and 3.
QUARTER_PATTERNS = ((1, 1, 0, 0), (0, 0, 1, 1), (1, 0, 1, 0), (0, 1, 0, 1))


def cropcat(batch: dict, inputs: dict[str, Input], p: float, generator=None) -> dict:
    """With probability p per sample, swap half (or alternate quarters) of the time axis of every input
    with the previous sample of the batch."""
    n = batch["target"].shape[0]
    device = batch["target"].device
    chosen = torch.rand(n, generator=generator, device=device) < p
    if n < 2 or not chosen.any():
        return batch
    partner = torch.roll(torch.arange(n, device=device), 1)
    which = torch.randint(0, 4, (n,), generator=generator, device=device)
    quarters = torch.tensor(QUARTER_PATTERNS, device=device)[which] * chosen[:, None]
    return swap_quarters(batch, inputs, partner, quarters)


def cropcat_first(batch: dict, inputs: dict[str, Input], count: int = 2, half_p: float = 0.2,
                  generator=None) -> dict:
    """CropCat as the 15th place had it: the first `count` samples of the batch each take a partner drawn
    without replacement from the whole batch (possibly themselves); one draw per batch decides the cut:
    with probability half_p the second half, else quarters 2 and 4."""
    n = batch["target"].shape[0]
    device = batch["target"].device
    count = min(count, n)
    partner = torch.arange(n, device=device)
    partner[:count] = torch.randperm(n, generator=generator, device=device)[:count]
    half = torch.rand(1, generator=generator, device=device).item() < half_p
    quarters = torch.zeros(n, 4, dtype=torch.long, device=device)
    quarters[:count] = torch.tensor(QUARTER_PATTERNS[1] if half else QUARTER_PATTERNS[3], device=device)
    return swap_quarters(batch, inputs, partner, quarters)


def head_scale(batch: dict, low: float, high: float, generator=None) -> dict:
    """Scale each sample's amplitude (head size and skull thickness vary the recorded voltage)."""
    if low == high == 1.0:
        return batch
    eeg = batch["eeg"]
    factor = torch.empty(eeg.shape[0], 1, 1, device=eeg.device).uniform_(low, high, generator=generator)
    return dict(batch, eeg=eeg * factor)


def edge_noise(batch: dict, std: float, profile: str = "linear", generator=None) -> dict:
    """Edge-profile Gaussian noise (hms.signal.frontend.edge_profile_noise) on the raw electrodes."""
    if std <= 0:
        return batch
    eeg = batch["eeg"]
    return dict(batch, eeg=eeg + edge_profile_noise(eeg.shape, std, profile, generator, eeg.device))


def difference_augment(batch: dict, low: float, high: float, std: float, profile: str, generator=None) -> dict:
    """Head-size scaling and edge noise for the models' front-ends to apply to the filtered node
    differences (the 15th-place order), drawn once here so that every extractor sees the same draw."""
    n, device = batch["eeg"].shape[0], batch["eeg"].device
    scale = torch.empty(n, device=device).uniform_(low, high, generator=generator)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    return dict(batch, difference_augment={"scale": scale, "noise_std": std, "profile": profile, "seed": seed})


def augment_batch(batch: dict, inputs: dict[str, Input], aug) -> dict:
    """CropCat on every input; head-size scaling and edge noise on the raw EEG, when the batch has it.
    aug.cropcat: per_sample (probability cropcat_p each) or first (the first cropcat_count samples)."""
    if aug.cropcat == "first":
        batch = cropcat_first(batch, inputs, aug.cropcat_count, aug.cropcat_half_p)
    elif aug.cropcat == "per_sample":
        batch = cropcat(batch, inputs, aug.cropcat_p)
    else:
        raise ValueError(f"aug.cropcat must be per_sample or first, not {aug.cropcat!r}")
    if "eeg" not in batch:
        return batch
    if aug.eeg_augment_on == "differences":
        return difference_augment(batch, *aug.head_scale, aug.edge_noise_std, aug.edge_noise_profile)
    if aug.eeg_augment_on != "electrodes":
        raise ValueError(f"aug.eeg_augment_on must be electrodes or differences, not {aug.eeg_augment_on!r}")
    batch = head_scale(batch, *aug.head_scale)
    return edge_noise(batch, aug.edge_noise_std, aug.edge_noise_profile)


def mosaic_epoch(aug, epoch: int) -> bool:
    """Whether `epoch` is one of the mosaic warm-up epochs (aug.mosaic_epochs, Cranjis-McB 8a-9c)."""
    return epoch < aug.mosaic_epochs


def image_mix(aug, epoch: int, generator=None) -> dict | None:
    """What the model is to do to its images in this batch (Cranjis-McB, RECIPES.md 4.4): the mosaic in the
    warm-up epochs, else same-class CutMix with probability aug.cutmix_p per batch, else nothing. The model
    applies it (hms/models/image_mix.py), since both act on the image it builds, not on the inputs."""
    def seed() -> int:
        return int(torch.randint(0, 2**62, (1,), generator=generator).item())

    if mosaic_epoch(aug, epoch):
        return {"kind": "mosaic", "seed": seed()}
    if aug.cutmix_p > 0 and torch.rand((), generator=generator).item() < aug.cutmix_p:
        return {"kind": "cutmix", "seed": seed(), **aug.cutmix}
    return None
