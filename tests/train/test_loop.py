"""The training loop end to end on a small synthetic set: outputs, reproducibility, resume, NaN guard,
loggers, distributed equality, config composition and overfitting a tiny batch."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import hms.train.loop as loop
from hms.layout import PRED_COLUMNS, VOTE_COLUMNS
from hms.train.checkpoint import load
from hms.train.losses import kl_per_sample

from tests.helpers import CONF, HMS15_TINY, REPO


def config(root, *overrides):
    with initialize_config_dir(CONF, version_base="1.3"):
        return compose("config", overrides=["name=test", f"data.root={root}", "data.num_workers=0",
                                            "trainer.batch_size=4", "trainer.val_batch_size=8",
                                            *overrides])


def run(root, run_dir, *overrides):
    run_dir.mkdir(parents=True, exist_ok=True)
    return loop.train(config(root, *overrides), run_dir)


QUICK = ("model=stft", "trainer.epochs=2", "trainer.max_steps=4", "aug=none")


def test_run_dir_holds_the_contract_files(small_set, tmp_path):
    metrics = run(small_set, tmp_path, *QUICK, "aug=default")
    oof = pd.read_csv(tmp_path / "oof.csv")
    assert list(oof.columns) == ["eeg_id", "label_id", "patient_id", "n_votes", *VOTE_COLUMNS, *PRED_COLUMNS]
    np.testing.assert_allclose(oof[list(PRED_COLUMNS)].sum(axis=1), 1.0, atol=1e-5)
    for key in ("val_kl", "val_kl_all", "prior_kl", "bayes_kl", "history", "train_samples_per_s"):
        assert key in metrics, key
    assert metrics["bayes_kl"] < metrics["prior_kl"]
    assert (tmp_path / "curves.png").stat().st_size > 1000
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["config"]["model"]["_target_"] == "hms.models.stft.STFTExtractor"
    assert state["step"] == 4  # the scheduler and the step counter moved together
    assert state["scheduler"]["last_epoch"] == 4


def test_same_seed_same_oof_whichever_loader_reads(small_set, tmp_path):
    run(small_set, tmp_path / "a", *QUICK, "seed=5")
    run(small_set, tmp_path / "b", *QUICK, "seed=5", "data.loader=threads", "data.num_workers=2")
    a, b = pd.read_csv(tmp_path / "a/oof.csv"), pd.read_csv(tmp_path / "b/oof.csv")
    pd.testing.assert_frame_equal(a, b)
    run(small_set, tmp_path / "c", *QUICK, "seed=6")
    assert not np.allclose(a[list(PRED_COLUMNS)], pd.read_csv(tmp_path / "c/oof.csv")[list(PRED_COLUMNS)])


def test_resume_after_a_kill_gives_the_same_result(small_set, tmp_path, monkeypatch):
    args = ("model=stft", "trainer.epochs=2", "aug=default", "trainer.deterministic=true", "seed=3",
            "data.patients=12")
    run(small_set, tmp_path / "whole", *args)

    saves = []
    real_save = loop.checkpoint.save_atomic

    def save_then_die(obj, path):
        real_save(obj, path)
        saves.append(path)
        raise KeyboardInterrupt  # killed right after the first epoch's checkpoint

    monkeypatch.setattr(loop.checkpoint, "save_atomic", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run(small_set, tmp_path / "killed", *args)
    monkeypatch.setattr(loop.checkpoint, "save_atomic", real_save)
    run(small_set, tmp_path / "killed", *args, "resume=true")

    whole, resumed = load(tmp_path / "whole/checkpoint.pt"), load(tmp_path / "killed/checkpoint.pt")
    for key, value in whole["model"].items():
        torch.testing.assert_close(resumed["model"][key], value, rtol=0, atol=0)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "whole/oof.csv"), pd.read_csv(tmp_path / "killed/oof.csv"))


def test_non_finite_loss_stops_and_saves_nothing(small_set, tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "model_loss", lambda *a: torch.tensor(float("nan"), requires_grad=True))
    with pytest.raises(loop.NonFiniteLoss, match="epoch 1, step 1"):
        run(small_set, tmp_path, *QUICK)
    assert not (tmp_path / "checkpoint.pt").exists()


@pytest.mark.parametrize("logger", ["tensorboard", "neptune"])
def test_loggers_write_locally(small_set, tmp_path, logger, monkeypatch):
    monkeypatch.setenv("NEPTUNE_DATA_DIRECTORY", str(tmp_path))
    run(small_set, tmp_path, *QUICK, f"logger={logger}", "trainer.epochs=1")
    if logger == "tensorboard":
        assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    else:
        assert list(tmp_path.rglob(".neptune")) or list(tmp_path.rglob("offline"))


def test_overfitting_a_tiny_batch_drives_the_loss_near_zero():
    torch.manual_seed(0)
    with initialize_config_dir(CONF, version_base="1.3"):
        cfg = compose("config", overrides=["model=spec_attn", "name=x", "model.attention_dropout=0",
                                           "model.edge_dropout=0"])
    model = instantiate(cfg.model)
    batch = {"spec": torch.rand(4, 300, 400) * 10, "eeg": torch.zeros(4, 20, 10000)}
    target = torch.tensor([[1, 0, 0, 0, 0, 0], [0, 0.5, 0.5, 0, 0, 0], [0, 0, 0, 0, 0, 1.0], [0, 0, 0, 0.8, 0.2, 0]])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        loss = kl_per_sample(model(batch)["logits"], target).mean()
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert first > 0.5 and loss.item() < 0.05


@pytest.mark.slow
def test_two_ddp_processes_match_one(small_set, tmp_path):
    """2 CPU processes (gloo) with batch 2 each == 1 process with batch 4: same samples per step, the
    gradient all-reduce averages to the one-process gradient. Tolerance 1e-4 on the probabilities
    (float sums in a different order)."""
    common = [f"data.root={small_set}", "name=ddp", "model=stft", "aug=none", "trainer.epochs=1",
              "trainer.max_steps=3", "data.num_workers=0", "seed=11", "trainer.ema_decay=null"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    one = subprocess.run([sys.executable, str(REPO / "train.py"), *common, "trainer.batch_size=4",
                          f"hydra.run.dir={tmp_path / 'one'}"], env=env, capture_output=True, text=True)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                          "--master_port=29531", str(REPO / "train.py"), *common, "trainer.batch_size=2",
                          f"hydra.run.dir={tmp_path / 'two'}"], env=env, capture_output=True, text=True)
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = pd.read_csv(tmp_path / "one/oof.csv"), pd.read_csv(tmp_path / "two/oof.csv")
    assert len(a) == len(b) > 0
    np.testing.assert_allclose(a[list(PRED_COLUMNS)], b[list(PRED_COLUMNS)], atol=1e-4)
    assert one.stdout.strip().splitlines()[-1].startswith("run_dir: ")


@pytest.mark.slow
def test_the_readmes_torchrun_line_trains_with_two_processes(small_set, tmp_path):
    """README's torchrun line (the 15th-place preset), as written but for 2 processes, CPU sizes and 2 steps."""
    line = next(l for l in (REPO / "README.md").read_text().splitlines() if l.startswith("torchrun --nproc_per_node="))
    program, *args = line.split()
    args = ["--nproc_per_node=2" if a.startswith("--nproc_per_node=") else a for a in args]
    args = [str(REPO / a) if a == "train.py" else a for a in args if not a.startswith("hydra.run.dir=")]
    smoke = [f"data.root={small_set}", *HMS15_TINY, "trainer.batch_size=2", "aug.tta=false", f"hydra.run.dir={tmp_path}"]
    done = subprocess.run([str(Path(sys.executable).parent / program), "--master_port=29533", *args, *smoke],
                          env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["val_kl"] is not None and (tmp_path / "oof.csv").exists()


def test_init_from_starts_from_another_runs_weights_with_a_fresh_optimizer(small_set, tmp_path, capsys):
    run(small_set, tmp_path / "first", *QUICK, "trainer.ema_decay=null")
    first = load(tmp_path / "first/checkpoint.pt")
    # lr 0: the second stage's one step leaves the weights where the first stage ended
    run(small_set, tmp_path / "second", *QUICK, "trainer.ema_decay=null", "trainer.max_steps=1", "optim.lr=0",
        f"init_from={tmp_path / 'first/checkpoint.pt'}")
    second = load(tmp_path / "second/checkpoint.pt")
    for key, value in first["model"].items():
        torch.testing.assert_close(second["train_model"][key], value, rtol=0, atol=0)
    assert first["scheduler"]["last_epoch"] == 4 and second["scheduler"]["last_epoch"] == 1  # a fresh schedule
    steps = {float(s["step"]) for s in second["optimizer"]["state"].values()}
    assert steps == {1.0} and {float(s["step"]) for s in first["optimizer"]["state"].values()} == {4.0}
    # without init_from, the same seed starts elsewhere
    run(small_set, tmp_path / "fresh", *QUICK, "trainer.ema_decay=null", "trainer.max_steps=1", "optim.lr=0")
    fresh = load(tmp_path / "fresh/checkpoint.pt")
    assert any(not torch.equal(fresh["train_model"][k], v) for k, v in first["model"].items())
    with pytest.raises(ValueError, match="checkpoint.pt: its weights do not fit this model"):
        run(small_set, tmp_path / "other", "model=wavenet", "trainer.max_steps=1",
            f"init_from={tmp_path / 'first/checkpoint.pt'}")
    with pytest.raises(FileNotFoundError, match="missing.pt: init_from checkpoint not found"):
        run(small_set, tmp_path / "other", *QUICK, f"init_from={tmp_path / 'missing.pt'}")


def test_noisy_student_targets_replace_the_labels_before_cropcat(small_set, tmp_path, monkeypatch):
    """15th place: with p 0.15 the target becomes the row's stored OOF prediction, in the dataset, so
    CropCat then mixes the replaced targets. Here p = 1 and only rows with an even label_id have one."""
    from hms.data.kaggle import read_train_csv
    rows = read_train_csv(small_set / "train.csv")
    stored = rows[rows.label_id % 2 == 0][["label_id"]].assign(**{c: 1.0 if c == PRED_COLUMNS[0] else 0.0
                                                                    for c in PRED_COLUMNS})
    stored.to_csv(tmp_path / "oof.csv", index=False)
    entering = []
    real = loop.augment_batch

    def spy(batch, inputs, aug):
        entering.append((batch["label_id"].clone(), batch["target"].clone()))
        return real(batch, inputs, aug)

    monkeypatch.setattr(loop, "augment_batch", spy)
    run(small_set, tmp_path / "run", *QUICK, f"loss.noisy_student_oof={tmp_path / 'oof.csv'}",
        "loss.noisy_student_p=1.0", "aug.cropcat=first")
    labels = torch.cat([ids for ids, _ in entering])
    targets = torch.cat([t for _, t in entering])
    even = labels % 2 == 0
    assert even.any() and (~even).any()
    torch.testing.assert_close(targets[even], torch.eye(6)[0].expand(int(even.sum()), 6))
    assert not torch.allclose(targets[~even], torch.eye(6)[0].expand(int((~even).sum()), 6))


def test_the_15th_place_augmentations_train_end_to_end(small_set, tmp_path):
    metrics = run(small_set, tmp_path, "model=fusion", "trainer.epochs=1", "trainer.max_steps=2", "aug=hms15",
                  "sampling=hms15", "sampling.train_min_votes=1", "sched=cosine_epoch")
    assert metrics["steps"] == 2 and np.isfinite(metrics["history"][-1]["train_loss"])
