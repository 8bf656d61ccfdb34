"""Folds, de-duplication, caches and the Dataset, on real rows and a layout built from real files."""
import shutil

import numpy as np
import pandas as pd
import pytest

from hms.data.dataset import HMSDataset, TestDataset
from hms.data.kaggle import DataError, read_eeg, read_spectrogram, read_train_csv
from hms.layout import EEG_COLUMNS, FLIP_FB, FLIP_LR, SPEC_REGION_FLIP_LR, TRAIN_COLUMNS
from tests.helpers import spec_columns
from hms.data.prepare import add_labels, assign_folds, load_prepared, prepare_data
from hms.data.sampling import select_rows


def test_folds_are_patient_grouped_stratified_and_reproducible(real_hms):
    rows = add_labels(read_train_csv(real_hms / "train_highvote_rows.csv"))
    fold = assign_folds(rows, 5, seed=42)
    assert (rows.assign(fold=fold).groupby("patient_id").fold.nunique() == 1).all()
    overall = rows.expert_consensus.value_counts(normalize=True)
    for k in range(5):
        mix = rows[fold == k].expert_consensus.value_counts(normalize=True)
        assert (mix - overall).abs().max() < 0.05, (k, mix)
    np.testing.assert_array_equal(fold, assign_folds(rows, 5, seed=42))
    assert not np.array_equal(fold, assign_folds(rows, 5, seed=7))


@pytest.fixture
def small_layout(real_hms, tmp_path):
    """A train folder from real files: the real train EEG (10,000 rows) and, as its spectrogram, the
    real public test spectrogram; 10 patients so that 5 folds exist."""
    (tmp_path / "train_eegs").mkdir()
    (tmp_path / "train_spectrograms").mkdir()
    rows = []
    for i in range(10):
        shutil.copy(real_hms / "train_eegs/1000913311.parquet", tmp_path / f"train_eegs/{100 + i}.parquet")
        shutil.copy(real_hms / "test_spectrograms/853520.parquet", tmp_path / f"train_spectrograms/{200 + i}.parquet")
        votes = [0, 0, 0, 0, 0, 0]
        votes[i % 6] = 3 + 10 * (i % 2)
        rows.append([100 + i, 0, 0.0, 200 + i, 0, 0.0, 1000 + i, 50 + i,
                     ["Seizure", "LPD", "GPD", "LRDA", "GRDA", "Other"][i % 6], *votes])
    pd.DataFrame(rows, columns=list(TRAIN_COLUMNS)).to_csv(tmp_path / "train.csv", index=False)
    return tmp_path


def test_cache_slices_equal_the_parquet_values(small_layout, real_hms):
    cache = prepare_data(small_layout, workers=1, progress=False)
    prepared = load_prepared(cache)
    eeg = read_eeg(real_hms / "train_eegs/1000913311.parquet")
    _, spec = read_spectrogram(real_hms / "test_spectrograms/853520.parquet")
    ds = HMSDataset(prepared, np.arange(10))
    item = ds[3]
    np.testing.assert_array_equal(item["eeg"].numpy(), np.nan_to_num(eeg).T)
    np.testing.assert_array_equal(item["spec"].numpy(), spec)  # NaN kept for the models to repair (equal_nan)
    assert item["eeg"].shape == (20, 10000) and item["spec"].shape == (300, 400)
    assert item["target"].sum().item() == pytest.approx(1.0) and item["n_votes"].item() in (3, 13)
    assert select_rows(prepared.rows, 0, "val", 10, "vote_vector").size + select_rows(
        prepared.rows, 0, "train", 10, "vote_vector").size == 5


def test_cache_rebuild_is_skipped_when_up_to_date(small_layout):
    cache = prepare_data(small_layout, workers=1, progress=False)
    stamp = (cache / "eeg.npy").stat().st_mtime_ns
    prepare_data(small_layout, workers=1, progress=False)
    assert (cache / "eeg.npy").stat().st_mtime_ns == stamp
    shutil.copy(small_layout / "train_eegs/100.parquet", small_layout / "train_eegs/101.parquet")
    (small_layout / "train_eegs/101.parquet").touch()
    prepare_data(small_layout, workers=1, progress=False)
    assert (cache / "eeg.npy").stat().st_mtime_ns != stamp


def test_missing_spectrogram_is_one_clear_error(small_layout):
    (small_layout / "train_spectrograms/204.parquet").unlink()
    with pytest.raises(DataError, match="204.parquet: file not found"):
        prepare_data(small_layout, workers=1, progress=False)


def test_flips_permute_raw_electrodes_and_spectrogram_regions(small_layout):
    prepared = load_prepared(prepare_data(small_layout, workers=1, progress=False))
    plain = HMSDataset(prepared, np.arange(10))[2]
    flipped = HMSDataset(prepared, np.arange(10), flip_lr_p=1.0)[2]
    np.testing.assert_array_equal(flipped["eeg"].numpy(), plain["eeg"].numpy()[list(FLIP_LR)])
    np.testing.assert_array_equal(flipped["spec"].numpy(), plain["spec"].numpy()[:, spec_columns(SPEC_REGION_FLIP_LR)])
    assert not np.array_equal(flipped["eeg"].numpy(), plain["eeg"].numpy())
    both = HMSDataset(prepared, np.arange(10), flip_lr_p=1.0, flip_fb_p=1.0)[2]  # front/back after left/right
    np.testing.assert_array_equal(both["eeg"].numpy(), plain["eeg"].numpy()[list(FLIP_LR)][list(FLIP_FB)])
    np.testing.assert_array_equal(both["spec"].numpy(), flipped["spec"].numpy())  # front/back keeps regions
    back = HMSDataset(prepared, np.arange(10), flip_fb_p=1.0)[2]
    np.testing.assert_array_equal(back["eeg"].numpy(), plain["eeg"].numpy()[list(FLIP_FB)])
    np.testing.assert_array_equal(back["spec"].numpy(), plain["spec"].numpy())


def test_one_window_per_eeg_is_a_function_of_seed_epoch_index(small_layout):
    prepared = load_prepared(prepare_data(small_layout, workers=1, progress=False))
    ds = HMSDataset(prepared, np.arange(10), one_window_per_eeg=True, time_shift_seconds=0.0, seed=1)
    assert len(ds) == 10
    first = [ds[i]["row"].item() for i in range(10)]
    assert first == list(range(10))  # one row per EEG here
    ds.set_epoch(1)
    assert [ds[i]["row"].item() for i in range(10)] == first


def test_test_dataset_reads_the_real_public_test_pair(real_hms):
    ds = TestDataset(real_hms)
    item = ds[0]
    eeg = read_eeg(real_hms / "test_eegs/3911565283.parquet")
    assert item["eeg_id"].item() == 3911565283
    np.testing.assert_array_equal(item["eeg"].numpy(), eeg.T)
    assert item["spec"].shape == (300, 400) and len(EEG_COLUMNS) == item["eeg"].shape[0]


def test_folder_lock_makes_a_second_builder_wait(tmp_path):
    import threading
    import time

    from hms.data.prepare import folder_lock
    held, waited = threading.Event(), []

    def first():
        with folder_lock(tmp_path / "set"):
            held.set()
            time.sleep(0.4)

    thread = threading.Thread(target=first)
    thread.start()
    held.wait()
    start = time.perf_counter()
    with folder_lock(tmp_path / "set"):
        waited.append(time.perf_counter() - start)
    thread.join()
    assert waited[0] > 0.3


def test_the_time_shift_reports_where_the_labelled_centre_lands(small_set):
    """3rd place: start' = U(start - 3333, start + 3333) clipped to the file; centre = start - start' + 5000."""
    prepared = load_prepared(prepare_data(small_set, workers=1, progress=False))
    rows = prepared.rows
    inside = np.flatnonzero(rows.eeg_label_offset_seconds.to_numpy() >= 20)[:5]  # room to shift both ways
    plain = HMSDataset(prepared, inside)
    shifted = HMSDataset(prepared, inside, time_shift_seconds=3333 / 200, seed=4)
    eeg = prepared.sources["eeg"]
    centres = []
    for i in range(len(inside)):
        assert plain[i]["centre"] == 5000
        item = shifted[i]
        r = rows.iloc[inside[i]]
        full = eeg.data[:, eeg.start[r.eeg_id]: eeg.start[r.eeg_id] + eeg.length[r.eeg_id]]
        start = int(r.eeg_label_offset_seconds * 200) + 5000 - int(item["centre"])  # the shifted window's start
        np.testing.assert_array_equal(item["eeg"].numpy(), full[:, start:start + 10000])
        centres.append(int(item["centre"]))
    assert all(5000 - 3333 <= c <= 5000 + 3333 for c in centres) and len(set(centres)) > 1
