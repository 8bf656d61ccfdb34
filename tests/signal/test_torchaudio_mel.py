"""The torchaudio-equivalent mel front-end of the 3rd place (RECIPES.md 2.3): TorchaudioMel against librosa with
torchaudio's definitions spelled out (periodic Hann, reflect-padded centre, HTK mel, no norm), and
amplitude_to_db with its batch-wide and per-spectrogram top_db floors."""
import librosa
import numpy as np
import pytest
import torch

from hms.signal.spectra import TorchaudioMel, amplitude_to_db, htk_mel_filters

# (n_fft, win_length, hop_length, n_mels, fmin, fmax, signal length, frames): RECIPES.md 2.3-2.4
SETTINGS = {
    "cfg_5a_main": (512, 128, 32, 64, 0.53, 30.0, 10_000, 313),
    "cfg_5a_zoom": (2048, 16, 4, 64, 0.53, 30.0, 2_400, 601),
    "cfg_1": (1024, 128, 39, 128, 0.53, 40.0, 10_000, 257),
}


def eeg_like(n: int, length: int, seed: int = 0) -> np.ndarray:
    """A random walk plus white noise: a steep spectrum, like EEG, so the low-power bins are tested too."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, length)).cumsum(-1) * 0.3 + 5 * rng.standard_normal((n, length))).astype(np.float32)


def librosa_mel(x: np.ndarray, n_fft, win_length, hop_length, n_mels, fmin, fmax) -> np.ndarray:
    return np.stack([librosa.feature.melspectrogram(
        y=s, sr=200, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window="hann", center=True,
        pad_mode="reflect", power=2, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=True, norm=None) for s in x])


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_equals_librosa_with_torchaudio_definitions(name):
    n_fft, win, hop, n_mels, fmin, fmax, length, frames = SETTINGS[name]
    x = eeg_like(2, length)
    ours = TorchaudioMel(200, n_fft, win, hop, n_mels, fmin, fmax)(torch.from_numpy(x)).numpy()
    ref = librosa_mel(x.astype(np.float64), n_fft, win, hop, n_mels, fmin, fmax)
    assert ours.shape == ref.shape == (2, n_mels, frames)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6 * ref.max())


def test_only_the_bins_below_the_last_filter_are_computed_over_the_window():
    mel = TorchaudioMel(200, 2048, 16, 4, 64, 0.53, 30.0)  # the cfg_5a zoom
    basis = htk_mel_filters(200, 2048, 64, 0.53, 30.0)
    assert mel.stft.wcos.shape == (308, 1, 16)  # bins 0..307 of 1025 (30 Hz = bin 307.2), 16 taps
    assert not basis[:, 308:].any() and basis[:, 307].any()


def test_filters_are_librosa_htk_without_norm():
    for n_fft, n_mels, fmax in ((512, 64, 30.0), (1024, 128, 40.0)):
        np.testing.assert_allclose(htk_mel_filters(200, n_fft, n_mels, 0.53, fmax),
                                   librosa.filters.mel(sr=200, n_fft=n_fft, n_mels=n_mels, fmin=0.53, fmax=fmax,
                                                       htk=True, norm=None), rtol=1e-6, atol=1e-9)


def test_torchaudio_defaults_and_leading_dims():
    mel = TorchaudioMel(200)  # n_fft 400, win_length = n_fft, hop = win_length // 2, 128 mels over 0-100 Hz
    x = eeg_like(6, 2000)
    ours = mel(torch.from_numpy(x).view(2, 3, 2000))
    ref = librosa_mel(x.astype(np.float64), 400, 400, 200, 128, 0.0, 100.0)
    assert ours.shape == (2, 3, 128, 1 + 2000 // 200)
    np.testing.assert_allclose(ours.reshape(6, 128, -1).numpy(), ref, rtol=1e-4, atol=1e-6 * ref.max())


def test_bad_settings_are_refused_in_one_line():
    with pytest.raises(ValueError, match="win_length 256 must not exceed n_fft 128"):
        TorchaudioMel(200, 128, 256)
    with pytest.raises(ValueError, match="fmin < fmax <= 100"):
        TorchaudioMel(200, 128, fmin=0.5, fmax=120.0)
    with pytest.raises(ValueError, match="longer than n_fft // 2 = 1024"):
        TorchaudioMel(200, 2048, 16, 4, 64, 0.53, 30.0)(torch.zeros(1, 1000))
    with pytest.raises(ValueError, match="dB floor"):
        amplitude_to_db(torch.ones(1, 2, 2), 100.0, floor="per_image")


def test_amplitude_to_db_and_its_two_top_db_floors():
    loud = torch.logspace(-2, 6, 20, dtype=torch.float64).view(1, 4, 5)  # -20 .. 60 dB
    power = torch.cat([loud, loud * 1e-6])  # the second spectrogram 60 dB quieter: -80 .. 0 dB
    db = amplitude_to_db(power)
    torch.testing.assert_close(db, 10 * torch.log10(power))
    assert amplitude_to_db(torch.zeros(1, 1, 1)).item() == pytest.approx(-100.0)  # max(x, 1e-10)
    # [quirk, as published] torchaudio on a (N, F, T) stack: one floor, the whole stack's max (60 dB) - 100,
    # so the quiet spectrogram loses its 10 values below -40 dB
    batch = amplitude_to_db(power, top_db=100.0)
    torch.testing.assert_close(batch[0], db[0])
    assert (batch[1] == -40.0).sum() == 10 and batch.min().item() == pytest.approx(-40.0)
    # fixed: each spectrogram floored below its own max, so the quiet one keeps its values at top_db 100
    torch.testing.assert_close(amplitude_to_db(power, top_db=100.0, floor="spectrogram"), db)
    per_spectrogram = amplitude_to_db(power, top_db=50.0, floor="spectrogram")
    assert (per_spectrogram[0] == 10.0).sum() == 8 and (per_spectrogram[1] == -50.0).sum() == 8
