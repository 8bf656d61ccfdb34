"""The embedded synthetic HMS data set: the Kaggle layout, signals with the six patterns' morphology,
realistic artefacts, expert-like votes and a known Bayes floor (oracle.csv).

Every EEG has one state (a class and a clarity in [0, 1]). Its true vote distribution mixes the class
with the confusions experts make, the mix set by clarity; the pattern's amplitude grows with clarity,
so a model can learn both the class and how sure the raters will be. Votes are multinomial draws:
1-7 votes (a crowd) or 10-28 (experts).
"""
import json
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from hms.data.layout import (CLASSES, CONSENSUS_NAMES, EEG_COLUMNS, EEG_RATE, ELECTRODES,
                             SPEC_POWER_COLUMNS, SPEC_WINDOW_SECONDS, TRAIN_COLUMNS, VOTE_COLUMNS)
from hms.data.spectrogram import kaggle_spectrogram
from hms.ensemble.metric import kl_per_row

DEFAULT_PATIENTS = 250
CLASS_MIX = np.array([0.06, 0.20, 0.13, 0.07, 0.08, 0.46])  # seizure lpd gpd lrda grda other
# Where experts' votes go when they do not agree with the pattern (HMS_FACTS: LPD~GPD~Seizure,
# LRDA~GRDA, anything~Other).
CONFUSION = np.array([
    [0.00, 0.35, 0.10, 0.10, 0.05, 0.40],   # seizure
    [0.25, 0.00, 0.35, 0.05, 0.00, 0.35],   # lpd
    [0.10, 0.40, 0.00, 0.00, 0.05, 0.45],   # gpd
    [0.05, 0.05, 0.00, 0.00, 0.45, 0.45],   # lrda
    [0.05, 0.00, 0.05, 0.35, 0.00, 0.55],   # grda
    [0.12, 0.28, 0.18, 0.12, 0.30, 0.00],   # other
])
# Approximate scalp positions (x: left -1 .. right 1, y: back -1 .. front 1) for fields and conduction.
POSITIONS = {"Fp1": (-0.3, 1.0), "F3": (-0.45, 0.5), "C3": (-0.5, 0.0), "P3": (-0.45, -0.5), "F7": (-0.8, 0.6),
             "T3": (-1.0, 0.0), "T5": (-0.8, -0.6), "O1": (-0.3, -1.0), "Fz": (0.0, 0.5), "Cz": (0.0, 0.0),
             "Pz": (0.0, -0.5), "Fp2": (0.3, 1.0), "F4": (0.45, 0.5), "C4": (0.5, 0.0), "P4": (0.45, -0.5),
             "F8": (0.8, 0.6), "T4": (1.0, 0.0), "T6": (0.8, -0.6), "O2": (0.3, -1.0)}
XY = np.array([POSITIONS[e] for e in ELECTRODES])
# Volume conduction: each electrode sees its neighbours, weighted by distance.
_D = np.linalg.norm(XY[:, None] - XY[None], axis=-1)
MIXING = np.exp(-(_D / 0.45) ** 2)
MIXING /= np.linalg.norm(MIXING, axis=1, keepdims=True)


def true_probabilities(label: int, clarity: float) -> np.ndarray:
    agree = 0.35 + 0.6 * clarity
    return agree * np.eye(6)[label] + (1 - agree) * CONFUSION[label]


def _coloured_noise(rng, shape, rate, exponent=1.0):
    """Noise with a 1/f^exponent power spectrum along the last axis."""
    n = shape[-1]
    f = np.fft.rfftfreq(n, 1 / rate)
    f[0] = f[1]
    spectrum = (rng.standard_normal(shape[:-1] + (len(f),)) + 1j * rng.standard_normal(shape[:-1] + (len(f),)))
    x = np.fft.irfft(spectrum / f ** (exponent / 2), n=n)
    return x / x.std(axis=-1, keepdims=True)


def _field(side: int, frontal: float = 0.0) -> np.ndarray:
    """Spatial weight per electrode: side -1 left, 1 right, 0 both; fading across the midline."""
    x, y = XY[:, 0], XY[:, 1]
    lateral = 1.0 / (1.0 + np.exp(-6 * side * x)) if side else np.ones(19)
    return lateral * (1.0 + frontal * y) / (1.0 + abs(frontal))


def _discharges(t, rate_hz, rng, triphasic: bool):
    """A train of sharp periodic discharges (spike then slow wave, or triphasic) at rate_hz."""
    out = np.zeros_like(t)
    period = 1.0 / rate_hz
    for c in np.arange(rng.uniform(0, period), t[-1], period * rng.uniform(0.9, 1.1)):
        d = t - c
        if triphasic:
            out += -0.4 * np.exp(-((d + 0.06) / 0.03) ** 2) + np.exp(-(d / 0.04) ** 2) - 0.5 * np.exp(-((d - 0.15) / 0.08) ** 2)
        else:
            out += np.exp(-(d / 0.025) ** 2) - 0.45 * np.exp(-((d - 0.12) / 0.09) ** 2)
    return out


def pattern(label: int, clarity: float, n: int, rng) -> np.ndarray:
    """The class's waveform [19, n] (microvolts) at an amplitude that grows with clarity."""
    t = np.arange(n) / EEG_RATE
    amp = 15 + 90 * clarity
    side = rng.choice([-1, 1])
    name = CLASSES[label]
    if name == "seizure":  # rhythmic 3-8 Hz evolving in frequency and amplitude, spreading
        f0 = rng.uniform(3, 6)
        freq = f0 + rng.uniform(1, 3) * t / t[-1]
        wave = np.sin(2 * np.pi * np.cumsum(freq) / EEG_RATE) + 0.4 * np.sin(4 * np.pi * np.cumsum(freq) / EEG_RATE)
        growth = np.clip(0.3 + t / t[-1], 0, 1.3)
        return amp * growth * wave * _field(side if rng.random() < 0.5 else 0)[:, None]
    if name == "lpd":
        return amp * 1.3 * _discharges(t, rng.uniform(0.5, 2.0), rng, False) * _field(side)[:, None]
    if name == "gpd":
        return amp * 1.3 * _discharges(t, rng.uniform(0.7, 2.5), rng, True) * _field(0, 0.5)[:, None]
    if name in ("lrda", "grda"):
        f = rng.uniform(1.0, 3.0)
        wave = np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
        return amp * wave * (_field(side) if name == "lrda" else _field(0, 0.6))[:, None]
    return np.zeros((19, n))


def eeg_signal(label: int, clarity: float, seconds: int, traits: dict, rng) -> np.ndarray:
    """[n, 20] float32: background + pattern + artefacts, microvolts; EKG last."""
    n = seconds * EEG_RATE
    t = np.arange(n) / EEG_RATE
    background = _coloured_noise(rng, (19, n), EEG_RATE, 1.6) * traits["amplitude"]
    posterior = np.clip(-XY[:, 1], 0, 1)[:, None]
    alpha = np.sin(2 * np.pi * traits["alpha_hz"] * t + rng.uniform(0, 6.3, (19, 1))) * 8 * posterior
    beta = _coloured_noise(rng, (19, n), EEG_RATE, 0.0) * 2
    if traits["sleepy"]:  # sleep-like slowing: more delta, less alpha
        background *= 1.4
        alpha *= 0.2
    eeg = MIXING @ (background + beta) + alpha + pattern(label, clarity, n, rng)
    heart = 1.0 / traits["heart_hz"]
    ekg = np.zeros(n)
    for c in np.arange(rng.uniform(0, heart), t[-1], heart):
        ekg += 600 * np.exp(-((t - c) / 0.012) ** 2) - 100 * np.exp(-((t - c - 0.25) / 0.06) ** 2)
    eeg += traits["ekg_leak"] * ekg[None] * rng.uniform(0.5, 1.0, (19, 1))
    if rng.random() < traits["artefact_rate"]:  # eye blinks at Fp1/Fp2
        for c in rng.uniform(0, t[-1], rng.integers(1, 6)):
            eeg[[0, 11]] += 150 * np.exp(-((t - c) / 0.15) ** 2)
    if rng.random() < traits["artefact_rate"]:  # muscle burst, temporal
        start = rng.integers(0, n - 400)
        burst = np.zeros(n)
        burst[start:start + rng.integers(200, 1000)] = 1
        sos = _coloured_noise(rng, (6, n), EEG_RATE, 0.0) * 25
        eeg[[4, 5, 6, 15, 16, 17]] += sos * burst
    if rng.random() < 0.3:  # 60 Hz line noise
        eeg += 5 * np.sin(2 * np.pi * 60 * t)
    if rng.random() < traits["artefact_rate"] / 2:  # electrode pop
        ch, c = rng.integers(19), rng.integers(n - 200)
        eeg[ch, c:] += 200 * np.exp(-(np.arange(n - c)) / 40)
    if rng.random() < 0.02:  # flat channel
        eeg[rng.integers(19)] = 0.0
    out = np.concatenate([eeg, ekg[None] + rng.standard_normal((1, n)) * 10]).T.astype(np.float32)
    if rng.random() < 0.03:  # NaN segment
        start = rng.integers(0, n - 200)
        out[start:start + rng.integers(20, 200)] = np.nan
    return out


def _spectrogram_for(eeg: np.ndarray, eeg_start: int, n_rows: int, rng) -> np.ndarray:
    """Rows at odd seconds 1..; those over the EEG come from it by the Kaggle recipe, the rest are the
    record's mean spectrum with log-normal jitter; ~1% of rows NaN."""
    times = 1 + 2 * np.arange(n_rows)
    over = (times - eeg_start >= 0) & (times - eeg_start < len(eeg) / EEG_RATE)
    power = np.empty((n_rows, len(SPEC_POWER_COLUMNS)), np.float32)
    power[over] = kaggle_spectrogram(eeg, times[over] - eeg_start)
    mean = power[over].mean(axis=0)
    power[~over] = np.round(mean * np.exp(rng.normal(0, 0.5, ((~over).sum(), 1)) + rng.normal(0, 0.3, ((~over).sum(), len(mean)))), 2)
    power[rng.random(n_rows) < 0.01] = np.nan
    return power


def _write_parquet(columns: dict, path: Path) -> None:
    pq.write_table(pa.table(columns), path)  # pyarrow directly: pandas' conversion costs as much again


def _make_record(job: dict) -> None:
    """One EEG and its spectrogram, written as parquet (runs in a worker process)."""
    rng = np.random.default_rng(job["seed"])
    eeg = eeg_signal(job["label"], job["clarity"], job["seconds"], job["traits"], rng)
    _write_parquet({c: eeg[:, i] for i, c in enumerate(EEG_COLUMNS)}, job["eeg_path"])
    n_rows = job["spec_rows"]
    # EEG second t of a window at offset o <-> spectrogram time o + 275 + (t - o): the EEG starts at 275.
    power = _spectrogram_for(eeg, 275, n_rows, rng)
    columns = {"time": (1 + 2 * np.arange(n_rows)).astype(np.int16)}
    columns |= {c: power[:, i] for i, c in enumerate(SPEC_POWER_COLUMNS)}
    _write_parquet(columns, job["spec_path"])


def _unique_ids(rng, n, low, high, taken=()):
    ids = set(taken)
    out = []
    while len(out) < n:
        for v in rng.integers(low, high, n).tolist():
            if v not in ids and len(out) < n:
                ids.add(v)
                out.append(v)
    return out


def label_stats(rows: pd.DataFrame, oracle: pd.DataFrame) -> dict:
    """Figures of the 10+ vote, de-duplicated rows: class mix, target entropy, prior KL, Bayes KL."""
    high = rows[rows[list(VOTE_COLUMNS)].sum(axis=1) >= 10].drop_duplicates(["eeg_id", *VOTE_COLUMNS])
    votes = high[list(VOTE_COLUMNS)].to_numpy(float)
    target = votes / votes.sum(axis=1, keepdims=True)
    truth = high[["label_id"]].merge(oracle, on="label_id")[list(VOTE_COLUMNS)].to_numpy()
    prior = np.broadcast_to(target.mean(axis=0), target.shape)
    entropy = -(np.where(target > 0, target * np.log(np.where(target > 0, target, 1)), 0)).sum(axis=1)
    mix = high.expert_consensus.value_counts(normalize=True)
    return {"rows_10plus": int(len(high)), "prior_kl": float(kl_per_row(target, prior).mean()),
            "bayes_kl": float(kl_per_row(target, truth).mean()), "target_entropy": float(entropy.mean()),
            "mean_target": dict(zip(CLASSES, target.mean(axis=0).round(3).tolist())),
            "consensus_mix": {k: round(float(mix.get(k, 0.0)), 3) for k in CONSENSUS_NAMES},
            "unanimous": float((target.max(axis=1) == 1).mean())}


def _votes(rng, p, experts: bool):
    n = int(np.clip(rng.normal(15, 2.5), 10, 28)) if experts else int(rng.integers(1, 8))
    votes = rng.multinomial(n, p)
    return votes


def make_synthetic(out_dir, patients: int = DEFAULT_PATIENTS, seed: int = 0, workers: int = 2,
                   progress: bool = True, test_fraction: float = 0.1) -> Path:
    """Write a complete data set folder (train + test parts, oracle.csv, solution.csv, stats.json)."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    for sub in ("train_eegs", "train_spectrograms", "test_eegs", "test_spectrograms"):
        (tmp / sub).mkdir(parents=True)
    rng = np.random.default_rng(seed % 2**32)
    n_test_patients = max(1, int(round(patients * test_fraction)))
    patient_ids = _unique_ids(rng, patients + n_test_patients, 1000, 65000)
    jobs, train_rows, test_rows, oracle_rows, solution_rows = [], [], [], [], []
    all_eeg_ids = _unique_ids(rng, 8 * (patients + n_test_patients), 10**6, 4_294_967_295)
    all_spec_ids = _unique_ids(rng, 8 * (patients + n_test_patients), 10**5, 2_147_483_647)
    label_ids = iter(_unique_ids(rng, 40 * (patients + n_test_patients), 10**6, 4_294_967_295))
    eeg_ids, spec_ids = iter(all_eeg_ids), iter(all_spec_ids)
    for p_index, patient in enumerate(patient_ids):
        is_test = p_index >= patients
        traits = {"amplitude": rng.uniform(12, 30), "alpha_hz": rng.uniform(8, 12), "sleepy": rng.random() < 0.3,
                  "artefact_rate": rng.uniform(0.05, 0.6), "ekg_leak": rng.uniform(0, 0.04),
                  "heart_hz": rng.uniform(0.9, 1.6)}
        for _ in range(1 if is_test else int(rng.integers(2, 5))):
            label = int(rng.choice(6, p=CLASS_MIX))
            clarity = float(rng.beta(2.0, 1.2))
            p = true_probabilities(label, clarity)
            eeg_id, spec_id = next(eeg_ids), next(spec_ids)
            if is_test:
                seconds, spec_rows = 50, SPEC_WINDOW_SECONDS // 2
                test_rows.append((spec_id, eeg_id, patient))
                votes = _votes(rng, p, True)
                solution_rows.append((eeg_id, *(votes / votes.sum())))
                oracle_rows.append((None, eeg_id, *p))
                split = "test"
            else:
                # 1-3 annotations (vote draws), each on 1-4 overlapping windows 2 s apart
                offsets, annotations = [], []
                cursor = 0
                for a in range(int(rng.integers(1, 4))):
                    experts = rng.random() < 0.3
                    votes = _votes(rng, p, experts)
                    for _ in range(int(rng.integers(1, 4))):
                        annotations.append((cursor, votes))
                        cursor += 2
                    cursor += int(rng.integers(0, 4)) * 2
                seconds = 50 + annotations[-1][0]
                spec_rows = (annotations[-1][0] + SPEC_WINDOW_SECONDS) // 2
                consensus = None
                for sub, (offset, votes) in enumerate(annotations):
                    label_id = next(label_ids)
                    consensus = CONSENSUS_NAMES[int(np.argmax(votes))]
                    train_rows.append((eeg_id, sub, float(offset), spec_id, sub, float(offset), label_id, patient,
                                       consensus, *votes.tolist()))
                    oracle_rows.append((label_id, eeg_id, *p))
                split = "train"
            jobs.append({"seed": [seed % 2**32, len(jobs)], "label": label, "clarity": clarity, "seconds": seconds,
                         "spec_rows": spec_rows, "traits": traits,
                         "eeg_path": tmp / f"{split}_eegs/{eeg_id}.parquet",
                         "spec_path": tmp / f"{split}_spectrograms/{spec_id}.parquet"})
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        list(tqdm(pool.map(_make_record, jobs, chunksize=4), total=len(jobs), desc="synthetic EEGs",
                  disable=not progress))
    train = pd.DataFrame(train_rows, columns=list(TRAIN_COLUMNS))
    train.to_csv(tmp / "train.csv", index=False)
    test = pd.DataFrame(test_rows, columns=["spectrogram_id", "eeg_id", "patient_id"])
    test.to_csv(tmp / "test.csv", index=False)
    sub = pd.DataFrame({"eeg_id": test.eeg_id, **{c: 1 / 6 for c in VOTE_COLUMNS}})
    sub.to_csv(tmp / "sample_submission.csv", index=False)
    pd.DataFrame(solution_rows, columns=["eeg_id", *VOTE_COLUMNS]).to_csv(tmp / "solution.csv", index=False)
    oracle = pd.DataFrame(oracle_rows, columns=["label_id", "eeg_id", *VOTE_COLUMNS])
    oracle["label_id"] = oracle["label_id"].astype("Int64")
    oracle.to_csv(tmp / "oracle.csv", index=False)
    stats = label_stats(train, oracle.dropna(subset=["label_id"]).astype({"label_id": "int64"}))
    stats |= {"patients": patients, "test_patients": n_test_patients, "train_eegs": int(train.eeg_id.nunique()),
              "train_rows": int(len(train)), "seed": seed}
    (tmp / "stats.json").write_text(json.dumps(stats, indent=2))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir


def ensure_synthetic(out_dir, patients: int = DEFAULT_PATIENTS, seed: int = 0) -> Path:
    """The trainer's generate-on-first-use: build the set unless a complete one is there."""
    out_dir = Path(out_dir)
    if not (out_dir / "stats.json").exists():
        print(f"building the embedded synthetic data set in {out_dir} (first use)", flush=True)
        make_synthetic(out_dir, patients=patients, seed=seed)
    return out_dir
