"""Waveforms of the synthetic EEG: background, the six patterns (ACNS terms) and artefacts.

All signals are microvolts at 200 Hz on the 19 scalp electrodes (layout.ELECTRODES) plus EKG.
Spatial fields are weights on approximate scalp positions; a bipolar montage sees their gradients,
so fields are focal enough to show phase reversals, as real ones do.
"""
import numpy as np

from hms.layout import CLASSES, EEG_RATE, ELECTRODES

# Approximate scalp positions (x: left -1 .. right 1, y: back -1 .. front 1).
POSITIONS = {"Fp1": (-0.3, 1.0), "F3": (-0.45, 0.5), "C3": (-0.5, 0.0), "P3": (-0.45, -0.5),
             "F7": (-0.8, 0.6), "T3": (-1.0, 0.0), "T5": (-0.8, -0.6), "O1": (-0.3, -1.0),
             "Fz": (0.0, 0.5), "Cz": (0.0, 0.0), "Pz": (0.0, -0.5),
             "Fp2": (0.3, 1.0), "F4": (0.45, 0.5), "C4": (0.5, 0.0), "P4": (0.45, -0.5),
             "F8": (0.8, 0.6), "T4": (1.0, 0.0), "T6": (0.8, -0.6), "O2": (0.3, -1.0)}
XY = np.array([POSITIONS[e] for e in ELECTRODES])
# Volume conduction: every electrode also sees its neighbours' sources.
_DIST = np.linalg.norm(XY[:, None] - XY[None], axis=-1)
CONDUCTION = np.exp(-(_DIST / 0.5) ** 2)
CONDUCTION = (CONDUCTION / np.linalg.norm(CONDUCTION, axis=1, keepdims=True)).astype(np.float32)
# Where a lateralised pattern can sit (left-side coordinates; mirrored for the right).
FOCI = np.array([(-0.6, 0.55), (-0.9, 0.0), (-0.5, 0.0), (-0.6, -0.5), (-0.75, 0.3)])
_INDEX = {e: i for i, e in enumerate(ELECTRODES)}
TEMPORAL = [_INDEX[e] for e in ("F7", "T3", "T5", "F8", "T4", "T6")]
FRONTOPOLAR = [_INDEX["Fp1"], _INDEX["Fp2"]]


def draw_traits(rng) -> dict:
    """Per-patient traits: background, alpha, artefact rates and the shape of the patient's patterns,
    so windows of one patient resemble each other (which is why folds are grouped by patient)."""
    return {
        "amplitude": rng.uniform(10, 22),          # background rms per electrode, uV
        "exponent": rng.uniform(1.4, 2.0),         # 1/f^exponent background
        "alpha_hz": rng.uniform(8.0, 11.5),
        "alpha_amp": rng.uniform(4, 16),
        "beta_amp": rng.uniform(1, 5),
        "sleepy": rng.random() < 0.3,              # share of records with sleep-like slowing
        "blink_per_min": rng.uniform(0, 12),
        "muscle_per_min": rng.uniform(0, 4) * (rng.random() < 0.6),
        "line_noise": rng.uniform(1, 12) * (rng.random() < 0.25),
        "pop_rate": rng.uniform(0, 0.3),           # chance of an electrode pop per record
        "ekg_leak": rng.uniform(0, 0.05) * (rng.random() < 0.4),
        "heart_hz": rng.uniform(0.9, 1.8),
        "ekg_amp": rng.uniform(300, 1200),
        "side": int(rng.choice([-1, 1])),          # hemisphere of lateralised patterns
        "focus": FOCI[rng.integers(len(FOCI))],
        "discharge_hz": rng.uniform(0.6, 2.2),
        "delta_hz": rng.uniform(1.0, 2.8),
        "seizure_hz": rng.uniform(3.0, 7.0),
        "triphasic": rng.random() < 0.6,
    }


# ------------------------------------------------------------------------------------------ helpers
def shaped_noise(rng, n: int, amplitude_spectra) -> np.ndarray:
    """[K, n] Gaussian noise, unit rms per row; amplitude_spectra(freqs) gives [K, n_freqs] (or
    [n_freqs] for one row). One float32 FFT for all rows: this is most of the generator's time."""
    f = np.fft.rfftfreq(n, 1 / EEG_RATE).astype(np.float32)
    shape = np.atleast_2d(amplitude_spectra(f)).astype(np.float32)
    spectrum = rng.standard_normal((2, *shape.shape), dtype=np.float32)
    x = np.fft.irfft((spectrum[0] + 1j * spectrum[1]) * shape, n=n)
    return x / np.maximum(x.std(axis=1, keepdims=True), 1e-12)


def _bump(centre, width):
    return lambda f: np.exp(-0.5 * ((f - centre) / width) ** 2)


def add_gaussian(x: np.ndarray, centre_s: float, width_s: float, amplitude: float) -> None:
    """In place, along the last axis: a Gaussian bump, computed only where it is not negligible."""
    lo = max(0, int((centre_s - 4 * width_s) * EEG_RATE))
    hi = min(x.shape[-1], int((centre_s + 4 * width_s) * EEG_RATE) + 1)
    t = np.arange(lo, hi) / EEG_RATE
    x[..., lo:hi] += amplitude * np.exp(-0.5 * ((t - centre_s) / width_s) ** 2)


def focal_field(centre, width: float) -> np.ndarray:
    """[19] Gaussian field around a scalp position."""
    return np.exp(-((XY - np.asarray(centre)) ** 2).sum(axis=1) / (2 * width ** 2))


def lateral_field(traits: dict, width: float = 0.45) -> np.ndarray:
    """Over one hemisphere around the patient's focus; fades across the midline."""
    focus = traits["focus"] * np.array([-traits["side"], 1.0])
    return focal_field(focus, width)


def frontal_field() -> np.ndarray:
    """Bilateral, maximal frontally and fading towards the back (both hemispheres alike)."""
    return 0.15 + np.exp(-((XY[:, 1] - 0.9) ** 2) / (2 * 0.45 ** 2))


def _delay(signal: np.ndarray, lags_seconds: np.ndarray) -> np.ndarray:
    """[n] -> [len(lags), n]: the signal delayed per channel, to the nearest sample."""
    lags = np.round(np.asarray(lags_seconds) * EEG_RATE).astype(int)
    return signal[np.clip(np.arange(len(signal))[None] - lags[:, None], 0, len(signal) - 1)]


def discharge_train(n: int, rate_hz: float, rng, triphasic: bool) -> np.ndarray:
    """[n] periodic discharges at rate_hz (5% jitter): a sharp wave with an after-going slow wave, or a
    triphasic wave; unit peak."""
    t = np.arange(-0.4, 0.6, 1 / EEG_RATE)
    if triphasic:
        template = (-0.35 * np.exp(-0.5 * ((t + 0.07) / 0.025) ** 2) + np.exp(-0.5 * (t / 0.035) ** 2)
                    - 0.55 * np.exp(-0.5 * ((t - 0.15) / 0.07) ** 2))
    else:  # surface-negative sharp wave, then a slow wave of the other sign
        template = -np.exp(-0.5 * (t / 0.022) ** 2) + 0.35 * np.exp(-0.5 * ((t - 0.14) / 0.07) ** 2)
    period = 1 / rate_hz
    times = np.cumsum(period * rng.normal(1, 0.05, int(n / EEG_RATE / period) + 3)) - period * rng.random()
    impulses = np.zeros(n)
    at = np.round(times * EEG_RATE).astype(int)
    ok = (at >= 0) & (at < n)
    np.add.at(impulses, at[ok], rng.uniform(0.8, 1.2, ok.sum()))
    return np.convolve(impulses, template, mode="same")


def rhythmic_wave(n: int, freq_hz, rng, sharpness: float = 0.2) -> np.ndarray:
    """[n] rhythmic wave at freq_hz (a number or [n] array for evolving frequency), slightly sharp."""
    phase = 2 * np.pi * np.cumsum(np.broadcast_to(freq_hz, (n,))) / EEG_RATE + rng.uniform(0, 2 * np.pi)
    return np.sin(phase) + sharpness * np.sin(2 * phase + 0.5) + 0.5 * sharpness * np.sin(3 * phase)


# ----------------------------------------------------------------------------------------- patterns
def _scatter(rng, field: np.ndarray, max_lag_s: float) -> tuple[np.ndarray, np.ndarray]:
    """A field made less than perfectly smooth (per-electrode gain) and per-electrode lags: real
    generators are not coherent over the scalp, which is what bipolar montages see."""
    return field * rng.lognormal(0, 0.25, len(field)), rng.uniform(0, max_lag_s, len(field))


def pattern(name: str, strength: float, n: int, traits: dict, rng) -> np.ndarray:
    """[19, n] the pattern of one class, its size in bipolar derivations about `strength` times the
    background's."""
    t = np.arange(n) / EEG_RATE
    amp = strength * traits["amplitude"]
    if name == "lpd":  # sharp periodic discharges 0.5-2.5 Hz over one hemisphere
        field, lags = _scatter(rng, lateral_field(traits), 0.03)
        train = discharge_train(n, traits["discharge_hz"], rng, triphasic=False)
        return 3.0 * amp * field[:, None] * _delay(train, lags)
    if name == "gpd":  # bilaterally synchronous, often triphasic, frontal maximum with a front-back lag
        field, lags = _scatter(rng, frontal_field(), 0.01)
        lags += (0.9 - XY[:, 1]) * rng.uniform(0.02, 0.05)
        train = discharge_train(n, traits["discharge_hz"] * 1.2, rng, traits["triphasic"])
        return 2.5 * amp * field[:, None] * _delay(train, lags)
    if name in ("lrda", "grda"):  # rhythmic delta, one hemisphere or bilateral frontal
        field = lateral_field(traits, 0.55) if name == "lrda" else frontal_field()
        field, lags = _scatter(rng, field, 0.08)
        freq = traits["delta_hz"] * (1 + 0.04 * np.sin(2 * np.pi * t / 20))
        waxing = 1 + 0.25 * np.sin(2 * np.pi * t / rng.uniform(6, 15) + rng.uniform(0, 6.3))
        return 1.4 * amp * field[:, None] * _delay(rhythmic_wave(n, freq, rng) * waxing, lags)
    if name == "seizure":  # rhythmic > 2.5 Hz that evolves in frequency, amplitude and spread
        onset = rng.uniform(0, 12)
        after = np.clip((t - onset) / rng.uniform(12, 25), 0, 1)  # 0 before onset, 1 when evolved
        start, end = traits["seizure_hz"] * rng.uniform(1.0, 1.3), traits["seizure_hz"] * rng.uniform(0.55, 0.8)
        wave = rhythmic_wave(n, start + (end - start) * after, rng, sharpness=0.45)
        envelope = (t > onset) * (0.3 + 0.7 * after)
        focus = traits["focus"] * np.array([-traits["side"], 1.0])
        width = 0.35 + 0.6 * after  # focal at onset, spreading over the hemisphere and across
        field = np.exp(-((XY[:, None, :] - focus) ** 2).sum(-1) / (2 * width[None] ** 2))
        gain, lags = _scatter(rng, np.ones(19), 0.04)
        return 2.2 * amp * gain[:, None] * field * _delay(envelope * wave, lags)
    return np.zeros((len(ELECTRODES), n))


# --------------------------------------------------------------------------------------- background
def background(n: int, traits: dict, rng, sleepy: bool, alpha_scale: float) -> np.ndarray:
    """[19, n] 1/f background with volume conduction, a posterior alpha rhythm and some beta; sleep-like
    records trade alpha for more delta and central spindles."""
    exponent = traits["exponent"] + (0.4 if sleepy else 0.0)
    sources = shaped_noise(rng, n, lambda f: np.concatenate([
        np.broadcast_to(1 / (0.5 + f) ** (exponent / 2), (19, len(f))),  # one local source per electrode
        np.stack([_bump(traits["alpha_hz"], 0.6)(f)] * 2),                 # alpha, one per hemisphere
        _bump(20, 4)(f)[None],                                             # beta
        _bump(13, 0.6)(f)[None]]))                                         # spindles
    # einsum, not @: a multi-threaded BLAS call is 30x slower on busy shared cores
    eeg = traits["amplitude"] * np.einsum("ij,jn->in", CONDUCTION, sources[:19])
    posterior = np.clip(0.6 - XY[:, 1], 0, 1.4) / 1.4
    hemisphere = 19 + (XY[:, 0] > 0).astype(int)
    eeg += traits["alpha_amp"] * alpha_scale * (0.3 if sleepy else 1.0) * posterior[:, None] * sources[hemisphere]
    frontocentral = np.clip(XY[:, 1] + 0.8, 0, 1.8) / 1.8
    eeg += traits["beta_amp"] * frontocentral[:, None] * sources[21][None]
    if sleepy:
        bursts = np.zeros(n)
        for c in rng.uniform(0, n / EEG_RATE, rng.poisson(n / EEG_RATE / 8)):
            add_gaussian(bursts, c, 0.35, 1.0)
        eeg += 12 * focal_field((0, 0.1), 0.5)[:, None] * (sources[22] * bursts)[None]
    return eeg


# ---------------------------------------------------------------------------------------- artefacts
def ekg_trace(n: int, traits: dict, rng) -> np.ndarray:
    """[n] EKG: a P-QRS-T complex per beat with 4% beat-to-beat variability, plus noise."""
    t = np.arange(-0.3, 0.5, 1 / EEG_RATE)
    beat = (0.12 * np.exp(-0.5 * ((t + 0.16) / 0.025) ** 2) - 0.12 * np.exp(-0.5 * ((t + 0.025) / 0.008) ** 2)
            + np.exp(-0.5 * (t / 0.01) ** 2) - 0.25 * np.exp(-0.5 * ((t - 0.03) / 0.01) ** 2)
            + 0.3 * np.exp(-0.5 * ((t - 0.28) / 0.05) ** 2))
    period = 1 / traits["heart_hz"]
    times = np.cumsum(period * rng.normal(1, 0.04, int(n / EEG_RATE / period) + 3)) - period * rng.random()
    impulses = np.zeros(n)
    at = np.round(times * EEG_RATE).astype(int)
    np.add.at(impulses, at[(at >= 0) & (at < n)], 1.0)
    return traits["ekg_amp"] * np.convolve(impulses, beat, mode="same") + 8 * rng.standard_normal(n)


def add_artefacts(eeg: np.ndarray, ekg: np.ndarray, traits: dict, rng, sleepy: bool, extra: float) -> None:
    """In place: EKG leak, eye blinks, temporal muscle, 60 Hz, an electrode pop, a flat channel.
    `extra` > 1 makes the record artefact-laden."""
    n = eeg.shape[1]
    t = np.arange(n) / EEG_RATE
    minutes = n / EEG_RATE / 60
    if traits["ekg_leak"]:  # strongest on the left temporal chain, as with an ear reference
        gain = traits["ekg_leak"] * rng.uniform(0.3, 1.0, 19) * np.where(XY[:, 0] < 0, 1.0, 0.5)
        eeg += gain[:, None] * ekg[None]
    if not sleepy:
        blinks = np.zeros(n)
        for c in rng.uniform(0, t[-1], rng.poisson(traits["blink_per_min"] * extra * minutes)):
            add_gaussian(blinks, c, rng.uniform(0.08, 0.14), rng.uniform(80, 200))
        eeg += focal_field((0, 1.2), 0.45)[:, None] * blinks[None]
    for _ in range(rng.poisson(traits["muscle_per_min"] * extra * minutes)):
        start, length = rng.integers(0, n), int(rng.uniform(0.5, 4) * EEG_RATE)
        burst = shaped_noise(rng, length, lambda f: np.stack([_bump(45, 12)(f)] * len(TEMPORAL)))
        stop = min(n, start + length)
        eeg[TEMPORAL, start:stop] += rng.uniform(8, 35) * burst[:, :stop - start]
    if traits["line_noise"]:
        gain = traits["line_noise"] * rng.lognormal(0, 0.6, 19)
        eeg += gain[:, None] * np.sin(2 * np.pi * 60 * t + rng.uniform(0, 6.3))[None]
    if rng.random() < traits["pop_rate"] * extra:
        channel, at = rng.integers(19), rng.integers(0, n - 1)
        decay = np.exp(-np.arange(min(n - at, 2 * EEG_RATE)) / (0.2 * EEG_RATE))
        eeg[channel, at:at + len(decay)] += rng.choice([-1, 1]) * rng.uniform(100, 400) * decay
    if rng.random() < 0.02 * extra:
        eeg[rng.integers(19)] = 0.0


# ------------------------------------------------------------------------------------------- record
def eeg_record(state: dict, seconds: int, traits: dict, rng) -> np.ndarray:
    """[seconds * 200, 20] float32 microvolts (EKG last), rounded to 0.01 uV like the real files."""
    n = seconds * EEG_RATE
    label, name = state["label"], CLASSES[state["label"]]
    sleepy = traits["sleepy"] and rng.random() < 0.8
    pathological = name in ("seizure", "gpd", "grda")  # encephalopathy: slower, poorer alpha
    eeg = background(n, traits, rng, sleepy, alpha_scale=0.5 if pathological else 1.0)
    if name != "other":  # strength 0.6-3.2 x background: faint windows stay hard, clear ones obvious
        eeg += pattern(name, 0.6 + 2.6 * state["clarity"], n, traits, rng)
    partner = CLASSES[state["partner"]]
    if partner != "other":  # the confusable secondary feature, at most as strong as the main pattern
        main = 0.6 + 2.6 * state["clarity"] if name != "other" else 2.0
        eeg += pattern(partner, 0.6 * main * state["visibility"], n, traits, rng)
    ekg = ekg_trace(n, traits, rng)
    # "Other" includes artefact-laden records: a messy background gets more artefacts.
    extra = 1 + 3 * (1 - state["clarity"]) if label == CLASSES.index("other") else 1.0
    add_artefacts(eeg, ekg, traits, rng, sleepy, extra)
    out = np.round(np.concatenate([eeg, ekg[None]]).T, 2).astype(np.float32)
    if rng.random() < 0.04:  # a NaN run, whole rows like the real files
        start = rng.integers(0, n)
        out[start:start + int(rng.uniform(0.5, 8) * EEG_RATE)] = np.nan
    return out
