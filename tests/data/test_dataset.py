"""How windows leave the caches: copies out of the memory map and positional reads (data.reader=map|pread)
give exactly the map's windows, flipped, shifted and padded alike; persistent DataLoader workers draw each epoch's augmentation
from the (epoch, index) the sampler hands them, as a fresh in-process read does; the ThreadLoader's batches
(data.loader=threads) are the DataLoader's."""
import os

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from hms.data.dataset import HMSDataset
from hms.data.loader import ThreadLoader
from hms.data.prepare import load_prepared, prepare_data
from hms.train.sampler import EpochSampler


@pytest.fixture(scope="module")
def prepared(small_set):
    return load_prepared(prepare_data(small_set, progress=False))


def entries_flipped(inp, window, order):
    """The flip done entry by entry (not block by block, as Source.read does it)."""
    return window.copy() if order is None else np.take(window, inp.flip_index(order), axis=inp.flip_axis)


@pytest.mark.parametrize("reader", ["pread", "map"])
def test_either_reader_gives_the_maps_windows_flipped_shifted_and_padded(prepared, reader):
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
                    expected = entries_flipped(inp, source.window(sid, offset, shift), order)
                    got = source.read(sid, offset, shift, order, reader)
                    assert got.dtype == expected.dtype and got.flags.c_contiguous
                    np.testing.assert_array_equal(got, expected, err_msg=f"{name} {sid} {offset} {flips}")
    spec = prepared.sources["spec"]
    sid = rows.spectrogram_id.iloc[0]
    padded = spec.read(sid, spec.length[sid] * 2.0 - 100.0, reader=reader)  # 100 s from the end: 250 of 300 rows padded
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


@pytest.mark.parametrize("reader", ["pread", "map"])
def test_reading_into_a_dirty_buffer_zeroes_the_padding(prepared, reader):
    spec = prepared.sources["spec"]
    sid = prepared.rows.spectrogram_id.iloc[0]
    offset = spec.length[sid] * 2.0 - 100.0  # 250 of 300 rows past the end
    into = np.full(spec.input.window_shape, np.nan, np.float32)
    assert spec.read(sid, offset, order=np.array([1, 0, 3, 2]), reader=reader, out=into) is into
    expected = entries_flipped(spec.input, spec.window(sid, offset), np.array([1, 0, 3, 2]))
    np.testing.assert_array_equal(into, expected)
    assert (into[50:] == 0).all()


@pytest.mark.parametrize("reader", ["pread", "map"])
def test_thread_loader_batches_are_the_dataloaders(prepared, reader):
    dataset = HMSDataset(prepared, np.arange(22), flip_lr_p=0.5, flip_fb_p=0.5, time_shift_seconds=2.0, seed=3,
                         reader=reader)
    sampler = EpochSampler(len(dataset), 4, seed=3)
    threads = ThreadLoader(dataset, 4, sampler, threads=2, prefetch=1, drop_last=True)
    plain = DataLoader(dataset, batch_size=4, sampler=sampler, drop_last=True)
    assert len(threads) == len(plain) == 5
    for epoch in range(2):
        sampler.set_epoch(epoch)
        got, expected = list(threads), list(plain)
        assert len(got) == 5
        for a, b in zip(got, expected):
            assert list(a) == list(b)
            for key in b:
                assert a[key].dtype == b[key].dtype, key
                torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, equal_nan=True)
    # a list of indices, the last batch short: validation's shard
    shard = list(range(3, 13))
    got = list(ThreadLoader(dataset, 4, shard, threads=3, prefetch=0))
    assert [len(b["row"]) for b in got] == [4, 4, 2]
    assert torch.cat([b["row"] for b in got]).tolist() == [dataset[i]["row"] for i in shard]


@pytest.mark.parametrize("name", ["spec", "eeg"])  # one pread per window, one per channel
def test_thread_loader_raises_a_readers_error_and_leaves_no_threads(prepared, tmp_path, name):
    import shutil
    import threading
    from dataclasses import replace
    from hms.data.kaggle import DataError
    source = prepared.sources[name]
    truncated = tmp_path / source.path.name
    shutil.copyfile(source.path, truncated)
    # the second half of the spectrogram's rows, or of the EEG's channels, is gone
    os.truncate(truncated, source.header_bytes + source.data.nbytes // 2)
    broken = replace(prepared, sources={**prepared.sources, name: replace(source, path=truncated, _fd=None)})
    dataset = HMSDataset(broken, np.arange(len(prepared.rows)), reader="pread")
    before = threading.active_count()
    with pytest.raises(DataError, match=f"{truncated}: shorter than its index says"):
        for _ in ThreadLoader(dataset, 8, range(len(dataset)), threads=2):
            pass
    intact = HMSDataset(prepared, np.arange(len(prepared.rows)))
    for _ in ThreadLoader(intact, 2, range(8), threads=2):  # stopped early, as trainer.max_steps does
        break
    assert threading.active_count() == before
