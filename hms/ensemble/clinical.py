"""Clinical recordings -> per-window probabilities of the six patterns, with this codebase's checkpoints.

A recording (hms/data/edf.py: channels mapped, microvolts, 200 Hz) is cut into 50 s windows every
`step` seconds. Each checkpoint reads the inputs its training config names: `eeg` (the window, [20,
10000]) and `spec` (the Kaggle spectrogram computed from the EEG by the Kaggle recipe: 300 rows 2 s
apart centred on the window's centre, frames reaching outside the recording zero-padded as the recipe
does, the fraction of such rows reported as `spec_padded`). Other inputs (`eeg_mel`) are refused.
Checkpoints of one name are averaged, names are combined by blend.json or averaged, as
hms/ensemble/predict.py does for a test folder; flip TTA as there. One model is in memory at a time,
and the EEG is read 32 windows at a time, so memory grows with the recording's length only by its
spectrogram rows (3 MB per hour).

Outputs in the output folder, per recording: <stem>.csv (one row per window: start_s, end_s, the six
*_prob columns in layout.CLASSES order, most_likely, and the flags), <stem>.png (the timeline), and one
report.json for the run. Flags: missing_channels (columns zero-filled, EKG included), flat_channels
(standard deviation under 0.1 uV in the window), spec_padded (empty when no checkpoint reads spec),
no_signal (every electrode flat or missing: the probabilities are left empty, not guessed), clean (none
of these, EKG aside).
"""
import json
from collections import defaultdict
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from hms.data.edf import (EdfError, Recording, flat_channels, open_recording, read_channel_map,
                          spec_centres, spec_padded, window_starts)
from hms.data.kaggle import first_line
from hms.ensemble.blend import read_blend
from hms.ensemble.predict import CheckpointError, combine_models, load_model, predict_dataset
from hms.layout import CLASSES, CONSENSUS_NAMES, EEG_RATE, EEG_WINDOW, ELECTRODES, SPEC_FFT, SPEC_POWER_COLUMNS
from hms.signal.kaggle_spectrogram import kaggle_spectrogram

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PROB_COLUMNS = tuple(f"{c}_prob" for c in CLASSES)
COMPUTED_INPUTS = ("eeg", "spec")
CHUNK_WINDOWS = 32
COLOURS = ("#d62728", "#ff7f0e", "#bcbd22", "#2ca02c", "#1f77b4", "#c7c7c7")  # layout.CLASSES order


def spectrogram_rows(recording: Recording, centres, block: int = 256) -> np.ndarray:
    """Kaggle-spectrogram rows [len(centres), 400] centred on these sorted samples (200 Hz), reading the
    recording `block` rows at a time. A frame reaching outside the recording is zero-padded, as the
    recipe does; a row wholly outside is zeros."""
    rows = np.zeros((len(centres), len(SPEC_POWER_COLUMNS)), np.float32)
    half = SPEC_FFT // 2
    touching = np.flatnonzero((centres + half > 0) & (centres - half < recording.n_samples))
    for i in range(0, len(touching), block):
        take = touching[i:i + block]
        first = int(centres[take[0]]) - half
        span = recording.read(first, int(centres[take[-1]]) + half)
        rows[take] = kaggle_spectrogram(span.T, (centres[take] - first) / EEG_RATE)
    return rows


class RecordingWindows(Dataset):
    """The named inputs of every window of one recording. EEG windows are read CHUNK_WINDOWS at a time (a
    DataLoader reads in order, so each chunk is read once per pass); the spectrogram rows of all windows
    are computed once, on first use, and shared by overlapping windows and by every pass (1,800 rows, 3 MB,
    per hour at a step of 10 s)."""

    def __init__(self, recording: Recording, starts, names, chunk: int = CHUNK_WINDOWS):
        self.recording, self.starts, self.names, self.chunk = recording, np.asarray(starts), tuple(names), chunk
        self.centres = np.unique(spec_centres(self.starts))  # every window's rows, sorted
        self._rows = None
        self._cached = (None, {})

    def __len__(self) -> int:
        return len(self.starts)

    def spectrograms(self, starts) -> np.ndarray:
        """The Kaggle spectrogram windows [len(starts), 300, 400] of the windows starting at `starts`."""
        if self._rows is None:
            self._rows = spectrogram_rows(self.recording, self.centres)
        return self._rows[np.searchsorted(self.centres, spec_centres(starts))]

    def __getitem__(self, index: int) -> dict:
        k = index // self.chunk
        if self._cached[0] != k:
            starts = self.starts[k * self.chunk:(k + 1) * self.chunk]
            compute = {"eeg": self.recording.windows, "spec": self.spectrograms}
            self._cached = (k, {name: compute[name](starts) for name in self.names})
        return {name: torch.from_numpy(x[index % self.chunk]) for name, x in self._cached[1].items()}


def read_checkpoints(paths) -> list[dict]:
    """Per checkpoint: its path, name, inputs and TTA flips, read without building the model, so that a
    checkpoint the recordings cannot feed is refused before anything runs."""
    checkpoints, model_configs = [], {}
    for path in map(Path, paths):
        if not path.is_file():
            raise CheckpointError(f"{path}: checkpoint not found")
        try:
            config = torch.load(path, map_location="cpu", weights_only=True, mmap=True)["config"]
            name, inputs, aug = str(config["name"]), tuple(config["data"]["inputs"]), config["aug"]
        except KeyError as error:
            raise CheckpointError(f"{path}: no {error} entry (not a checkpoint of this codebase)") from None
        except Exception as error:  # unpickling errors of every kind mean a bad file
            raise CheckpointError(f"{path}: cannot read the checkpoint ({first_line(error)})") from None
        unknown = [n for n in inputs if n not in COMPUTED_INPUTS]
        if unknown:
            raise CheckpointError(f"{path}: reads input {unknown[0]!r}, which predict_edf cannot compute from a "
                                  f"recording (it computes {', '.join(COMPUTED_INPUTS)})")
        first = model_configs.setdefault(name, (path, config["model"]))
        if first[1] != config["model"]:
            raise CheckpointError(f"{path}: its model config differs from {first[0]}'s, yet both are named '{name}'")
        checkpoints.append({"path": path, "name": name, "inputs": inputs, "flip_inputs": aug.get("flip_inputs"),
                            "tta_flips": tuple(aug.get("tta_flips", ("lr", "fb")))})
    if not checkpoints:
        raise CheckpointError("no checkpoints given")
    return checkpoints


def window_flags(recording: Recording, starts, reads_spec: bool, progress=True) -> pd.DataFrame:
    """The flags of every window (see the module docstring), from one pass over the recording's EEG."""
    flat = []
    chunks = range(0, len(starts), CHUNK_WINDOWS)
    for i in tqdm(chunks, desc=f"{recording.path.name} check", disable=not progress):
        flat += flat_channels(recording, recording.windows(starts[i:i + CHUNK_WINDOWS]))
    missing = recording.missing
    dead = np.array([set(f) | set(missing) >= set(ELECTRODES) for f in flat])
    flags = pd.DataFrame({
        "missing_channels": " ".join(missing),
        "flat_channels": [" ".join(f) for f in flat],
        "spec_padded": np.round(spec_padded(starts, recording.n_samples), 4) if reads_spec else np.nan,
        "no_signal": dead,
    })
    flags["clean"] = np.array([not (set(f) | set(missing)) - {"EKG"} for f in flat]) & ~(flags.spec_padded > 0)
    if flags.no_signal.all():
        raise EdfError(f"{recording.path}: no window holds EEG: every electrode is flat (std < 0.1 uV) or missing")
    return flags


def predict_recordings(recordings: list, checkpoints: list, blend: dict | None = None, step: float = 10.0,
                       tta: bool = True, batch_size: int = 8, device=None, progress=True) -> dict:
    """{recording path: window table (start_s, end_s, *_prob, most_likely, flags)} for opened
    recordings, or {path: EdfError} for those that fail on reading. Each checkpoint is loaded once."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    names = tuple(dict.fromkeys(n for c in checkpoints for n in c["inputs"]))
    reads_spec = "spec" in names
    tables, datasets = {}, {}
    for recording in recordings:
        starts = window_starts(recording.n_samples, step)
        try:
            tables[recording.path] = window_flags(recording, starts, reads_spec, progress)
        except EdfError as error:
            tables[recording.path] = error
            continue
        datasets[recording.path] = RecordingWindows(recording, starts, names)
    per_name = defaultdict(lambda: defaultdict(list))  # recording -> name -> [probabilities]
    for checkpoint in checkpoints if datasets else ():
        _, _, model = load_model(checkpoint["path"], device)
        for path, dataset in list(datasets.items()):
            try:
                per_name[path][checkpoint["name"]].append(predict_dataset(
                    model, dataset, checkpoint["inputs"], batch_size, tta, device, progress,
                    desc=f"{path.name} {checkpoint['name']}", flip_inputs=checkpoint["flip_inputs"],
                    tta_flips=checkpoint["tta_flips"]))
            except EdfError as error:  # a bad sample outside every window, met by the spectrogram
                tables[path] = error
                del datasets[path]
        del model  # one model in memory at a time
    for path, dataset in datasets.items():
        probs = combine_models({n: np.mean(p, axis=0) for n, p in per_name[path].items()}, blend)
        tables[path] = window_table(dataset.starts, probs, tables[path])
    return tables


def window_table(starts, probs: np.ndarray, flags: pd.DataFrame) -> pd.DataFrame:
    """The csv's rows: window times, probabilities (rows renormalised; empty where no_signal), the most
    likely class, the flags."""
    probs = probs / probs.sum(axis=1, keepdims=True)
    probs[flags.no_signal.to_numpy()] = np.nan
    best = [CONSENSUS_NAMES[i] if ok else "" for i, ok in zip(np.nan_to_num(probs).argmax(axis=1), ~flags.no_signal)]
    times = pd.DataFrame({"start_s": starts / EEG_RATE, "end_s": (starts + EEG_WINDOW) / EEG_RATE})
    return pd.concat([times, pd.DataFrame(probs, columns=PROB_COLUMNS), pd.DataFrame({"most_likely": best}),
                      flags.reset_index(drop=True)], axis=1)


def plot_timeline(table: pd.DataFrame, path: Path, title: str, duration: float) -> None:
    """Stacked probabilities over time (each window a step as wide as the step between windows, at its
    centre), the most likely class as a strip above, windows that are not clean marked below."""
    minutes = duration > 600
    scale = 60 if minutes else 1
    centre = (table.start_s + table.end_s).to_numpy() / 2 / scale
    probs = np.nan_to_num(table[list(PROB_COLUMNS)].to_numpy())
    fig, (top, ax, low) = plt.subplots(3, 1, figsize=(11, 4.2), sharex=True, height_ratios=(1, 8, 1))
    width = np.diff(centre).min() if len(centre) > 1 else 50 / scale
    best = probs.argmax(axis=1)
    top.bar(centre, 1, width=width, color=[COLOURS[i] if ok else "white" for i, ok in zip(best, ~table.no_signal)])
    top.set_yticks([])
    reasons = {"missing electrodes": (table.missing_channels.str.replace("EKG", "").str.strip() != "").sum(),
               "flat electrodes": (table.flat_channels.str.replace("EKG", "").str.strip() != "").sum(),
               "spectrogram padded": (table.spec_padded > 0).sum(), "no signal": table.no_signal.sum()}
    flagged = ", ".join(f"{n} {reason}" for reason, n in reasons.items() if n)
    top.set_title(f"{title}: {len(table)} windows of 50 s" + (f"; flagged: {flagged}" if flagged else ""),
                  fontsize=10, loc="left")
    top.set_ylabel("most\nlikely", rotation=0, ha="right", va="center", fontsize=8)
    edges = np.column_stack([centre - width / 2, centre + width / 2]).ravel()  # each window a flat step
    ax.stackplot(edges, np.repeat(probs, 2, axis=0).T, colors=COLOURS, labels=CONSENSUS_NAMES)
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    ax.grid(alpha=0.3)
    low.bar(centre, (~table.clean).astype(float), width=width, color="0.3")
    low.set_yticks([])
    low.set_ylabel("flagged", rotation=0, ha="right", va="center", fontsize=8)
    low.set_xlim(0, duration / scale)
    low.set_xlabel("minutes" if minutes else "seconds (window centres)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def recording_report(recording: Recording, table: pd.DataFrame) -> dict:
    """report.json's entry of one recording: what was found, mapped, assumed, and flag counts."""
    return {
        "recording": str(recording.path), "format": recording.kind,
        "start": str(recording.raw.info["meas_date"]), "duration_s": recording.duration,
        "file_rate_hz": recording.file_rate, "rate_hz": EEG_RATE,
        "resampling": f"scipy.signal.resample_poly up={recording.up} down={recording.down}",
        "channels_found": recording.labels, "mapped": recording.mapping, "missing": recording.missing,
        "unused": [label for label in recording.labels if label not in recording.mapping.values()],
        "units": recording.units, "windows": len(table),
        "flagged": {"flat": int((table.flat_channels != "").sum()), "spec_padded": int((table.spec_padded > 0).sum()),
                    "no_signal": int(table.no_signal.sum()), "not_clean": int((~table.clean).sum())},
        "assumptions": recording.assumptions,
    }


def predict_edf(paths, checkpoints, out_dir, blend=None, step: float = 10.0, channel_map=None,
                allow_missing=False, units=None, tta=True, batch_size=8, device=None, progress=True) -> dict:
    """The whole command: recordings -> <stem>.csv and <stem>.png each, and report.json, in out_dir.
    Returns the report; a recording that fails carries {"recording", "error"} there instead (its one-line
    message). Checkpoint, blend and channel-map errors stop everything before any recording is read."""
    out_dir = Path(out_dir)
    checkpoints = read_checkpoints(checkpoints)
    blend_file, blend = blend, read_blend(blend) if blend else None
    if blend:  # its names against the checkpoints' names, before the long part
        combine_models({c["name"]: np.full((1, 6), 1 / 6) for c in checkpoints}, blend)
    channel_map = read_channel_map(channel_map) if channel_map else None
    stems = [Path(p).stem for p in paths]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        raise EdfError(f"{twice[0]}: two recordings share this name, and so would their outputs")
    opened, entries = [], {}
    for path in map(Path, paths):
        try:
            opened.append(open_recording(path, channel_map, allow_missing, units))
        except EdfError as error:
            entries[path] = {"recording": str(path), "error": str(error)}
    tables = predict_recordings(opened, checkpoints, blend, step, tta, batch_size, device, progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    for recording in opened:
        table = tables[recording.path]
        if isinstance(table, EdfError):
            entries[recording.path] = {"recording": str(recording.path), "error": str(table)}
            continue
        table.to_csv(out_dir / f"{recording.path.stem}.csv", index=False, float_format="%.6g")
        plot_timeline(table, out_dir / f"{recording.path.stem}.png", recording.path.name, recording.duration)
        entries[recording.path] = recording_report(recording, table)
    report = {"checkpoints": [str(c["path"]) for c in checkpoints], "models": sorted({c["name"] for c in checkpoints}),
              "inputs": list(dict.fromkeys(n for c in checkpoints for n in c["inputs"])),
              "blend": str(blend_file) if blend_file else None, "tta": tta, "step_s": step,
              "window_s": EEG_WINDOW / EEG_RATE, "recordings": [entries[Path(p)] for p in paths]}
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    return report
