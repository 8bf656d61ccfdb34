"""predict.py on the real public test pair gives a valid submission; flip TTA really feeds the four
flipped views to the model and averages all four; checkpoints map to names; bad checkpoints are refused."""
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from hms.data.inputs import get_inputs, tta_probabilities
from hms.layout import FLIP_FB, FLIP_LR, SPEC_REGION_FLIP_LR, VOTE_COLUMNS
from hms.ensemble.blend import apply_blend
from hms.ensemble.predict import CheckpointError, combine_models, predict_folder

from tests.helpers import REPO, run_script_here, spec_columns

INPUTS = get_inputs(["eeg", "spec"])
SPEC_FLIP_LR = spec_columns(SPEC_REGION_FLIP_LR)
EEG_ID = 3911565283


def save_tiny_fusion(path: Path, name: str, seed: int, overrides=()) -> Path:
    """A checkpoint in the training loop's format: dict(model=state_dict, config=resolved config)."""
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["model=fusion", "size=tiny", f"name={name}", *overrides])
    torch.manual_seed(seed)
    model = instantiate(cfg.model)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "config": OmegaConf.to_container(cfg, resolve=True), "epoch": 0}, path)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Two folds of 'fusion' and one 'other' model, laid out like a multirun."""
    root = tmp_path_factory.mktemp("multirun")
    return [save_tiny_fusion(root / "fusion/fold0/checkpoint.pt", "fusion", 0),
            save_tiny_fusion(root / "fusion/fold1/checkpoint.pt", "fusion", 1),
            save_tiny_fusion(root / "other/fold0/checkpoint.pt", "other", 2)]


@pytest.fixture(autouse=True)
def one_thread():
    """2 cores shared by several jobs: two threads spin against each other and run 10-50x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_predict_here(capsys, *args) -> tuple[int, str]:
    done = run_script_here(capsys, "predict.py", *args)
    return done.returncode, done.stderr


def test_predict_writes_a_valid_blended_submission_on_the_real_fixtures(real_hms, checkpoints, tmp_path, capsys):
    blend = {"weights": {"fusion": 0.25, "other": 0.75}, "class_bias": [0.3, 0.0, 0.0, -0.2, 0.0, 0.1]}
    (tmp_path / "blend.json").write_text(json.dumps(blend))
    out = tmp_path / "submission.csv"
    code, err = run_predict_here(capsys, "--data-root", real_hms, "--checkpoints", *checkpoints,
                                 "--blend", tmp_path / "blend.json", "--out", out, "--per-model-dir", tmp_path / "per_model")
    assert code == 0, err[-2000:]
    sub = pd.read_csv(out)
    sample = pd.read_csv(real_hms / "sample_submission.csv")
    assert list(sub.columns) == list(sample.columns) and sub.eeg_id.tolist() == [EEG_ID]
    np.testing.assert_allclose(sub[list(VOTE_COLUMNS)].sum(axis=1), 1.0, atol=1e-9)
    per_model = {p.stem: pd.read_csv(p)[list(VOTE_COLUMNS)].to_numpy() for p in (tmp_path / "per_model").glob("*.csv")}
    assert sorted(per_model) == ["fusion", "other"]
    np.testing.assert_allclose(sub[list(VOTE_COLUMNS)].to_numpy(), apply_blend(blend, per_model), atol=1e-6)
    assert not np.allclose(per_model["fusion"], per_model["other"], atol=1e-4)


def test_folds_are_averaged_and_names_are_averaged_without_a_blend(real_hms, checkpoints):
    fold0, rows = predict_folder(real_hms, checkpoints[:1], tta=False, progress=False)
    fold1, _ = predict_folder(real_hms, checkpoints[1:2], tta=False, progress=False)
    every, _ = predict_folder(real_hms, checkpoints, tta=False, progress=False)
    assert sorted(every) == ["fusion", "other"] and rows.eeg_id.tolist() == [EEG_ID]
    np.testing.assert_allclose(every["fusion"], (fold0["fusion"] + fold1["fusion"]) / 2, atol=1e-7)
    np.testing.assert_allclose(combine_models(every), (every["fusion"] + every["other"]) / 2)
    renamed, _ = predict_folder(real_hms, checkpoints[:2], tta=False, progress=False, names=["a", "b"])
    np.testing.assert_allclose(renamed["a"], fold0["fusion"], atol=1e-7)


def test_repeated_eeg_ids_get_identical_rows(real_hms, checkpoints, tmp_path, capsys):
    root = tmp_path / "repeated"  # test.csv with each row three times, as graders that repeat eeg_ids have it
    shutil.copytree(real_hms, root)
    pd.concat([pd.read_csv(real_hms / "test.csv")] * 3).to_csv(root / "test.csv", index=False)
    probs, rows = predict_folder(root, checkpoints[:1], tta=False, progress=False)
    assert len(rows) == 3 and np.allclose(probs["fusion"], probs["fusion"][:1])
    for repeat, expected in ((True, [EEG_ID] * 3), (False, [EEG_ID])):
        args = ["--repeat-rows"] if repeat else []
        code, err = run_predict_here(capsys, "--data-root", root, "--checkpoints", checkpoints[0],
                                     "--no-tta", "--out", tmp_path / "sub.csv", *args)
        assert code == 0, err
        sub = pd.read_csv(tmp_path / "sub.csv")
        assert sub.eeg_id.tolist() == expected and (sub[list(VOTE_COLUMNS)].nunique() == 1).all()
        np.testing.assert_allclose(sub[list(VOTE_COLUMNS)].to_numpy()[0], probs["fusion"][0], atol=1e-6)


class Recorder(torch.nn.Module):
    """Remembers every view it sees; its logits depend on where each electrode's signal sits, so a
    flipped view gives other probabilities."""

    def __init__(self):
        super().__init__()
        self.seen = []
        self.eeg_weight = torch.linspace(-1, 1, 20)
        self.spec_weight = torch.linspace(-1, 1, 400)

    def forward(self, batch):
        self.seen.append({k: batch[k].clone() for k in ("eeg", "spec")})
        score = batch["eeg"].mean(dim=2) @ self.eeg_weight + batch["spec"].mean(dim=1) @ self.spec_weight
        return {"logits": score[:, None] * torch.arange(6.0), "aux": {}}


def test_tta_feeds_every_flipped_view_and_averages_all_four():
    torch.manual_seed(0)
    batch = {"eeg": torch.randn(2, 20, 50), "spec": torch.rand(2, 30, 400)}
    model = Recorder()
    probs = tta_probabilities(model, batch, INPUTS, tta=True)
    eeg, spec = batch["eeg"], batch["spec"]
    expected_views = [
        (eeg, spec),
        (eeg[:, list(FLIP_LR)], spec[:, :, list(SPEC_FLIP_LR)]),
        (eeg[:, list(FLIP_FB)], spec),  # front/back leaves the Kaggle spectrogram unchanged
        (eeg[:, list(FLIP_LR)][:, list(FLIP_FB)], spec[:, :, list(SPEC_FLIP_LR)]),
    ]
    assert len(model.seen) == 4
    for seen, (want_eeg, want_spec) in zip(model.seen, expected_views):
        torch.testing.assert_close(seen["eeg"], want_eeg)
        torch.testing.assert_close(seen["spec"], want_spec)
    assert len({v["eeg"].sum(dim=2)[0, :5].round(decimals=4).numpy().tobytes() for v in model.seen}) == 4
    each = [model(dict(eeg=e, spec=s))["logits"].softmax(dim=1) for e, s in expected_views]
    torch.testing.assert_close(probs, sum(each) / 4)  # no view dropped, none counted twice
    assert not torch.allclose(probs, each[0], atol=1e-4)
    torch.testing.assert_close(tta_probabilities(Recorder(), batch, INPUTS, tta=False), each[0])


def test_tta_changes_the_real_model_prediction(real_hms, checkpoints):
    with_tta, _ = predict_folder(real_hms, checkpoints[:1], tta=True, progress=False)
    without, _ = predict_folder(real_hms, checkpoints[:1], tta=False, progress=False)
    assert np.isfinite(with_tta["fusion"]).all()
    assert np.abs(with_tta["fusion"] - without["fusion"]).max() > 1e-6


def test_bad_checkpoints_are_refused_naming_the_file(real_hms, checkpoints, tmp_path, capsys):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    code, err = run_predict_here(capsys, "--data-root", real_hms, "--checkpoints", junk, "--out", tmp_path / "sub.csv")
    assert code == 1 and f"{junk}: cannot load the model" in err and len(err.strip().splitlines()) == 1
    code, err = run_predict_here(capsys, "--data-root", tmp_path, "--checkpoints", checkpoints[0],
                                 "--out", tmp_path / "sub.csv")
    assert code == 1 and "test.csv: file not found" in err and len(err.strip().splitlines()) == 1
    torch.save({"model": {}}, junk)
    with pytest.raises(CheckpointError, match="junk.pt: no 'config' entry"):
        predict_folder(real_hms, [junk], progress=False)
    # a different architecture under a name already taken would be averaged with it silently
    wide = save_tiny_fusion(tmp_path / "wide/checkpoint.pt", "fusion", 3, ["~model.extractors.wavenet", "~model.loss_weights.wavenet"])
    with pytest.raises(CheckpointError, match="model config differs"):
        predict_folder(real_hms, [checkpoints[0], wide], progress=False)


def test_tta_with_left_right_only_averages_two_views():
    torch.manual_seed(0)
    batch = {"eeg": torch.randn(2, 20, 50), "spec": torch.rand(2, 30, 400)}
    model = Recorder()
    probs = tta_probabilities(model, batch, INPUTS, tta=True, flips=("lr",))
    assert len(model.seen) == 2
    torch.testing.assert_close(model.seen[1]["eeg"], batch["eeg"][:, list(FLIP_LR)])
    each = [model(v)["logits"].softmax(dim=1) for v in model.seen[:2]]
    torch.testing.assert_close(probs, (each[0] + each[1]) / 2)
