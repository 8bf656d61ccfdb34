"""Spectral front-ends on the device, in fp32: a band-limited STFT power and a mel power built on it.

Both compute only what an EEG image uses (frequency bins up to 20-40 Hz of the 100 Hz band, and the
win_length samples where the window is non-zero), batched as one strided conv1d, so a GPU computes
a whole batch of node differences at once instead of looping per sample and per pair on the CPU.
"""
import numpy as np
import torch
import torch.nn.functional as F
from nnAudio.features import STFT
from nnAudio.librosa_functions import get_mel
from torch import nn


class BandLimitedSTFT(nn.Module):
    """|STFT|^2 [N, n_bins, frames] of signals [N, T] as a strided conv1d with nnAudio's Fourier kernels
    (trainable if asked). Same frames as torch.stft(center=False).

    freq_scale "no": the FFT bins 0..n_bins-1 only (EEG needs 0-20/40 Hz of 100), 3-8x less work than
    the full conv. freq_scale "linear": nnAudio's linear scale, n_fft//2+1 bins spread evenly over
    0..fmax (what the 15th-place STFT used: 56 bins 0.714 Hz apart for n_fft 110 at 40 Hz).
    full_kernels False keeps only the win_length samples of each kernel where the window is non-zero
    (nnAudio pads the window to n_fft); True keeps all n_fft, as nnAudio's trainable STFT does, so
    training can grow them outside the window."""

    def __init__(self, n_fft: int, win_length: int, hop_length: int, n_bins: int | None = None,
                 trainable: bool = False, rate: int = 200, freq_scale: str = "no", fmax: float | None = None,
                 window: str = "hann", full_kernels: bool = False):
        super().__init__()
        if freq_scale not in ("no", "linear"):
            raise ValueError(f"freq_scale must be 'no' (FFT bins) or 'linear' (nnAudio), not {freq_scale!r}")
        full = STFT(n_fft=n_fft, win_length=win_length, hop_length=hop_length, freq_scale=freq_scale,
                    fmin=0, fmax=fmax if freq_scale == "linear" else rate / 2, window=window, center=False,
                    sr=rate, trainable=False, output_format="Complex", verbose=False)
        n_bins = n_bins if freq_scale == "no" else n_fft // 2 + 1
        width = n_fft if full_kernels else win_length
        self.n_fft, self.hop, self.start = n_fft, hop_length, (n_fft - width) // 2
        for name in ("wsin", "wcos"):
            kernel = getattr(full, name)[:n_bins, :, self.start:self.start + width].detach().clone()
            if trainable:
                setattr(self, name, nn.Parameter(kernel))
            else:
                self.register_buffer(name, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = (x.shape[-1] - self.n_fft) // self.hop + 1
        x = x[:, None, self.start:self.start + (frames - 1) * self.hop + self.wcos.shape[-1]]
        # one conv of both kernels: a single pass over the input and one larger GEMM (10-15% faster here)
        both = F.conv1d(x, torch.cat([self.wcos, self.wsin]), stride=self.hop)
        real, imag = both.split(len(self.wcos), dim=1)
        return real.square() + imag.square()


class MelSpectrogram(nn.Module):
    """Mel power [N, n_mels, frames] of signals [N, T]: the numbers of librosa.feature.melspectrogram
    (Slaney mel with area norm, Hann window of win_length centred in n_fft, power 2, center=True with
    zero padding as librosa's default pad_mode). Defaults: Chris Deotte's public EEG recipe.

    The mel filters stop at fmax, so only the FFT bins below it are computed (103 of 513 at 20 Hz)."""

    def __init__(self, rate: int = 200, n_fft: int = 1024, win_length: int = 128, hop_length: int = 39,
                 n_mels: int = 128, fmin: float = 0.0, fmax: float = 20.0, center: bool = True):
        super().__init__()
        basis = get_mel(rate, n_fft, n_mels, fmin, fmax)  # [n_mels, n_fft // 2 + 1]
        n_bins = int(np.flatnonzero(basis.any(axis=0)).max()) + 1
        self.register_buffer("basis_t", torch.tensor(basis[:, :n_bins].T.copy(), dtype=torch.float32))
        self.stft = BandLimitedSTFT(n_fft, win_length, hop_length, n_bins, rate=rate)
        self.pad = n_fft // 2 if center else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):  # mel power overflows fp16
            power = self.stft(F.pad(x.float(), (self.pad, self.pad)))  # [N, bins, frames]
            return (power.transpose(1, 2) @ self.basis_t).transpose(1, 2)  # one GEMM over all frames


def power_to_db(power: torch.Tensor, top_db: float = 80.0, amin: float = 1e-10) -> torch.Tensor:
    """10 log10(power / its max) per signal [N, ...], floored top_db below the max:
    librosa.power_to_db(S, ref=np.max) of each signal."""
    db = power.clamp_min(amin).log10_().mul_(10)  # in place after the first op: these tensors are large
    peak = db.flatten(1).amax(dim=1).view(-1, *[1] * (db.dim() - 1))
    return db.sub_(peak).clamp_min_(-top_db)


def htk_mel_filters(rate: float, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular mel filters [n_mels, n_fft // 2 + 1] with corners evenly spaced on the HTK mel scale
    2595 log10(1 + f / 700) from fmin to fmax, unnormalised (peak 1): torchaudio's
    melscale_fbanks(norm=None, mel_scale="htk"), which is librosa.filters.mel(htk=True, norm=None)."""
    freqs = np.linspace(0, rate // 2, n_fft // 2 + 1)  # torchaudio's rate // 2
    mel_points = np.linspace(2595.0 * np.log10(1.0 + fmin / 700.0), 2595.0 * np.log10(1.0 + fmax / 700.0), n_mels + 2)
    corners = 700.0 * (10.0 ** (mel_points / 2595.0) - 1.0)
    rising = (freqs[None] - corners[:-2, None]) / np.diff(corners)[:-1, None]
    falling = (corners[2:, None] - freqs[None]) / np.diff(corners)[1:, None]
    return np.maximum(0.0, np.minimum(rising, falling))


class TorchaudioMel(nn.Module):
    """Mel power [..., n_mels, frames] of signals [..., T] with the numbers of torchaudio.transforms.
    MelSpectrogram (and its defaults), without torchaudio: periodic Hann window of win_length zero-padded
    (centred) to n_fft, power 2, center=True with reflect padding (frames = 1 + T // hop for even n_fft),
    HTK mel scale, norm None. The 3rd place's mel (RECIPES.md 2.3); unlike MelSpectrogram above (librosa's
    Slaney mel, zero padding).

    Only the FFT bins below the last filter's upper corner are computed, each over the win_length samples
    where the window is non-zero (BandLimitedSTFT), so a 2048-point zoom with a 16-sample window costs a
    16-tap conv1d, not a 2048-point FFT per frame."""

    def __init__(self, rate: int = 200, n_fft: int = 400, win_length: int | None = None,
                 hop_length: int | None = None, n_mels: int = 128, fmin: float = 0.0, fmax: float | None = None):
        super().__init__()
        win_length = win_length or n_fft  # torchaudio's defaults
        hop_length = hop_length or win_length // 2
        fmax = float(rate // 2) if fmax is None else fmax
        if win_length > n_fft:
            raise ValueError(f"win_length {win_length} must not exceed n_fft {n_fft}")
        if not 0 <= fmin < fmax <= rate / 2:
            raise ValueError(f"mel band {fmin}-{fmax} Hz must satisfy 0 <= fmin < fmax <= {rate / 2}")
        basis = htk_mel_filters(rate, n_fft, n_mels, fmin, fmax)
        n_bins = int(np.flatnonzero(basis.any(axis=0)).max(initial=0)) + 1
        self.register_buffer("basis_t", torch.tensor(basis[:, :n_bins].T.copy(), dtype=torch.float32))
        self.stft = BandLimitedSTFT(n_fft, win_length, hop_length, n_bins, rate=rate)
        self.pad = n_fft // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] <= self.pad:
            raise ValueError(f"reflect padding needs signals longer than n_fft // 2 = {self.pad}, not {x.shape[-1]}")
        with torch.autocast(x.device.type, enabled=False):  # mel power overflows fp16
            flat = x.float().reshape(-1, 1, x.shape[-1])
            power = self.stft(F.pad(flat, (self.pad, self.pad), mode="reflect")[:, 0])  # [N, bins, frames]
            mel = (power.transpose(1, 2) @ self.basis_t).transpose(1, 2)  # one GEMM over all frames
            return mel.reshape(*x.shape[:-1], *mel.shape[1:])


DB_FLOORS = ("batch", "spectrogram")  # amplitude_to_db's top_db floors


def amplitude_to_db(power: torch.Tensor, top_db: float | None = None, floor: str = "batch",
                    amin: float = 1e-10) -> torch.Tensor:
    """10 log10(max(power, amin)) of spectrograms [..., F, T]: torchaudio.transforms.AmplitudeToDB
    (stype "power", ref 1). With top_db, values are floored top_db below a maximum:
    floor "batch": the maximum of the whole tensor, what torchaudio does to a 3-D (N, F, T) stack (it
    folds N into one set of channels), so the 3rd place's (bs*16, F, T) mels share one floor that
    depends on the batch [quirk, as published]; "spectrogram": each [F, T] spectrogram's own maximum."""
    if floor not in DB_FLOORS:
        raise ValueError(f"dB floor must be 'batch' (torchaudio on a stack) or 'spectrogram', not {floor!r}")
    db = power.clamp_min(amin).log10().mul(10.0)
    if top_db is None:
        return db
    peak = db.amax() if floor == "batch" else db.amax(dim=(-2, -1), keepdim=True)
    return torch.maximum(db, peak - top_db)
