"""Batch augmentations on the device: CropCat, head-size scaling, edge-weighted noise.

Electrode flips and time shifts happen in the Dataset (they are index permutations and slices);
these act on a whole batch at once so the loader stays a memory slice.
"""
import torch

from hms.data.inputs import Input


def cropcat(batch: dict, inputs: dict[str, Input], p: float, generator=None) -> dict:
    """With probability p per sample, swap half (or alternate quarters) of the time axis of every input
    with another sample of the batch; targets and loss weights are mixed by the share each sample
    contributes."""
    n = batch["target"].shape[0]
    device = batch["target"].device
    chosen = torch.rand(n, generator=generator, device=device) < p
    if n < 2 or not chosen.any():
        return batch
    partner = torch.roll(torch.arange(n, device=device), 1)
    # Four quarters; pattern 0 swaps the first half, 1 the second half, 2 quarters 0 and 2, 3 quarters 1 and 3.
    patterns = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 1, 0], [0, 1, 0, 1]], device=device)
    which = torch.randint(0, 4, (n,), generator=generator, device=device)
    quarters = patterns[which] * chosen[:, None]  # [n, 4], 1 where the partner's data goes

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


def head_scale(batch: dict, low: float, high: float, generator=None) -> dict:
    """Scale each sample's amplitude (head size and skull thickness vary the recorded voltage)."""
    if low == high == 1.0:
        return batch
    eeg = batch["eeg"]
    factor = torch.empty(eeg.shape[0], 1, 1, device=eeg.device).uniform_(low, high, generator=generator)
    return dict(batch, eeg=eeg * factor)


def edge_noise(batch: dict, std: float, generator=None) -> dict:
    """Gaussian noise whose strength rises from 0 at the centre to `std` at the edges: the label is
    about the central 10 s, so the edges may be perturbed freely."""
    if std <= 0:
        return batch
    eeg = batch["eeg"]
    t = torch.linspace(-1, 1, eeg.shape[-1], device=eeg.device)
    noise = torch.randn(eeg.shape, generator=generator, device=eeg.device)
    return dict(batch, eeg=eeg + std * t.abs() * noise)


def augment_batch(batch: dict, inputs: dict[str, Input], aug) -> dict:
    """CropCat on every input; head-size scaling and edge noise on the raw EEG, when the batch has it."""
    batch = cropcat(batch, inputs, aug.cropcat_p)
    if "eeg" not in batch:
        return batch
    batch = head_scale(batch, *aug.head_scale)
    return edge_noise(batch, aug.edge_noise_std)
