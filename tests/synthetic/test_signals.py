"""Every class carries its defining morphology (ACNS terms) with the variability of real patterns, and the
recording chain adds what real referential files hold: a common reference, offsets, drift, mains, EKG faults."""
import numpy as np
import pytest
from scipy import signal as scipy_signal

from hms.layout import CLASSES, EEG_COLUMNS, EEG_RATE
from hms.synthetic.labels import OTHER
from hms.synthetic.recording import EKG_LEADS, draw_chain, ekg_lead, eeg_record
from hms.synthetic.signal_stats import bipolar
from hms.synthetic.signals import FOCI, SEIZURE_KINDS, brain_signals, cycle_onsets, discharge_train, pattern

TRAITS = {"amplitude": 15.0, "exponent": 1.7, "alpha_hz": 10.0, "alpha_amp": 8.0, "beta_amp": 2.0,
          "sleepy": False, "wander": 0.0, "burst_per_min": 0.0, "blink_per_min": 0.0, "muscle_per_min": 0.0,
          "movement_per_min": 0.0, "pop_rate": 0.0, "ekg_leak": 0.0, "heart_hz": 1.2, "ekg_amp": 600.0, "side": -1,
          "focus": FOCI[1], "discharge_hz": 1.0, "delta_hz": 2.0, "seizure_hz": 5.0, "seizure_kind": "rhythmic",
          "triphasic": True, "jitter": 0.2}
LEFT, RIGHT = [0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15]  # bipolar rows of the banana
FRONT, BACK = [0, 4, 8, 12], [3, 7, 11, 15]  # Fp-F* and *-O pairs


def _electrodes_to_bipolar(electrodes: np.ndarray) -> np.ndarray:
    """[19, n] -> [18, n] (the EKG column plays no part)."""
    return bipolar(np.concatenate([electrodes, np.zeros((1, electrodes.shape[1]))]).T)


def _record(name, seconds=50, seed=0, **traits):
    """[18, n] bipolar traces of a clear window of this class, the brain's signals only."""
    state = {"label": CLASSES.index(name), "clarity": 1.0, "partner": OTHER, "visibility": 0.0}
    brain, _, _ = brain_signals(state, seconds, TRAITS | traits, np.random.default_rng(seed))
    return _electrodes_to_bipolar(brain)


def _band(x, low, high):
    f = np.fft.rfftfreq(x.shape[-1], 1 / EEG_RATE)
    return (np.abs(np.fft.rfft(x, axis=-1)) ** 2)[..., (f >= low) & (f < high)].sum(axis=-1)


def _delta_peak(x, hz):
    """Power density within 0.4 Hz of `hz` over that of the delta band's flanks (0.5-1 and 3.5-4.5 Hz),
    and the frequency of the largest 0.5-4 Hz power: a rhythm, not broadband slowing."""
    f, psd = scipy_signal.welch(x, fs=EEG_RATE, nperseg=1024, axis=-1)
    psd = psd.sum(axis=0)
    flanks = ((f >= 0.5) & (f <= 1.0)) | ((f >= 3.5) & (f <= 4.5))
    delta = (f >= 0.5) & (f <= 4)
    return psd[np.abs(f - hz) <= 0.4].mean() / psd[flanks].mean(), f[delta][psd[delta].argmax()]


def test_rhythmic_delta_is_lateralised_or_frontal_and_rhythmic():
    # thresholds hold for every seed of 12 tried: the fields, presence and cycles vary like real patterns
    background, lrda, grda = _record("other"), _record("lrda"), _record("grda")
    delta = lambda x, rows: _band(x[rows], 0.5, 4).sum()
    assert delta(lrda, LEFT) > 2.5 * delta(lrda, RIGHT)  # one hemisphere (the patient's left)
    assert 0.8 < delta(grda, LEFT) / delta(grda, RIGHT) < 1.25  # bilateral and symmetric ...
    assert delta(grda, FRONT) > 1.4 * delta(grda, BACK)  # ... frontally predominant
    for rhythmic in (lrda, grda):  # a peak at the patient's 2 Hz, well above the delta band's flanks
        peak, at = _delta_peak(rhythmic, TRAITS["delta_hz"])
        assert peak > 3 and 1.5 <= at <= 2.3
        assert delta(rhythmic, LEFT + RIGHT) > 1.8 * delta(background, LEFT + RIGHT)
    assert _delta_peak(background, TRAITS["delta_hz"])[0] < 1  # 1/f background: no peak


def test_periodic_discharges_are_lateralised_or_generalised():
    lpd, gpd = _record("lpd"), _record("gpd")
    broadband = lambda x, rows: _band(x[rows], 4, 20).sum()
    assert broadband(lpd, LEFT) > 1.5 * broadband(lpd, RIGHT)  # lateralised (1.8-6.5 over 12 seeds)
    assert 0.8 < broadband(gpd, LEFT) / broadband(gpd, RIGHT) < 1.25  # bilaterally synchronous
    assert broadband(gpd, LEFT + RIGHT) > 1.5 * broadband(_record("other"), LEFT + RIGHT)


def test_patterns_vary_from_cycle_to_cycle_like_real_ones():
    """Not a metronome: intervals vary (ACNS: by less than 50% for rhythmic and periodic patterns),
    discharges differ in size, yet the rate holds."""
    rng = np.random.default_rng(0)
    onsets = cycle_onsets(60 * EEG_RATE, np.full(60 * EEG_RATE, 2.0), 0.2, rng)
    intervals = np.diff(onsets)
    assert 0.15 < intervals.std() / intervals.mean() < 0.3 and abs(np.median(intervals) - 0.5) < 0.05
    train = discharge_train(60 * EEG_RATE, np.full(60 * EEG_RATE, 1.0), rng, "sharp", jitter=0.2)
    peaks, _ = scipy_signal.find_peaks(-train, height=0.3, distance=int(0.3 * EEG_RATE))
    sizes, gaps = -train[peaks], np.diff(peaks) / EEG_RATE
    assert 50 <= len(peaks) <= 70 and abs(np.median(gaps) - 1.0) < 0.1  # one per second
    assert 0.15 < gaps.std() / gaps.mean() < 0.4 and sizes.std() / sizes.mean() > 0.2


@pytest.mark.parametrize("kind", SEIZURE_KINDS)
def test_seizures_evolve_in_frequency_amplitude_and_spread(kind):
    n = 60 * EEG_RATE
    alone = pattern("seizure", 2.0, n, TRAITS | {"seizure_kind": kind}, np.random.default_rng(1))
    onset = int(np.flatnonzero(np.abs(alone).max(axis=0) > 0)[0])
    early, late = alone[:, onset:onset + 5 * EEG_RATE], alone[:, -10 * EEG_RATE:]
    def peak(x):  # the dominant frequency above 1 Hz (discharges carry a slow component of their own)
        f = np.fft.rfftfreq(x.shape[1], 1 / EEG_RATE)
        return f[f > 1][(np.abs(np.fft.rfft(x, axis=1)) ** 2).sum(axis=0)[f > 1].argmax()]
    assert 1.5 < peak(late) < peak(early)  # it slows down ...
    assert late.std() > 2 * early.std()  # ... grows ...
    involved = lambda x: (x.std(axis=1) > 0.3 * x.std(axis=1).max()).sum()
    assert involved(late) > involved(early)  # ... and spreads
    onset_hz = {"fast": (10, 30), "spike_wave": (2.3, 4.5), "rhythmic": (3.5, 8)}[kind]  # its onset morphology
    assert onset_hz[0] < peak(early) < onset_hz[1]
    with_background = _record("seizure", seconds=60, seizure_kind=kind)
    evolved, background = with_background[:, -10 * EEG_RATE:], _record("other")[:, :10 * EEG_RATE]
    assert _band(evolved, 2, 10).sum() > 2 * _band(background, 2, 10).sum()


@pytest.mark.parametrize("name", ["lpd", "gpd", "lrda", "grda"])
def test_patterns_may_be_partial_but_fill_the_labelled_central_seconds(name):
    """A pattern may start late, stop early or pause, but every sub-window's central 10 s shows it: in a
    70 s EEG those lie within seconds 20-50."""
    partial = 0
    for seed in range(24):
        alone = pattern(name, 2.0, 70 * EEG_RATE, TRAITS, np.random.default_rng(seed))
        power = (alone.reshape(19, -1, EEG_RATE) ** 2).mean(axis=(0, 2))  # per second
        central = [power[s:s + 10].mean() for s in range(20, 41)]
        assert min(central) > 0.3 * np.median(central), seed  # it waxes and wanes, but is there
        partial += min(power[:2].mean(), power[-2:].mean()) < 0.1 * np.median(central)
    assert 2 <= partial <= 14  # some start late or stop early


def test_recording_chain_adds_reference_offsets_drift_and_mains():
    rng = np.random.default_rng(4)
    state = {"label": OTHER, "clarity": 1.0, "partner": OTHER, "visibility": 0.0}
    chain = draw_chain(rng) | {"reference_heart": 0.0}
    record = lambda **change: eeg_record(state, 50, TRAITS, chain | change, np.random.default_rng(7))
    with_reference, without = record(reference_gain=1.5), record(reference_gain=0.0)
    # the reference is in every referential column and cancels in every bipolar one
    np.testing.assert_allclose(bipolar(with_reference), bipolar(without), atol=0.03)
    shared = (with_reference - without)[:, :19]
    assert np.abs(shared - shared[:, :1]).max() < 0.03 and shared.std() > 10
    # offsets: each electrode's, minus the reference's (shared, negative)
    means, expected = without[:, :19].mean(axis=0), chain["offsets_uv"] - chain["reference_offset_uv"]
    assert np.corrcoef(means, expected)[0, 1] > 0.9 and abs(means.mean() - expected.mean()) < 2  # brain's own DC aside
    # drift: most of the raw variance lies below 0.5 Hz
    low = _band(without[:, :19].T - without[:, :19].mean(axis=0)[:, None], 0.0, 0.5).sum()
    assert low > 0.5 * _band(without[:, :19].T - without[:, :19].mean(axis=0)[:, None], 0.0, 100).sum()
    # mains at 60 Hz, or 50 Hz when asked, well above its neighbourhood
    for hz in (60, 50):
        raw = eeg_record(state, 50, TRAITS, chain | {"line_uv": 10.0}, np.random.default_rng(7), line_hz=hz)
        f, psd = scipy_signal.welch(bipolar(raw), fs=EEG_RATE, nperseg=1024)
        psd = psd.mean(axis=0)
        assert psd[np.abs(f - hz) < 0.3].max() > 100 * np.median(psd[(f > 40) & (f < 70)])
        assert psd[np.abs(f - (110 - hz)) < 0.3].max() < 10 * np.median(psd[(f > 40) & (f < 70)])


def test_ekg_leads_are_good_inverted_noisy_disconnected_or_absent():
    rng = np.random.default_rng(0)
    n = 20 * EEG_RATE
    state = {"label": OTHER, "clarity": 1.0, "partner": OTHER, "visibility": 0.0}
    _, cardiac, _ = brain_signals(state, 20, TRAITS, rng)
    mains = np.sin(2 * np.pi * 60 * np.arange(n) / EEG_RATE)
    drift = np.zeros(n)
    r = {}
    for kind in EKG_LEADS:
        lead = ekg_lead(cardiac, draw_chain(rng) | {"ekg_lead": kind, "ekg_gain": 0.5}, drift, mains, rng)
        r[kind] = np.corrcoef(lead, cardiac)[0, 1] if lead.std() > 0 else 0.0
        if kind == "absent":
            assert not lead.any()
        if kind == "disconnected":
            assert np.abs(lead).max() > 400 and abs(np.corrcoef(lead, mains)[0, 1]) > 0.9
    assert r["good"] > 0.95 and r["inverted"] < -0.8 and abs(r["disconnected"]) < 0.1
    assert 0.1 < abs(r["noisy"]) < 0.9  # the heart is there, under the noise
    record = eeg_record(state, 20, TRAITS, draw_chain(rng) | {"ekg_lead": "absent"}, rng)
    assert not record[:, EEG_COLUMNS.index("EKG")].any()
