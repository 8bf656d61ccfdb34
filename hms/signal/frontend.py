"""The on-device signal front-end every EEG extractor starts with:
NaN repair -> node differences -> clip and scale -> filter, in fp32 even under autocast."""
import torch
from torch import nn

from hms.signal.filters import SpectralFilter
from hms.signal.montage import NodeDifferences


def edge_profile_noise(shape, std: float, profile: str, generator=None, device=None) -> torch.Tensor:
    """Gaussian noise [..., T] stronger at the window's edges (the label is about the central 10 s).
    profile "linear": std x |t| (t from -1 to 1), 0 at the centre. "hms15" (15th place): n1 + n2 m(t),
    n1 ~ N(0, (std/3)^2), n2 ~ N(0, std^2), m(t) = 1 - exp(-(t - T/2)^2 / (2 * 3000^2)) in samples."""
    n = shape[-1]
    noise = torch.randn(shape, generator=generator, device=device)
    if profile == "linear":
        return std * torch.linspace(-1, 1, n, device=device).abs() * noise
    if profile == "hms15":
        t = torch.arange(n, device=device, dtype=torch.float32)
        edges = 1 - torch.exp(-(t - n / 2) ** 2 / (2 * 3000.0 ** 2))
        return std / 3 * torch.randn(shape, generator=generator, device=device) + std * edges * noise
    raise ValueError(f"edge noise profile must be linear or hms15, not {profile!r}")


class SignalFrontEnd(nn.Module):
    """eeg [B, 20, T] microvolts -> filtered node differences [B, D, T], in fp32.

    nan_repair "zero": NaN -> 0; "window_mean": NaN -> the channel's mean over the window, an all-NaN
    channel -> 0 (the 15th place, at its extraction). clip_on "differences" clips the differences;
    "electrodes" clips the electrodes before differencing (the 15th place); "filtered" clips the
    differences after the filter (the 3rd place).

    `augment` (training; drawn once per batch by the loop, hms/train/augment.py, so every extractor of
    a fusion sees the same draw): {"scale": [B] head-size factors, "noise_std": microvolts, "profile",
    "seed"}: the filtered differences are scaled, then get edge-profile noise, as the 15th place did."""

    def __init__(self, montage: str = "groups24", filter: str = "lowpass50", clip: float | None = 1024,
                 scale: float | None = 32, nan_repair: str = "zero", clip_on: str = "differences"):
        super().__init__()
        if nan_repair not in ("zero", "window_mean"):
            raise ValueError(f"nan_repair must be zero or window_mean, not {nan_repair!r}")
        if clip_on not in ("differences", "electrodes", "filtered"):
            raise ValueError(f"clip_on must be differences, electrodes or filtered, not {clip_on!r}")
        self.montage = NodeDifferences(montage)
        self.filter = SpectralFilter(filter)
        self.clip, self.scale, self.nan_repair, self.clip_on = clip, scale, nan_repair, clip_on

    def repair(self, x: torch.Tensor) -> torch.Tensor:
        if self.nan_repair == "window_mean":
            x = torch.where(torch.isnan(x), torch.nanmean(x, dim=-1, keepdim=True), x)
        return torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)  # all-NaN channels, infinities

    def forward(self, eeg: torch.Tensor, augment: dict | None = None) -> torch.Tensor:
        with torch.autocast(eeg.device.type, enabled=False):
            x = self.repair(eeg.float())
            if self.clip is not None and self.clip_on == "electrodes":
                x = x.clamp(-self.clip, self.clip)
            x = self.montage(x)
            if self.clip is not None and self.clip_on == "differences":
                x = x.clamp(-self.clip, self.clip)
            if self.scale is not None:
                x = x / self.scale
            x = self.filter(x)
            if self.clip is not None and self.clip_on == "filtered":  # the clip bound is in microvolts
                x = x.clamp(-self.clip / (self.scale or 1.0), self.clip / (self.scale or 1.0))
            return x if augment is None else self.augmented(x, augment)

    def augmented(self, x: torch.Tensor, augment: dict) -> torch.Tensor:
        x = x * augment["scale"].to(x.device).view(-1, *[1] * (x.dim() - 1))
        if augment["noise_std"] > 0:
            generator = torch.Generator(x.device).manual_seed(int(augment["seed"]))
            std = augment["noise_std"] / (self.scale or 1.0)  # microvolts in the front-end's units
            x = x + edge_profile_noise(x.shape, std, augment["profile"], generator, x.device)
        return x
