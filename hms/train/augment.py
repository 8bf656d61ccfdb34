"""Batch augmentations on the device: CropCat, head-size scaling, edge-weighted noise.

Electrode flips and time shifts happen in the Dataset (they are index permutations and slices);
these act on a whole batch at once so the loader stays a memory slice.
"""
import torch

from hms.data.inputs import Input


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
    """Gaussian noise stronger at the window's edges: the label is about the central 10 s, so the edges
    may be perturbed freely. profile "linear": std x |t| (t from -1 to 1), 0 at the centre.
    "hms15" (15th place): n1 + n2 m(t), n1 ~ N(0, (std/3)^2), n2 ~ N(0, std^2),
    m(t) = 1 - exp(-(t - T/2)^2 / (2 * 3000^2)) in samples: std/3 at the centre, about 0.82 std at the ends."""
    if std <= 0:
        return batch
    eeg = batch["eeg"]
    n = eeg.shape[-1]
    noise = torch.randn(eeg.shape, generator=generator, device=eeg.device)
    if profile == "linear":
        return dict(batch, eeg=eeg + std * torch.linspace(-1, 1, n, device=eeg.device).abs() * noise)
    if profile == "hms15":
        t = torch.arange(n, device=eeg.device, dtype=torch.float32)
        edges = 1 - torch.exp(-(t - n / 2) ** 2 / (2 * 3000.0 ** 2))
        centre = torch.randn(eeg.shape, generator=generator, device=eeg.device)
        return dict(batch, eeg=eeg + std / 3 * centre + std * edges * noise)
    raise ValueError(f"aug.edge_noise_profile must be linear or hms15, not {profile!r}")


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
    batch = head_scale(batch, *aug.head_scale)
    return edge_noise(batch, aug.edge_noise_std, aug.edge_noise_profile)
