"""Realism report of a data set folder: the label statistics of its 10+ vote rows beside the real ones,
its signal statistics (signal_stats.py) beside real EEG files, and a PNG per class: a clear 10+ vote
window (18 derivations, one chain beside the same chain of a real window, the raw spectra of both, the
10 min Kaggle spectrogram)."""
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import signal as scipy_signal

from hms.data.kaggle import eeg_path, read_eeg, read_spectrogram, read_train_csv, spectrogram_path
from hms.layout import (CLASSES, CONSENSUS_NAMES, EEG_RATE, EEG_WINDOW, HIGH_VOTE_MIN, SPEC_FREQS, SPEC_REGIONS,
                        SPEC_WINDOW_SECONDS, VOTE_COLUMNS)
from hms.synthetic.labels import label_stats
from hms.synthetic.signal_stats import (BIPOLAR_PAIRS, RECORDED, STATISTICS, WELCH_SAMPLES, band_pass, bipolar,
                                        chain_of_interest, export_filtered, folder_windows, medians, real_ranges,
                                        source_windows, window_statistics)

# Printed when the real rows are not at hand (HMS_FACTS section 1, measured on train_highvote_rows.csv).
REAL_FIGURES = {"rows": 5939, "consensus_mix": dict(zip(CONSENSUS_NAMES, (0.043, 0.195, 0.126, 0.051, 0.071, 0.514))),
                "mean_target": dict(zip(CLASSES, (0.05, 0.183, 0.123, 0.076, 0.089, 0.478))),
                "target_entropy": 0.639, "unanimous": 0.144, "votes_median": 15.0, "votes_p10_p90": [12.0, 18.0],
                "prior_kl": 0.8448}
TRACE_SPACING_UV = 100


def _plot_traces(ax, traces: np.ndarray, labels: list[str]) -> None:
    """Stacked traces [k, n] at 200 Hz, TRACE_SPACING_UV apart, clipped at 3 spacings."""
    t = np.arange(traces.shape[1]) / EEG_RATE
    for i, trace in enumerate(traces):
        ax.plot(t, np.clip(trace, -3 * TRACE_SPACING_UV, 3 * TRACE_SPACING_UV) / TRACE_SPACING_UV - 2 * i,
                lw=0.6, color="k")
    ax.set_yticks(-2 * np.arange(len(labels)), labels, fontsize=7)
    ax.set_xlim(0, t[-1])


def _raw_spectrum(window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies and the raw (unfiltered) power spectrum of a window's 18 derivations, averaged."""
    traces = bipolar(window)
    freqs, psd = scipy_signal.welch(traces - traces.mean(axis=1, keepdims=True), fs=EEG_RATE, nperseg=WELCH_SAMPLES)
    return freqs, psd.mean(axis=0)


def plot_window(window: np.ndarray, spec: np.ndarray, title: str, path: Path, real: dict) -> None:
    """One PNG of a 50 s window [10000, 20]: its central 10 s as 18 derivations (0.5-40 Hz), the chain
    where it is strongest beside the same chain of the first real window ({name: window}), the raw
    spectra of this window and the real ones, and the 4 regions of its 10 min spectrogram."""
    fig = Figure(figsize=(18, 9))
    grid = fig.add_gridspec(4, 3, width_ratios=(1.3, 1.2, 1))
    central = slice(20 * EEG_RATE, 30 * EEG_RATE)
    names = [f"{a}-{b}" for a, b in BIPOLAR_PAIRS]
    filtered = band_pass(bipolar(window))
    ax = fig.add_subplot(grid[:, 0])
    _plot_traces(ax, filtered[:, central], names)
    ax.set_xlabel(f"seconds of the central 10 s, 0.5-40 Hz ({TRACE_SPACING_UV} uV per trace spacing)")
    chain = SPEC_REGIONS.index(chain_of_interest(window))
    rows = slice(4 * chain, 4 * chain + 4)
    traces, labels = [filtered[rows, central]], [f"this set {n}" for n in names[rows]]
    if real:
        name, real_window = next(iter(real.items()))
        traces.append(band_pass(bipolar(real_window))[rows, central])
        labels += [f"{name[:14]} {n}" for n in names[rows]]
    cax = fig.add_subplot(grid[:2, 1])
    _plot_traces(cax, np.concatenate(traces), labels)
    cax.set_title(f"chain {SPEC_REGIONS[chain]}: this set (top) and a real window (bottom)", fontsize=9)
    pax = fig.add_subplot(grid[2:, 1])
    for name, w, style in [("this set", window, "k")] + [(n, w, None) for n, w in real.items()]:
        freqs, psd = _raw_spectrum(w)
        pax.semilogy(freqs, psd, lw=1.2 if style else 0.8, color=style, label=name[:24])
    pax.set_xlabel("Hz (raw derivations, Welch, mean of 18)")
    pax.set_ylabel("uV^2 / Hz")
    pax.legend(fontsize=7)
    for r, region in enumerate(SPEC_REGIONS):
        sax = fig.add_subplot(grid[r, 2])
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


def _fmt(v: float) -> str:
    """Three significant figures or so, without exponents."""
    if np.isnan(v):
        return "n/a"
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}" if abs(v) >= 0.1 else f"{v:.3f}"


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


def signal_table(ours: dict, n_windows: int, by_class: dict, real: dict) -> str:
    """Markdown table: each statistic on each real file ({name: medians}), their range, this set's median
    (and whether it lies in the range), and its median per consensus class. A real file filtered on
    export shows its recording-chain figures in brackets, outside the range."""
    ranges = real_ranges(real) if real else {}
    ours_head = [f"this set ({n_windows} windows)"]
    head = ["statistic", *real, *(["real range", *ours_head, "inside"] if real else ours_head), *by_class]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in STATISTICS:
        cells = [s.label + (" *" if s.checked else "")]
        for figures in real.values():
            value = _fmt(figures[s.name])
            cells.append(f"({value})" if s.name in RECORDED and export_filtered(figures) else value)
        if real:
            low, high = ranges[s.name]
            cells += [f"{_fmt(low)} to {_fmt(high)}", _fmt(ours[s.name]), "yes" if low <= ours[s.name] <= high else "no"]
        else:
            cells.append(_fmt(ours[s.name]))
        cells += [_fmt(by_class[c][s.name]) for c in by_class]
        lines.append("| " + " | ".join(cells) + " |")
    notes = "\n* in issue 19's table: the test asserts the embedded set's median lies in the real range.\n"
    if any(export_filtered(f) for f in real.values()):
        notes += "(bracketed): a file high-pass filtered on export; its DC, drift and mains figures are left out.\n"
    return "\n".join(lines) + "\n" + notes


def realism_report(root, out_dir, real_rows_csv=None, real_eegs=(), windows: int = 2000) -> str:
    """Write <out_dir>/<class>.png for each class, label_stats.md and signal_stats.md; return both tables.
    `real_eegs`: real sources (EEG parquet files, EDF/BDF recordings, Kaggle-layout folders) for the signal
    statistics, each measured over up to `windows` windows, as is this set."""
    root, out_dir = Path(root), Path(out_dir)
    rows = read_train_csv(root / "train.csv")
    oracle = pd.read_csv(root / "oracle.csv").dropna(subset=["label_id"]) if (root / "oracle.csv").exists() else None
    if oracle is not None:
        oracle["label_id"] = oracle["label_id"].astype(np.int64)
    real_windows = {Path(p).name: source_windows(p, windows) for p in real_eegs}  # bad input fails before writing
    out_dir.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(CLASSES):
        for _, row in _clear_windows(rows, oracle, k).head(20).iterrows():  # the first without NaN
            start = int(row.eeg_label_offset_seconds * EEG_RATE)
            window = read_eeg(eeg_path(root, "train", row.eeg_id))[start:start + EEG_WINDOW]
            if np.isfinite(window).all():
                break
        else:
            continue
        time, power = read_spectrogram(spectrogram_path(root, "train", row.spectrogram_id))
        offset = row.spectrogram_label_offset_seconds
        spec = power[(time > offset) & (time < offset + SPEC_WINDOW_SECONDS)]
        votes = ", ".join(f"{c} {int(row[v])}" for c, v in zip(CLASSES, VOTE_COLUMNS) if row[v])
        title = f"{name}: eeg {row.eeg_id} offset {row.eeg_label_offset_seconds:g} s, votes {votes}"
        plot_window(window, spec, title, out_dir / f"{name}.png", {n: w[0] for n, w in real_windows.items()})
    truth = None
    if oracle is not None:
        truth = rows[["label_id"]].merge(oracle, on="label_id", how="left")[list(VOTE_COLUMNS)].to_numpy()
    ours = label_stats(rows, truth)
    real = label_stats(read_train_csv(real_rows_csv)) if real_rows_csv else REAL_FIGURES
    labels = stats_table(ours, real)
    (out_dir / "label_stats.md").write_text(labels)
    measured = [(c, window_statistics(w)) for c, w in folder_windows(root, windows)]
    classes = [c for c in CONSENSUS_NAMES if c in {k for k, _ in measured}]
    by_class = {c: medians([s for k, s in measured if k == c]) for c in classes}
    real_figures = {n: medians([window_statistics(w) for w in ws]) for n, ws in real_windows.items()}
    signals = signal_table(medians([s for _, s in measured]), len(measured), by_class, real_figures)
    (out_dir / "signal_stats.md").write_text(signals)
    return labels + "\n" + signals
