"""Signal statistics of 50 s EEG windows, to measure a data set against real scalp EEG (issue 19): on the
raw referential columns (DC, drift, common reference), on the 18 bipolar derivations after a 0.5-40 Hz
band-pass (amplitude, spectrum, kurtosis, non-stationarity, correlations), and on the raw bipolar
spectrum (mains line). Windows come from a Kaggle-layout folder (one per train EEG: its first labelled
sub-window), or 50 s apart from a single EEG parquet file or an EDF/BDF recording (hms.data.edf).
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal as scipy_signal
from scipy.fft import next_fast_len
from scipy.ndimage import median_filter
from scipy.stats import kurtosis

from hms.data.edf import open_recording, window_starts
from hms.data.kaggle import DataError, eeg_path, read_eeg, read_train_csv
from hms.layout import BANANA_PAIRS, EEG_COLUMNS, EEG_RATE, EEG_WINDOW, MIDLINE_PAIRS, SPEC_REGIONS
from hms.signal.filters import butterworth_sections

# The 18 traces clinicians read: the double banana chains, then the midline.
BIPOLAR_PAIRS = list(BANANA_PAIRS + MIDLINE_PAIRS)
_PAIR_INDEX = [(EEG_COLUMNS.index(a), EEG_COLUMNS.index(b)) for a, b in BIPOLAR_PAIRS]
BAND_HZ = (0.5, 40.0)
_BAND_SOS = butterworth_sections(low=BAND_HZ[0], high=BAND_HZ[1])
WELCH_SAMPLES = 1024  # 5.12 s segments: 0.195 Hz bins, ~18 averaged per window
RMS_SECONDS = 2
MAINS_HZ = (50, 60)
POSTERIOR_PAIRS = [BIPOLAR_PAIRS.index(p) for p in (("T5", "O1"), ("P3", "O1"), ("T6", "O2"), ("P4", "O2"))]
# Consecutive derivations of a chain (they share an electrode), and the mirrored left/right pairs.
NEIGHBOURS = [(i, i + 1) for i in range(len(BIPOLAR_PAIRS) - 1) if i % 4 != 3]  # and Fz-Cz, Cz-Pz
MIRRORED = [(4 * SPEC_REGIONS.index(left) + k, 4 * SPEC_REGIONS.index(right) + k)
            for left, right in (("LL", "RL"), ("LP", "RP")) for k in range(4)]
# A window whose electrodes all sit this close to zero on average was high-pass filtered on export: its
# DC, drift and line figures say how the file was exported, not what a recording holds.
EXPORT_FILTERED_DC_UV = 1.0


@dataclass(frozen=True)
class Statistic:
    name: str
    label: str
    recorded: bool = False  # a property of the recording chain (DC, drift, mains): only raw files count
    checked: bool = False   # in issue 19's table: the embedded set's median must lie in the real range


STATISTICS = (
    Statistic("dc_offset_uv", "DC offset of referential electrodes, mean of abs(mean) (uV)", recorded=True, checked=True),
    Statistic("dc_shared_uv", "DC offset shared by the electrodes, mean of means (uV)", recorded=True),
    Statistic("dc_spread_uv", "spread of DC across electrodes, sd of means (uV)", recorded=True, checked=True),
    Statistic("drift_share", "raw referential variance outside 0.5-40 Hz (drift)", recorded=True, checked=True),
    Statistic("reference_r", "correlation of referential electrodes, median pair", checked=True),
    Statistic("reference_pc1", "first principal component of referential electrodes (share)", checked=True),
    Statistic("kurtosis", "excess kurtosis, median channel", checked=True),
    Statistic("rms_variation", "variation (sd / mean) of 2 s RMS over time, median channel", checked=True),
    Statistic("line_db", "mains line (50 or 60 Hz) over its 40-70 Hz neighbourhood (dB)", recorded=True,
              checked=True),
    Statistic("sharpest_line_db", "sharpest spectral line 1-20 Hz over a 2 Hz running median (dB)", checked=True),
    Statistic("amplitude_uv", "bipolar amplitude, rms of the median channel (uV)"),
    Statistic("slope", "log-log spectral slope 2-30 Hz"),
    Statistic("delta_share", "delta share (0.5-4 Hz of 0.5-40 Hz power)"),
    Statistic("theta_share", "theta share (4-8 Hz)"),
    Statistic("beta_share", "beta share (13-30 Hz)"),
    Statistic("alpha_hz", "alpha frequency, posterior peak 7-13 Hz (Hz)"),
    Statistic("neighbour_r", "correlation of neighbouring bipolar derivations, median pair"),
    Statistic("left_right_r", "correlation of mirrored left/right derivations, median pair"),
    Statistic("autocorr_ms", "autocorrelation decay, first lag below 1/e (ms)"),
    Statistic("ekg_uv", "EKG amplitude, 0.5-99.5 percentile range (uV)"),
)
CHECKED = tuple(s.name for s in STATISTICS if s.checked)
RECORDED = tuple(s.name for s in STATISTICS if s.recorded)


def bipolar(eeg: np.ndarray) -> np.ndarray:
    """[n, 20] electrodes -> [18, n] bipolar traces (BIPOLAR_PAIRS order)."""
    return np.stack([eeg[:, a] - eeg[:, b] for a, b in _PAIR_INDEX])


def band_pass(x: np.ndarray) -> np.ndarray:
    """0.5-40 Hz zero-phase Butterworth (order 4) along the last axis, after removing each row's mean."""
    return scipy_signal.sosfiltfilt(_BAND_SOS, x - x.mean(axis=-1, keepdims=True), axis=-1)


def _median_pair_correlation(x: np.ndarray, pairs) -> float:
    r = np.corrcoef(x)
    return float(np.nanmedian([r[i, j] for i, j in pairs]))


def _band_power(freqs, psd, low, high) -> float:
    return float(psd[(freqs >= low) & (freqs < high)].sum())


def window_statistics(eeg: np.ndarray) -> dict:
    """Every STATISTICS figure of one window: [10000, 20] microvolts in EEG_COLUMNS order, no NaN."""
    if eeg.shape != (EEG_WINDOW, len(EEG_COLUMNS)) or not np.isfinite(eeg).all():
        raise ValueError(f"a window is [{EEG_WINDOW}, {len(EEG_COLUMNS)}] finite microvolts, got {eeg.shape}")
    with np.errstate(invalid="ignore", divide="ignore"):  # a dead (constant) channel has no correlation
        return _statistics(eeg.astype(np.float64))


def _statistics(eeg: np.ndarray) -> dict:
    referential = eeg[:, :19].T
    means = referential.mean(axis=1)
    centred = referential - means[:, None]
    ref_band = band_pass(referential)
    bip_band = bipolar(ref_band.T)
    out = {"dc_offset_uv": np.abs(means).mean(), "dc_shared_uv": means.mean(), "dc_spread_uv": means.std(),
           "drift_share": 1 - (ref_band ** 2).sum() / max((centred ** 2).sum(), 1e-12)}
    # common reference: how much the band-passed referential electrodes move together
    out["reference_r"] = _median_pair_correlation(ref_band, zip(*np.triu_indices(19, 1)))
    eigen = np.linalg.eigvalsh(np.cov(ref_band))
    out["reference_pc1"] = eigen[-1] / max(eigen.sum(), 1e-12)
    # heavy tails and non-stationarity of the band-passed derivations
    out["kurtosis"] = np.nanmedian(kurtosis(bip_band, axis=1))
    rms = np.sqrt((bip_band.reshape(18, -1, RMS_SECONDS * EEG_RATE) ** 2).mean(axis=2))
    out["rms_variation"] = np.nanmedian(rms.std(axis=1) / rms.mean(axis=1))
    out["amplitude_uv"] = np.median(bip_band.std(axis=1))
    # mains: the raw bipolar spectrum, where the line is not filtered away
    freqs, raw_psd = scipy_signal.welch(bipolar(eeg - eeg.mean(axis=0)), fs=EEG_RATE, nperseg=WELCH_SAMPLES, axis=1)
    raw_psd = raw_psd.mean(axis=0)
    neighbourhood = (freqs >= 40) & (freqs <= 70) & (np.min([np.abs(freqs - m) for m in MAINS_HZ], axis=0) > 2)
    floor = max(np.median(raw_psd[neighbourhood]), 1e-12)
    out["line_db"] = max(10 * np.log10(raw_psd[np.abs(freqs - m) <= 0.3].max() / floor) for m in MAINS_HZ)
    # the band-passed spectrum: shape, bands, alpha, and how line-like its sharpest peak is
    freqs, psd_by_pair = scipy_signal.welch(bip_band, fs=EEG_RATE, nperseg=WELCH_SAMPLES, axis=1)
    psd = psd_by_pair.mean(axis=0)
    fit = (freqs >= 2) & (freqs <= 30)
    out["slope"] = np.polyfit(np.log10(freqs[fit]), np.log10(np.maximum(psd[fit], 1e-12)), 1)[0]
    total = max(_band_power(freqs, psd, *BAND_HZ), 1e-12)
    for name, (low, high) in {"delta": (0.5, 4), "theta": (4, 8), "beta": (13, 30)}.items():
        out[f"{name}_share"] = _band_power(freqs, psd, low, high) / total
    alpha = (freqs >= 7) & (freqs <= 13)
    out["alpha_hz"] = freqs[alpha][psd_by_pair[POSTERIOR_PAIRS].mean(axis=0)[alpha].argmax()]
    bins = int(round(2 / freqs[1])) | 1  # an odd number of bins spanning 2 Hz
    running = np.maximum(median_filter(psd, size=bins, mode="nearest"), 1e-12)
    lines = (freqs >= 1) & (freqs <= 20)
    out["sharpest_line_db"] = 10 * np.log10((psd[lines] / running[lines]).max())
    # correlations between derivations, and how fast a trace forgets itself
    out["neighbour_r"] = _median_pair_correlation(bip_band, NEIGHBOURS)
    out["left_right_r"] = _median_pair_correlation(bip_band, MIRRORED)
    padded = next_fast_len(EEG_WINDOW + EEG_RATE, real=True)  # zero padding: exact lags up to 1 s
    spectrum = np.fft.rfft(bip_band, n=padded, axis=1)
    autocorr = np.fft.irfft(np.abs(spectrum) ** 2, n=padded, axis=1)[:, :EEG_RATE].sum(axis=0)
    below = np.flatnonzero(autocorr < autocorr[0] / np.e)
    out["autocorr_ms"] = 1000 * (below[0] if len(below) else EEG_RATE) / EEG_RATE
    ekg = eeg[:, EEG_COLUMNS.index("EKG")]
    out["ekg_uv"] = np.percentile(ekg, 99.5) - np.percentile(ekg, 0.5)
    return {s.name: float(out[s.name]) for s in STATISTICS}


# ------------------------------------------------------------------------------------------- sources
def folder_windows(root, limit: int) -> list[tuple[str, np.ndarray]]:
    """(expert_consensus, [10000, 20]) of up to `limit` train EEGs of a Kaggle-layout folder, evenly
    spread over train.csv: each EEG's first labelled sub-window, skipped if it holds NaN."""
    rows = read_train_csv(Path(root) / "train.csv").drop_duplicates("eeg_id")
    picked = rows.iloc[np.unique(np.linspace(0, len(rows) - 1, min(limit, len(rows))).round().astype(int))]
    windows = []
    for row in picked.itertuples():
        start = int(row.eeg_label_offset_seconds * EEG_RATE)
        window = read_eeg(eeg_path(root, "train", row.eeg_id))[start:start + EEG_WINDOW]
        if len(window) == EEG_WINDOW and np.isfinite(window).all():
            windows.append((row.expert_consensus, window))
    if not windows:
        raise DataError(f"{root}: no train EEG window without NaN")
    return windows


def file_windows(path, limit: int) -> list[np.ndarray]:
    """Up to `limit` 50 s windows, 50 s apart from the start, of an EEG parquet file (Kaggle columns)
    or an EDF/BDF recording (any channel names hms.data.edf maps); windows holding NaN are skipped."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        eeg = read_eeg(path)
        windows = [eeg[s:s + EEG_WINDOW] for s in window_starts(len(eeg), EEG_WINDOW / EEG_RATE)[:limit]]
    elif path.suffix.lower() in (".edf", ".bdf"):
        recording = open_recording(path)
        starts = window_starts(recording.n_samples, EEG_WINDOW / EEG_RATE)[:limit]
        windows = list(recording.windows(starts).transpose(0, 2, 1))
    else:
        raise DataError(f"{path}: not an EEG parquet file or an EDF/BDF recording")
    windows = [w for w in windows if np.isfinite(w).all()]
    if not windows:
        raise DataError(f"{path}: no 50 s window without NaN")
    return windows


def source_windows(path, limit: int) -> list[np.ndarray]:
    """The windows of any source: a Kaggle-layout folder, an EEG parquet file or an EDF/BDF recording."""
    path = Path(path)
    if path.is_dir():
        return [window for _, window in folder_windows(path, limit)]
    return file_windows(path, limit)


def medians(statistics: list[dict]) -> dict:
    """{name: median over windows} of window_statistics results."""
    return {s.name: float(np.median([w[s.name] for w in statistics])) for s in STATISTICS}


def export_filtered(figures: dict) -> bool:
    """Whether a real file's figures show it was high-pass filtered on export (see EXPORT_FILTERED_DC_UV)."""
    return figures["dc_offset_uv"] < EXPORT_FILTERED_DC_UV


def real_ranges(real: dict) -> dict:
    """{statistic: (low, high)} over real files' medians ({file name: medians}); recording-chain figures
    only over files that were not filtered on export."""
    ranges = {}
    for s in STATISTICS:
        values = [f[s.name] for f in real.values() if not (s.recorded and export_filtered(f))]
        ranges[s.name] = (min(values), max(values)) if values else (np.nan, np.nan)
    return ranges


def chain_of_interest(window: np.ndarray) -> str:
    """The chain (LL, RL, LP, RP) with most 0.5-40 Hz power: where a lateralised pattern shows."""
    traces = band_pass(bipolar(window))[:16].reshape(4, 4, -1)
    return SPEC_REGIONS[int((traces ** 2).sum(axis=(1, 2)).argmax())]

