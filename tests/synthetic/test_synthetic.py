"""The synthetic set follows the real layout to the letter, is deterministic, and its labels look like
the real 10+ vote rows (the signals: test_signals.py; against real EEG: test_realism.py)."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from hms.data.kaggle import (read_eeg, read_spectrogram, read_submission_csv, read_test_csv,
                             read_train_csv)
from hms.layout import (CLASSES, CONSENSUS_NAMES, EEG_COLUMNS, EEG_RATE, EEG_TO_SPEC_SECONDS, SPEC_COLUMNS,
                        TRAIN_COLUMNS, VOTE_COLUMNS)
from hms.signal.kaggle_spectrogram import kaggle_spectrogram
from hms.synthetic import GENERATOR_VERSION, ensure_synthetic, make_synthetic, plan_dataset
from hms.synthetic.labels import OTHER, draw_votes, label_stats, true_probabilities

from tests.helpers import REPO


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("syn") / "set", patients=6, seed=3, workers=2, progress=False)


def test_layout_and_dtypes_match_the_real_files(tiny_set, real_hms):
    for split, eeg_file, spec_file in (("train", "train_eegs/1000913311.parquet", "test_spectrograms/853520.parquet"),
                                       ("test", "test_eegs/3911565283.parquet", "test_spectrograms/853520.parquet")):
        real_eeg, real_spec = pd.read_parquet(real_hms / eeg_file), pd.read_parquet(real_hms / spec_file)
        for path in (tiny_set / f"{split}_eegs").glob("*.parquet"):
            eeg = pd.read_parquet(path)
            assert list(eeg.columns) == list(real_eeg.columns) == list(EEG_COLUMNS)
            assert (eeg.dtypes == real_eeg.dtypes).all() and len(eeg) % EEG_RATE == 0
            np.testing.assert_allclose(eeg.to_numpy(), np.round(eeg.to_numpy(), 2), atol=1e-5)  # 0.01 uV
        for path in (tiny_set / f"{split}_spectrograms").glob("*.parquet"):
            spec = pd.read_parquet(path)
            assert list(spec.columns) == list(real_spec.columns) == list(SPEC_COLUMNS)
            assert (spec.dtypes == real_spec.dtypes).all()
            assert spec.time.iloc[0] == 1 and (np.diff(spec.time) == 2).all()
    train, test = read_train_csv(tiny_set / "train.csv"), read_test_csv(tiny_set / "test.csv")
    assert list(pd.read_csv(tiny_set / "train.csv").dtypes) == list(pd.read_csv(real_hms / "train_highvote_rows.csv").dtypes)
    assert train.label_id.is_unique and set(train.expert_consensus) <= set(CONSENSUS_NAMES)
    assert (train.eeg_label_offset_seconds % 2 == 0).all()
    for a, b in (("eeg_id", "eeg_id"), ("spectrogram_id", "spectrogram_id"), ("patient_id", "patient_id")):
        assert set(train[a]).isdisjoint(test[b])
    assert train.eeg_id.max() < 2**32 and train.spectrogram_id.max() < 2**31 and train.patient_id.max() < 65_536
    for row in train.itertuples():  # every window lies inside its EEG and its spectrogram
        assert len(pd.read_parquet(tiny_set / f"train_eegs/{row.eeg_id}.parquet", columns=["EKG"])) >= \
            (row.eeg_label_offset_seconds + 50) * EEG_RATE
        time = pd.read_parquet(tiny_set / f"train_spectrograms/{row.spectrogram_id}.parquet", columns=["time"]).time
        assert time.iloc[-1] >= row.spectrogram_label_offset_seconds + 599
    for eeg_id, spec_id in zip(test.eeg_id, test.spectrogram_id):
        assert len(read_eeg(tiny_set / f"test_eegs/{eeg_id}.parquet")) == 10_000
        assert len(read_spectrogram(tiny_set / f"test_spectrograms/{spec_id}.parquet")[0]) == 300
    submission, solution = (read_submission_csv(tiny_set / f) for f in ("sample_submission.csv", "solution.csv"))
    assert list(submission.eeg_id) == list(solution.eeg_id) == list(test.eeg_id)
    oracle = pd.read_csv(tiny_set / "oracle.csv")
    assert list(oracle.columns) == ["label_id", "eeg_id", *VOTE_COLUMNS]
    assert set(oracle.label_id.dropna().astype(np.int64)) == set(train.label_id)
    assert set(oracle.eeg_id[oracle.label_id.isna()]) == set(test.eeg_id)
    np.testing.assert_allclose(oracle[list(VOTE_COLUMNS)].sum(axis=1), 1.0)


def test_spectrogram_rows_over_an_eeg_follow_the_recipe(tiny_set):
    train = read_train_csv(tiny_set / "train.csv")
    shared = train.groupby("spectrogram_id").eeg_id.nunique().idxmax()  # prefer one shared by chunks
    for eeg_id, rows in train[train.spectrogram_id == shared].groupby("eeg_id"):
        eeg = read_eeg(tiny_set / f"train_eegs/{eeg_id}.parquet")
        start = rows.spectrogram_label_offset_seconds.iloc[0] - rows.eeg_label_offset_seconds.iloc[0]
        time, power = read_spectrogram(tiny_set / f"train_spectrograms/{shared}.parquet")
        centre = time - EEG_TO_SPEC_SECONDS - start
        inside = (centre > 3) & (centre < len(eeg) / EEG_RATE - 3)
        ours = kaggle_spectrogram(eeg, centre[inside])
        ok = ~np.isnan(power[inside]).any(axis=1)
        assert ok.sum() >= 10
        np.testing.assert_allclose(ours[ok], power[inside][ok], atol=0.011)


def test_deterministic_per_seed(tiny_set, tmp_path):
    again = make_synthetic(tmp_path / "again", patients=6, seed=3, workers=1, progress=False)
    files = sorted(p.relative_to(tiny_set) for p in tiny_set.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for f in files:  # byte for byte, whatever the number of workers
        assert (tiny_set / f).read_bytes() == (again / f).read_bytes(), f
    other = pd.DataFrame(plan_dataset(6, 4)["train"], columns=list(TRAIN_COLUMNS))
    assert not other.equals(pd.read_csv(tiny_set / "train.csv"))


def test_default_size_and_label_statistics_are_realistic():
    plan = plan_dataset(450, 0)  # the default set, without its signals
    rows = pd.DataFrame(plan["train"], columns=list(TRAIN_COLUMNS))
    high, windows = label_stats(rows, np.array(plan["truth"])), label_stats(rows, min_votes=1)
    assert 1000 <= rows.eeg_id.nunique() <= 2000 and rows.patient_id.nunique() == 450
    assert rows.groupby("patient_id").eeg_id.nunique().mean() > 2.5  # several EEGs per patient
    assert rows.groupby("eeg_id").size().mean() > 3  # several overlapping sub-windows per EEG
    assert rows.groupby("spectrogram_id").eeg_id.nunique().max() > 1  # EEGs share spectrograms
    assert high["rows"] >= 300 and 0.2 < high["rows"] / windows["rows"] < 0.4
    votes = rows[list(VOTE_COLUMNS)].sum(axis=1)
    assert votes.between(8, 9).sum() == 0 and votes.max() <= 28  # bimodal: 1-7 and 10-28
    real = {"Seizure": 0.043, "LPD": 0.195, "GPD": 0.126, "LRDA": 0.051, "GRDA": 0.071, "Other": 0.514}
    for name, share in real.items():
        assert abs(high["consensus_mix"][name] - share) < 0.04, name
    assert abs(high["target_entropy"] - 0.64) < 0.06 and abs(high["prior_kl"] - 0.845) < 0.08
    assert 0.05 < high["unanimous"] < 0.25 and high["votes_median"] in (14, 15, 16)
    assert high["bayes_kl"] < 0.25 * high["prior_kl"]


def test_true_probabilities_mix_class_clarity_and_confusions():
    lpd = CLASSES.index("lpd")
    clear, faint = true_probabilities(lpd, 1.0, OTHER, 0.0), true_probabilities(lpd, 0.0, OTHER, 0.0)
    assert clear[lpd] > 0.9 and faint[lpd] < 0.4 and faint[OTHER] > faint[CLASSES.index("grda")]
    assert faint[CLASSES.index("gpd")] > faint[CLASSES.index("grda")]  # LPD is confused with GPD
    with_partner = true_probabilities(lpd, 0.5, CLASSES.index("seizure"), 1.0)
    assert with_partner[0] > true_probabilities(lpd, 0.5, CLASSES.index("seizure"), 0.0)[0]
    messy_other = true_probabilities(OTHER, 0.0, CLASSES.index("grda"), 1.0)
    assert messy_other[OTHER] < 0.7 and messy_other[CLASSES.index("grda")] > 0.2
    for p in (clear, faint, with_partner, messy_other):
        assert np.isclose(p.sum(), 1) and (p >= 0).all()
    rng = np.random.default_rng(0)
    assert all(10 <= draw_votes(rng, clear, True).sum() <= 28 for _ in range(50))
    assert all(1 <= draw_votes(rng, clear, False).sum() <= 7 for _ in range(50))


def test_ensure_synthetic_builds_once_and_rebuilds_stale_sets(tmp_path):
    out = ensure_synthetic(tmp_path / "set", patients=2, seed=1)
    stats = out / "stats.json"
    assert json.loads(stats.read_text())["generator"] == {"version": GENERATOR_VERSION, "patients": 2, "seed": 1,
                                                          "line_hz": 60}
    built = stats.stat().st_mtime_ns
    ensure_synthetic(out, patients=2, seed=1)
    assert stats.stat().st_mtime_ns == built  # a no-op when complete
    stats.write_text(json.dumps({"generator": {"version": 0}}))
    ensure_synthetic(out, patients=2, seed=1)
    assert json.loads(stats.read_text())["generator"]["version"] == GENERATOR_VERSION
    ensure_synthetic(out, patients=2, seed=1, line_hz=50)  # another mains frequency is another set
    assert json.loads(stats.read_text())["generator"]["line_hz"] == 50
    assert [p.name for p in tmp_path.iterdir()] == ["set"]  # no temp folders left behind
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a synthetic data set"):
        make_synthetic(foreign, patients=2)
    assert (foreign / "notes.txt").exists()


@pytest.mark.parametrize("args, message", [(["--patients", "0"], "patients must be a positive integer"),
                                           (["--seed", str(2**32)], "seed must be an integer in")])
def test_make_synthetic_script_rejects_bad_input(tmp_path, args, message):
    result = subprocess.run([sys.executable, str(REPO / "scripts/make_synthetic.py"), "--out", str(tmp_path / "x"),
                             *args], capture_output=True, text=True)
    assert result.returncode == 1 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_make_synthetic_rejects_a_mains_frequency_other_than_50_or_60(tmp_path):
    with pytest.raises(ValueError, match="line_hz must be one of"):
        make_synthetic(tmp_path / "x", patients=2, line_hz=55)
