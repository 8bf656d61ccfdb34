"""The Kaggle spectrogram recipe: reproduces the real public test pair, puts power where it belongs, and
commutes with the electrode flips."""
import numpy as np
import pytest

from hms.data.kaggle import read_eeg, read_spectrogram
from hms.layout import (EEG_COLUMNS, EEG_RATE, EEG_TO_SPEC_SECONDS, FLIP_FB, FLIP_LR, SPEC_FREQS,
                        SPEC_REGION_FLIP_FB, SPEC_REGION_FLIP_LR)
from hms.signal.kaggle_spectrogram import kaggle_spectrogram
from tests.helpers import spec_columns


def test_reproduces_the_real_test_spectrogram(real_hms):
    eeg = read_eeg(real_hms / "test_eegs/3911565283.parquet")
    time, real = read_spectrogram(real_hms / "test_spectrograms/853520.parquet")
    over = (time - EEG_TO_SPEC_SECONDS > 2.56) & (time - EEG_TO_SPEC_SECONDS < 50 - 2.56)  # frames inside the EEG
    ours = kaggle_spectrogram(eeg, time[over] - EEG_TO_SPEC_SECONDS)
    assert over.sum() == 22
    corr = np.corrcoef(np.log(ours + 1e-2).ravel(), np.log(real[over] + 1e-2).ravel())[0, 1]
    assert corr >= 0.9
    assert 0.7 < np.median(ours[real[over] > 1] / real[over][real[over] > 1]) < 1.4  # same PSD scale


def test_a_sine_lands_in_its_bin_at_the_psd_level():
    k = 40  # FFT bin 40 = 7.8125 Hz, column 37 of each region
    t = np.arange(30 * EEG_RATE) / EEG_RATE
    eeg = np.zeros((len(t), 20), np.float32)
    eeg[:, EEG_COLUMNS.index("Fp1")] = 10 * np.sin(2 * np.pi * SPEC_FREQS[k - 3] * t)
    power = kaggle_spectrogram(eeg, [10.0, 20.0])
    # Fp1 is in one pair of LL and one of LP: (A * sum(w) / 2)^2 * scale / 4 pairs = 100 * 0.8533 / 4
    for region in (0, 2):
        np.testing.assert_allclose(power[:, region * 100 + k - 3], 21.33, atol=0.02)
        assert power[:, region * 100:(region + 1) * 100].argmax(axis=1).tolist() == [k - 3, k - 3]
    assert power[:, 100:200].max() == 0 and power[:, 300:].max() == 0  # the right side saw nothing


def test_format_default_rows_and_nan():
    rng = np.random.default_rng(0)
    eeg = rng.normal(0, 20, (20 * EEG_RATE, 20)).astype(np.float32)
    power = kaggle_spectrogram(eeg)
    assert power.shape == (10, 400) and power.dtype == np.float32  # rows at seconds 1, 3, ..., 19
    np.testing.assert_array_equal(power, np.round(power, 2))
    eeg[1000:1400] = np.nan
    assert np.isfinite(kaggle_spectrogram(eeg)).all()  # NaN counts as 0
    with pytest.raises(ValueError, match="shape"):
        kaggle_spectrogram(eeg[:, :19])


def test_electrode_flips_permute_the_spectrogram_columns():
    rng = np.random.default_rng(1)
    eeg = rng.normal(0, 20, (12 * EEG_RATE, 20)).astype(np.float32)
    eeg[:, :8] *= np.linspace(1, 3, 8)  # an asymmetric recording
    power = kaggle_spectrogram(eeg)
    np.testing.assert_allclose(kaggle_spectrogram(eeg[:, FLIP_LR]), power[:, spec_columns(SPEC_REGION_FLIP_LR)], atol=0.011)
    np.testing.assert_allclose(kaggle_spectrogram(eeg[:, FLIP_FB]), power[:, spec_columns(SPEC_REGION_FLIP_FB)], atol=0.011)
    assert not np.allclose(power[:, :100], power[:, 100:200], atol=1)
