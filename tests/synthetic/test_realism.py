"""The embedded set measured against real scalp EEG (issue 19): each signal statistic of its windows, as a
median, lies inside the range of the real files in tests/fixtures; and the realism report shows it."""
import subprocess
import sys

import numpy as np
import pytest

from hms.layout import CLASSES
from hms.synthetic import make_synthetic
from hms.synthetic.report import realism_report
from hms.synthetic.signal_stats import (CHECKED, export_filtered, file_windows, folder_windows, medians, real_ranges,
                                        window_statistics)

from tests.helpers import REPO


@pytest.fixture(scope="module")
def real_files(real_hms):
    """The real train and public test EEG of the competition, and the PhysioNet EEGMAT recording."""
    return [real_hms / "test_eegs" / "3911565283.parquet", real_hms / "train_eegs" / "1000913311.parquet",
            real_hms.parent / "edf" / "Subject04_2.edf"]


@pytest.fixture(scope="module")
def real_medians(real_files):
    """Each real file's median signal statistics over 5 windows, by file name."""
    return {p.name: medians([window_statistics(w) for w in file_windows(p, 5)]) for p in real_files}


@pytest.fixture(scope="module")
def realism_set(tmp_path_factory):
    """About 130 train EEGs: enough for medians to settle within the real ranges."""
    return make_synthetic(tmp_path_factory.mktemp("realism") / "set", patients=45, seed=1, progress=False)


def test_real_files_show_what_the_generator_must_reproduce(real_medians):
    real = real_medians
    hms_train, hms_test, eegmat = real["1000913311.parquet"], real["3911565283.parquet"], real["Subject04_2.edf"]
    for raw in (hms_train, hms_test):  # raw HMS files: offsets with a negative shared part, drift, 60 Hz
        assert 13 < raw["dc_offset_uv"] < 20 and raw["dc_shared_uv"] < -12 and raw["drift_share"] > 0.7
        assert raw["line_db"] > 14 and raw["reference_r"] > 0.5
    assert export_filtered(eegmat) and not export_filtered(hms_test)  # EEGMAT was high-passed on export
    ranges = real_ranges(real)
    assert ranges["dc_offset_uv"] == (hms_train["dc_offset_uv"], hms_test["dc_offset_uv"])  # EEGMAT left out
    assert ranges["kurtosis"][0] == pytest.approx(eegmat["kurtosis"])  # ... but not for brain figures


def test_embedded_set_medians_lie_inside_the_real_ranges(realism_set, real_medians):
    ranges = real_ranges(real_medians)
    windows = folder_windows(realism_set, 400)
    measured = [window_statistics(w) for _, w in windows]
    ours = medians(measured)
    assert len(measured) >= 100
    outside = {k: (round(ours[k], 3), ranges[k]) for k in CHECKED if not ranges[k][0] <= ours[k] <= ranges[k][1]}
    assert not outside, f"medians outside the real range: {outside}"
    # the patterns too are no longer sharper spectral lines than real EEG (they were 8-10 dB)
    patterns = [s["sharpest_line_db"] for (c, _), s in zip(windows, measured) if c != "Other"]
    assert np.median(patterns) <= ranges["sharpest_line_db"][1]
    # mains in every recording, not a quarter of them
    assert np.mean([s["line_db"] > 6 for s in measured]) > 0.9


def test_realism_report_writes_a_png_per_class_and_both_tables(realism_set, tmp_path, real_hms, real_files):
    table = realism_report(realism_set, tmp_path / "report", real_hms / "train_highvote_rows.csv",
                           real_eegs=real_files, windows=40)
    out = tmp_path / "report"
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f"{c}.png" for c in CLASSES)
    assert "| prior kl |" in table and "| 0.845 |" in table
    assert (out / "label_stats.md").read_text() + "\n" + (out / "signal_stats.md").read_text() == table
    dc_row = next(line for line in table.splitlines() if line.startswith("| DC offset of referential"))
    assert "| 17.6 | 15.0 | (0.027) | 15.0 to 17.6 |" in dc_row and dc_row.split(" | ")[6] in ("yes", "no")
    assert "\n| statistic | 3911565283.parquet | 1000913311.parquet | Subject04_2.edf | real range |" in table


@pytest.mark.parametrize("args, message", [(["--real-eegs", "NOTES"], "NOTES: not an EEG parquet file or an EDF/BDF"),
                                           (["--windows", "0"], "--windows must be a positive integer")])
def test_realism_report_script_refuses_bad_input_in_one_line(realism_set, tmp_path, args, message):
    notes = tmp_path / "notes.txt"
    notes.write_text("not an EEG")
    args = [str(notes) if a == "NOTES" else a for a in args]
    result = subprocess.run([sys.executable, str(REPO / "scripts/realism_report.py"), "--root", str(realism_set),
                             "--out", str(tmp_path / "out"), *args], capture_output=True, text=True)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert message.replace("NOTES", str(notes)) in result.stderr and not (tmp_path / "out").exists()


def test_window_statistics_measure_what_they_say_on_a_constructed_window():
    rng = np.random.default_rng(0)
    n, t = 10_000, np.arange(10_000) / 200
    offsets = np.linspace(-20, 20, 19)
    noise = rng.standard_normal((19, n))
    window = np.zeros((n, 20))
    window[:, :19] = (offsets[:, None] - 10 + 10 * noise).T  # a shared -10 uV on top of each electrode's own
    plain = window_statistics(window)
    assert plain["dc_shared_uv"] == pytest.approx(-10, abs=0.5)
    assert plain["dc_spread_uv"] == pytest.approx(offsets.std(), abs=0.5)
    assert plain["dc_offset_uv"] == pytest.approx(np.abs(offsets - 10).mean(), abs=0.5)
    assert abs(plain["reference_r"]) < 0.05 and abs(plain["kurtosis"]) < 0.1 and plain["line_db"] < 3
    common = window.copy()
    common[:, :19] += 30 * rng.standard_normal(n)[:, None]  # a reference in every column
    assert window_statistics(common)["reference_r"] > 0.85
    mains = window.copy()
    mains[:, 0] += 20 * np.sin(2 * np.pi * 60 * t)  # on Fp1 only: the bipolar pairs see it
    assert window_statistics(mains)["line_db"] > 12  # 2 of 18 derivations: 15.9 dB over white noise
    rhythm = window.copy()
    rhythm[:, 0] += 30 * np.sin(2 * np.pi * 5 * t)  # a pure sinusoid: the sharpest line there is
    assert window_statistics(rhythm)["sharpest_line_db"] > 10 > plain["sharpest_line_db"]
    with pytest.raises(ValueError, match="a window is"):
        window_statistics(window[:5000])
