"""Datasets: a training window is a slice of the memory-mapped caches, nothing more.

Signal processing (montage, filters, spectra) runs batched on the device inside the model; here we only
slice, shift and flip (a permutation of each input's channels or regions, hms/data/inputs.py).
"""
import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from hms.data.inputs import get_inputs
from hms.data.kaggle import DataError, read_test_csv
from hms.data.prepare import READERS, Prepared, count_rows
from hms.layout import EEG_RATE, VOTE_COLUMNS

log = logging.getLogger("hms.data")


class HMSDataset(Dataset):
    """Training / validation windows of prepared rows.

    item: one float32 window per input of `prepared` under its name (eeg [20, 10000] microvolts, spec
    [300, 400], ...; NaN as the input's cache has it), target float32 [6], n_votes, eeg_id, label_id,
    row (position in prepared.rows), and with an eeg input `centre`: the sample where the labelled
    window's centre lands after the time shift (5000 unshifted).
    one_window_per_eeg: len = number of EEGs; item i draws one of that EEG's rows each epoch.
    flip_inputs: the inputs the electrode flips act on (None: all; the 15th place flipped only the EEG).
    time_shift_seconds: every input's window moves by one shift drawn in EEG samples (an input with
    coarser rows moves by the nearest whole row).
    window_offsets: {offset column: seconds per prepared row} replacing the rows' own window starts
    (hms.data.sampling.window_offsets; e.g. the middle of each annotation group).
    reader: how windows leave the caches (Source.read): "map" (copies out of the memory map; the faster
    one here, first pass included) or "pread" (positional reads: no page of the map is ever touched).
    All randomness comes from (seed, epoch, index), so workers, DDP ranks and resumed runs agree; an index
    may carry its epoch, (epoch, index), which is how EpochSampler reaches persistent workers.
    """

    def __init__(self, prepared: Prepared, row_positions, one_window_per_eeg: bool = False,
                 time_shift_seconds: float = 0.0, flip_lr_p: float = 0.0, flip_fb_p: float = 0.0, seed: int = 0,
                 flip_inputs=None, window_offsets: dict | None = None, reader: str = "map"):
        self.prepared = prepared
        rows = prepared.rows.iloc[np.asarray(row_positions, dtype=int)]
        self.positions = np.asarray(row_positions, dtype=int)
        if one_window_per_eeg:
            groups = rows.groupby("eeg_id", sort=True).indices  # eeg_id -> positions within `rows`
            self.groups = [self.positions[idx] for idx in groups.values()]
        else:
            self.groups = [np.array([p]) for p in self.positions]
        r = prepared.rows
        self.sources = prepared.sources
        self.source_ids = {n: r[s.input.id_column].to_numpy() for n, s in self.sources.items()}
        window_offsets = window_offsets or {}
        self.offsets = {n: np.asarray(window_offsets.get(s.input.offset_column, r[s.input.offset_column].to_numpy()))
                        for n, s in self.sources.items()}
        self.eeg_id = r.eeg_id.to_numpy()
        self.targets = r[list(VOTE_COLUMNS)].to_numpy(np.float32)
        self.n_votes = r.n_votes.to_numpy(np.float32)
        self.label_id = r.label_id.to_numpy()
        self.shift = int(time_shift_seconds * EEG_RATE)
        self.flip_p = {"lr": flip_lr_p, "fb": flip_fb_p}
        self.flip_inputs = set(self.sources if flip_inputs is None else flip_inputs)
        # every input's block order of every combination of the flips in use, made once (not per window);
        # an input that cannot flip this way fails here, not mid-epoch
        used = [name for name, p in self.flip_p.items() if p > 0]
        combinations = [tuple(f for k, f in enumerate(used) if mask >> k & 1) for mask in range(2 ** len(used))]
        self.flip_orders = {name: {flips: s.input.flip_order(flips) if name in self.flip_inputs else None
                                   for flips in combinations}
                            for name, s in self.sources.items()}
        # validation draws nothing: no generator to seed (26 us a window), and the same windows
        self.draws = bool(self.shift or used or one_window_per_eeg)
        self.seed = seed % 2**32
        self.epoch = 0
        if reader not in READERS:  # once here, not per window
            raise ValueError(f"data.reader must be one of {READERS}, got {reader!r}")
        self.reader = reader

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, index) -> dict:
        return self.fill(index)

    def fill(self, index, windows: dict | None = None) -> dict:
        """The item of `index`; with `windows` (input name -> an array of its window's shape and dtype, such
        as a row of a batch buffer: hms.data.loader.ThreadLoader) its windows are read into those and
        left out of the item."""
        epoch, index = index if isinstance(index, tuple) else (self.epoch, index)
        group = self.groups[index]
        row, shift, flips = group[0], 0.0, ()
        if self.draws:
            rng = np.random.default_rng([self.seed, epoch, index])
            if len(group) > 1:
                row = group[rng.integers(len(group))]
            shift = int(rng.integers(-self.shift, self.shift + 1)) / EEG_RATE if self.shift else 0.0
            # left/right first, then front/back (both drawn for every item, so the stream of draws is fixed)
            flips = tuple(name for name, p in self.flip_p.items() if rng.random() < p)
        item = {}
        for name, source in self.sources.items():
            window = source.read(self.source_ids[name][row], self.offsets[name][row], shift,
                                 self.flip_orders[name][flips], self.reader,
                                 out=None if windows is None else windows[name])
            if windows is None:
                item[name] = torch.from_numpy(window)
        if "eeg" in self.sources:  # where the label's centre sits in the shifted EEG window (3rd place)
            item["centre"] = self.sources["eeg"].centre(self.source_ids["eeg"][row], self.offsets["eeg"][row], shift)
        return item | {
            "target": torch.from_numpy(self.targets[row].copy()),
            "n_votes": self.n_votes[row], "eeg_id": self.eeg_id[row], "label_id": self.label_id[row], "row": row,
        }


class TestDataset(Dataset):
    """Every test.csv row, read straight from its parquet files (test sets are small): the window at
    offset 0 of each input (the first 50 s of the EEG, the first 10 min of the spectrogram), NaN as the
    input's cache keeps it (the models repair it).

    The windows follow training's rule (hms/data/prepare.py), checked here from the files' metadata
    before anything is predicted: a file too short for its window is refused in one line naming it
    (DataError; the EEG), unless its input pads (the Kaggle spectrogram): then it is zero-padded, and
    a warning counts those files (`padded` lists them). A missing or unreadable file is refused here too."""

    __test__ = False  # not a pytest class

    def __init__(self, root, inputs=("eeg", "spec")):
        self.root = Path(root)
        self.rows = read_test_csv(self.root / "test.csv")
        self.inputs = get_inputs(inputs)
        self.padded = []
        for inp in self.inputs.values():
            paths = [inp.path(self.root, "test", i) for i in self.rows[inp.id_column].unique()]
            lengths = [count_rows(inp, path, "test.csv") for path in paths]
            # the window at offset 0 starts at the file's first row
            short = [(path, n) for path, n in zip(paths, lengths) if n < inp.length]
            if not short:
                continue
            (path, n), count = short[0], f"{len(short)} {inp.name} files like it"
            problem = f"{path}: too short: {n / inp.rate:g} s does not cover offset 0 s + {inp.length / inp.rate:g} s"
            if not inp.pad_past_end:
                raise DataError(f"{problem} ({count})")
            log.warning("%s: zero-padded (%s)", problem, count)
            self.padded += [path for path, _ in short]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        r = self.rows.iloc[index]
        item = {name: torch.from_numpy(inp.file_window(inp.path(self.root, "test", r[inp.id_column])))
                for name, inp in self.inputs.items()}
        return item | {"eeg_id": torch.tensor(int(r.eeg_id)), "spectrogram_id": torch.tensor(int(r.spectrogram_id))}
