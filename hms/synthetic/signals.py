"""What the brain and body put on the scalp: a non-stationary background and the six patterns, with the
variability of real ones (issue 19), plus blinks, muscle, movement and the heart's field. What the
electrodes and the amplifier add on top (reference, offsets, drift, line noise, the EKG lead) is
recording.py. Microvolts at 200 Hz on the 19 scalp electrodes (layout.ELECTRODES); spatial fields are
weights on approximate scalp positions, and a bipolar montage sees their gradients, so fields are focal
enough to show phase reversals, as real ones do.

- Background: 1/f sources with volume conduction, posterior alpha, beta, sleep spindles; its amplitude
  wanders slowly, may change state once within a record, and carries bursts of slow waves, so it is
  heavy-tailed and non-stationary like real EEG rather than even coloured noise.
- Patterns (ACNS terms): no two cycles alike. Periods jitter from cycle to cycle (the ACNS definitions
  allow up to 50%), discharges differ in width, amplitude and phases, frequency and field evolve, some
  discharges drop out and a pattern may start or stop inside the record (outside its labelled central
  seconds). Seizures take one of the published onset morphologies: low-voltage fast activity, rhythmic
  theta/delta or repetitive spike-and-wave, each evolving in frequency, amplitude and spread.
"""
import numpy as np

from hms.layout import CLASSES, EEG_RATE, ELECTRODES, FLIP_LR

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
MIRROR = np.array(FLIP_LR[:len(ELECTRODES)])  # each electrode's left/right counterpart
# Seizure onset morphologies (Perucca et al. 2014; ACNS 2021): low-voltage fast activity that slows
# and grows, rhythmic theta/delta, repetitive spike-and-wave; the share of patients with each.
SEIZURE_KINDS = ("fast", "rhythmic", "spike_wave")
SEIZURE_KIND_SHARE = (0.4, 0.35, 0.25)
# A partial pattern starts up to this late or stops up to this early (plus a 1.5 s ramp). The labelled
# central 10 s of any sub-window lie at least 20 s from either end of its EEG (offsets run from 0 to the
# length - 50 s), so they always show the pattern.
PARTIAL_SECONDS = 10
PARTIAL_CHANCE = 0.2  # at each end
INTERMITTENT_CHANCE = 0.4  # of rhythmic delta: pauses every few seconds


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
        "wander": rng.uniform(0.15, 0.4),          # log-sd of the background's slow amplitude changes
        "burst_per_min": rng.uniform(0, 4),        # bursts of high-amplitude slow waves
        "blink_per_min": rng.uniform(0, 12),
        "muscle_per_min": rng.uniform(0, 4) * (rng.random() < 0.6),
        "movement_per_min": rng.uniform(0, 1.5) * (rng.random() < 0.5),  # artefact-rich segments
        "pop_rate": rng.uniform(0, 0.3),           # chance of an electrode pop per record
        "ekg_leak": rng.uniform(0, 0.05) * (rng.random() < 0.4),
        "heart_hz": rng.uniform(0.9, 1.8),
        "ekg_amp": rng.uniform(300, 1200),
        "side": int(rng.choice([-1, 1])),          # hemisphere of lateralised patterns
        "focus": FOCI[rng.integers(len(FOCI))],
        "discharge_hz": rng.uniform(0.6, 2.2),
        "delta_hz": rng.uniform(1.0, 2.8),
        "seizure_hz": rng.uniform(3.0, 7.0),
        "seizure_kind": str(rng.choice(SEIZURE_KINDS, p=SEIZURE_KIND_SHARE)),
        "triphasic": rng.random() < 0.6,
        "jitter": rng.uniform(0.2, 0.35),          # cycle-to-cycle sd of a pattern's period, as a fraction
    }


# ------------------------------------------------------------------------------------------ helpers
def shaped_noise(rng, n: int, amplitude_spectra) -> np.ndarray:
    """[K, n] Gaussian noise, unit rms per row; amplitude_spectra(freqs) gives [K, n_freqs] (or
    [n_freqs] for one row). One float32 FFT for all rows: this is most of the generator's time, so
    noise is drawn only up to the highest frequency any row needs (above it the spectrum is < 1e-4)."""
    f = np.fft.rfftfreq(n, 1 / EEG_RATE).astype(np.float32)
    shape = np.atleast_2d(amplitude_spectra(f)).astype(np.float32)
    used = 1 + np.flatnonzero(shape.max(axis=0) > 1e-4 * shape.max())[-1]
    spectrum = rng.standard_normal((2, len(shape), used), dtype=np.float32)
    x = np.fft.irfft((spectrum[0] + 1j * spectrum[1]) * shape[:, :used], n=n)  # zero-padded above `used`
    return x / np.maximum(x.std(axis=1, keepdims=True), 1e-12)


def _bump(centre, width):
    return lambda f: np.exp(-0.5 * ((f - centre) / width) ** 2)


def add_gaussian(x: np.ndarray, centre_s: float, width_s: float, amplitude: float) -> None:
    """In place, along the last axis: a Gaussian bump, computed only where it is not negligible."""
    lo = max(0, int((centre_s - 4 * width_s) * EEG_RATE))
    hi = min(x.shape[-1], int((centre_s + 4 * width_s) * EEG_RATE) + 1)
    t = np.arange(lo, hi) / EEG_RATE
    x[..., lo:hi] += amplitude * np.exp(-0.5 * ((t - centre_s) / width_s) ** 2)


def ramp(t: np.ndarray, at_s: float, width_s: float) -> np.ndarray:
    """0 before `at_s`, 1 after, a smooth step `width_s` seconds wide."""
    return 0.5 * (1 + np.tanh((t - at_s) / (0.5 * width_s)))


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


def slow_wobble(t: np.ndarray, rng, depth: float) -> np.ndarray:
    """[n] 1 + a slow random oscillation of relative size `depth` (periods of 15-60 s): how a pattern's
    frequency drifts over a record."""
    return 1 + depth * np.sin(2 * np.pi * t / rng.uniform(15, 60) + rng.uniform(0, 2 * np.pi))


def cycle_onsets(n: int, rate_hz: np.ndarray, jitter: float, rng) -> np.ndarray:
    """Onsets (seconds) of the cycles of a quasi-periodic pattern over n samples: each period is
    1 / rate at its start (rate_hz: [n], the pattern's evolving rate) times a log-normal factor of sd
    `jitter`, so the rhythm keeps its rate but no two intervals are alike. Starts before 0."""
    onsets, t, seconds = [], -rng.random() / rate_hz[0], n / EEG_RATE
    while t < seconds + 1 / rate_hz[-1]:
        onsets.append(t)
        rate = rate_hz[min(max(int(t * EEG_RATE), 0), n - 1)]
        t += rng.lognormal(0, jitter) / rate
    return np.array(onsets)


def rhythmic_wave(n: int, rate_hz: np.ndarray, jitter: float, rng, sharpness: float = 0.2) -> np.ndarray:
    """[n] rhythmic wave at rate_hz ([n]): one cycle per onset of cycle_onsets, each with its own
    amplitude and sharpness, so the waves are rhythmic without being a sinusoid."""
    onsets = cycle_onsets(n, rate_hz, jitter, rng)
    t = np.arange(n) / EEG_RATE
    phase = 2 * np.pi * np.interp(t, onsets, np.arange(len(onsets)))
    amplitude = np.interp(t, onsets, rng.lognormal(0, 0.25, len(onsets)))
    sharp = np.interp(t, onsets, sharpness * rng.uniform(0.3, 1.7, len(onsets)))
    return amplitude * (np.sin(phase) + sharp * np.sin(2 * phase + 0.5) + 0.5 * sharp * np.sin(3 * phase))


def _discharge(t: np.ndarray, kind: str, width: float, rng) -> np.ndarray:
    """One discharge at t = 0 (seconds), unit peak, `width` scaling its phases; the after-going slow
    wave and the extra phases vary from one discharge to the next."""
    g = lambda at, sd: np.exp(-0.5 * ((t - at * width) / (sd * width)) ** 2)
    slow = rng.uniform(0.2, 0.5)
    if kind == "triphasic":
        return -0.35 * g(-0.07, 0.025) + g(0, 0.035) - rng.uniform(0.4, 0.7) * g(0.15, 0.07)
    if kind == "spike_wave":  # a spike (sometimes a polyspike) and a large after-going slow wave
        spikes = -g(0, 0.012) - (rng.random() < 0.3) * rng.uniform(0.4, 0.8) * g(0.04, 0.012)
        return spikes + rng.uniform(0.5, 0.9) * g(0.16, 0.06)
    # a surface-negative sharp wave, then a slow wave of the other sign; now and then polyphasic
    wave = -g(0, 0.022) + slow * g(0.14, 0.07)
    return wave + (rng.random() < 0.2) * rng.uniform(0.3, 0.6) * g(-0.05, 0.015)


def discharge_train(n: int, rate_hz: np.ndarray, rng, kind: str, jitter: float, dropout: float = 0.0) -> np.ndarray:
    """[n] discharges at rate_hz ([n]) with jittered intervals (cycle_onsets); each has its own width
    (sd 20%) and amplitude (sd 30%), and a share `dropout` of them is missing. Unit typical peak."""
    train = np.zeros(n)
    for at in cycle_onsets(n, rate_hz, jitter, rng):
        if rng.random() < dropout:
            continue
        lo, hi = max(0, int((at - 0.4) * EEG_RATE)), min(n, int((at + 0.6) * EEG_RATE))
        if hi <= lo:
            continue
        t = np.arange(lo, hi) / EEG_RATE - at
        train[lo:hi] += rng.lognormal(0, 0.3) * _discharge(t, kind, rng.lognormal(0, 0.2), rng)
    return train


# ----------------------------------------------------------------------------------------- patterns
def _scatter(rng, field: np.ndarray, max_lag_s: float, symmetric: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A field made less than perfectly smooth (per-electrode gain) and per-electrode lags: real
    generators are not coherent over the scalp, which is what bipolar montages see. A `symmetric`
    (generalised) pattern gets the same gain and lag on mirrored electrodes."""
    gains, lags = rng.lognormal(0, 0.25, len(field)), rng.uniform(0, max_lag_s, len(field))
    if symmetric:
        gains, lags = np.sqrt(gains * gains[MIRROR]), (lags + lags[MIRROR]) / 2
    return field * gains, lags


def _evolving(field: np.ndarray, t: np.ndarray, rng, symmetric: bool) -> np.ndarray:
    """[19, n] a field whose per-electrode weights drift over the record (towards a re-scattered copy of
    itself and back), so the maximum wanders as in real patterns; a `symmetric` (generalised) field
    keeps its two sides alike."""
    gains = rng.lognormal(0, 0.25, len(field))
    other = field * (np.sqrt(gains * gains[MIRROR]) if symmetric else gains)
    weight = 0.5 * (1 - np.cos(2 * np.pi * t / rng.uniform(10, 40) + rng.uniform(0, 2 * np.pi)))
    return field[:, None] + (other - field)[:, None] * weight[None]


def _presence(t: np.ndarray, rng, intermittent: bool) -> np.ndarray:
    """[n] in [0, 1]: where the pattern shows. It may start late or end early, but only outside the
    labelled central seconds; an intermittent pattern also pauses for 0.5-2.5 s every 4-12 s."""
    seconds = t[-1] + 1 / EEG_RATE
    start = rng.uniform(0, PARTIAL_SECONDS) if rng.random() < PARTIAL_CHANCE else -10.0
    stop = seconds - rng.uniform(0, PARTIAL_SECONDS) if rng.random() < PARTIAL_CHANCE else seconds + 10
    gate = ramp(t, start, 1.5) * (1 - ramp(t, stop, 1.5))
    if intermittent:
        pause = rng.uniform(0, 8)
        while pause < seconds:
            length = rng.uniform(0.5, 2.5)
            gate *= 1 - 0.9 * ramp(t, pause, 0.4) * (1 - ramp(t, pause + length, 0.4))
            pause += length + rng.uniform(4, 12)
    return gate


def _seizure(amp: float, n: int, traits: dict, rng) -> np.ndarray:
    """[19, n] a seizure: onset within the first 12 s, then it evolves over 12-25 s in frequency (it
    slows), amplitude (it grows) and spread (focal, then the hemisphere and across), in the patient's
    onset morphology."""
    t = np.arange(n) / EEG_RATE
    onset = rng.uniform(0, 12)
    after = np.clip((t - onset) / rng.uniform(12, 25), 0, 1)  # 0 before onset, 1 when evolved
    late_hz = traits["seizure_hz"] * rng.uniform(0.55, 0.8)
    kind, jitter = traits["seizure_kind"], traits["jitter"]
    if kind == "fast":  # low-voltage fast activity (13-25 Hz) slowing geometrically into theta, growing
        early_hz = rng.uniform(13, 25)
        rate = early_hz * (late_hz / early_hz) ** (after ** 2) * slow_wobble(t, rng, 0.15)
        wave, envelope = rhythmic_wave(n, rate, jitter, rng, sharpness=0.3), 0.25 + 0.75 * after ** 1.5
    elif kind == "spike_wave":  # repetitive spike-and-wave at 2.5-4 Hz, slowing as it spreads
        early_hz = rng.uniform(2.5, 4.0)
        rate = early_hz * (1 - 0.3 * after)
        wave, envelope = discharge_train(n, rate, rng, "spike_wave", jitter), 0.4 + 0.6 * after
    else:  # rhythmic theta/delta, faster at onset
        early_hz = traits["seizure_hz"] * rng.uniform(1.0, 1.3)
        rate = (early_hz + (late_hz - early_hz) * after) * slow_wobble(t, rng, 0.15)
        wave, envelope = rhythmic_wave(n, rate, jitter, rng, sharpness=0.45), 0.3 + 0.7 * after
    envelope = envelope * (t > onset)
    focus = traits["focus"] * np.array([-traits["side"], 1.0])
    width = 0.35 + 0.6 * after  # focal at onset, spreading over the hemisphere and across
    field = np.exp(-((XY[:, None, :] - focus) ** 2).sum(-1) / (2 * width[None] ** 2))
    gain, lags = _scatter(rng, np.ones(19), 0.04)
    return 2.2 * amp * gain[:, None] * field * _delay(envelope * wave, lags)


def pattern(name: str, strength: float, n: int, traits: dict, rng) -> np.ndarray:
    """[19, n] the pattern of one class, its size in bipolar derivations about `strength` times the
    background's."""
    t = np.arange(n) / EEG_RATE
    amp = strength * traits["amplitude"]
    if name == "seizure":
        return _seizure(amp, n, traits, rng)
    if name in ("lpd", "gpd"):  # sharp periodic discharges 0.5-2.5 Hz, one hemisphere or bilateral
        if name == "lpd":
            field, lags = _scatter(rng, lateral_field(traits), 0.03)
            rate, kind, size = traits["discharge_hz"], "sharp", 3.0
        else:  # bilaterally synchronous, often triphasic, frontal maximum with a front-back lag
            field, lags = _scatter(rng, frontal_field(), 0.01, symmetric=True)
            lags += (0.9 - XY[:, 1]) * rng.uniform(0.02, 0.05)
            rate, kind, size = traits["discharge_hz"] * 1.2, "triphasic" if traits["triphasic"] else "sharp", 2.5
        train = discharge_train(n, rate * slow_wobble(t, rng, 0.1), rng, kind, traits["jitter"],
                                dropout=rng.uniform(0, 0.1))
        signal = _delay(train * _presence(t, rng, intermittent=False), lags)
        return size * amp * _evolving(field, t, rng, symmetric=name == "gpd") * signal
    if name in ("lrda", "grda"):  # rhythmic delta, one hemisphere or bilateral frontal
        field = lateral_field(traits, 0.55) if name == "lrda" else frontal_field()
        field, lags = _scatter(rng, field, 0.08, symmetric=name == "grda")
        wave = rhythmic_wave(n, traits["delta_hz"] * slow_wobble(t, rng, 0.15), traits["jitter"], rng)
        waxing = 1 + 0.3 * np.sin(2 * np.pi * t / rng.uniform(6, 15) + rng.uniform(0, 6.3))
        signal = _delay(wave * waxing * _presence(t, rng, intermittent=rng.random() < INTERMITTENT_CHANCE), lags)
        return 1.4 * amp * _evolving(field, t, rng, symmetric=name == "grda") * signal
    return np.zeros((len(ELECTRODES), n))


# --------------------------------------------------------------------------------------- background
def background(n: int, traits: dict, rng, sleepy: bool, alpha_scale: float) -> np.ndarray:
    """[19, n] 1/f background with volume conduction, a posterior alpha rhythm and some beta; sleep-like
    records trade alpha for more delta and central spindles. Its amplitude wanders slowly (log-sd
    traits["wander"]), changes once in a third of the records (a state change) and carries bursts of
    slow waves over a region."""
    exponent = traits["exponent"] + (0.4 if sleepy else 0.0)
    sources = shaped_noise(rng, n, lambda f: np.concatenate([
        np.broadcast_to(1 / (0.5 + f) ** (exponent / 2), (19, len(f))),  # one local source per electrode
        np.stack([_bump(traits["alpha_hz"], 0.6)(f)] * 2),                  # alpha, one per hemisphere
        _bump(20, 4)(f)[None],                                              # beta
        _bump(13, 0.6)(f)[None],                                            # spindles
        _bump(2.0, 1.2)(f)[None],                                           # slow-wave bursts
        _bump(0, 0.1)(f)[None]]))                                           # the amplitude's wander
    # einsum, not @: a multi-threaded BLAS call is 30x slower on busy shared cores
    eeg = traits["amplitude"] * np.einsum("ij,jn->in", CONDUCTION, sources[:19])
    posterior = np.clip(0.6 - XY[:, 1], 0, 1.4) / 1.4
    hemisphere = 19 + (XY[:, 0] > 0).astype(int)
    eeg += traits["alpha_amp"] * alpha_scale * (0.3 if sleepy else 1.0) * posterior[:, None] * sources[hemisphere]
    frontocentral = np.clip(XY[:, 1] + 0.8, 0, 1.8) / 1.8
    eeg += traits["beta_amp"] * frontocentral[:, None] * sources[21][None]
    if sleepy:
        spindles = np.zeros(n)
        for c in rng.uniform(0, n / EEG_RATE, rng.poisson(n / EEG_RATE / 8)):
            add_gaussian(spindles, c, 0.35, 1.0)
        eeg += 12 * focal_field((0, 0.1), 0.5)[:, None] * (sources[22] * spindles)[None]
    t = np.arange(n) / EEG_RATE
    wander = traits["wander"]
    gain = np.exp(wander * sources[24] - wander ** 2)  # mean square 1: the amplitude stays calibrated
    if rng.random() < 1 / 3:
        gain *= 1 + (rng.uniform(0.6, 1.6) - 1) * ramp(t, rng.uniform(5, t[-1] - 5), rng.uniform(0.5, 3))
    eeg *= gain[None]
    for c in rng.uniform(0, t[-1], rng.poisson(traits["burst_per_min"] * n / EEG_RATE / 60)):
        envelope = np.zeros(n)
        add_gaussian(envelope, c, rng.uniform(0.2, 0.7), rng.uniform(2, 4) * traits["amplitude"])
        centre = XY[rng.integers(19)] * rng.uniform(0, 1)
        eeg += focal_field(centre, rng.uniform(0.4, 0.9))[:, None] * (envelope * sources[23])[None]
    return eeg


# ---------------------------------------------------------------------------------------- artefacts
def cardiac_field(n: int, traits: dict, rng) -> np.ndarray:
    """[n] the heart's field as a good EKG lead sees it: a P-QRS-T complex per beat with 4% beat-to-beat
    variability, peak about traits["ekg_amp"] uV. recording.py turns it into the EKG column."""
    t = np.arange(-0.3, 0.5, 1 / EEG_RATE)
    beat = (0.12 * np.exp(-0.5 * ((t + 0.16) / 0.025) ** 2) - 0.12 * np.exp(-0.5 * ((t + 0.025) / 0.008) ** 2)
            + np.exp(-0.5 * (t / 0.01) ** 2) - 0.25 * np.exp(-0.5 * ((t - 0.03) / 0.01) ** 2)
            + 0.3 * np.exp(-0.5 * ((t - 0.28) / 0.05) ** 2))
    period = 1 / traits["heart_hz"]
    times = np.cumsum(period * rng.normal(1, 0.04, int(n / EEG_RATE / period) + 3)) - period * rng.random()
    impulses = np.zeros(n)
    at = np.round(times * EEG_RATE).astype(int)
    np.add.at(impulses, at[(at >= 0) & (at < n)], 1.0)
    return traits["ekg_amp"] * np.convolve(impulses, beat, mode="same")


def add_artefacts(eeg: np.ndarray, cardiac: np.ndarray, traits: dict, rng, sleepy: bool, extra: float) -> None:
    """In place: EKG leak, eye blinks, temporal muscle and movement segments (large slow swings with
    muscle over many electrodes). `extra` > 1 makes the record artefact-laden."""
    n = eeg.shape[1]
    t = np.arange(n) / EEG_RATE
    minutes = n / EEG_RATE / 60
    if traits["ekg_leak"]:  # strongest on the left temporal chain, as with an ear reference
        gain = traits["ekg_leak"] * rng.uniform(0.3, 1.0, 19) * np.where(XY[:, 0] < 0, 1.0, 0.5)
        eeg += gain[:, None] * cardiac[None]
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
    for _ in range(rng.poisson(traits["movement_per_min"] * extra * minutes)):
        start, length = rng.integers(0, n), int(rng.uniform(2, 8) * EEG_RATE)
        stop = min(n, start + length)
        noise = shaped_noise(rng, length, lambda f: np.stack([_bump(0.8, 0.8)(f)] * 19 + [_bump(40, 15)(f)] * 19))
        swings_and_muscle = noise[:19] + 0.3 * noise[19:]
        taper = np.sin(np.pi * np.arange(length) / length)  # no step at either end
        gain = rng.uniform(30, 120) * rng.lognormal(0, 0.6, 19)[:, None]
        eeg[:, start:stop] += (gain * taper * swings_and_muscle)[:, :stop - start]


# ------------------------------------------------------------------------------------------- brain
def brain_signals(state: dict, seconds: int, traits: dict, rng) -> tuple[np.ndarray, np.ndarray, float]:
    """What reaches the scalp in one EEG of this state: [19, n] electrode potentials (uV, before the
    reference), [n] the heart's field, and the artefact factor `extra` (recording.py adds electrode
    faults at the same rate)."""
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
    cardiac = cardiac_field(n, traits, rng)
    # "Other" includes artefact-laden records: a messy background gets more artefacts.
    extra = 1 + 3 * (1 - state["clarity"]) if label == CLASSES.index("other") else 1.0
    add_artefacts(eeg, cardiac, traits, rng, sleepy, extra)
    return eeg, cardiac, extra
