"""Zero-phase filters on the device, in fp32: the FFT of the signal times the squared magnitude
response of the digital Butterworth filter (what scipy's butter + sosfiltfilt applies), back with the
inverse FFT. Batched, exact in phase, no recursion, so it runs as fast on a GPU as a matmul. Unlike
filtfilt it treats the window as periodic, which only differs in the first and last few samples."""
import math

import torch
from torch import nn

PRESETS = {
    "none": {},
    "lowpass50": {"low": None, "high": 50.0},                    # 15th place
    "bandpass0.5-20": {"low": 0.5, "high": 20.0},                 # 3rd place
    "band1-70_notch60": {"low": 1.0, "high": 70.0, "notch": 60.0},  # 16th place
    "notch50": {"notch": 50.0},
}


def butterworth_gain(freqs: torch.Tensor, low=None, high=None, notch=None, order: int = 4,
                     notch_width: float = 2.0, rate: float = 200.0) -> torch.Tensor:
    """|H(f)|^2 of digital Butterworth high-pass x low-pass x band-stop: a filter run forward and back
    (zero phase) applies |H| twice. Frequencies are pre-warped like the bilinear
    transform (tan(pi f / rate)), so the response equals scipy.signal.butter's."""
    warp = lambda hz: math.tan(math.pi * hz / rate)  # noqa: E731
    gain = torch.ones_like(freqs)
    f = torch.tan(math.pi * freqs.clamp(min=1e-6, max=rate / 2 - 1e-3) / rate)
    low, high = (warp(low) if low else None), (warp(high) if high else None)
    if notch is not None:
        notch, notch_width = warp(notch), warp(notch + notch_width / 2) - warp(notch - notch_width / 2)
    if high is not None:
        gain = gain / (1 + (f / high) ** (2 * order))
    if low is not None:
        gain = gain / (1 + (low / f) ** (2 * order))
    if notch is not None:  # band-stop as a Butterworth in the band-stop frequency transform
        x = f * notch_width / (f ** 2 - notch ** 2).abs().clamp(min=1e-6)
        gain = gain / (1 + x ** (2 * order))
    return gain


class SpectralFilter(nn.Module):
    def __init__(self, preset: str = "none", rate: float = 200.0):
        super().__init__()
        if preset not in PRESETS:
            raise ValueError(f"filter {preset!r} is not one of {sorted(PRESETS)}")
        self.preset, self.rate, self.settings = preset, rate, PRESETS[preset]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.settings:
            return x
        n = x.shape[-1]
        freqs = torch.fft.rfftfreq(n, d=1 / self.rate, device=x.device)
        gain = butterworth_gain(freqs, rate=self.rate, **self.settings)
        return torch.fft.irfft(torch.fft.rfft(x.float()) * gain, n=n)
