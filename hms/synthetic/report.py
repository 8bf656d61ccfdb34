"""Realism report of a data set folder: a PNG per class (10 s of bipolar montage + the 10 min
spectrogram of a clear 10+ vote window) and the label statistics beside the real 10+ vote rows."""
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from hms.data.kaggle import eeg_path, read_eeg, read_spectrogram, read_train_csv, spectrogram_path
from hms.layout import (BANANA_PAIRS, CLASSES, CONSENSUS_NAMES, EEG_COLUMNS, EEG_RATE, HIGH_VOTE_MIN,
                        MIDLINE_PAIRS, SPEC_FREQS, SPEC_REGIONS, SPEC_WINDOW_SECONDS, VOTE_COLUMNS)
from hms.synthetic.labels import label_stats

# The 18 traces clinicians read: the double banana chains, then the midline.
BIPOLAR_PAIRS = list(BANANA_PAIRS + MIDLINE_PAIRS)
# Printed when the real rows are not at hand (HMS_FACTS section 1, measured on train_highvote_rows.csv).
REAL_FIGURES = {"rows": 5939, "consensus_mix": dict(zip(CONSENSUS_NAMES, (0.043, 0.195, 0.126, 0.051, 0.071, 0.514))),
                "mean_target": dict(zip(CLASSES, (0.05, 0.183, 0.123, 0.076, 0.089, 0.478))),
                "target_entropy": 0.639, "unanimous": 0.144, "votes_median": 15.0, "votes_p10_p90": [12.0, 18.0],
                "prior_kl": 0.8448}


def bipolar(eeg: np.ndarray) -> np.ndarray:
    """[n, 20] electrodes -> [18, n] bipolar traces (BIPOLAR_PAIRS order)."""
    return np.stack([eeg[:, EEG_COLUMNS.index(a)] - eeg[:, EEG_COLUMNS.index(b)] for a, b in BIPOLAR_PAIRS])


def plot_window(eeg_10s: np.ndarray, spec: np.ndarray, title: str, path: Path) -> None:
    """One PNG: 10 s of bipolar montage (left) and the 4 regions of the spectrogram window (right)."""
    fig = Figure(figsize=(15, 8))
    grid = fig.add_gridspec(4, 2, width_ratios=(1.6, 1))
    ax = fig.add_subplot(grid[:, 0])
    t = np.arange(eeg_10s.shape[0]) / EEG_RATE
    for i, trace in enumerate(bipolar(np.nan_to_num(eeg_10s))):
        ax.plot(t, np.clip(trace, -300, 300) / 150 - 2 * i, lw=0.6, color="k")
    ax.set_yticks(-2 * np.arange(len(BIPOLAR_PAIRS)), [f"{a}-{b}" for a, b in BIPOLAR_PAIRS], fontsize=8)
    ax.set_xlabel("seconds (central 10 s of the window; 150 uV per trace spacing unit)")
    ax.set_xlim(0, t[-1])
    for r, region in enumerate(SPEC_REGIONS):
        sax = fig.add_subplot(grid[r, 1])
        panel = np.log(np.clip(np.nan_to_num(spec[:, r * 100:(r + 1) * 100]), np.exp(-4), np.exp(8)))
        sax.imshow(panel.T, origin="lower", aspect="auto", cmap="magma", vmin=-4, vmax=8,
                   extent=(0, SPEC_WINDOW_SECONDS, SPEC_FREQS[0], SPEC_FREQS[-1]))
        sax.set_ylabel(f"{region} Hz", fontsize=8)
        sax.tick_params(labelsize=7)
    sax.set_xlabel("seconds of the 10 min spectrogram window (log power)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def _clear_windows(rows: pd.DataFrame, oracle: pd.DataFrame | None, k: int) -> pd.DataFrame:
    """10+ vote rows, the clearest examples of class k first (highest true, else voted, share)."""
    high = rows[rows[list(VOTE_COLUMNS)].sum(axis=1) >= HIGH_VOTE_MIN]
    if oracle is not None:
        share = high[["label_id"]].merge(oracle, on="label_id", how="left")[VOTE_COLUMNS[k]].to_numpy()
    else:
        share = high[VOTE_COLUMNS[k]].to_numpy() / high[list(VOTE_COLUMNS)].sum(axis=1).to_numpy()
    return high.iloc[np.argsort(-share, kind="stable")]


def stats_table(ours: dict, real: dict) -> str:
    """Markdown table of two label_stats dicts side by side."""
    lines = ["| figure (10+ vote rows, de-duplicated) | this set | real |", "|---|---|---|"]

    def add(name, a, b):
        fmt = lambda v: "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))
        lines.append(f"| {name} | {fmt(a)} | {fmt(b)} |")
    add("rows", ours["rows"], real["rows"])
    for k in CONSENSUS_NAMES:
        add(f"consensus {k}", ours["consensus_mix"][k], real["consensus_mix"][k])
    for k in CLASSES:
        add(f"mean target {k}", ours["mean_target"][k], real["mean_target"][k])
    for k in ("target_entropy", "unanimous", "votes_median", "prior_kl", "bayes_kl"):
        add(k.replace("_", " "), ours.get(k), real.get(k))
    add("votes p10 / p90", "{:g} / {:g}".format(*ours["votes_p10_p90"]), "{:g} / {:g}".format(*real["votes_p10_p90"]))
    return "\n".join(lines) + "\n"


def realism_report(root, out_dir, real_rows_csv=None) -> str:
    """Write <out_dir>/<class>.png for each class and <out_dir>/label_stats.md; return the table."""
    root, out_dir = Path(root), Path(out_dir)
    rows = read_train_csv(root / "train.csv")
    oracle = pd.read_csv(root / "oracle.csv").dropna(subset=["label_id"]) if (root / "oracle.csv").exists() else None
    if oracle is not None:
        oracle["label_id"] = oracle["label_id"].astype(np.int64)
    out_dir.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(CLASSES):
        for _, row in _clear_windows(rows, oracle, k).head(20).iterrows():  # the first without NaN
            eeg = read_eeg(eeg_path(root, "train", row.eeg_id))
            start = int((row.eeg_label_offset_seconds + 20) * EEG_RATE)  # the labelled central 10 s
            central = eeg[start:start + 10 * EEG_RATE]
            if not np.isnan(central).any():
                break
        else:
            continue
        time, power = read_spectrogram(spectrogram_path(root, "train", row.spectrogram_id))
        offset = row.spectrogram_label_offset_seconds
        spec = power[(time > offset) & (time < offset + SPEC_WINDOW_SECONDS)]
        votes = ", ".join(f"{c} {int(row[v])}" for c, v in zip(CLASSES, VOTE_COLUMNS) if row[v])
        title = f"{name}: eeg {row.eeg_id} offset {row.eeg_label_offset_seconds:g} s, votes {votes}"
        plot_window(central, spec, title, out_dir / f"{name}.png")
    truth = None
    if oracle is not None:
        truth = rows[["label_id"]].merge(oracle, on="label_id", how="left")[list(VOTE_COLUMNS)].to_numpy()
    ours = label_stats(rows, truth)
    real = label_stats(read_train_csv(real_rows_csv)) if real_rows_csv else REAL_FIGURES
    table = stats_table(ours, real)
    (out_dir / "label_stats.md").write_text(table)
    return table
