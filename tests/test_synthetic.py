"""The synthetic set follows the real layout to the letter, is deterministic, and its patterns and labels
carry what they claim."""
import json

import numpy as np
import pandas as pd
import pytest

from hms.data.kaggle import read_eeg, read_spectrogram, read_test_csv, read_train_csv
from hms.data.layout import EEG_COLUMNS, SPEC_COLUMNS, VOTE_COLUMNS
from hms.data.spectrogram import kaggle_spectrogram
from hms.data.synthetic import eeg_signal, make_synthetic, true_probabilities

TRAITS = {"amplitude": 15, "alpha_hz": 10, "sleepy": False, "artefact_rate": 0.0, "ekg_leak": 0.0, "heart_hz": 1.2}


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("syn") / "set", patients=6, seed=3, progress=False)


def test_kaggle_recipe_reproduces_the_real_test_spectrogram(real_hms):
    eeg = read_eeg(real_hms / "test_eegs/3911565283.parquet")
    time, real = read_spectrogram(real_hms / "test_spectrograms/853520.parquet")
    over = (time >= 277) & (time <= 323)  # EEG second t <-> spectrogram time t + 275
    ours = kaggle_spectrogram(eeg, time[over] - 275)
    corr = np.corrcoef(np.log(ours + 1e-2).ravel(), np.log(real[over] + 1e-2).ravel())[0, 1]
    assert corr >= 0.9


def test_layout_and_dtypes_match_the_real_files(tiny_set, real_hms):
    train = read_train_csv(tiny_set / "train.csv")
    test = read_test_csv(tiny_set / "test.csv")
    real_eeg = pd.read_parquet(real_hms / "test_eegs/3911565283.parquet")
    real_spec = pd.read_parquet(real_hms / "test_spectrograms/853520.parquet")
    eeg = pd.read_parquet(next((tiny_set / "train_eegs").glob("*.parquet")))
    spec = pd.read_parquet(next((tiny_set / "train_spectrograms").glob("*.parquet")))
    assert list(eeg.columns) == list(real_eeg.columns) == list(EEG_COLUMNS)
    assert (eeg.dtypes == real_eeg.dtypes).all()
    assert list(spec.columns) == list(real_spec.columns) == list(SPEC_COLUMNS)
    assert (spec.dtypes == real_spec.dtypes).all()
    assert len(eeg) % 200 == 0 and spec.time.iloc[0] == 1 and (np.diff(spec.time) == 2).all()
    assert train.label_id.is_unique and set(train.eeg_id).isdisjoint(test.eeg_id)
    test_eeg = pd.read_parquet(tiny_set / f"test_eegs/{test.eeg_id.iloc[0]}.parquet")
    test_spec = pd.read_parquet(tiny_set / f"test_spectrograms/{test.spectrogram_id.iloc[0]}.parquet")
    assert len(test_eeg) == 10000 and len(test_spec) == 300
    oracle = pd.read_csv(tiny_set / "oracle.csv")
    assert set(train.label_id) <= set(oracle.label_id.dropna().astype(np.int64))
    np.testing.assert_allclose(oracle[list(VOTE_COLUMNS)].sum(axis=1), 1.0)
    solution = pd.read_csv(tiny_set / "solution.csv")
    assert list(solution.eeg_id) == list(test.eeg_id)


def test_deterministic_per_seed(tiny_set, tmp_path):
    again = make_synthetic(tmp_path / "again", patients=6, seed=3, progress=False)
    pd.testing.assert_frame_equal(pd.read_csv(tiny_set / "train.csv"), pd.read_csv(again / "train.csv"))
    name = next((tiny_set / "train_eegs").glob("*.parquet")).name
    np.testing.assert_array_equal(read_eeg(tiny_set / "train_eegs" / name), read_eeg(again / "train_eegs" / name))
    other = make_synthetic(tmp_path / "other", patients=6, seed=4, progress=False)
    assert not pd.read_csv(other / "train.csv").equals(pd.read_csv(again / "train.csv"))


def _band_power(x, low, high):
    f = np.fft.rfftfreq(x.shape[0], 1 / 200)
    p = np.abs(np.fft.rfft(np.nan_to_num(x), axis=0)) ** 2
    return p[(f >= low) & (f < high)].sum(axis=0)


def test_class_morphology_is_present():
    rng = np.random.default_rng(0)
    left = [EEG_COLUMNS.index(e) for e in ("Fp1", "F3", "C3", "P3", "F7", "T3", "T5", "O1")]
    right = [EEG_COLUMNS.index(e) for e in ("Fp2", "F4", "C4", "P4", "F8", "T4", "T6", "O2")]
    lrda = eeg_signal(3, 1.0, 50, TRAITS, rng)
    delta = _band_power(lrda, 0.5, 4)
    assert max(delta[left].sum() / delta[right].sum(), delta[right].sum() / delta[left].sum()) > 3
    grda = eeg_signal(4, 1.0, 50, TRAITS, rng)
    delta = _band_power(grda, 0.5, 4)
    assert 0.5 < delta[left].sum() / delta[right].sum() < 2
    front, back = EEG_COLUMNS.index("F3"), EEG_COLUMNS.index("P3")
    assert delta[front] > delta[back]  # frontal predominance
    other = eeg_signal(5, 1.0, 50, TRAITS, rng)
    assert _band_power(grda, 0.5, 4).sum() > 3 * _band_power(other, 0.5, 4).sum()
    seizure = eeg_signal(0, 1.0, 50, TRAITS, rng)
    early, late = seizure[:2000], seizure[-2000:]
    assert np.abs(late[:, :19]).mean() > 1.5 * np.abs(early[:, :19]).mean()  # evolves in amplitude


def test_true_probabilities_mix_class_and_confusions():
    clear, vague = true_probabilities(1, 1.0), true_probabilities(1, 0.0)
    assert clear[1] > 0.9 and vague[1] < 0.4 and vague[2] > vague[4]  # LPD confused with GPD
    assert np.isclose(clear.sum(), 1) and np.isclose(vague.sum(), 1)


def test_stats_report_the_label_figures(tiny_set):
    stats = json.loads((tiny_set / "stats.json").read_text())
    assert stats["bayes_kl"] < stats["prior_kl"]
    assert 0 < stats["target_entropy"] < 1.8
