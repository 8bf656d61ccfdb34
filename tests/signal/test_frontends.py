"""The on-device signal front-ends: montages and how flips act on them, filters, STFT and mel spectra
against their CPU references (scipy, torch.stft, librosa)."""
import librosa
import numpy as np
import pytest
import torch
from scipy import signal as scipy_signal

from hms.layout import EEG_COLUMNS, FLIP_FB, FLIP_LR
from hms.models.stft import STFT_PRESETS, STFTExtractor
from hms.signal.filters import SpectralFilter
from hms.signal.montage import MONTAGES, NodeDifferences, flip_on_differences
from hms.signal.spectra import MelSpectrogram, power_to_db


@pytest.mark.parametrize("montage", sorted(MONTAGES))
@pytest.mark.parametrize("flip", ["lr", "fb"])
def test_flip_commutes_with_montage(montage, flip):
    eeg = torch.randn(3, 20, 50)
    perm = FLIP_LR if flip == "lr" else FLIP_FB
    diffs = NodeDifferences(montage)
    order, signs = flip_on_differences(diffs.pairs, perm)
    flipped_then_diff = diffs(eeg[:, list(perm)])
    diff_then_permuted = diffs(eeg)[:, order] * torch.tensor(signs)[:, None]
    torch.testing.assert_close(flipped_then_diff, diff_then_permuted)
    assert len(diffs.pairs) == {"chris8": 8, "banana16": 16, "interleaved16": 16, "banana18": 18, "groups24": 24}[montage]


def test_a_montage_not_closed_under_a_flip_is_refused():
    with pytest.raises(ValueError, match="not closed"):
        flip_on_differences([("Fp1", "F7"), ("F7", "T3")], FLIP_FB)  # would need T5-T3


def test_node_difference_values():
    eeg = torch.randn(1, 20, 5)
    d = NodeDifferences("banana16")
    assert d.pairs[0] == ("Fp1", "F7")
    torch.testing.assert_close(d(eeg)[:, 0], eeg[:, EEG_COLUMNS.index("Fp1")] - eeg[:, EEG_COLUMNS.index("F7")])
    assert NodeDifferences("groups24").groups == [list(range(8)), list(range(8, 16)), list(range(16, 24))]


def test_filters_match_scipy_and_their_passbands():
    t = torch.arange(8000) / 200.0
    x = torch.sin(2 * np.pi * 10 * t) + torch.sin(2 * np.pi * 60 * t) + torch.sin(2 * np.pi * 0.1 * t)
    band = SpectralFilter("bandpass0.5-20")(x[None])[0][2000:6000]  # the ends carry filtfilt-like transients
    spectrum = torch.fft.rfft(band).abs() / 2000
    freqs = torch.fft.rfftfreq(4000, 1 / 200)
    at = lambda f: spectrum[(freqs - f).abs().argmin()].item()  # noqa: E731
    assert at(10) == pytest.approx(1.0, abs=0.02) and at(60) < 1e-3 and at(0.1) < 1e-2
    tone = torch.sin(2 * np.pi * 50 * t.double()).float()  # a float32 phase drifts off 50 Hz over 40 s
    notch = SpectralFilter("notch50")(tone[None])[0]
    assert notch[1000:-1000].abs().max() < 1e-3
    # the same zero-phase filtering as scipy's butter + sosfiltfilt (both odd-extend the ends), 5 s from the ends
    noise = np.random.default_rng(0).standard_normal(4000)
    for preset, args in (("lowpass50", (4, 50, "lowpass")), ("bandpass0.5-20", (4, [0.5, 20], "bandpass"))):
        ref = scipy_signal.sosfiltfilt(scipy_signal.butter(*args, fs=200, output="sos"), noise)
        ours = SpectralFilter(preset)(torch.tensor(noise[None], dtype=torch.float32))[0].numpy()
        middle = slice(1000, 3000)
        assert np.abs(ours[middle] - ref[middle]).max() < 2e-3 * np.abs(ref).max(), preset


def test_band_limited_stft_equals_torch_stft():
    for preset, fmax in (("fine", 40), ("coarse", 20)):
        n_fft, win, hop = STFT_PRESETS[preset]
        m = STFTExtractor(n_fft=n_fft, win_length=win, hop_length=hop, fmax=fmax, montage="banana16")
        x = torch.randn(3, 2000)
        ours = m.stft(x)
        ref = torch.stft(x, n_fft=n_fft, win_length=win, hop_length=hop, window=torch.hann_window(win),
                         center=False, return_complex=True).abs()[:, :m.n_bins] ** 2  # only bins up to fmax
        assert m.n_bins == int(fmax * n_fft / 200) + 1 and m.stft.wsin.shape == (m.n_bins, 1, win)
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4 * ref.max().item())


def test_device_mel_equals_librosa_melspectrogram_and_power_to_db():
    x = np.cumsum(np.random.default_rng(1).standard_normal((2, 3000)), axis=-1).astype(np.float32)
    for center in (True, False):
        mel = MelSpectrogram(center=center)  # Chris Deotte's recipe: 1024 / 128 / 39, 128 mels 0-20 Hz
        ours = mel(torch.from_numpy(x))
        ref = np.stack([librosa.feature.melspectrogram(y=s, sr=200, n_fft=1024, win_length=128, hop_length=39,
                                                       n_mels=128, fmin=0, fmax=20, center=center) for s in x])
        assert ours.shape == ref.shape and mel.stft.wcos.shape[0] == 103  # only bins below 20 Hz computed
        np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-3, atol=1e-5 * ref.max())
        db = power_to_db(torch.from_numpy(ref)).numpy()
        np.testing.assert_allclose(db, np.stack([librosa.power_to_db(r, ref=np.max) for r in ref]), atol=1e-3)
    assert db.max() == 0 and db.min() >= -80
