"""How windows leave the caches: positional reads (data.reader=pread) give exactly the memory map's
windows, flipped, shifted and padded alike; persistent DataLoader workers draw each epoch's augmentation
from the (epoch, index) the sampler hands them, as a fresh in-process read does."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from hms.data.dataset import HMSDataset
from hms.data.prepare import load_prepared, prepare_data
from hms.train.sampler import EpochSampler


@pytest.fixture(scope="module")
def prepared(small_set):
    return load_prepared(prepare_data(small_set, progress=False))


def test_pread_gives_the_maps_windows_flipped_shifted_and_padded(prepared):
    rows = prepared.rows
    for name, source in prepared.sources.items():
        inp = source.input
        ids = rows[inp.id_column].unique()[:6]
        for k, sid in enumerate(ids):
            seconds = source.length[sid] / inp.rate
            # inside, clamped at the start, and past the end (clamped for the EEG, zero-padded for the spectrogram)
            for offset, shift in ((0.0, 0.0), (3.0, -1.0), (seconds - 20.0, 0.5), (seconds + 30.0, 0.0)):
                for flips in ((), ("lr",), ("lr", "fb")):
                    order = inp.flip_order(flips)
                    expected = inp.flipped_copy(source.window(sid, offset, shift), order)
                    got = source.read(sid, offset, shift, order)
                    assert got.dtype == expected.dtype and got.flags.c_contiguous
                    np.testing.assert_array_equal(got, expected, err_msg=f"{name} {sid} {offset} {flips}")
    spec = prepared.sources["spec"]
    sid = rows.spectrogram_id.iloc[0]
    padded = spec.read(sid, spec.length[sid] * 2.0 - 100.0)  # 100 s from the end: 250 of 300 rows padded
    assert (padded[50:] == 0).all() and not (padded[:50] == 0).all()


def test_an_unknown_reader_is_refused(prepared):
    with pytest.raises(ValueError, match="data.reader must be one of"):
        HMSDataset(prepared, [0], reader="mmap")[0]


def test_persistent_workers_draw_each_epochs_augmentation(prepared):
    positions = np.arange(16)
    dataset = HMSDataset(prepared, positions, flip_lr_p=0.5, flip_fb_p=0.5, time_shift_seconds=2.0, seed=5)
    sampler = EpochSampler(len(dataset), 4, seed=5)
    loader = DataLoader(dataset, batch_size=4, sampler=sampler, num_workers=1, persistent_workers=True)
    by_epoch = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        by_epoch.append(torch.cat([batch["eeg"] for batch in loader]))
        # the same epoch read here, in this process, with no worker and no set_epoch
        here = torch.stack([dataset[(epoch, i)]["eeg"] for _, i in sampler])
        torch.testing.assert_close(by_epoch[-1], here, rtol=0, atol=0)
    assert not torch.equal(by_epoch[0], by_epoch[1])  # a new epoch, new shifts and flips
