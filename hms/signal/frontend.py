"""The on-device signal front-end every EEG extractor starts with:
NaN repair -> node differences -> clip and scale -> filter, in fp32 even under autocast."""
import torch
from torch import nn

from hms.signal.filters import SpectralFilter
from hms.signal.montage import NodeDifferences


class SignalFrontEnd(nn.Module):
    """eeg [B, 20, T] microvolts -> filtered node differences [B, D, T], in fp32.

    nan_repair "zero": NaN -> 0; "window_mean": NaN -> the channel's mean over the window, an all-NaN
    channel -> 0 (the 15th place, at its extraction). clip_on "differences" clips the differences;
    "electrodes" clips the electrodes before differencing (the 15th place)."""

    def __init__(self, montage: str = "groups24", filter: str = "lowpass50", clip: float | None = 1024,
                 scale: float | None = 32, nan_repair: str = "zero", clip_on: str = "differences"):
        super().__init__()
        if nan_repair not in ("zero", "window_mean"):
            raise ValueError(f"nan_repair must be zero or window_mean, not {nan_repair!r}")
        if clip_on not in ("differences", "electrodes"):
            raise ValueError(f"clip_on must be differences or electrodes, not {clip_on!r}")
        self.montage = NodeDifferences(montage)
        self.filter = SpectralFilter(filter)
        self.clip, self.scale, self.nan_repair, self.clip_on = clip, scale, nan_repair, clip_on

    def repair(self, x: torch.Tensor) -> torch.Tensor:
        if self.nan_repair == "window_mean":
            x = torch.where(torch.isnan(x), torch.nanmean(x, dim=-1, keepdim=True), x)
        return torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)  # all-NaN channels, infinities

    def forward(self, eeg: torch.Tensor) -> torch.Tensor:
        with torch.autocast(eeg.device.type, enabled=False):
            x = self.repair(eeg.float())
            if self.clip is not None and self.clip_on == "electrodes":
                x = x.clamp(-self.clip, self.clip)
            x = self.montage(x)
            if self.clip is not None and self.clip_on == "differences":
                x = x.clamp(-self.clip, self.clip)
            if self.scale is not None:
                x = x / self.scale
            return self.filter(x)
