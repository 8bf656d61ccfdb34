"""The recording chain: what electrodes, reference and amplifier add to the brain's signals (signals.py)
before the file is written. Real referential files carry all of it (issue 19, measured on real HMS files):

- a common reference: every column is electrode minus a reference electrode with its own EEG and a
  little of the heart's field, so referential columns correlate (r 0.5-0.7) and bipolar ones do not see it;
- DC offsets, one per electrode plus the reference's, which every column shares with a negative sign
  (the real files' shared negative offset), and slow drift: most of the raw variance lies below 0.5 Hz;
- mains line noise (60 Hz, or 50 Hz) in every recording, at levels that vary by recording and electrode
  (impedance mismatch); its harmonics lie above the 100 Hz Nyquist frequency, where the recorder's
  anti-alias filter removes them;
- electrode pops and dead channels, and an EKG lead that is often inverted, noisy, disconnected (mains and
  drift only) or absent (zeros).

One recording's chain (draw_chain) is shared by its EEG chunks, as the electrodes stay on between them.
"""
import numpy as np

from hms.layout import EEG_RATE
from hms.synthetic.signals import brain_signals, shaped_noise, slow_wobble

LINE_FREQUENCIES = (50, 60)
EKG_LEADS = ("good", "inverted", "noisy", "disconnected", "absent")
EKG_LEAD_SHARE = (0.3, 0.25, 0.2, 0.15, 0.1)  # 3 of 4 real EKG leads are broken or inverted
NAN_RUN_CHANCE = 0.04  # per EEG: a run of whole NaN rows, like the real files


def draw_chain(rng) -> dict:
    """One recording's electrodes and amplifier: offsets, drift and line levels, the reference's share,
    the EKG lead's state. Offsets are log-normal, set so that a window's mean absolute offset (the drift's
    window mean adds a little) is about 16 uV like the real HMS files' 15-18 uV, with a heavy tail: one
    recording in ten has 2-8 times more, as real files reach 125 uV."""
    scale = rng.lognormal(0, 0.2) * (rng.uniform(2, 8) if rng.random() < 0.1 else 1.0)
    return {
        "reference_gain": rng.uniform(0.9, 1.6),      # the reference's own EEG, x the background amplitude
        "reference_heart": rng.uniform(0, 0.04),      # heart field at the reference (ear or mastoid)
        "reference_offset_uv": 11.4 * scale * rng.lognormal(0, 0.2),
        "offsets_uv": rng.normal(0, 9.85 * scale * rng.lognormal(0, 0.15), 19),
        "drift_uv": rng.lognormal(np.log(45), 0.5),   # rms of each electrode's drift
        "line_uv": rng.lognormal(np.log(8), 0.9),     # mains amplitude at a typical electrode
        "line_gains": rng.lognormal(0, 0.6, 20),      # per electrode, then the reference
        "ekg_lead": str(rng.choice(EKG_LEADS, p=EKG_LEAD_SHARE)),
        "ekg_gain": rng.uniform(0.05, 0.8),           # of the heart's field, for inverted and noisy leads
    }


def _drift_spectrum(f: np.ndarray) -> np.ndarray:
    """Amplitude spectrum of electrode drift: 1/f from the record's length up to ~0.3 Hz, nothing at
    0 Hz (the offset is separate) and nothing left in the 0.5-40 Hz band."""
    return (f > 0) / (f + 0.02) * np.exp(-(f / 0.3) ** 4)


def ekg_lead(cardiac: np.ndarray, chain: dict, drift: np.ndarray, mains: np.ndarray, rng) -> np.ndarray:
    """[n] the EKG column from the heart's field, as the lead's state (chain["ekg_lead"]) makes it."""
    kind, n = chain["ekg_lead"], len(cardiac)
    if kind == "absent":
        return np.zeros(n)
    noise = rng.standard_normal(n)
    if kind == "good":
        return cardiac + 8 * noise
    if kind == "disconnected":  # an open input: mains and drift, no heart
        return rng.uniform(500, 5000) * mains + rng.uniform(50, 300) * drift + 20 * noise
    sign = -1.0 if kind == "inverted" else float(rng.choice([-1, 1]))
    floor = 10 if kind == "inverted" else rng.uniform(30, 80)
    return sign * chain["ekg_gain"] * cardiac + floor * noise + rng.uniform(30, 200) * drift + 20 * mains


def add_electrode_faults(eeg: np.ndarray, traits: dict, rng, extra: float) -> None:
    """In place: an electrode pop (a step that decays), a dead channel (zeros)."""
    n = eeg.shape[1]
    if rng.random() < traits["pop_rate"] * extra:
        channel, at = rng.integers(19), rng.integers(0, n - 1)
        decay = np.exp(-np.arange(min(n - at, 2 * EEG_RATE)) / (0.2 * EEG_RATE))
        eeg[channel, at:at + len(decay)] += rng.choice([-1, 1]) * rng.uniform(100, 400) * decay
    if rng.random() < 0.02 * extra:
        eeg[rng.integers(19)] = 0.0


def eeg_record(state: dict, seconds: int, traits: dict, chain: dict, rng, line_hz: int = 60) -> np.ndarray:
    """[seconds * 200, 20] float32 microvolts as the file holds them (EKG last), rounded to 0.01 uV:
    the brain's signals of this state (signals.brain_signals) through this recording's chain."""
    brain, cardiac, extra = brain_signals(state, seconds, traits, rng)
    n = brain.shape[1]
    t = np.arange(n) / EEG_RATE
    own_eeg = shaped_noise(rng, n, lambda f: 1 / (0.5 + f) ** (traits["exponent"] / 2))[0]  # the reference's
    drift = shaped_noise(rng, n, lambda f: np.broadcast_to(_drift_spectrum(f), (21, len(f))))  # 19, ref, EKG
    mains = slow_wobble(t, rng, 0.3) * np.sin(2 * np.pi * line_hz * t + rng.uniform(0, 2 * np.pi))
    line = chain["line_uv"] * chain["line_gains"][:, None] * mains[None]
    electrodes = brain + chain["offsets_uv"][:, None] + chain["drift_uv"] * drift[:19] + line[:19]
    reference = (chain["reference_gain"] * traits["amplitude"] * own_eeg + chain["reference_heart"] * cardiac
                 + chain["reference_offset_uv"] + chain["drift_uv"] * drift[19] + line[19])
    eeg = electrodes - reference[None]
    add_electrode_faults(eeg, traits, rng, extra)
    ekg = ekg_lead(cardiac, chain, drift[20], mains, rng)
    out = np.round(np.concatenate([eeg, ekg[None]]).T, 2).astype(np.float32)
    if rng.random() < NAN_RUN_CHANCE:
        start = rng.integers(0, n)
        out[start:start + int(rng.uniform(0.5, 8) * EEG_RATE)] = np.nan
    return out
