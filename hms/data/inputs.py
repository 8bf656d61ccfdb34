"""Input representations, one declaration each: everything the data pipeline knows about an input.

A batch holds one tensor per input, under the input's name (`batch["eeg"]`, `batch["spec"]`), chosen
by config (`data.inputs: [eeg, spec]`). An input declares
- its source: which csv column names its file (`id_column`), which folder holds it (`folder`), and
  `read(path)`, one file -> [time, width] (a derived input computes itself from its source here), kept
  as `dtype` (float32, or uint8 for an image stored as bytes);
- its cache: every source file streamed into one memory-mapped array, channel-major or time-major
  (`channel_major`), so that a window is a slice;
- its window: `rate` rows per second, `length` rows, started at the row's `offset_column` seconds by
  `first_row`; clamped inside the file, or zero-padded past its end (`pad_past_end`);
- its time axis, along which CropCat-like mixing swaps (`time_axis`, of a window without batch);
- its flips: `flips["lr"]` / `flips["fb"]` permute `flip_axis` of a window in blocks of `flip_block`
  (the head's left/right and front/back mirror images); a flip it does not declare cannot be used
  with it (augmentation or TTA raise), and flip TTA applies when it declares both.

Prepared caches, the training and test Datasets, augmentation, flip TTA and inference all loop over
the chosen inputs; adding an input (a per-EEG image cache, say) is one `@register_input` class here or
in any module imported before training.
"""
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from hms import layout
from hms.data.kaggle import read_eeg, read_spectrogram

FLIPS = ("lr", "fb")
# The four views flip TTA averages: identity, left/right, front/back, both.
TTA_VIEWS = ((), ("lr",), ("fb",), ("lr", "fb"))


class Input:
    """Base of every input: the attributes below are the declaration; see the module docstring."""
    name: str
    id_column: str          # eeg_id or spectrogram_id: the file a row's window comes from
    folder: str             # eegs or spectrograms: files are <root>/<split>_<folder>/<id>.parquet
    offset_column: str      # train.csv column giving the window's start in seconds
    rate: float             # rows of the cached time axis per second
    length: int             # rows per window
    width: int              # entries per row (channels or bins)
    channel_major: bool     # window (and cache) layout: [width, time] if True, else [time, width]
    pad_past_end: bool      # zero-pad a window that runs past the file's end (else clamp it inside)
    flip_block: int = 1     # flips permute blocks of this many entries along the width axis
    flips: dict = {}        # "lr" / "fb" -> permutation of the blocks
    nan_fill: float | None = 0.0  # NaN becomes this in the cache; None keeps NaN (the model repairs it)
    dtype = np.float32      # of the cache and the windows (uint8 for an image stored as bytes)
    version: int = 1        # bump when read() or nan_fill changes, so that caches rebuild

    @property
    def time_axis(self) -> int:
        return 1 if self.channel_major else 0

    @property
    def flip_axis(self) -> int:
        return 1 - self.time_axis

    @property
    def window_shape(self) -> tuple[int, int]:
        return (self.width, self.length) if self.channel_major else (self.length, self.width)

    @property
    def has_tta(self) -> bool:
        return all(f in self.flips for f in FLIPS)

    def read(self, path: Path) -> tuple[np.ndarray, float]:
        """One source file -> ([time, width] with NaN kept, time in seconds of its first row)."""
        raise NotImplementedError

    def count_rows(self, path: Path) -> int:
        """Rows read(path) will give, for laying out the cache before any file is read: the parquet
        metadata's count; an input that computes itself from its source overrides this."""
        return pq.ParquetFile(path).metadata.num_rows

    def first_row(self, offset_seconds: float, first_time: float) -> int:
        return int(round((offset_seconds - first_time) * self.rate))

    def path(self, root, split: str, source_id) -> Path:
        return Path(root) / f"{split}_{self.folder}" / f"{int(source_id)}.parquet"

    def window_start(self, n_rows: int, first_time: float, offset_seconds: float, shift_seconds: float = 0.0) -> int:
        """The first row of the (shifted) window inside a file of n_rows, clamped like `window`."""
        first = self.first_row(offset_seconds, first_time) + int(round(shift_seconds * self.rate))
        return min(max(first, 0), n_rows if self.pad_past_end else n_rows - self.length)

    def window(self, data: np.ndarray, start: int, n_rows: int, first_time: float, offset_seconds: float,
               shift_seconds: float = 0.0) -> np.ndarray:
        """The window at `offset_seconds` (+ a shift) of one file held as rows [start, start + n_rows) of
        `data` (the cache, or the file itself with start 0): a view where possible, zero-padded past the end."""
        first = self.window_start(n_rows, first_time, offset_seconds, shift_seconds)
        stop = min(first + self.length, n_rows)
        take = slice(start + first, start + stop)
        window = data[:, take] if self.channel_major else data[take]
        missing = self.length - (stop - first)
        if missing > 0:
            pad = [(0, 0), (0, missing)] if self.channel_major else [(0, missing), (0, 0)]
            window = np.pad(window, pad)
        return window

    def file_window(self, path: Path, offset_seconds: float = 0.0) -> np.ndarray:
        """The window read straight from one file (test sets are small), NaN treated like the cache does."""
        data, first_time = self.read(path)
        data = self.fill_nan(data)
        data = data.T if self.channel_major else data
        n_rows = data.shape[self.time_axis]
        return np.ascontiguousarray(self.window(data, 0, n_rows, first_time, offset_seconds))

    def fill_nan(self, data: np.ndarray) -> np.ndarray:
        return data if self.nan_fill is None else np.nan_to_num(data, nan=self.nan_fill)

    def window_fits(self, n_rows: int, offset_seconds: float) -> bool:
        return self.pad_past_end or self.first_row(offset_seconds, 0.0) + self.length <= n_rows

    # ---- flips: one permutation of width blocks per flip, on numpy windows and on torch batches
    def flip_order(self, names) -> np.ndarray | None:
        """The block order of `names` applied one after another, None when that is the identity."""
        order = None
        for name in names:
            if name not in self.flips:
                raise ValueError(f"input {self.name!r} declares no {name!r} flip: turn that flip off "
                                 f"(aug.flip_{name}_p=0, aug.tta=false) or declare it")
            flip = np.asarray(self.flips[name])
            order = flip if order is None else order[flip]
        return None if order is None or (order == np.arange(len(order))).all() else order

    def flipped_copy(self, window: np.ndarray, order: np.ndarray | None, out: np.ndarray | None = None) -> np.ndarray:
        """One copy of `window` (into `out`, contiguous, when given): a block gather when flipped, a plain
        copy otherwise."""
        if out is None:
            out = np.empty(window.shape, window.dtype)
        if order is None:
            out[...] = window
            return out

        def in_blocks(a):
            return a.reshape(*a.shape[:self.flip_axis], -1, self.flip_block, *a.shape[self.flip_axis + 1:])
        # np.take on whole blocks is 10x faster than indexing every column
        np.take(in_blocks(window), order, axis=self.flip_axis, out=in_blocks(out), mode="clip")  # "raise" buffers `out`
        return out

    def flip_index(self, order: np.ndarray) -> np.ndarray:
        """A block order (flip_order) as the order of the single entries along the flip axis."""
        if self.flip_block == 1:
            return np.asarray(order)
        return (np.asarray(order)[:, None] * self.flip_block + np.arange(self.flip_block)).ravel()

    def flip_tensor(self, x: torch.Tensor, names) -> torch.Tensor:
        """A batch [B, ...] mirrored by the flips `names`."""
        order = self.flip_order(names)
        if order is None:
            return x
        return x.index_select(self.flip_axis + 1, torch.as_tensor(self.flip_index(order)).to(x.device))


INPUTS: dict[str, Input] = {}


def register_input(cls):
    """Class decorator: makes `data.inputs: [<cls.name>]` available."""
    if cls.name in INPUTS and type(INPUTS[cls.name]).__qualname__ != cls.__qualname__:
        raise ValueError(f"input {cls.name!r} is declared twice")
    INPUTS[cls.name] = cls()
    return cls


def get_inputs(names) -> dict[str, Input]:
    unknown = [n for n in names if n not in INPUTS]
    if unknown:
        raise ValueError(f"data.inputs: unknown input {unknown[0]!r}; declared: {sorted(INPUTS)}")
    if not names:
        raise ValueError("data.inputs is empty: name at least one input")
    return {n: INPUTS[n] for n in names}


@register_input
class RawEEG(Input):
    """The 20 raw electrodes in microvolts, 50 s at 200 Hz: [20, 10000]. NaN stays NaN: the models'
    front-end repairs it on the device (with 0, or with the channel's mean over the window as the 15th
    place did), so the repair is a model choice, not a cache rebuild."""
    name, id_column, folder, offset_column = "eeg", "eeg_id", "eegs", "eeg_label_offset_seconds"
    rate, length, width = layout.EEG_RATE, layout.EEG_WINDOW, len(layout.EEG_COLUMNS)
    channel_major, pad_past_end = True, False  # a channel's window is one contiguous run
    nan_fill, version = None, 2
    flips = {"lr": layout.FLIP_LR, "fb": layout.FLIP_FB}

    def read(self, path):
        return read_eeg(path), 0.0


@register_input
class KaggleSpectrogram(Input):
    """The Kaggle spectrogram's 10 min window: [300 rows 2 s apart, 4 regions x 100 bins], zero-padded
    where a file ends early. NaN stays NaN (version 2): the models repair it on the device, each as its
    recipe did (0 before the log, or excluded from a per-panel mean, Cranjis-McB). Left/right swaps the
    LL<->RL and LP<->RP regions; front/back maps every chain onto itself reversed, and a region is a mean of
    power spectra, so it is the identity."""
    name, id_column, folder, offset_column = "spec", "spectrogram_id", "spectrograms", "spectrogram_label_offset_seconds"
    rate, length, width = 1 / layout.SPEC_STEP_SECONDS, layout.SPEC_WINDOW_ROWS, len(layout.SPEC_POWER_COLUMNS)
    channel_major, pad_past_end = False, True
    nan_fill, version = None, 2
    flip_block = len(layout.SPEC_BINS)
    flips = {"lr": layout.SPEC_REGION_FLIP_LR, "fb": layout.SPEC_REGION_FLIP_FB}

    def read(self, path):
        time, power = read_spectrogram(path)
        return power, float(time[0])

    def first_row(self, offset_seconds, first_time):
        # the rows whose time lies strictly after the offset (time is the centre of a 2 s row)
        return math.ceil((offset_seconds - first_time + 1e-6) * self.rate)


def random_batch(names, n: int = 1, seed: int = 0) -> dict:
    """A batch of random windows of the named inputs (shapes for checks and descriptions): raw EEG as
    N(0, 50 uV), everything else uniform in [0, 20)."""
    g = torch.Generator().manual_seed(seed)
    batch = {}
    for name, inp in get_inputs(names).items():
        shape = (n, *inp.window_shape)
        batch[name] = torch.randn(*shape, generator=g) * 50 if name == "eeg" else torch.rand(*shape, generator=g) * 20
    return batch


def chris_mel_16th(eeg: np.ndarray) -> np.ndarray:
    """Chris Deotte's EEG spectrogram as the 16th place computed it once per whole record (RECIPES.md 5.2):
    per chain (LL, LP, RL, RP) and bipolar pair, NaN -> the pair's mean (0 if all NaN), librosa mel (sr 200,
    n_fft 1000, hop 40, 128 mels, 0-20 Hz, center off), power_to_db(ref=max) over the record, (dB+40)/40;
    the mean of the chain's 4 pairs; stored as uint8 of (img + 1) / 2 * 255 (truncated, as astype does).
    eeg [n, 20] -> uint8 [(n - 1000) // 40 + 1, 4 x 128], chain-major columns."""
    import librosa
    chains = []
    for chain in ("LL", "LP", "RL", "RP"):
        electrodes = layout.CHAINS[chain]
        images = []
        for a, b in zip(electrodes, electrodes[1:]):
            x = eeg[:, layout.EEG_COLUMNS.index(a)] - eeg[:, layout.EEG_COLUMNS.index(b)]
            mean = np.nanmean(x) if not np.isnan(x).all() else 0.0
            x = np.nan_to_num(x, nan=mean).astype(np.float32)
            mel = librosa.feature.melspectrogram(y=x, sr=layout.EEG_RATE, hop_length=40, n_fft=1000, n_mels=128,
                                                 fmin=0, fmax=20, center=False)
            images.append((librosa.power_to_db(mel, ref=np.max) + 40) / 40)
        chains.append(np.mean(images, axis=0).T)  # [frames, 128]
    return (((np.concatenate(chains, axis=1) + 1) / 2) * 255).astype(np.uint8)


@register_input
class EEGMel16(Input):
    """The 16th place's per-EEG mel-spectrogram cache (chris_mel_16th over the whole record), sliced as
    its frames [eeg_offset * 200 // 40, + 226): [226, 512] uint8 (divide by 255 for its [0, 1] image).
    Left/right swaps the chains LL <-> RL and LP <-> RP (its [2, 3, 0, 1]); front/back is not declared."""
    name, id_column, folder, offset_column = "eeg_mel", "eeg_id", "eegs", "eeg_label_offset_seconds"
    rate, length, width = layout.EEG_RATE / 40, (layout.EEG_WINDOW - 1000) // 40 + 1, 4 * 128
    channel_major, pad_past_end, dtype = False, False, np.uint8
    flip_block = 128
    flips = {"lr": (2, 3, 0, 1)}

    def read(self, path):
        return chris_mel_16th(read_eeg(path)), 0.0

    def count_rows(self, path):
        return (pq.ParquetFile(path).metadata.num_rows - 1000) // 40 + 1

    def first_row(self, offset_seconds, first_time):
        return int(round(offset_seconds * layout.EEG_RATE)) // 40  # the EEG sample, then whole frames


def flip_batch(batch: dict, inputs: dict, names) -> dict:
    """The batch mirrored by the flips `names` (e.g. ("lr",)): every input of `inputs` it holds."""
    if not names:
        return batch
    return dict(batch) | {n: inp.flip_tensor(batch[n], names) for n, inp in inputs.items() if n in batch}


def tta_views(inputs: dict, tta: bool, flips=FLIPS) -> tuple:
    """The views flip TTA averages: every combination of `flips` (the 4 of TTA_VIEWS for both, the
    identity and left/right for ("lr",) as the 16th place had it)."""
    if not tta:
        return TTA_VIEWS[:1]
    missing = [(n, f) for n, inp in inputs.items() for f in flips if f not in inp.flips]
    if missing:
        raise ValueError(f"flip TTA: input {missing[0][0]!r} declares no {missing[0][1]!r} flip (set aug.tta=false "
                         "or aug.tta_flips without it)")
    return tuple(view for view in TTA_VIEWS if set(view) <= set(flips))


def tta_probabilities(model, batch: dict, inputs: dict, tta: bool = True, flips=FLIPS) -> torch.Tensor:
    """Softmax of the model's logits [B, 6], averaged over the flip views when `tta`: the one flip TTA
    of validation and inference."""
    views = tta_views(inputs, tta, flips)
    total = sum(model(flip_batch(batch, inputs, v))["logits"].float().softmax(dim=1) for v in views)
    return total / len(views)
