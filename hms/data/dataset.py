"""Datasets: a training window is a slice of the memory-mapped caches, nothing more.

Signal processing (montage, filters, spectra) runs batched on the device inside the model; here we only
slice, flip (a permutation of raw electrodes and of spectrogram regions) and shift.
"""
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from hms.data.kaggle import eeg_path, read_eeg, read_spectrogram, read_test_csv, spectrogram_path
from hms.data import layout
from hms.data.layout import EEG_RATE, EEG_WINDOW, SPEC_WINDOW_ROWS, VOTE_COLUMNS
from hms.data.prepare import Prepared

# The flips as index arrays: electrodes of EEG_COLUMNS, and regions (blocks of 100 columns) of the
# spectrogram, whose flips move whole regions (gathering 4 blocks is faster than 400 columns).
FLIP_LR, FLIP_FB = np.array(layout.FLIP_LR), np.array(layout.FLIP_FB)
N_REGIONS = len(layout.SPEC_REGIONS)
SPEC_REGIONS_LR, SPEC_REGIONS_FB = (np.array(flip).reshape(N_REGIONS, -1)[:, 0] // len(layout.SPEC_BINS)
                                    for flip in (layout.SPEC_FLIP_LR, layout.SPEC_FLIP_FB))


def compose_flip(order, flip: np.ndarray):
    """The index order `order` (None: the identity) followed by `flip`; None again when that is the
    identity (front/back leaves the spectrogram's regions as they are)."""
    combined = flip if order is None else order[flip]
    return None if (combined == np.arange(len(combined))).all() else combined


class HMSDataset(Dataset):
    """Training / validation windows of prepared rows.

    item: eeg float32 [20, 10000] (microvolts, NaN repaired to 0 in the cache), spec float32 [300, 400],
    target float32 [6], n_votes, eeg_id, label_id, row (position in prepared.rows).
    one_window_per_eeg: len = number of EEGs; item i draws one of that EEG's rows each epoch.
    All randomness comes from (seed, epoch, index), so workers, DDP ranks and resumed runs agree.
    """

    def __init__(self, prepared: Prepared, row_positions, one_window_per_eeg: bool = False,
                 time_shift_seconds: float = 0.0, flip_lr_p: float = 0.0, flip_fb_p: float = 0.0, seed: int = 0):
        self.prepared = prepared
        rows = prepared.rows.iloc[np.asarray(row_positions, dtype=int)]
        self.positions = np.asarray(row_positions, dtype=int)
        if one_window_per_eeg:
            groups = rows.groupby("eeg_id", sort=True).indices  # eeg_id -> positions within `rows`
            self.groups = [self.positions[idx] for idx in groups.values()]
        else:
            self.groups = [np.array([p]) for p in self.positions]
        r = prepared.rows
        self.eeg_id = r.eeg_id.to_numpy()
        self.spec_id = r.spectrogram_id.to_numpy()
        self.eeg_offset = r.eeg_label_offset_seconds.to_numpy()
        self.spec_offset = r.spectrogram_label_offset_seconds.to_numpy()
        self.targets = r[list(VOTE_COLUMNS)].to_numpy(np.float32)
        self.n_votes = r.n_votes.to_numpy(np.float32)
        self.label_id = r.label_id.to_numpy()
        self.shift = int(time_shift_seconds * EEG_RATE)
        self.flip_lr_p, self.flip_fb_p, self.seed = flip_lr_p, flip_fb_p, seed % 2**32
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        group = self.groups[index]
        row = group[rng.integers(len(group))] if len(group) > 1 else group[0]
        shift = int(rng.integers(-self.shift, self.shift + 1)) if self.shift else 0
        eeg = self.prepared.eeg_window(self.eeg_id[row], self.eeg_offset[row], shift)  # [20, 10000] view
        spec = self.prepared.spec_window(self.spec_id[row], self.spec_offset[row])  # [300, 400] view
        electrodes, regions = None, None  # None: the identity, so a plain copy instead of a gather
        if rng.random() < self.flip_lr_p:
            electrodes, regions = compose_flip(electrodes, FLIP_LR), compose_flip(regions, SPEC_REGIONS_LR)
        if rng.random() < self.flip_fb_p:  # after a left/right flip drawn before it
            electrodes, regions = compose_flip(electrodes, FLIP_FB), compose_flip(regions, SPEC_REGIONS_FB)
        # one copy out of the memory map each: a gather when flipped, a plain copy otherwise
        eeg = eeg[electrodes] if electrodes is not None else eeg.copy()
        if regions is not None:  # np.take is 10x faster here than indexing with [:, regions]
            spec = np.take(spec.reshape(len(spec), N_REGIONS, -1), regions, axis=1).reshape(spec.shape)
        else:
            spec = spec.copy()
        return {
            "eeg": torch.from_numpy(eeg), "spec": torch.from_numpy(spec),
            "target": torch.from_numpy(self.targets[row].copy()),
            "n_votes": self.n_votes[row], "eeg_id": self.eeg_id[row], "label_id": self.label_id[row], "row": row,
        }


class TestDataset(Dataset):
    """Every test.csv row, read straight from its parquet files (test sets are small): the first 50 s
    of the EEG and the first 10 min of the spectrogram, NaN repaired to 0."""

    __test__ = False  # not a pytest class

    def __init__(self, root):
        self.root = Path(root)
        self.rows = read_test_csv(self.root / "test.csv")

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        r = self.rows.iloc[index]
        eeg = read_eeg(eeg_path(self.root, "test", r.eeg_id))[:EEG_WINDOW]
        _, spec = read_spectrogram(spectrogram_path(self.root, "test", r.spectrogram_id))
        spec = spec[:SPEC_WINDOW_ROWS]
        if len(spec) < SPEC_WINDOW_ROWS:
            spec = np.concatenate([spec, np.zeros((SPEC_WINDOW_ROWS - len(spec), spec.shape[1]), np.float32)])
        return {"eeg": torch.from_numpy(np.nan_to_num(eeg.T.copy())), "spec": torch.from_numpy(np.nan_to_num(spec)),
                "eeg_id": torch.tensor(int(r.eeg_id)), "spectrogram_id": torch.tensor(int(r.spectrogram_id))}
