"""The synthetic set follows the real layout to the letter, is deterministic, its labels look like the
real 10+ vote rows, and every class carries its defining morphology."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from hms.data.kaggle import (read_eeg, read_spectrogram, read_submission_csv, read_test_csv,
                             read_train_csv)
from hms.layout import (CLASSES, CONSENSUS_NAMES, EEG_COLUMNS, EEG_RATE, EEG_TO_SPEC_SECONDS,
                             SPEC_COLUMNS, TRAIN_COLUMNS, VOTE_COLUMNS)
from hms.signal.kaggle_spectrogram import kaggle_spectrogram
from hms.synthetic import GENERATOR_VERSION, ensure_synthetic, make_synthetic, plan_dataset
from hms.synthetic.labels import OTHER, draw_votes, label_stats, true_probabilities
from hms.synthetic.report import bipolar, realism_report
from hms.synthetic.signals import FOCI, eeg_record, pattern

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


TRAITS = {"amplitude": 15.0, "exponent": 1.7, "alpha_hz": 10.0, "alpha_amp": 8.0, "beta_amp": 2.0,
          "sleepy": False, "blink_per_min": 0.0, "muscle_per_min": 0.0, "line_noise": 0.0, "pop_rate": 0.0,
          "ekg_leak": 0.0, "heart_hz": 1.2, "ekg_amp": 600.0, "side": -1, "focus": FOCI[1],
          "discharge_hz": 1.0, "delta_hz": 2.0, "seizure_hz": 5.0, "triphasic": True}
LEFT, RIGHT = [0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15]  # bipolar rows of the banana
FRONT, BACK = [0, 4, 8, 12], [3, 7, 11, 15]  # Fp-F* and *-O pairs


def _record(name, seconds=50, seed=0):
    state = {"label": CLASSES.index(name), "clarity": 1.0, "partner": OTHER, "visibility": 0.0}
    traits = TRAITS | {"sleepy": False}
    return bipolar(np.nan_to_num(eeg_record(state, seconds, traits, np.random.default_rng(seed))))


def _band(x, low, high):
    f = np.fft.rfftfreq(x.shape[-1], 1 / EEG_RATE)
    return (np.abs(np.fft.rfft(x, axis=-1)) ** 2)[..., (f >= low) & (f < high)].sum(axis=-1)


def _periodicity(x, period_s):
    """Autocorrelation of the smoothed sharpness envelope at the discharge period (1 = periodic)."""
    env = np.convolve(np.abs(np.diff(x, axis=-1)).sum(axis=0), np.ones(20) / 20, mode="same")
    env -= env.mean()
    lag = int(period_s * EEG_RATE)
    return max(np.dot(env[:-k], env[k:]) / np.dot(env, env) for k in range(lag - 10, lag + 10))


def test_each_class_shows_its_defining_morphology():
    background = _record("other")
    lrda, grda = _record("lrda"), _record("grda")
    delta = lambda x, rows: _band(x[rows], 0.5, 4).sum()
    assert delta(lrda, LEFT) > 4 * delta(lrda, RIGHT)  # one hemisphere (the patient's left)
    assert 0.5 < delta(grda, LEFT) / delta(grda, RIGHT) < 2  # bilateral ...
    assert _band(grda[FRONT], 0.5, 4).sum() > 2 * _band(grda[BACK], 0.5, 4).sum()  # ... frontally predominant
    for rhythmic in (lrda, grda):  # rhythmic: a peak at the delta frequency, not broadband slowing
        assert _band(rhythmic, 1.8, 2.2).sum() > 5 * _band(rhythmic, 0.5, 1.5).sum() / 2.5
        assert delta(rhythmic, LEFT + RIGHT) > 3 * delta(background, LEFT + RIGHT)
    lpd, gpd = _record("lpd"), _record("gpd")
    assert _periodicity(lpd[LEFT], 1.0) > 0.4 and _periodicity(gpd, 1 / 1.2) > 0.4
    assert _periodicity(background[LEFT], 1.0) < 0.2
    broadband = lambda x, rows: _band(x[rows], 4, 20).sum()
    assert broadband(lpd, LEFT) > 4 * broadband(lpd, RIGHT)  # lateralised, fading across the midline
    assert 0.5 < broadband(gpd, LEFT) / broadband(gpd, RIGHT) < 2  # bilaterally synchronous
    seizure = _record("seizure", seconds=60)  # onset within the first 12 s, evolved after 12-25 s more
    window = lambda x, start: x[:, start * EEG_RATE:(start + 10) * EEG_RATE]
    assert _band(window(seizure, 45), 2.5, 10).sum() > 2 * _band(window(seizure, 2), 2.5, 10).sum()  # amplitude
    f = np.fft.rfftfreq(10 * EEG_RATE, 1 / EEG_RATE)
    peak = lambda x: f[2 * 10:][(np.abs(np.fft.rfft(x, axis=1)) ** 2).sum(axis=0)[2 * 10:].argmax()]
    assert 2.5 < peak(window(seizure, 45)) < peak(window(seizure, 12))  # frequency (it slows down)
    alone = pattern("seizure", 2.0, 60 * EEG_RATE, TRAITS, np.random.default_rng(0))
    involved = lambda x: (x.std(axis=1) > 0.3 * x.std(axis=1).max()).sum()
    assert involved(window(alone, 45)) > involved(window(alone, 12))  # spread over the scalp


def test_ensure_synthetic_builds_once_and_rebuilds_stale_sets(tmp_path):
    out = ensure_synthetic(tmp_path / "set", patients=2, seed=1)
    stats = out / "stats.json"
    assert json.loads(stats.read_text())["generator"] == {"version": GENERATOR_VERSION, "patients": 2, "seed": 1}
    built = stats.stat().st_mtime_ns
    ensure_synthetic(out, patients=2, seed=1)
    assert stats.stat().st_mtime_ns == built  # a no-op when complete
    stats.write_text(json.dumps({"generator": {"version": 0}}))
    ensure_synthetic(out, patients=2, seed=1)
    assert json.loads(stats.read_text())["generator"]["version"] == GENERATOR_VERSION
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


def test_realism_report_writes_a_png_per_class_and_the_table(tiny_set, tmp_path, real_hms):
    table = realism_report(tiny_set, tmp_path / "report", real_hms / "train_highvote_rows.csv")
    assert sorted(p.name for p in (tmp_path / "report").glob("*.png")) == sorted(f"{c}.png" for c in CLASSES)
    assert "| prior kl |" in table and "| 0.845 |" in table
    assert (tmp_path / "report" / "label_stats.md").read_text() == table
