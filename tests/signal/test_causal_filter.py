"""The causal "lowpass50_causal" filter: scipy's lfilter of butter(4, 50, fs=200) from zero state (the 15th-place
recipe as published), done on the device as an FFT convolution with the truncated impulse response."""
import numpy as np
import pytest
import torch
from scipy import signal as scipy_signal

from hms.signal.filters import SpectralFilter

RATE, N = 200.0, 10_000  # a 50 s window, the 15th-place solution's


@pytest.fixture(scope="module")
def causal():
    return SpectralFilter("lowpass50_causal")


def lfilter(x: np.ndarray) -> np.ndarray:
    b, a = scipy_signal.butter(4, 50, fs=RATE)
    return scipy_signal.lfilter(b, a, x, axis=-1)


def run(f: SpectralFilter, x: np.ndarray) -> np.ndarray:
    return f(torch.tensor(x, dtype=torch.float32)).double().numpy()


def test_taps_are_the_impulse_response_until_it_decays(causal):
    assert len(causal.taps) == 53
    impulse = np.zeros(len(causal.taps))
    impulse[0] = 1.0
    np.testing.assert_allclose(causal.taps, lfilter(impulse), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["noise", "step"])
def test_equals_scipy_lfilter_over_the_whole_window(causal, kind):
    if kind == "noise":
        x = np.random.default_rng(0).standard_normal((3, N)).astype(np.float32)
    else:
        x = np.ones((1, N), dtype=np.float32)
    ours, ref = run(causal, x), lfilter(x.astype(np.float64))
    assert ours.shape == x.shape
    # measured: ~1.5e-7 (noise) and ~3.6e-7 (step) of the peak, fp32 FFT rounding
    assert np.abs(ours - ref).max() < 1e-5 * np.abs(x).max()
    if kind == "step":  # the start-up transient is lfilter's (from zero state), and it settles at DC gain 1
        assert ours[0, 0] == pytest.approx(ref[0, 0], abs=1e-6) and ours[0, 0] == pytest.approx(0.0940, abs=1e-4)
        assert ours[0, -1] == pytest.approx(1.0, abs=1e-5)


def test_batched_on_leading_dims(causal):
    x = torch.randn(2, 4, 3000)
    ours = causal(x)
    assert ours.shape == x.shape
    torch.testing.assert_close(ours[1, 2], causal(x[1, 2][None])[0], rtol=0, atol=1e-5)


def test_is_causal(causal):
    x = np.random.default_rng(1).standard_normal((2, N)).astype(np.float32)
    changed = x.copy()
    changed[:, 6000:] = np.random.default_rng(2).standard_normal((2, N - 6000)) * 10
    before, after = run(causal, x), run(causal, changed)
    # not bit-exact: the FFT spreads fp32 rounding (measured ~1e-7 of the peak) over the whole window
    assert np.abs(before[:, :6000] - after[:, :6000]).max() < 1e-6 * np.abs(changed).max()
    assert np.abs(before[:, 6000:] - after[:, 6000:]).max() > 1.0


@pytest.mark.parametrize("freq", [10.0, 90.0])
def test_sine_gain_matches_scipy_response(causal, freq):
    t = np.arange(N) / RATE
    y = run(causal, np.sin(2 * np.pi * freq * t)[None])[0][1000:]  # past the transient (53 taps)
    gain = np.sqrt(2 * np.mean(y ** 2))  # amplitude of a steady sine
    _, h = scipy_signal.sosfreqz(scipy_signal.butter(4, 50, fs=RATE, output="sos"), worN=[freq], fs=RATE)
    assert gain == pytest.approx(abs(h[0]), rel=1e-3)
    if freq == 10.0:
        assert gain == pytest.approx(1.0, abs=1e-3)
    else:
        assert gain < 1e-3  # about -70 dB at 90 Hz


def lag_of_peak(y: np.ndarray, x: np.ndarray, max_lag: int = 20) -> int:
    """The lag k (y[t] ~ x[t - k]) at which y's cross-correlation with x peaks."""
    lags = range(-max_lag, max_lag + 1)
    return max(lags, key=lambda k: np.dot(y[max_lag + k:len(y) - max_lag + k], x[max_lag:len(x) - max_lag]))


def test_lags_the_input_where_the_zero_phase_preset_does_not(causal):
    x = np.random.default_rng(3).standard_normal((1, N)).astype(np.float32)
    lagged, zero_phase = run(causal, x)[0], run(SpectralFilter("lowpass50"), x)[0]
    assert lag_of_peak(lagged, x[0]) == 2  # the impulse response peaks at tap 2
    assert lag_of_peak(zero_phase, x[0]) == 0
    assert np.abs(lagged - zero_phase)[1000:-1000].max() > 0.1 * np.abs(x).max()


def test_float32_also_under_bf16_autocast(causal):
    x = torch.randn(2, 3, N)
    plain = causal(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = causal(x)
        from_bf16 = causal(x.bfloat16())
    assert plain.dtype == autocast.dtype == from_bf16.dtype == torch.float32
    torch.testing.assert_close(autocast, plain, rtol=0, atol=1e-6)
    torch.testing.assert_close(from_bf16, causal(x.bfloat16().float()), rtol=0, atol=1e-6)


def test_the_3rd_place_band_passes_equal_lfilter():
    from hms.signal.filters import PRESETS
    x = np.random.default_rng(3).standard_normal((2, 10000))
    for preset, (order, low, high) in {"bandpass0.5-20_causal_o2": (2, 0.5, 20), "bandpass1.6-30_causal_o1": (1, 1.6, 30),
                                       "bandpass1.6-30_causal_o2": (2, 1.6, 30)}.items():
        b, a = scipy_signal.butter(order, [low / 100, high / 100], btype="band")  # as ds_1.py:12-18 writes it
        ours = SpectralFilter(preset)(torch.tensor(x, dtype=torch.float32)).numpy()
        assert PRESETS[preset]["causal"] and np.abs(ours - scipy_signal.lfilter(b, a, x)).max() < 1e-5 * np.abs(x).max()


def test_random_band_pass_refilters_a_few_channels_of_chosen_samples_like_lfilter():
    from hms.signal.filters import random_band_pass
    x = torch.tensor(np.random.default_rng(4).standard_normal((6, 16, 3000)), dtype=torch.float32)
    out = random_band_pass(x, 0.5, 8, (0.0001, 2), (10, 20), 2, rng=np.random.default_rng(0))
    rng = np.random.default_rng(0)  # the same draws, replayed
    touched = 0
    for b in range(6):
        if rng.random() >= 0.5:
            assert torch.equal(out[b], x[b])
            continue
        channels = sorted(set(rng.integers(0, 16, 1 + int(rng.integers(8))).tolist()))
        high, low = int(rng.integers(10, 20)), float(rng.uniform(0.0001, 2))
        ref = scipy_signal.sosfilt(scipy_signal.butter(2, [low, high], btype="bandpass", fs=200, output="sos"),
                                   x[b].double().numpy(), axis=-1)
        rest = [c for c in range(16) if c not in channels]
        assert torch.equal(out[b, rest], x[b, rest]) and 1 <= len(channels) <= 8
        assert np.abs(out[b, channels].numpy() - ref[channels]).max() < 1e-4
        touched += 1
    assert 0 < touched < 6


def test_random_band_pass_without_replacement_changes_every_drawn_channel():
    from hms.signal.filters import random_band_pass
    x = torch.tensor(np.random.default_rng(5).standard_normal((200, 16, 400)), dtype=torch.float32)
    changed = {}
    for replace in (True, False):
        out = random_band_pass(x, 1.0, 8, (0.0001, 2), (10, 20), 2, rng=np.random.default_rng(1), replace=replace)
        changed[replace] = (out != x).any(dim=2).sum(dim=1).float()
    assert changed[False].mean().item() == pytest.approx(4.5, abs=0.4)  # 1 + randint(8) distinct channels
    assert changed[True].mean() < changed[False].mean() - 0.2  # duplicates draws change fewer channels
    assert changed[False].min() >= 1 and changed[False].max() <= 8


@pytest.mark.parametrize("preset, n, length", [("bandpass0.5-20", 10000, 12800),  # 2 s of extension each side
                                               ("bandpass0.5-20", 100, 298),  # short: the reflection's limit n-1
                                               ("bandpass0.5-20_causal_o2", 10000, None)])
def test_fft_length_is_the_length_each_pass_filters_at(preset, n, length):
    band = SpectralFilter(preset)
    expected = length or min(m for m in (2**a * f for a in range(20) for f in (1, 5, 25)) if m >= n + len(band.taps) - 1)
    assert band.fft_length(n) == expected
    calls = []
    real_rfft = torch.fft.rfft
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.fft, "rfft", lambda x, n=None: calls.append(n or x.shape[-1]) or real_rfft(x, n=n))
        assert band(torch.randn(2, n)).shape == (2, n)
    assert calls == [expected]
