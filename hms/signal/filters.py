"""Butterworth filters on the device, in fp32, batched on any leading dims, without recursion, so they run as
fast on a GPU as a matmul. Two kinds:

- zero-phase (the default, and the fixed option): the FFT of the signal times |H(f)|^2 of the digital Butterworth
  filter (what scipy's butter + sosfiltfilt applies: a filter run forward and back applies |H| twice), back with
  the inverse FFT. Exact in phase. The FFT treats the window as periodic; like filtfilt, the signal is first
  extended at both ends by its odd reflection, so the wrap-around lands in the extension and is cropped away.
- causal (`"causal": True` in a preset): one forward pass from zero state, what scipy.signal.lfilter(b, a, x)
  applies: |H| once, with the filter's phase lag and a start-up transient at the window's first samples. It
  exists to reproduce the 15th-place HMS recipe as published (lfilter of butter(4, 50, fs=200) on each window);
  done as a linear convolution with the truncated impulse response, by FFT."""
import math

import numpy as np
import torch
from scipy import signal as scipy_signal
from torch import nn

ORDER = 4
PRESETS = {
    "none": {},
    "lowpass50": {"low": None, "high": 50.0},                    # 15th place, zero-phase
    "lowpass50_causal": {"high": 50.0, "causal": True},           # 15th place as published (lfilter)
    "bandpass0.5-20": {"low": 0.5, "high": 20.0},                 # 3rd place, zero-phase
    # 3rd place as published (lfilter of butter(order, [lo, hi], "band")): 2-D models, cfg_2a, cfg_2b
    "bandpass0.5-20_causal_o2": {"low": 0.5, "high": 20.0, "order": 2, "causal": True},
    "bandpass1.6-30_causal_o1": {"low": 1.6, "high": 30.0, "order": 1, "causal": True},
    "bandpass1.6-30_causal_o2": {"low": 1.6, "high": 30.0, "order": 2, "causal": True},
    "band1-70_notch60": {"low": 1.0, "high": 70.0, "notch": 60.0},  # 16th place
    "notch50": {"notch": 50.0},
}


def butterworth_sections(low=None, high=None, notch=None, notch_width: float = 2.0, rate: float = 200.0,
                         order: int = ORDER) -> np.ndarray:
    """Second-order sections of scipy.signal.butter(order) for a band/low/high-pass and an optional
    band-stop of `notch_width` Hz (order 4), cascaded."""
    sections = []
    if low and high:
        sections.append(scipy_signal.butter(order, [low, high], btype="bandpass", fs=rate, output="sos"))
    elif low or high:
        sections.append(scipy_signal.butter(order, low or high, btype="highpass" if low else "lowpass", fs=rate,
                                            output="sos"))
    if notch:
        band = [notch - notch_width / 2, notch + notch_width / 2]
        sections.append(scipy_signal.butter(ORDER, band, btype="bandstop", fs=rate, output="sos"))
    return np.concatenate(sections) if sections else np.zeros((0, 6))


def power_response(sos: np.ndarray, freqs: np.ndarray, rate: float) -> np.ndarray:
    """|H(f)|^2 of cascaded second-order sections at `freqs` (Hz), in float64."""
    z_inv = np.exp(-2j * np.pi * np.asarray(freqs, dtype=np.float64) / rate)
    gain = np.ones(len(z_inv))
    for b0, b1, b2, a0, a1, a2 in sos:
        gain *= np.abs((b0 + b1 * z_inv + b2 * z_inv ** 2) / (a0 + a1 * z_inv + a2 * z_inv ** 2)) ** 2
    return gain


def impulse_response(sos: np.ndarray, rate: float, rel_tol: float = 1e-9, max_seconds: float = 60.0) -> np.ndarray:
    """The impulse response of cascaded second-order sections, cut after its last sample above `rel_tol` of its
    peak: the tail past it changes a convolution by less than that fraction of the signal's amplitude."""
    impulse = np.zeros(int(max_seconds * rate))
    impulse[0] = 1.0
    response = scipy_signal.sosfilt(sos, impulse)
    above = np.flatnonzero(np.abs(response) >= rel_tol * np.abs(response).max())
    if above[-1] >= len(response) - 1:
        raise ValueError(f"the impulse response has not decayed to {rel_tol:g} of its peak in {max_seconds} s")
    return response[:above[-1] + 1]


def causal_fft_length(n: int, taps: int) -> int:
    """The FFT length a length-n signal is convolved with `taps` causal taps at: n + taps - 1 keeps the
    wrap-around out of the first n samples."""
    return fast_length(n + taps - 1)


def causal_convolve(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """x [..., n] convolved with causal taps [..., k] (broadcast), the first n samples: a causal filter's
    output from zero state. Taps as long as the window make it exact for any IIR filter."""
    n = x.shape[-1]
    length = causal_fft_length(n, taps.shape[-1])
    return torch.fft.irfft(torch.fft.rfft(x, n=length) * torch.fft.rfft(taps, n=length), n=length)[..., :n]


def random_band_pass(x: torch.Tensor, p: float, max_channels: int, low_range, high_range, order: int,
                     high_integer: bool = True, rate: float = 200.0, rng: np.random.Generator | None = None,
                     replace: bool = True):
    """The 3rd place's random extra band-pass of x [B, C, T]: with probability p per sample, re-filter
    1 + randint(max_channels) channels (drawn with replacement as published, so a channel drawn twice is
    filtered once and fewer channels change; replace=False, the fix, draws them without) with a causal
    Butterworth band-pass of order `order`, low cut U(*low_range) Hz and high cut
    randint(*high_range) Hz (U(*high_range) with high_integer False). The cut-offs are drawn per sample;
    the filter runs on the device as a convolution with its impulse response over the whole window.
    Without `rng` the draws are seeded from torch's generator, so one torch.manual_seed repeats them."""
    rng = rng or np.random.default_rng(int(torch.randint(0, 2 ** 62, ()).item()))
    out = x.clone()
    n = x.shape[-1]
    impulse = np.zeros(n)
    impulse[0] = 1.0
    for b in range(x.shape[0]):
        if rng.random() >= p:
            continue
        count = 1 + int(rng.integers(max_channels))
        channels = sorted(set((rng.integers(0, x.shape[1], count) if replace
                               else rng.choice(x.shape[1], min(count, x.shape[1]), replace=False)).tolist()))
        high = int(rng.integers(*high_range)) if high_integer else float(rng.uniform(*high_range))
        low = float(rng.uniform(*low_range))
        sos = scipy_signal.butter(order, [low, high], btype="bandpass", fs=rate, output="sos")
        taps = torch.tensor(scipy_signal.sosfilt(sos, impulse), dtype=torch.float32, device=x.device)
        out[b, channels] = causal_convolve(x[b, channels].float(), taps).to(x.dtype)
    return out


def fast_length(n: int) -> int:
    """The smallest 2^a, 5 * 2^a or 25 * 2^a >= n: FFT lengths 2-6x faster than most others."""
    return min(k * 2 ** max(0, math.ceil(math.log2(n / k))) for k in (1, 5, 25))


def odd_extend(x: torch.Tensor, left_pad: int, right_pad: int) -> torch.Tensor:
    """x extended at both ends by point reflection about its first and last sample."""
    left_pad, right_pad = min(left_pad, x.shape[-1] - 1), min(right_pad, x.shape[-1] - 1)
    left = 2 * x[..., :1] - x[..., 1:left_pad + 1].flip(-1)
    right = 2 * x[..., -1:] - x[..., -right_pad - 1:-1].flip(-1)
    return torch.cat([left, x, right], dim=-1)


class SpectralFilter(nn.Module):
    """A preset's Butterworth filter applied along the last dim, zero-phase or, with `"causal": True`, causal
    (scipy's lfilter from zero state; see the module docstring). `pad_seconds` of odd extension at each end keep
    the zero-phase FFT's wrap-around out of the window."""

    def __init__(self, preset: str = "none", rate: float = 200.0, pad_seconds: float = 2.0):
        super().__init__()
        if preset not in PRESETS:
            raise ValueError(f"filter {preset!r} is not one of {sorted(PRESETS)}")
        self.preset, self.rate, self.pad = preset, rate, int(pad_seconds * rate)
        options = dict(PRESETS[preset])
        self.causal = options.pop("causal", False)  # how to apply the filter, not a parameter of butter
        self.sections = butterworth_sections(rate=rate, **options)
        # lowpass50_causal: 53 taps (after those its impulse response stays below 1e-9 of its peak)
        self.taps = impulse_response(self.sections, rate) if self.causal else None  # (3rd place band-passes: a few s)
        self._gains = {}  # (length, device) -> what the length's rfft is multiplied by, computed once

    def gain(self, n: int, device) -> torch.Tensor:
        """For a length-n rfft: |H|^2 (zero-phase, real) or the spectrum of the zero-padded taps (causal)."""
        key = (n, str(device))
        if key not in self._gains:
            if self.causal:
                gain = torch.tensor(np.fft.rfft(self.taps, n=n), dtype=torch.complex64, device=device)
            else:
                gain = torch.tensor(power_response(self.sections, np.fft.rfftfreq(n, d=1 / self.rate), self.rate),
                                    dtype=torch.float32, device=device)
            self._gains[key] = gain
        return self._gains[key]

    def fft_length(self, n: int) -> int:
        """The FFT length a length-n signal is filtered at: zero-phase, with at least `pad` samples of odd
        extension on each side (at most n - 1, the reflection's limit); causal, n + taps - 1 so the
        wrap-around stays out of the first n samples."""
        if self.causal:
            return causal_fft_length(n, len(self.taps))
        return min(fast_length(n + 2 * self.pad), n + 2 * (n - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.sections) == 0:
            return x
        return self.causal_pass(x.float()) if self.causal else self.zero_phase(x.float())

    def zero_phase(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-1]
        extra = self.fft_length(n) - n
        extended = odd_extend(x, extra // 2, extra - extra // 2)
        spectrum = torch.fft.rfft(extended).mul_(self.gain(extended.shape[-1], x.device))  # in place: a big tensor
        filtered = torch.fft.irfft(spectrum, n=extended.shape[-1])
        return filtered[..., extra // 2:extra // 2 + n]

    def causal_pass(self, x: torch.Tensor) -> torch.Tensor:
        """x convolved with the taps: the first n samples are lfilter's output from zero state."""
        n = x.shape[-1]
        length = self.fft_length(n)
        spectrum = torch.fft.rfft(x, n=length).mul_(self.gain(length, x.device))
        return torch.fft.irfft(spectrum, n=length)[..., :n]
