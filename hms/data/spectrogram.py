"""The Kaggle spectrogram recipe (measured on real pairs, HMS_FACTS section 1).

Each chain's row is the mean over its 4 bipolar pairs of a 1024-point Hann periodogram (PSD scaling),
FFT bins 3..102, one row every 2 s, rounded to 2 decimals. EEG second t of a window at offset 0 lines up
with spectrogram time t + 275.
"""
import numpy as np

from hms.data.layout import CHAINS, EEG_COLUMNS, EEG_RATE, SPEC_BINS, SPEC_FFT, SPEC_REGIONS, SPEC_STEP_SECONDS

_WINDOW = np.hanning(SPEC_FFT + 1)[:-1].astype(np.float64)  # periodic Hann
_SCALE = 1.0 / (EEG_RATE * (_WINDOW ** 2).sum())  # PSD scaling, ~1.3e-5


def chain_pairs():
    """(a, b) electrode indices of the 16 bipolar pairs, grouped by region in SPEC_REGIONS order."""
    return [[(EEG_COLUMNS.index(a), EEG_COLUMNS.index(b)) for a, b in zip(CHAINS[r], CHAINS[r][1:])]
            for r in SPEC_REGIONS]


def kaggle_spectrogram(eeg: np.ndarray, centres_seconds=None) -> np.ndarray:
    """eeg [n_samples, 20] microvolts -> power [n_rows, 400] float32, one row per 2 s.

    Row i is centred on EEG second centres_seconds[i] (default 1, 3, 5, ... inside the recording);
    frames reaching outside the recording are zero-padded. NaN counts as 0.
    """
    eeg = np.nan_to_num(np.asarray(eeg, dtype=np.float64))
    n = len(eeg)
    if centres_seconds is None:
        centres_seconds = np.arange(1, n / EEG_RATE, SPEC_STEP_SECONDS)
    centres = (np.asarray(centres_seconds) * EEG_RATE).astype(int)
    padded = np.pad(eeg, ((SPEC_FFT, SPEC_FFT), (0, 0)))
    starts = centres - SPEC_FFT // 2 + SPEC_FFT
    frames = np.stack([padded[s:s + SPEC_FFT] for s in starts])  # [rows, 1024, 20]
    rows = []
    for pairs in chain_pairs():
        power = 0.0
        for a, b in pairs:
            spectrum = np.fft.rfft((frames[:, :, a] - frames[:, :, b]) * _WINDOW, axis=1)
            power = power + np.abs(spectrum[:, SPEC_BINS.start:SPEC_BINS.stop]) ** 2 * _SCALE
        rows.append(power / len(pairs))
    return np.round(np.concatenate(rows, axis=1), 2).astype(np.float32)
