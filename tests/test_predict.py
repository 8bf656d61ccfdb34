"""predict.py on the real public test pair gives a valid submission; TTA really flips the input."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from hms.data.layout import VOTE_COLUMNS
from hms.ensemble.predict import predict_folder
from tests.test_training import CONF, REPO


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    with initialize_config_dir(CONF, version_base="1.3"):
        cfg = compose("config", overrides=["model=fusion", "name=fusion"])
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    path = tmp_path_factory.mktemp("run") / "checkpoint.pt"
    torch.save({"model": model.state_dict(), "config": OmegaConf.to_container(cfg, resolve=True)}, path)
    return path


def test_predict_writes_a_valid_submission_on_the_real_fixtures(real_hms, checkpoint, tmp_path):
    out = tmp_path / "submission.csv"
    done = subprocess.run([sys.executable, str(REPO / "scripts/predict.py"), "--data-root", str(real_hms),
                           "--checkpoints", str(checkpoint), "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    sub = pd.read_csv(out)
    sample = pd.read_csv(real_hms / "sample_submission.csv")
    assert list(sub.columns) == list(sample.columns) and sub.eeg_id.tolist() == [3911565283]
    np.testing.assert_allclose(sub[list(VOTE_COLUMNS)].sum(axis=1), 1.0, atol=1e-6)


def test_tta_changes_the_prediction(real_hms, checkpoint):
    with_tta, _ = predict_folder(real_hms, [checkpoint], tta=True, progress=False)
    without, _ = predict_folder(real_hms, [checkpoint], tta=False, progress=False)
    assert not np.allclose(with_tta["fusion"], without["fusion"], atol=1e-7)
