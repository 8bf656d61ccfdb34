"""A new model family is additive: one model file and one yaml, written into a copy of the package and
config tree, train under every size with no edit to any existing file."""
import json
import os
import shutil
import subprocess
import sys

from hydra import compose, initialize_config_dir

from tests.helpers import REPO, SIZES

TOY_MODEL = '''"""Toy family: mean log power of each Kaggle spectrogram column -> a small MLP."""
import torch
from torch import nn


class Toy(nn.Module):
    def __init__(self, hidden: int = 8):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(400, hidden), nn.ReLU(), nn.Linear(hidden, 6))

    def forward(self, batch):
        return {"logits": self.net(torch.log1p(batch["spec"].nan_to_num(0.0)).mean(dim=1)), "aux": {}}
'''

TOY_YAML = '''defaults:
  - _self_
  - optional /size/toy@_here_: ${size}
_target_: hms.models.toy.Toy
hidden: 8
'''


def test_a_throw_away_family_trains_under_every_size(small_set, tmp_path):
    repo = tmp_path / "repo"
    for part in ("hms", "conf"):
        shutil.copytree(REPO / part, repo / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "train.py", repo / "train.py")
    before = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()}
    (repo / "hms/models/toy.py").write_text(TOY_MODEL)
    (repo / "conf/model/toy.yaml").write_text(TOY_YAML)

    sweep = tmp_path / "multirun"
    env = dict(os.environ, PYTHONPATH=str(repo), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "train.py", "-m", "model=toy", f"size={','.join(SIZES)}", "trainer=smoke",
         "trainer.max_steps=2", f"data.root={small_set}", "data.num_workers=0", "name=toy",
         f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=${hydra.job.num}"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    for job in range(len(SIZES)):
        metrics = json.loads((sweep / str(job) / "metrics.json").read_text())
        assert metrics["steps"] == 2 and metrics["val_kl"] is not None
    assert result.stdout.count("run_dir:") == len(SIZES)
    # nothing that existed was edited
    assert all(p.read_bytes() == data for p, data in before.items())

    # a size entry of the family's own is picked up by size=, the other sizes keep its defaults
    (repo / "conf/size/toy").mkdir()
    (repo / "conf/size/toy/published_hgnet.yaml").write_text("hidden: 32\n")
    with initialize_config_dir(str(repo / "conf"), version_base="1.3"):
        hidden = {s: compose("config", overrides=["model=toy", f"size={s}"]).model.hidden for s in SIZES}
    assert hidden == {s: 32 if s == "published_hgnet" else 8 for s in SIZES}
