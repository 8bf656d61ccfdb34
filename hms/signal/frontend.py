"""The on-device signal front-end every EEG extractor starts with:
NaN repair -> node differences -> clip and scale -> filter, in fp32 even under autocast."""
import torch
from torch import nn

from hms.signal.filters import SpectralFilter
from hms.signal.montage import NodeDifferences


class SignalFrontEnd(nn.Module):
    def __init__(self, montage: str = "groups24", filter: str = "lowpass50", clip: float | None = 1024,
                 scale: float | None = 32, nan_to_zero: bool = True):
        super().__init__()
        self.montage = NodeDifferences(montage)
        self.filter = SpectralFilter(filter)
        self.clip, self.scale, self.nan_to_zero = clip, scale, nan_to_zero

    def forward(self, eeg: torch.Tensor) -> torch.Tensor:
        with torch.autocast(eeg.device.type, enabled=False):
            x = eeg.float()
            if self.nan_to_zero:
                x = torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
            x = self.montage(x)
            if self.clip is not None:
                x = x.clamp(-self.clip, self.clip)
            if self.scale is not None:
                x = x / self.scale
            return self.filter(x)
