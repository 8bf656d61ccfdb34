"""Clinical recordings read as the models' raw EEG: a 256 Hz file with 10-10 names gives the windows of
the same signal at 200 Hz with 10-20 names; labels, channel maps, units, short, missing, flat and broken
files; spans join exactly; the real PhysioNet recording."""
import json

import edfio
import numpy as np
import pytest

from hms.data.edf import (EdfError, electrode_of, flat_channels, match_channels, open_recording, read_channel_map,
                          spec_centres, spec_padded, window_starts)
from hms.layout import EEG_COLUMNS, EEG_RATE, EEG_WINDOW, ELECTRODES

from tests.helpers import REPO

REAL = REPO / "tests" / "fixtures" / "edf" / "Subject04_2.edf"
TEN_TEN = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}


def signal(seconds: float, rate: float, channel: int) -> np.ndarray:
    """A band-limited test signal in microvolts (six sines, 1.3-37 Hz, of the channel's own amplitudes
    and phases), sampled at `rate`: the same continuous signal whatever the rate."""
    rng = np.random.default_rng(channel)
    freqs, amps, phases = np.array([1.3, 4.1, 7.7, 11.0, 23.0, 37.0]), rng.uniform(5, 25, 6), rng.uniform(0, 6.28, 6)
    t = np.arange(int(round(seconds * rate))) / rate
    return (amps[:, None] * np.sin(2 * np.pi * freqs[:, None] * t + phases[:, None])).sum(axis=0)


def write_edf(path, labels, seconds=60.0, rate=200.0, unit="uV", scale=1.0, half_range=500.0, data=None):
    """An EDF file of `labels`, each the test signal of its position (or `data[label]`), written in `unit`
    (the values multiplied by `scale`, the physical range +-half_range)."""
    signals = [edfio.EdfSignal((data or {}).get(label, signal(seconds, rate, k)) * scale, rate, label=label,
                               physical_dimension=unit, physical_range=(-half_range, half_range))
               for k, label in enumerate(labels)]
    edfio.Edf(signals).write(path)
    return path


def write_bdf(path, labels, seconds=60, rate=200, half_range=500.0):
    """A BDF file (24-bit samples; edfio writes only EDF) of the test signals, in uV, 1 s records."""
    n, rate = len(labels), int(rate)
    fields = [(16, labels), (80, [""] * n), (8, ["uV"] * n), (8, [-half_range] * n), (8, [half_range] * n),
              (8, [-2 ** 23] * n), (8, [2 ** 23 - 1] * n), (80, [""] * n), (8, [rate] * n), (32, [""] * n)]
    header = (b"\xffBIOSEMI" + b" " * 160 + b"01.01.10" + b"00.00.00" + f"{256 * (n + 1):<8d}".encode()
              + b"24BIT".ljust(44) + f"{seconds:<8d}{1:<8d}{n:<4d}".encode())
    header += b"".join(f"{value:<{width}}".encode() for width, values in fields for value in values)
    step = 2 * half_range / (2 ** 24 - 1)
    digital = np.stack([np.round((signal(seconds, rate, k) + half_range) / step) - 2 ** 23 for k in range(n)])
    records = digital.astype("<i4").reshape(n, seconds, rate).transpose(1, 0, 2)  # [record, signal, sample]
    path.write_bytes(header + np.ascontiguousarray(records).view(np.uint8).reshape(-1, 4)[:, :3].tobytes())
    return path


STANDARD = [f"EEG {e}-REF" for e in ELECTRODES] + ["EKG"]


def test_256_hz_with_10_10_names_gives_the_200_hz_windows(tmp_path):
    ten_ten = [f"EEG {TEN_TEN.get(e, e)}-REF" for e in ELECTRODES] + ["ECG"]
    fast = open_recording(write_edf(tmp_path / "fast.edf", ten_ten, rate=256))
    plain = open_recording(write_edf(tmp_path / "plain.edf", STANDARD, rate=200))
    assert (fast.up, fast.down, fast.n_samples) == (25, 32, 60 * EEG_RATE)
    assert fast.mapping["T3"] == "EEG T7-REF" and fast.mapping["EKG"] == "ECG" and fast.missing == []
    starts = window_starts(fast.n_samples, 10)
    assert starts.tolist() == [0, 2000]
    a, b = fast.windows(starts), plain.windows(starts)
    assert a.shape == b.shape == (2, 20, EEG_WINDOW)
    # Beyond 50 ms of the recording's ends (the filter's edge transient) the two agree to 0.077 uV, 0.28%
    # of the signal's RMS (28 uV): the anti-alias filter's ripple at 37 Hz and 16-bit quantisation.
    t = starts[:, None] + np.arange(EEG_WINDOW)
    inner = (t >= 10) & (t < fast.n_samples - 10)
    error = np.abs(a - b).transpose(0, 2, 1)[inner]
    assert error.max() < 0.1
    assert error.max() / np.sqrt((b ** 2).mean()) < 0.004


@pytest.mark.parametrize("label, column", [
    ("EEG FP1-REF", "Fp1"), ("Fp1.", "Fp1"), ("FP1", "Fp1"), ("EEG Fp1", "Fp1"), ("EEG Fp1-LE", "Fp1"),
    ("T7", "T3"), ("EEG T8-REF", "T4"), ("p7", "T5"), ("P8.", "T6"), ("EEG CZ-AVG", "Cz"),
    ("ECG ECG", "EKG"), ("EEG EKG1-REF", "EKG"), ("EKG", "EKG"),
    ("Fp1-F7", None), ("EEG Cz-Pz", None), ("EEG A2-A1", None), ("PHOTIC-REF", None), ("T1", None),
])
def test_labels_map_to_electrodes(label, column):
    assert electrode_of(label) == column


def test_a_channel_map_names_what_matching_cannot(tmp_path):
    labels = [f"Chan {k}" for k in range(19)] + ["X1", "EEG Fp1-REF"]
    entries = {f"chan {k}": e for k, e in enumerate(ELECTRODES)} | {"X1": "ecg", "EEG Fp1-REF": None, "gone": "Cz"}
    (tmp_path / "map.json").write_text(json.dumps(entries))
    mapping = match_channels(labels, read_channel_map(tmp_path / "map.json"))
    assert mapping == {e: f"Chan {k}" for k, e in enumerate(ELECTRODES)} | {"EKG": "X1"}

    (tmp_path / "bad.json").write_text(json.dumps({"Chan 1": "Fp3"}))
    with pytest.raises(EdfError, match=r"bad.json: 'Fp3' is not an electrode"):
        read_channel_map(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(EdfError, match="list.json: a channel map is a JSON object"):
        read_channel_map(tmp_path / "list.json")


def test_two_channels_for_one_electrode_is_an_error():
    with pytest.raises(EdfError, match=r"f.edf: channels 'T3', 'EEG T7-REF' all look like T3; say which one"):
        match_channels(["T3", "EEG T7-REF", "Fp1"], where="f.edf")
    assert match_channels(["T3", "EEG T7-REF"], {"T3": None}) == {"T3": "EEG T7-REF"}


def test_short_recording_is_an_error(tmp_path):
    path = write_edf(tmp_path / "short.edf", STANDARD, seconds=49)
    with pytest.raises(EdfError, match=r"short.edf: the recording is 49.0 s, shorter than one 50 s window"):
        open_recording(path)


def test_missing_electrodes_are_an_error_or_zeros(tmp_path):
    path = write_edf(tmp_path / "gap.edf", [label for label in STANDARD if "Cz" not in label and label != "EKG"])
    with pytest.raises(EdfError, match=r"gap.edf: no channel for electrodes Cz \(channels: EEG Fp1-REF,.*-missing"):
        open_recording(path)
    recording = open_recording(path, allow_missing=True)
    assert recording.missing == ["Cz", "EKG"]
    assert any("Cz are missing: zero-filled" in a for a in recording.assumptions)
    assert any("no ECG/EKG channel" in a for a in recording.assumptions)
    window = recording.windows([0])[0]
    assert (window[EEG_COLUMNS.index("Cz")] == 0).all() and (window[EEG_COLUMNS.index("EKG")] == 0).all()
    assert window[EEG_COLUMNS.index("Pz")].std() > 10


def test_not_edf_is_an_error(tmp_path):
    (tmp_path / "table.edf").write_text("eeg_id,seizure_vote\n1,0\n")
    with pytest.raises(EdfError, match=r"table.edf: not an EDF or BDF file \(starts b'eeg_id"):
        open_recording(tmp_path / "table.edf")
    with pytest.raises(EdfError, match="nothing.edf: file not found"):
        open_recording(tmp_path / "nothing.edf")
    header = bytearray((write_edf(tmp_path / "bad.edf", STANDARD)).read_bytes())
    header[236:244] = b"x       "  # number of records
    header[252:256] = b"zz  "  # number of signals
    (tmp_path / "bad.edf").write_bytes(bytes(header))
    with pytest.raises(EdfError, match=r"bad.edf: cannot read as EDF \("):
        open_recording(tmp_path / "bad.edf")


def test_a_bdf_file_reads_like_the_edf(tmp_path):
    bdf = open_recording(write_bdf(tmp_path / "biosemi.bdf", STANDARD))
    edf = open_recording(write_edf(tmp_path / "same.edf", STANDARD))
    assert (bdf.kind, bdf.n_samples, bdf.units["EEG Fp1-REF"]) == ("BDF", 60 * EEG_RATE, "µV")
    np.testing.assert_allclose(bdf.windows([0, 2000]), edf.windows([0, 2000]), atol=0.01)  # EDF's 16-bit steps


@pytest.mark.parametrize("unit, scale", [("uV", 1.0), ("uv", 1.0), ("mV", 1e-3), ("V", 1e-6), ("nV", 1e3), ("UV", 1.0)])
def test_every_voltage_unit_reads_as_microvolts(tmp_path, unit, scale):
    path = write_edf(tmp_path / "units.edf", STANDARD, unit=unit, scale=scale, half_range=500 * scale)
    window = open_recording(path).windows([0])[0]
    expected = signal(60, 200, 0)[:EEG_WINDOW]
    np.testing.assert_allclose(window[0], expected, atol=0.02)  # 16-bit steps of 1000 uV: 0.015 uV
    # "uv" and "UV" are microvolts too, though MNE reads any unit but "uV" and "mV" as volts


def test_wrong_or_unknown_units_are_errors_or_overridden(tmp_path):
    path = write_edf(tmp_path / "volts.edf", STANDARD, unit="V", half_range=500)  # microvolt values labelled V
    with pytest.raises(EdfError, match=r"volts.edf: channel 'EEG Fp1-REF' spans \+-5e\+08 uV by its header \(unit 'V"):
        open_recording(path)
    recording = open_recording(path, units="uV")
    np.testing.assert_allclose(recording.windows([0])[0, 0], signal(60, 200, 0)[:EEG_WINDOW], atol=0.02)
    assert "units: every channel read as uV (the header units were overridden)" in recording.assumptions
    path = write_edf(tmp_path / "kelvin.edf", STANDARD, unit="K")
    with pytest.raises(EdfError, match=r"kelvin.edf: channel 'EEG Fp1-REF' has unit 'K', not a voltage"):
        open_recording(path)
    with pytest.raises(EdfError, match=r"kelvin.edf: units 'furlongs' is not one of uV, mV, V, nV"):
        open_recording(path, units="furlongs")


def test_flat_channels_are_flagged_per_window(tmp_path):
    data = {"EEG O1-REF": np.r_[signal(60, 200, 7), np.full(60 * 200, 3.0)]}  # O1 goes flat at 60 s
    recording = open_recording(write_edf(tmp_path / "flat.edf", STANDARD, seconds=120, data=data))
    starts = window_starts(recording.n_samples, 10)
    flat = flat_channels(recording, recording.windows(starts))
    assert flat == [[]] * 6 + [["O1"]] * 2  # the window from 50 s still holds 10 s of O1's signal


def test_a_nan_range_or_a_discontinuous_file_is_an_error(tmp_path):
    raw = bytearray(write_edf(tmp_path / "nan.edf", STANDARD).read_bytes())
    n = len(STANDARD)
    start = 256 + n * (16 + 80 + 8)  # physical minimum of the first signal
    raw[start:start + 8] = b"nan     "
    (tmp_path / "nan.edf").write_bytes(bytes(raw))
    with pytest.raises(EdfError, match=r"nan.edf: channel 'EEG Fp1-REF' has an invalid range in its header"):
        open_recording(tmp_path / "nan.edf")
    recording = open_recording(write_edf(tmp_path / "fine.edf", STANDARD))
    real_get_data = recording.raw.get_data

    def with_a_nan(**kwargs):  # no EDF stores NaN; a reader bug or a future format might hand one over
        data = real_get_data(**kwargs)
        data[3, 200 - kwargs["start"]] = np.nan
        return data

    recording.raw.get_data = with_a_nan
    with pytest.raises(EdfError, match=r"fine.edf: channel 'EEG P3-REF' holds a non-finite value at 1.00 s"):
        recording.windows([0])
    raw = bytearray(write_edf(tmp_path / "gaps.edf", STANDARD).read_bytes())
    raw[192:197] = b"EDF+D"
    (tmp_path / "gaps.edf").write_bytes(bytes(raw))
    with pytest.raises(EdfError, match=r"gaps.edf: EDF\+D \(discontinuous\) recordings are not supported"):
        open_recording(tmp_path / "gaps.edf")


def test_a_truncated_file_is_read_and_reported(tmp_path):
    data = write_edf(tmp_path / "cut.edf", STANDARD, seconds=80).read_bytes()
    header = 256 * (len(STANDARD) + 1)
    (tmp_path / "cut.edf").write_bytes(data[:header + (len(data) - header) * 3 // 4])
    recording = open_recording(tmp_path / "cut.edf")
    assert recording.duration == 60
    assert "truncated file: the header declares 80 s, the file holds 60 s; read those" in recording.assumptions


def test_the_real_recording_reads_in_spans_that_join_exactly():
    recording = open_recording(REAL)
    assert (recording.kind, recording.file_rate, recording.duration, recording.n_samples) == ("EDF+C", 500, 62, 12400)
    assert recording.mapping["T5"] == "EEG T5" and recording.mapping["EKG"] == "ECG ECG" and recording.missing == []
    assert recording.units["EEG Fp1"] == "µV" and recording.units["ECG ECG"] == "mV"
    whole = recording.read(0, recording.n_samples)
    assert 5 < np.median(whole[:19].std(axis=1)) < 50  # microvolts
    parts = np.concatenate([recording.read(-300, 4321)[:, 300:], recording.read(4321, 13000)], axis=1)
    np.testing.assert_array_equal(parts[:, :recording.n_samples], whole)
    assert (parts[:, recording.n_samples:] == 0).all()


def test_window_starts_and_spectrogram_rows():
    assert window_starts(60 * EEG_RATE, 10).tolist() == [0, 2000]
    assert window_starts(60 * EEG_RATE, 2.5).tolist() == [0, 500, 1000, 1500, 2000]
    assert window_starts(EEG_WINDOW - 1, 10).tolist() == []
    centres = spec_centres([0, 2000]) / EEG_RATE
    assert centres.shape == (2, 300)
    assert centres[0, 0] == -274 and centres[0, -1] == 324 and centres[1, 149] == 10 + 24  # centred on 25 s
    assert spec_padded([0], 62 * EEG_RATE)[0] == pytest.approx(272 / 300)  # rows centred on 2.56..59.44 s
    assert spec_padded([300 * EEG_RATE], 900 * EEG_RATE)[0] == 0
