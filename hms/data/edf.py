"""Clinical recordings (EDF, EDF+, BDF) as the models' raw EEG: channels mapped to layout.EEG_COLUMNS,
microvolts, 200 Hz, 50 s windows, read lazily a span at a time.

- Reading: MNE with preload=False; `Recording.read` asks MNE for one span of file samples, so an
  hour-long recording never sits in memory. EDF+D (discontinuous) is refused: MNE would join its
  records as if they were contiguous and every time after a gap would be wrong.
- Channels: a file label maps to an electrode when, lower-cased and stripped of a type word ("EEG",
  "POL") and of dots, its name before a '-' is the electrode ("EEG FP1-REF", "Fp1.", "EEG Fp1-LE").
  The 10-10 names T7/T8/P7/P8 are T3/T4/T5/T6. A label whose part after the '-' is itself a scalp
  electrode ("Fp1-F7") is a bipolar derivation and maps to nothing. A label starting with ECG or EKG
  (after the type word) is the EKG; without one the EKG is zeros (reported). A channel map
  (`read_channel_map`: JSON {"file label": "electrode" or null}) comes first and can name anything.
  Two labels for one electrode, or a missing electrode, is an error (or, with allow_missing, zeros).
- Units: the header's physical dimension must be a voltage (uV, µV, mV, V, nV, any case); anything
  else, or a physical range no EEG can have (beyond 1 V, or under 0.5 uV), is an error naming the
  channel; `units=` overrides the header for every channel used (an assumption the report states).
- Resampling: scipy.signal.resample_poly with the rational factors 200 / file rate (its Kaiser
  anti-alias filter), computed span by span with margins so that spans join exactly.
- Windows: 50 s starting every `step` seconds at 0, while the window fits in the recording.
"""
import json
import math
import re
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from hms import layout
from hms.data.kaggle import DataError, first_line

VOLTS = {"nv": 1e-3, "uv": 1.0, "mv": 1e3, "v": 1e6}  # microvolts per unit
ALIASES = {"t7": "T3", "t8": "T4", "p7": "T5", "p8": "T6"}  # 10-10 names of the 10-20 electrodes
_ELECTRODES = {e.lower(): e for e in layout.ELECTRODES} | ALIASES
_COLUMNS = _ELECTRODES | {"ekg": "EKG", "ecg": "EKG"}  # what a channel map may name
_TYPE_WORDS = ("eeg", "pol")
RANGE_UV = (0.5, 1e6)  # a channel's physical half-range outside this is not an EEG in that unit
FLAT_UV = 0.1  # a channel whose standard deviation over a window is below this is flat
_MARGIN_SECONDS = 2.0  # extra file samples around each span: MNE upsamples slower channels per read


class EdfError(DataError):
    """A recording that cannot be read as EEG; one line starting with the file."""


def _unit_key(unit: str) -> str:
    """A physical dimension as a VOLTS key: "µV", "μV", "UV" -> "uv"."""
    return unit.strip().replace("µ", "u").replace("μ", "u").lower()


def electrode_of(label: str) -> str | None:
    """The EEG_COLUMNS name a file channel label stands for, or None (see the module docstring)."""
    words = label.strip().lower().split()
    if len(words) > 1 and words[0] in _TYPE_WORDS + ("ecg", "ekg"):
        kind, words = words[0], words[1:]
        if kind in ("ecg", "ekg"):
            return "EKG"
    name, _, reference = " ".join(words).partition("-")
    name, reference = name.strip(" ._"), reference.strip(" ._")
    if reference in _ELECTRODES:
        return None  # a bipolar derivation of two scalp electrodes
    if name.startswith(("ecg", "ekg")):
        return "EKG"
    return _ELECTRODES.get(name)


def _column_of(name, where) -> str | None:
    """A channel map's electrode name (any case, 10-10 aliases, ECG/EKG) as an EEG_COLUMNS name."""
    if name is None:
        return None
    column = _COLUMNS.get(str(name).strip().lower())
    if column is None:
        raise EdfError(f"{where}: {name!r} is not an electrode of {', '.join(layout.EEG_COLUMNS)} (or null)")
    return column


def read_channel_map(path) -> dict:
    """A channel map file: JSON {"file channel label": "electrode" or null (do not use it)} ->
    {label: EEG_COLUMNS name or None}. Electrode names take any case and the 10-10 aliases."""
    path = Path(path)
    try:
        entries = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise EdfError(f"{path}: not a readable JSON channel map ({first_line(error)})") from None
    if not isinstance(entries, dict):
        raise EdfError(f'{path}: a channel map is a JSON object {{"file channel": "electrode"}}, '
                       f'not a {type(entries).__name__}')
    return {str(label): _column_of(name, path) for label, name in entries.items()}


def match_channels(labels, channel_map=None, where="recording") -> dict:
    """{EEG_COLUMNS name: file label} for the labels a column has: the channel map's entries first (a
    label is matched exactly, else ignoring case and spaces), then every other label by electrode_of.
    Two labels for one column is an error naming both."""
    channel_map = channel_map or {}
    by_key = {label.strip().lower(): label for label in labels}
    mapped, taken = {}, set()
    for key, column in channel_map.items():
        label = key if key in labels else by_key.get(key.strip().lower())
        if label is None:
            continue  # a map shared by many recordings names channels this one lacks
        taken.add(label)
        if column is not None:
            if column in mapped:
                raise EdfError(f"{where}: the channel map gives {column} twice ({mapped[column]!r} and {label!r})")
            mapped[column] = label
    found = {}
    for label in labels:
        column = None if label in taken else electrode_of(label)
        if column is not None and column not in mapped:
            found.setdefault(column, []).append(label)
    twice = {c: ls for c, ls in found.items() if len(ls) > 1}
    if twice:
        column, both = next(iter(twice.items()))
        raise EdfError(f"{where}: channels {', '.join(map(repr, both))} all look like {column}; say which one in a "
                       f'channel map (JSON {{"{both[0]}": "{column}", "{both[1]}": null}})')
    return mapped | {c: ls[0] for c, ls in found.items()}


def _header_kind(path: Path) -> tuple[str, int]:
    """("EDF", "EDF+C", "EDF+D", "BDF", ...) and the number of data records the header declares."""
    if not path.is_file():
        raise EdfError(f"{path}: file not found")
    with open(path, "rb") as f:
        head = f.read(256)
    if len(head) == 256 and head[:8] == b"0       ":
        kind = "EDF"
    elif len(head) == 256 and head[:8] == b"\xffBIOSEMI":
        kind = "BDF"
    else:
        raise EdfError(f"{path}: not an EDF or BDF file (starts {head[:16]!r})")
    reserved = head[192:197].decode("latin-1")
    kind += reserved[3:] if reserved in ("EDF+C", "EDF+D", "BDF+C", "BDF+D") else ""
    try:
        records = int(head[236:244].decode("latin-1").strip())
    except ValueError:
        records = -1
    return kind, records


@dataclass
class Recording:
    """One recording opened for reading: what its header says, how its channels map, and the lazy MNE raw."""
    path: Path
    kind: str                # EDF, EDF+C, BDF, ...
    raw: object              # mne.io.Raw with preload=False
    file_rate: float         # Hz
    n_file_samples: int
    up: int                  # resample_poly factors: 200 / file_rate = up / down
    down: int
    mapping: dict            # {EEG_COLUMNS name: file label}
    missing: list            # EEG_COLUMNS names with no channel: zeros
    units: dict              # {file label: unit the values were read in}
    scales: np.ndarray       # microvolts per MNE value, per column of `mapping` (in EEG_COLUMNS order)
    assumptions: list = field(default_factory=list)

    @property
    def n_samples(self) -> int:
        """Samples at 200 Hz (the length resample_poly gives the whole recording)."""
        return math.ceil(self.n_file_samples * self.up / self.down)

    @property
    def duration(self) -> float:
        return self.n_file_samples / self.file_rate

    @property
    def labels(self) -> list:
        return list(self.raw.ch_names)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) at 200 Hz of the 20 EEG_COLUMNS in microvolts, float32 [20, stop - start]:
        zeros outside the recording and for missing columns. Equal, up to rounding, to resampling the
        whole recording at once (resample_poly zero-pads it too)."""
        out = np.zeros((len(layout.EEG_COLUMNS), stop - start), np.float32)
        lo, hi = max(start, 0), min(stop, self.n_samples)
        if hi <= lo:
            return out
        # Whole blocks of `down` file samples (= `up` output samples) and a margin of blocks each side,
        # wider than the anti-alias filter, so that every kept output sees all the file samples it needs.
        half_filter = 10 * max(self.up, self.down) / self.up  # scipy's filter half-length, in file samples
        margin = math.ceil((half_filter + _MARGIN_SECONDS * self.file_rate) / self.down)
        first, last = lo // self.up - margin, -(-hi // self.up) + margin
        a, b = first * self.down, last * self.down
        ra, rb = max(a, 0), min(b, self.n_file_samples)
        columns = [c for c in layout.EEG_COLUMNS if c in self.mapping]
        picks = [self.labels.index(self.mapping[c]) for c in columns]
        data = np.zeros((len(picks), b - a))
        data[:, ra - a:rb - a] = self.raw.get_data(picks=picks, start=ra, stop=rb)
        if not np.isfinite(data).all():
            row, col = np.argwhere(~np.isfinite(data))[0]
            raise EdfError(f"{self.path}: channel {self.mapping[columns[row]]!r} holds a non-finite value at "
                           f"{(a + col) / self.file_rate:.2f} s")
        data *= self.scales[:, None]
        if (self.up, self.down) != (1, 1):
            data = resample_poly(data, self.up, self.down, axis=1)
        rows = [layout.EEG_COLUMNS.index(c) for c in columns]
        out[rows, lo - start:hi - start] = data[:, lo - first * self.up:hi - first * self.up]
        return out

    def windows(self, starts) -> np.ndarray:
        """The 50 s windows starting at these samples (200 Hz): float32 [len(starts), 20, 10000], one read."""
        starts = np.asarray(starts, dtype=int)
        span = self.read(int(starts.min()), int(starts.max()) + layout.EEG_WINDOW)
        offsets = starts - starts.min()
        return np.stack([span[:, o:o + layout.EEG_WINDOW] for o in offsets])


def _read_raw(path: Path, kind: str):
    import mne  # a second to import: only when a recording is read
    reader = mne.io.read_raw_bdf if kind.startswith("BDF") else mne.io.read_raw_edf
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            raw = reader(path, preload=False, verbose="error")
        except Exception as error:  # MNE raises many types for a bad header; all mean "cannot read"
            raise EdfError(f"{path}: cannot read as {kind} ({first_line(error)})") from None
    return raw, [f"MNE: {str(w.message).splitlines()[0]}" for w in caught]


def _scales(recording_path, raw, mapping: dict, units: str | None) -> tuple[np.ndarray, dict]:
    """Microvolts per MNE value for each mapped column (EEG_COLUMNS order), and the unit of each label.
    MNE returns header units times its own factor (1e-6 for uV, 1e-3 for mV, 1 for anything else, its
    `_raw_extras["units"]`); dividing it out gives the physical values, which we scale by their unit."""
    extras = raw._raw_extras[0]
    header_units = raw._orig_units
    scales, used_units = [], {}
    for column in (c for c in layout.EEG_COLUMNS if c in mapping):
        label = mapping[column]
        k = raw.ch_names.index(label)
        unit = units or header_units.get(label, "")
        key = _unit_key(unit)
        if key not in VOLTS:
            raise EdfError(f"{recording_path}: channel {label!r} has unit {unit!r}, not a voltage (uV, mV, V, nV); "
                           "pass --units with the unit its values are in, or map the channel to null")
        low, high = float(extras["physical_min"][k]), float(extras["physical_max"][k])
        digital = float(extras["digital_max"][k]) - float(extras["digital_min"][k])
        if not (np.isfinite([low, high]).all() and high > low and digital > 0):
            raise EdfError(f"{recording_path}: channel {label!r} has an invalid range in its header "
                           f"(physical {low:g}..{high:g}, digital span {digital:g})")
        half_range = max(abs(low), abs(high)) * VOLTS[key]
        if column != "EKG" and not RANGE_UV[0] <= half_range <= RANGE_UV[1]:
            raise EdfError(f"{recording_path}: channel {label!r} spans +-{half_range:.3g} uV by its header (unit "
                           f"{unit!r}): no EEG does; the unit field looks wrong (pass --units with the true unit)")
        scales.append(VOLTS[key] / float(extras["units"][k]))
        used_units[label] = unit
    return np.array(scales), used_units


def open_recording(path, channel_map=None, allow_missing=False, units=None) -> Recording:
    """A recording ready to read: header checked, channels mapped, units known. `channel_map` is
    {label: column or None} (read_channel_map), `units` overrides every header unit ("uV", ...),
    `allow_missing` zero-fills electrodes the file lacks instead of refusing the recording."""
    path = Path(path)
    kind, declared_records = _header_kind(path)
    if kind.endswith("+D"):
        raise EdfError(f"{path}: {kind} (discontinuous) recordings are not supported: MNE joins their records "
                       "as if contiguous, so times after a gap would be wrong; export it as continuous EDF")
    if units is not None and _unit_key(units) not in VOLTS:
        raise EdfError(f"{path}: units {units!r} is not one of uV, mV, V, nV")
    raw, assumptions = _read_raw(path, kind)
    labels = list(raw.ch_names)
    mapping = match_channels(labels, channel_map, where=path)
    missing = [c for c in layout.EEG_COLUMNS if c not in mapping]
    absent = [c for c in missing if c != "EKG"]
    if absent and not allow_missing:
        raise EdfError(f"{path}: no channel for electrodes {', '.join(absent)} (channels: {', '.join(labels)}); "
                       "name them in a channel map, or pass --allow-missing to zero-fill them")
    if absent:
        assumptions.append(f"electrodes {', '.join(absent)} are missing: zero-filled (allow_missing)")
    if "EKG" in missing:
        assumptions.append("no ECG/EKG channel: the EKG column is zeros")
    scales, used_units = _scales(path, raw, mapping, units)
    if units is not None:
        assumptions.append(f"units: every channel read as {units} (the header units were overridden)")
    rate = float(raw.info["sfreq"])
    ratio = (Fraction(layout.EEG_RATE) / Fraction(rate)).limit_denominator(1000)
    if abs(float(ratio) * rate - layout.EEG_RATE) > 1e-9 * layout.EEG_RATE:
        drift = abs(float(ratio) * rate / layout.EEG_RATE - 1) * 3600
        assumptions.append(f"resampling {rate:g} Hz by {ratio.numerator}/{ratio.denominator}: times drift "
                           f"{drift:.3g} s per hour")
    extras = raw._raw_extras[0]  # MNE's header fields: samples per record of each signal, record seconds
    record_seconds = float(extras["record_length"][0])
    slower = [mapping[c] for c in layout.EEG_COLUMNS if c in mapping
              and extras["n_samps"][extras["sel"][labels.index(mapping[c])]] < rate * record_seconds - 1e-6]
    if slower:
        assumptions.append(f"channels {', '.join(slower)} are stored at a lower rate; MNE upsamples them to "
                           f"{rate:g} Hz")
    if 0 < declared_records and raw.n_times < declared_records * record_seconds * rate - 1e-6:
        assumptions.append(f"truncated file: the header declares {declared_records * record_seconds:g} s, the file "
                           f"holds {raw.n_times / rate:g} s; read those")
    recording = Recording(path, kind, raw, rate, int(raw.n_times), ratio.numerator, ratio.denominator,
                          mapping, missing, used_units, scales, assumptions)
    if recording.n_samples < layout.EEG_WINDOW:
        raise EdfError(f"{path}: the recording is {recording.duration:.1f} s, shorter than one "
                       f"{layout.EEG_WINDOW_SECONDS} s window")
    return recording


def window_starts(n_samples: int, step_seconds: float) -> np.ndarray:
    """First samples (200 Hz) of the 50 s windows every `step_seconds` from 0 that fit in n_samples."""
    if not step_seconds > 0:
        raise ValueError(f"step must be positive, got {step_seconds}")
    count = int((n_samples - layout.EEG_WINDOW) // (step_seconds * layout.EEG_RATE)) + 1
    starts = np.round(np.arange(max(count, 0)) * step_seconds * layout.EEG_RATE).astype(int)
    return starts[starts + layout.EEG_WINDOW <= n_samples]


def flat_channels(recording: Recording, windows: np.ndarray) -> list[list[str]]:
    """Per window [k, 20, 10000], the mapped columns whose standard deviation is under FLAT_UV."""
    flat = windows.std(axis=2) < FLAT_UV
    present = [c not in recording.missing for c in layout.EEG_COLUMNS]
    return [[c for c, f, p in zip(layout.EEG_COLUMNS, row, present) if f and p] for row in flat]


def spec_padded(starts, n_samples: int) -> np.ndarray:
    """Per window, the fraction of its 300 Kaggle-spectrogram rows (2 s apart, centred on the window's
    centre) whose 1024-sample frame reaches outside the recording and is zero-padded."""
    centres = spec_centres(starts)
    half = layout.SPEC_FFT // 2
    return ((centres - half < 0) | (centres + half > n_samples)).mean(axis=1)


def spec_centres(starts) -> np.ndarray:
    """[windows, 300] centre samples (200 Hz) of the spectrogram rows of the windows starting at `starts`:
    row i at second start + 25 - 299 + 2i, as the Kaggle data line the two up (layout.EEG_TO_SPEC_SECONDS)."""
    first = layout.EEG_WINDOW_SECONDS / 2 - (layout.SPEC_WINDOW_ROWS - 1) * layout.SPEC_STEP_SECONDS / 2
    rows = (first + layout.SPEC_STEP_SECONDS * np.arange(layout.SPEC_WINDOW_ROWS)) * layout.EEG_RATE
    return np.asarray(starts, dtype=int)[:, None] + np.round(rows).astype(int)[None]
