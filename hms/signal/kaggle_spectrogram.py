"""The Kaggle spectrogram recipe (measured on real pairs, HMS_FACTS section 1).

Each chain's row is the mean over its 4 bipolar pairs of a 1024-point Hann periodogram (PSD scaling),
FFT bins 3..102 (0.59-19.92 Hz), one row every 2 s, rounded to 2 decimals. EEG second t of a window at
offset 0 lines up with spectrogram time t + 275, so the row at time T is centred on EEG second T - 275.
"""
import numpy as np

from hms.layout import BANANA_PAIRS, EEG_COLUMNS, EEG_RATE, SPEC_BINS, SPEC_FFT, SPEC_REGIONS, SPEC_STEP_SECONDS

_WINDOW = np.hanning(SPEC_FFT + 1)[:-1]  # periodic Hann
_SCALE = 1.0 / (EEG_RATE * (_WINDOW ** 2).sum())  # PSD scaling, 1.3e-5
_PAIRS = [(EEG_COLUMNS.index(a), EEG_COLUMNS.index(b)) for a, b in BANANA_PAIRS]  # 4 per region, in order


def kaggle_spectrogram(eeg: np.ndarray, centres_seconds=None) -> np.ndarray:
    """eeg [n_samples, 20] microvolts -> power [n_rows, 400] float32 (SPEC_POWER_COLUMNS order).

    Row i is the 1024-sample frame centred on EEG second centres_seconds[i] (default 1, 3, 5, ...
    inside the recording); a frame reaching outside the recording is zero-padded and NaN counts as 0.
    """
    eeg = np.asarray(eeg)
    if eeg.ndim != 2 or eeg.shape[1] != len(EEG_COLUMNS):
        raise ValueError(f"eeg must be [n_samples, {len(EEG_COLUMNS)}], got shape {eeg.shape}")
    if centres_seconds is None:
        centres_seconds = np.arange(1, len(eeg) / EEG_RATE, SPEC_STEP_SECONDS)
    a, b = np.array(_PAIRS).T
    bipolar = np.nan_to_num(eeg[:, a].T.astype(np.float32) - eeg[:, b].T)  # [16, n]; float32 FFTs are plenty
    padded = np.pad(bipolar, ((0, 0), (SPEC_FFT, SPEC_FFT)))
    starts = np.round(np.asarray(centres_seconds, dtype=np.float64) * EEG_RATE).astype(int) + SPEC_FFT // 2
    frames = padded[:, starts[:, None] + np.arange(SPEC_FFT)[None]]  # [16, rows, 1024]
    spectrum = np.fft.rfft(frames * _WINDOW.astype(np.float32), axis=-1)[..., SPEC_BINS.start:SPEC_BINS.stop]
    power = (np.abs(spectrum).astype(np.float64) ** 2 * _SCALE).reshape(len(SPEC_REGIONS), 4, len(starts), -1).mean(1)
    return np.round(power.transpose(1, 0, 2).reshape(len(starts), -1), 2).astype(np.float32)
