"""predict_edf end to end on the real PhysioNet recording with a tiny trained fusion; the spectrogram is the
Kaggle recipe on the whole recording; windows without signal get no probabilities; unsupported inputs,
bad files and channel maps through the command line; blends; an EEG-only checkpoint."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

import hms.train.loop as loop
from hms.data.edf import open_recording, spec_centres
from hms.ensemble.blend import apply_blend
from hms.ensemble.clinical import PROB_COLUMNS, RecordingWindows, predict_edf, read_checkpoints
from hms.ensemble.predict import CheckpointError
from hms.layout import CONSENSUS_NAMES, EEG_COLUMNS, EEG_RATE, SPEC_FFT
from hms.signal.kaggle_spectrogram import kaggle_spectrogram

from tests.data.test_edf import REAL, STANDARD, signal, write_edf
from tests.helpers import CONF, run_script_here

COLUMNS = ["start_s", "end_s", *PROB_COLUMNS, "most_likely", "missing_channels", "flat_channels", "spec_padded",
           "no_signal", "clean"]


@pytest.fixture(scope="module")
def trained(small_set, tmp_path_factory):
    """A tiny fusion (reads eeg + spec) trained for two steps on the small embedded set."""
    run_dir = tmp_path_factory.mktemp("fusion")
    with initialize_config_dir(CONF, version_base="1.3"):
        cfg = compose("config", overrides=["name=fusion", f"data.root={small_set}", "data.num_workers=0",
                                           "model=fusion", "trainer.batch_size=4", "trainer.val_batch_size=8",
                                           "trainer.epochs=1", "trainer.max_steps=2", "aug=none"])
    loop.train(cfg, run_dir)
    return run_dir / "checkpoint.pt"


def test_the_real_recording_end_to_end(trained, tmp_path):
    report = predict_edf([REAL], [trained], tmp_path, step=10, progress=False)
    table = pd.read_csv(tmp_path / "Subject04_2.csv", keep_default_na=False)
    assert list(table.columns) == COLUMNS
    assert table.start_s.tolist() == [0, 10] and table.end_s.tolist() == [50, 60]
    probs = table[list(PROB_COLUMNS)].to_numpy(float)
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert (probs > 0).all() and set(table.most_likely) <= set(CONSENSUS_NAMES)
    assert table.spec_padded.tolist() == [0.9067, 0.9067]  # 62 s of a 10 min spectrogram window
    assert not table.clean.any() and not table.no_signal.any()
    assert (table.missing_channels == "").all() and (table.flat_channels == "").all()
    entry = report["recordings"][0]
    assert entry == json.loads((tmp_path / "report.json").read_text())["recordings"][0]
    assert (entry["format"], entry["duration_s"], entry["file_rate_hz"], entry["windows"]) == ("EDF+C", 62, 500, 2)
    assert entry["mapped"]["EKG"] == "ECG ECG" and entry["unused"] == ["EEG A2-A1"] and entry["missing"] == []
    assert entry["units"]["EEG Fp1"] == "µV" and entry["flagged"]["spec_padded"] == 2
    assert report["inputs"] == ["eeg", "spec"] and report["models"] == ["fusion"] and report["tta"]
    assert (tmp_path / "Subject04_2.png").stat().st_size > 20_000


def test_the_spectrogram_is_the_recipe_on_the_whole_recording():
    recording = open_recording(REAL)
    starts = np.array([0, 2000])
    windows = RecordingWindows(recording, starts, ("eeg", "spec"))
    ours = windows.spectrograms(starts)
    assert ours.shape == (2, 300, 400)
    centres = spec_centres(starts)
    inside = (centres >= SPEC_FFT // 2) & (centres <= recording.n_samples - SPEC_FFT // 2)
    whole = kaggle_spectrogram(recording.read(0, recording.n_samples).T, centres[inside] / EEG_RATE)
    np.testing.assert_allclose(ours[inside], whole, rtol=1e-5, atol=0.011)  # the recipe rounds to 0.01
    edge = np.abs(centres) < SPEC_FFT // 2  # frames around 0 s, partly outside: zero-padded as the recipe does
    np.testing.assert_allclose(ours[edge], kaggle_spectrogram(recording.read(0, recording.n_samples).T,
                                                              centres[edge] / EEG_RATE), rtol=1e-5, atol=0.011)
    far = (centres <= -SPEC_FFT // 2) | (centres >= recording.n_samples + SPEC_FFT // 2)
    assert (ours[far] == 0).all() and (ours[inside].mean(axis=1) > 0.1).all() and far.sum() == 2 * 266
    one_by_one = RecordingWindows(recording, starts, ("eeg", "spec"), chunk=1)[1]
    for name in ("eeg", "spec"):
        torch.testing.assert_close(one_by_one[name], windows[1][name])
    torch.testing.assert_close(windows[1]["eeg"], torch.from_numpy(recording.read(2000, 12000)))


def test_an_input_that_cannot_be_computed_is_refused(tmp_path):
    path = tmp_path / "vit.pt"
    torch.save({"config": {"name": "vit", "data": {"inputs": ["eeg", "spec", "eeg_mel"]}, "aug": {}, "model": {}},
                "model": {}}, path)
    with pytest.raises(CheckpointError, match=rf"{path}: reads input 'eeg_mel', which predict_edf cannot compute"):
        read_checkpoints([path])
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk.pt: cannot read the checkpoint"):
        read_checkpoints([tmp_path / "junk.pt"])


def test_windows_without_signal_get_no_probabilities(trained, tmp_path):
    flat_after_60 = {label: np.r_[signal(60, 200, k), np.zeros(60 * 200)] for k, label in enumerate(STANDARD)}
    write_edf(tmp_path / "stops.edf", STANDARD, seconds=120, data=flat_after_60)
    write_edf(tmp_path / "dead.edf", STANDARD, data={label: np.zeros(60 * 200) for label in STANDARD})
    report = predict_edf([tmp_path / "stops.edf", tmp_path / "dead.edf"], [trained], tmp_path / "out",
                         step=10, tta=False, progress=False)
    table = pd.read_csv(tmp_path / "out/stops.csv", keep_default_na=False)
    assert table.no_signal.tolist() == [False] * 6 + [True] * 2
    assert (table[list(PROB_COLUMNS)].iloc[6:] == "").all().all() and (table.most_likely.iloc[6:] == "").all()
    assert table.flat_channels.iloc[7] == " ".join(EEG_COLUMNS)
    assert report["recordings"][1] == {"recording": str(tmp_path / "dead.edf"), "error":
                                       f"{tmp_path / 'dead.edf'}: no window holds EEG: every electrode is flat "
                                       "(std < 0.1 uV) or missing"}
    assert not (tmp_path / "out/dead.csv").exists()


def cli(monkeypatch, capsys, *argv) -> tuple[int, str, str]:
    done = run_script_here(capsys, "predict_edf.py", *argv)
    return done.returncode, done.stdout, done.stderr


def test_the_command_line(trained, tmp_path, monkeypatch, capsys):
    shutil.copy(REAL, tmp_path / "real.edf")
    (tmp_path / "table.edf").write_text("eeg_id,seizure_vote\n1,0\n")
    write_edf(tmp_path / "odd.edf", [f"Ch{k}" for k in range(20)])
    (tmp_path / "map.json").write_text(json.dumps({f"Ch{k}": c for k, c in enumerate(EEG_COLUMNS)}))
    code, out, err = cli(monkeypatch, capsys, tmp_path / "real.edf", tmp_path / "table.edf", tmp_path / "odd.edf",
                         "--checkpoints", trained, "--out", tmp_path / "out", "--no-tta", "--step", "5",
                         "--channels-map", tmp_path / "map.json")
    assert code == 1
    bad = tmp_path / "table.edf"
    assert err.splitlines()[-1] == f"error: {bad}: not an EDF or BDF file (starts b'eeg_id,seizure_v')"
    assert [line for line in err.splitlines() if line.startswith("error")] == err.splitlines()[-1:]
    assert len(pd.read_csv(tmp_path / "out/real.csv")) == 3 and len(pd.read_csv(tmp_path / "out/odd.csv")) == 3
    report = json.loads((tmp_path / "out/report.json").read_text())
    assert report["recordings"][2]["mapped"]["EKG"] == "Ch19" and report["step_s"] == 5

    code, out, err = cli(monkeypatch, capsys, tmp_path / "real.edf", "--checkpoints", tmp_path / "none.pt",
                         "--out", tmp_path / "out2")
    assert (code, err) == (1, f"error: {tmp_path / 'none.pt'}: checkpoint not found\n")


def test_a_blend_is_applied(trained, tmp_path):
    plain = predict_edf([REAL], [trained], tmp_path / "plain", tta=False, progress=False)
    blend = {"weights": {"fusion": 1.7}, "class_bias": [0.3, -0.2, 0.1, 0.0, -0.4, 0.2]}
    (tmp_path / "blend.json").write_text(json.dumps(blend))
    blended = predict_edf([REAL], [trained], tmp_path / "blended", blend=tmp_path / "blend.json", tta=False,
                          progress=False)
    assert blended["blend"] == str(tmp_path / "blend.json") and plain["blend"] is None
    p = pd.read_csv(tmp_path / "plain/Subject04_2.csv")[list(PROB_COLUMNS)].to_numpy()
    b = pd.read_csv(tmp_path / "blended/Subject04_2.csv")[list(PROB_COLUMNS)].to_numpy()
    np.testing.assert_allclose(b, apply_blend(blend, {"fusion": p}), atol=2e-6)
    assert np.abs(b - p).max() > 0.01


def test_a_checkpoint_without_spec_gets_no_spectrogram(tmp_path):
    with initialize_config_dir(CONF, version_base="1.3"):
        cfg = compose("config", overrides=["model=stft", "name=stft", "data.inputs=[eeg]"])
    torch.save({"model": instantiate(cfg.model).state_dict(), "config": OmegaConf.to_container(cfg, resolve=True)},
               tmp_path / "stft.pt")
    report = predict_edf([REAL], [tmp_path / "stft.pt"], tmp_path, tta=False, progress=False)
    table = pd.read_csv(tmp_path / "Subject04_2.csv", keep_default_na=False)
    assert report["inputs"] == ["eeg"] and (table.spec_padded == "").all() and table.clean.all()
