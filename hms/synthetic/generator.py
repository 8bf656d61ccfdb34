"""The embedded synthetic HMS data set: the Kaggle layout to the letter, EEGs with the six patterns'
morphology and realistic artefacts, Kaggle-recipe spectrograms, expert-like votes and a known Bayes
floor (oracle.csv).

Structure, as in the real data: a patient has recordings; a recording is one spectrogram that 1-3
EEGs (consecutive chunks of it) share; an EEG carries 1-3 annotations (vote draws), each labelling
1-6 overlapping 50 s sub-windows. Each EEG has one state (labels.py) that sets both its
waveforms (signals.py: the brain; recording.py: reference, offsets, drift, line noise, EKG lead, one
chain per recording) and its true vote probabilities.
"""
import json
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from hms.layout import (CLASSES, EEG_COLUMNS, EEG_RATE, EEG_TO_SPEC_SECONDS, EEG_WINDOW_SECONDS, SPEC_FFT,
                             SPEC_POWER_COLUMNS, SPEC_STEP_SECONDS, SPEC_WINDOW_ROWS, SPEC_WINDOW_SECONDS,
                             SUBMISSION_COLUMNS, TEST_COLUMNS, TRAIN_COLUMNS, VOTE_COLUMNS)
from hms.signal.kaggle_spectrogram import kaggle_spectrogram
from hms.synthetic.labels import (EXPERT_SHARE, STATE_MIX, consensus, draw_state, draw_votes,
                                       label_stats, true_probabilities)
from hms.synthetic.recording import LINE_FREQUENCIES, draw_chain, eeg_record
from hms.synthetic.signals import background, draw_traits

GENERATOR_VERSION = 3  # bump when the output changes, so ensure_synthetic rebuilds old sets
DEFAULT_PATIENTS = 450  # ~1,300 train EEGs, ~650 10+ vote windows, ~1.5 GB
TEST_PATIENT_SHARE = 0.1
PATIENT_CONCENTRATION = 3.0  # Dirichlet: each patient has a few dominant states
SAME_STATE_IN_RECORDING = 0.6  # chance that the next EEG chunk of a recording keeps the class
SPEC_NAN_RUN_CHANCE = 0.25  # per spectrogram: one run of whole NaN rows


def _unique_ids(rng, n: int, low: int, high: int) -> np.ndarray:
    return rng.choice(high - low, size=n, replace=False) + low


def _annotations(rng) -> tuple[list[tuple[int, int]], list[bool]]:
    """[(offset seconds, annotation index)] sub-windows of one EEG, and each annotation's expert flag."""
    windows, experts, cursor = [], [], 0
    for a in range(int(rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2]))):
        experts.append(bool(rng.random() < EXPERT_SHARE))
        for _ in range(1 + min(int(rng.poisson(1.5)), 5)):
            windows.append((cursor, a))
            cursor += int(rng.choice([2, 4, 6], p=[0.5, 0.3, 0.2]))
        cursor += 2 * int(rng.integers(0, 5))
    return windows, experts


def plan_dataset(patients: int, seed: int, line_hz: int = 60) -> dict:
    """Everything but the signals: ids, states, votes, offsets, and one job per recording.

    Cheap (no signals), so label statistics of any size can be checked in a test."""
    rng = np.random.default_rng(seed)
    n_test = max(1, int(round(patients * TEST_PATIENT_SHARE)))
    patient_ids = _unique_ids(rng, patients + n_test, 1, 65_536)
    budget = 12 * (patients + n_test)  # upper bounds on ids drawn; unused ones are simply dropped
    eeg_ids = iter(_unique_ids(rng, budget, 100_000, 2**32 - 1).tolist())
    spec_ids = iter(_unique_ids(rng, budget, 100_000, 2**31 - 1).tolist())
    label_ids = iter(_unique_ids(rng, 10 * budget, 100_000, 2**32 - 1).tolist())
    plan = {"train": [], "test": [], "oracle": [], "solution": [], "jobs": [], "truth": []}
    for index, patient in enumerate(patient_ids.tolist()):
        traits = draw_traits(rng)
        mix = rng.dirichlet(STATE_MIX * PATIENT_CONCENTRATION)
        if index >= patients:  # test patients: 1-3 EEGs of exactly 50 s, each with its 10 min spectrogram
            for _ in range(int(rng.integers(1, 4))):
                state = draw_state(rng, mix)
                p = true_probabilities(**state)
                eeg_id, spec_id = next(eeg_ids), next(spec_ids)
                votes = draw_votes(rng, p, experts=True)
                plan["test"].append((spec_id, eeg_id, patient))
                plan["solution"].append((eeg_id, *(votes / votes.sum())))
                plan["oracle"].append((None, eeg_id, *p))
                plan["jobs"].append({"split": "test", "spec_id": spec_id, "spec_rows": SPEC_WINDOW_ROWS,
                                     "traits": traits, "eegs": [{"id": eeg_id, "state": state, "start": 0,
                                                                 "seconds": EEG_WINDOW_SECONDS}]})
            continue
        for _ in range(1 + int(rng.poisson(rng.gamma(1.0, 1.0)))):  # recordings, skewed per patient
            spec_id, start, sub, eegs, last_offset = next(spec_ids), 2 * int(rng.integers(0, 30)), 0, [], 0
            state = None
            for _ in range(1 + int(rng.poisson(0.5))):  # EEG chunks of this recording
                keep = state if state is not None and rng.random() < SAME_STATE_IN_RECORDING else None
                state = draw_state(rng, mix, label=None if keep is None else keep["label"])
                p = true_probabilities(**state)
                eeg_id = next(eeg_ids)
                windows, experts = _annotations(rng)
                votes = [draw_votes(rng, p, e) for e in experts]
                for eeg_sub, (offset, a) in enumerate(windows):
                    label_id = next(label_ids)
                    plan["train"].append((eeg_id, eeg_sub, float(offset), spec_id, sub, float(start + offset),
                                          label_id, patient, consensus(votes[a]), *votes[a].tolist()))
                    plan["oracle"].append((label_id, eeg_id, *p))
                    plan["truth"].append(p)
                    sub += 1
                seconds = EEG_WINDOW_SECONDS + windows[-1][0]
                eegs.append({"id": eeg_id, "state": state, "start": start, "seconds": seconds})
                last_offset = start + windows[-1][0]
                start += seconds + 2 * int(rng.integers(0, 30))  # the next chunk follows a short gap
            plan["jobs"].append({"split": "train", "spec_id": spec_id, "traits": traits, "eegs": eegs,
                                 "spec_rows": (last_offset + SPEC_WINDOW_SECONDS) // SPEC_STEP_SECONDS})
    for i, job in enumerate(plan["jobs"]):
        job["seed"], job["line_hz"] = [seed, i], line_hz
    return plan


# ------------------------------------------------------------------------------------------- writing
def recording_spectrogram(chunks: list[dict], n_rows: int, rng) -> np.ndarray:
    """[n_rows, 400] spectrogram of a recording at times 1, 3, 5, ...

    Rows whose 1024-sample frame lies inside an EEG chunk come from it by the Kaggle recipe (EEG
    second t of the chunk <-> time start + 275 + t), NaN where the EEG is NaN. The other rows get the
    nearest chunk's mean spectrum times log-normal noise, or its `quiet` spectrum farther than `extent`
    seconds (a seizure is over after a while). One spectrogram in four has a run of NaN rows."""
    times = 1 + SPEC_STEP_SECONDS * np.arange(n_rows)
    power = np.empty((n_rows, len(SPEC_POWER_COLUMNS)), np.float32)
    filled = np.zeros(n_rows, bool)
    distance = np.full(n_rows, np.inf)
    nearest = np.zeros(n_rows, int)
    half_frame = SPEC_FFT / 2 / EEG_RATE
    means = []
    for k, chunk in enumerate(chunks):
        centre = times - EEG_TO_SPEC_SECONDS - chunk["start"]  # EEG seconds of this chunk
        inside = (centre >= half_frame) & (centre <= chunk["seconds"] - half_frame)
        rows = kaggle_spectrogram(chunk["signal"], centre[inside])
        means.append(rows.mean(axis=0))
        missing = np.isnan(chunk["signal"][(centre[inside] * EEG_RATE).astype(int), 0])
        rows[missing] = np.nan
        power[inside], filled = rows, filled | inside
        gap = np.maximum(np.maximum(-centre, centre - chunk["seconds"]), 0)
        closer = gap < distance
        nearest[closer], distance[closer] = k, gap[closer]
    rest = np.flatnonzero(~filled)
    far = np.array([distance[i] > chunks[nearest[i]].get("extent", np.inf) for i in rest], bool)
    mean = np.stack(means)[nearest[rest]]
    mean[far] = np.stack([chunks[nearest[i]]["quiet"] for i in rest[far]]) if far.any() else mean[far]
    noise = rng.normal(0, 0.25, (len(rest), 1)) + rng.normal(0, 0.45, (len(rest), power.shape[1]))
    power[rest] = np.round(mean * np.exp(noise - 0.5 * (0.25**2 + 0.45**2)), 2)
    if rng.random() < SPEC_NAN_RUN_CHANCE:
        at = rng.integers(0, n_rows)
        power[at:at + int(rng.integers(1, 25))] = np.nan
    return power


def _write_parquet(columns: dict, path: Path, floats_only: bool) -> None:
    # EEG floats barely compress: byte-stream-split + zstd saves ~25%. Dictionaries of 400 spectrogram
    # columns cost time and save nothing.
    options = {"compression": "zstd", "use_byte_stream_split": True} if floats_only else {}
    options["use_dictionary"] = False
    pq.write_table(pa.table(columns), path, **options)


def build_recording(job: dict, root: Path) -> None:
    """Generate and write one recording: its EEG chunks and their shared spectrogram (worker process)."""
    rng = np.random.default_rng(job["seed"])
    split, traits = job["split"], job["traits"]
    chain = draw_chain(rng)  # the electrodes stay on for the whole recording
    chunks = []
    for eeg in job["eegs"]:
        signal = eeg_record(eeg["state"], eeg["seconds"], traits, chain, rng, job["line_hz"])
        _write_parquet({c: signal[:, i] for i, c in enumerate(EEG_COLUMNS)},
                       root / f"{split}_eegs" / f"{eeg['id']}.parquet", floats_only=True)
        chunk = {"start": eeg["start"], "seconds": eeg["seconds"], "signal": signal}
        if CLASSES[eeg["state"]["label"]] == "seizure":  # the spectrum before and after the seizure
            quiet = np.zeros((12 * EEG_RATE, len(EEG_COLUMNS)))
            quiet[:, :19] = background(12 * EEG_RATE, traits, rng, sleepy=False, alpha_scale=0.5).T
            chunk |= {"quiet": kaggle_spectrogram(quiet, [3, 6, 9]).mean(axis=0), "extent": rng.uniform(20, 120)}
        chunks.append(chunk)
    power = recording_spectrogram(chunks, job["spec_rows"], rng)
    times = (1 + SPEC_STEP_SECONDS * np.arange(job["spec_rows"])).astype(np.int16)  # int16 like Kaggle's
    _write_parquet({"time": times} | {c: power[:, i] for i, c in enumerate(SPEC_POWER_COLUMNS)},
                   root / f"{split}_spectrograms" / f"{job['spec_id']}.parquet", floats_only=False)


def _write_tables(plan: dict, root: Path, generator: dict) -> dict:
    train = pd.DataFrame(plan["train"], columns=list(TRAIN_COLUMNS))
    train.to_csv(root / "train.csv", index=False)
    test = pd.DataFrame(plan["test"], columns=list(TEST_COLUMNS))
    test.to_csv(root / "test.csv", index=False)
    uniform = pd.DataFrame({"eeg_id": test.eeg_id} | {c: 1 / 6 for c in VOTE_COLUMNS})
    uniform[list(SUBMISSION_COLUMNS)].to_csv(root / "sample_submission.csv", index=False)
    pd.DataFrame(plan["solution"], columns=list(SUBMISSION_COLUMNS)).to_csv(root / "solution.csv", index=False)
    oracle = pd.DataFrame(plan["oracle"], columns=["label_id", "eeg_id", *VOTE_COLUMNS])
    oracle["label_id"] = oracle["label_id"].astype("Int64")  # empty for test rows
    oracle.to_csv(root / "oracle.csv", index=False)
    all_rows = label_stats(train, np.array(plan["truth"]), min_votes=1)
    stats = {
        "generator": generator,
        "train_patients": int(train.patient_id.nunique()), "test_patients": int(test.patient_id.nunique()),
        "train_eegs": int(train.eeg_id.nunique()), "test_eegs": len(test),
        "train_spectrograms": int(train.spectrogram_id.nunique()), "train_rows": len(train),
        "windows": all_rows["rows"], "windows_10plus": None,
        "highvote": label_stats(train, np.array(plan["truth"])),
    }
    stats["windows_10plus"] = stats["highvote"]["rows"]
    (root / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def _is_synthetic_set(folder: Path) -> bool:
    try:
        return "generator" in json.loads((folder / "stats.json").read_text())
    except (OSError, ValueError):
        return False


def _generator_key(patients, seed, line_hz) -> dict:
    """What identifies a built set (stats.json "generator"): ensure_synthetic rebuilds when it differs."""
    return {"version": GENERATOR_VERSION, "patients": patients, "seed": seed, "line_hz": line_hz}


def make_synthetic(out_dir, patients: int = DEFAULT_PATIENTS, seed: int = 0, workers: int = 2,
                   progress: bool = True, line_hz: int = 60) -> Path:
    """Write the complete data set folder (train + test parts, oracle.csv, solution.csv, stats.json),
    with mains line noise at `line_hz` (60 as in the HMS recordings, or 50).

    Built in a temp folder beside out_dir and renamed at the end, so an interrupted build never
    leaves a half-written set; an existing synthetic set there is replaced, any other folder is not."""
    if not isinstance(patients, (int, np.integer)) or patients < 1:
        raise ValueError(f"patients must be a positive integer, got {patients!r}")
    if not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    if line_hz not in LINE_FREQUENCIES:
        raise ValueError(f"line_hz must be one of {LINE_FREQUENCIES}, got {line_hz!r}")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not _is_synthetic_set(out_dir):
        raise FileExistsError(f"{out_dir}: exists and is not a synthetic data set; choose another --out")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    plan = plan_dataset(int(patients), int(seed), int(line_hz))
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.building-"))
    try:
        for sub in ("train_eegs", "train_spectrograms", "test_eegs", "test_spectrograms"):
            (tmp / sub).mkdir()
        jobs = plan["jobs"]
        bar = tqdm(total=len(jobs), desc="synthetic recordings", disable=not progress)
        if workers > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for _ in pool.map(build_recording, jobs, [tmp] * len(jobs), chunksize=8):
                    bar.update()
        else:
            for job in jobs:
                build_recording(job, tmp)
                bar.update()
        bar.close()
        _write_tables(plan, tmp, _generator_key(int(patients), int(seed), int(line_hz)))
        old = None
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{tmp.name.rsplit('-', 1)[-1]}")
            out_dir.rename(old)
        tmp.rename(out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def ensure_synthetic(out_dir, patients: int = DEFAULT_PATIENTS, seed: int = 0, workers: int = 2,
                     line_hz: int = 60) -> Path:
    """The trainer's generate-on-first-use: a no-op when a complete set of this generator version,
    size, seed and line frequency is there; otherwise (re)builds it."""
    out_dir = Path(out_dir)
    wanted = _generator_key(patients, seed, line_hz)
    try:
        found = json.loads((out_dir / "stats.json").read_text()).get("generator")
    except (OSError, ValueError):
        found = None
    if found != wanted:
        why = "first use" if found is None else f"found {found}, want {wanted}"
        print(f"building the embedded synthetic data set in {out_dir} ({why})", flush=True)
        make_synthetic(out_dir, patients=patients, seed=seed, workers=workers, line_hz=line_hz)
    return out_dir
