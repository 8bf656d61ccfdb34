"""Bad configs and faults of a training run: every case one line naming the key or the path, nothing written
or overwritten, and for the entry point an exit code, no traceback (HMS_DEBUG=1 shows it).

The data-side cases (files, rows, values, check_data, score) are tests/test_bad_input.py."""
import fcntl
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import hms.train.loop as loop
from hms.train.checkpoint import RunDirInUse
from hms.train.config_check import ConfigError, check_config
from tests.helpers import REPO, compose_config, run_script_here
from tests.train.test_loop import run

QUICK = ("model=stft", "trainer.epochs=1", "trainer.max_steps=1", "aug=none")

# (override, the key the one-line message must name)
BAD_VALUES = [
    ("fold=5", "fold"), ("fold=-2", "fold"), ("fold=abc", "fold"), ("seed=abc", "seed"),
    ("trainer.batch_size=0", "trainer.batch_size"), ("trainer.accumulate=0", "trainer.accumulate"),
    ("trainer.epochs=0", "trainer.epochs"), ("trainer.max_steps=-1", "trainer.max_steps"),
    ("trainer.max_steps=0", "trainer.max_steps"), ("trainer.val_batch_size=0", "trainer.val_batch_size"),
    ("trainer.amp=fp8", "trainer.amp"), ("trainer.device=gpu", "trainer.device"),
    ("trainer.grad_clip=0", "trainer.grad_clip"), ("trainer.ema_decay=1.5", "trainer.ema_decay"),
    ("trainer.ema_every=batch", "trainer.ema_every"), ("trainer.eval_at=never", "trainer.eval_at"),
    ("trainer.batch_size=2.5", "trainer.batch_size"), ("data.num_workers=-1", "data.num_workers"),
    ("data.n_folds=1", "data.n_folds"), ("optim.lr=-1", "optim.lr"), ("optim.lr=abc", "optim.lr"),
    ("aug.flip_lr_p=2", "aug.flip_lr_p"), ("aug.cutmix_p=-0.1", "aug.cutmix_p"),
    ("aug.mosaic_epochs=-1", "aug.mosaic_epochs"), ("loss.weighting=votes", "loss.weighting"),
    ("loss.label_smoothing=1.5", "loss.label_smoothing"), ("sampling.dedup=best", "sampling.dedup"),
    ("sampling.val_dedup=best", "sampling.val_dedup"), ("sampling.window=edge", "sampling.window"),
    ("sampling.folds=random", "sampling.folds"), ("sampling.train_min_votes=-1", "sampling.train_min_votes"),
    ("sampling.time_shift_seconds=-5", "sampling.time_shift_seconds"), ("data.reader=mmap", "data.reader"),
    ("data.loader=fork", "data.loader"), ("data.loader=threads data.num_workers=0", "data.num_workers"),
]


@pytest.mark.parametrize("override, key", BAD_VALUES)
def test_a_bad_value_is_refused_in_one_line_naming_its_key(override, key):
    with pytest.raises(ConfigError) as info:
        check_config(compose_config(*override.split()))
    message = str(info.value)
    assert message.startswith(key) and "\n" not in message, message


@pytest.mark.parametrize("experiment", ["hms15_cfg1", "hms3_cfg5a", "hms3_cfg2a", "hms16_tinyvit", "cranjis_mosaic_xloss"])
def test_every_shipped_recipe_passes_the_check(experiment):
    check_config(compose_config(f"experiment={experiment}"))
    check_config(compose_config())


def test_an_impossible_fold_writes_nothing(small_set, tmp_path):
    with pytest.raises(ConfigError, match="^fold must be in -1..4, not 7"):
        run(small_set, tmp_path / "run", *QUICK, "fold=7")
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def resumable(small_set, tmp_path):
    run(small_set, tmp_path, "model=stft", "trainer.epochs=2", "trainer.max_steps=1", "aug=none")
    return tmp_path / "checkpoint.pt"


@pytest.mark.parametrize("change, key", [("fold=1", "fold"), ("model=wavenet", "model"), ("seed=7", "seed"),
                                         ("sampling.train_min_votes=10", "sampling")])
def test_resume_refuses_a_checkpoint_of_another_run(small_set, tmp_path, change, key):
    checkpoint = resumable(small_set, tmp_path)
    before = checkpoint.read_bytes()
    with pytest.raises(ConfigError, match=f"checkpoint.pt: resume=true, but the checkpoint was written with other .*{key}"):
        run(small_set, tmp_path, "model=stft", "trainer.epochs=2", "trainer.max_steps=1", "aug=none",
            "resume=true", change)
    assert checkpoint.read_bytes() == before


def test_resume_of_another_data_set_is_refused(small_set, tmp_path):
    resumable(small_set, tmp_path / "run")
    other = tmp_path / "other_set"
    other.symlink_to(small_set, target_is_directory=True)
    with pytest.raises(ConfigError, match="data.root"):
        run(other, tmp_path / "run", "model=stft", "trainer.epochs=2", "aug=none", "resume=true")


def test_resume_without_a_checkpoint_is_refused(small_set, tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint.pt: resume=true but there is no checkpoint"):
        run(small_set, tmp_path, *QUICK, "resume=true")
    assert not (tmp_path / "checkpoint.pt").exists()


def test_a_second_run_in_a_used_run_dir_is_refused(small_set, tmp_path):
    checkpoint = resumable(small_set, tmp_path)
    before = checkpoint.read_bytes()
    with pytest.raises(ConfigError, match="holds a previous run"):
        run(small_set, tmp_path, *QUICK)
    assert checkpoint.read_bytes() == before


def test_a_run_dir_in_use_is_refused_at_once(small_set, tmp_path):
    with open(tmp_path / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        with pytest.raises(RunDirInUse, match="another run is using this run dir"):
            run(small_set, tmp_path, *QUICK)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_a_killed_saves_temp_file_is_removed(small_set, tmp_path):
    stale = tmp_path / ".checkpoint.pt.tmp12345"
    stale.write_bytes(b"half a checkpoint")
    run(small_set, tmp_path, *QUICK)
    assert not stale.exists() and (tmp_path / "checkpoint.pt").exists()


def test_a_mistyped_data_root_does_not_build_a_synthetic_set_there(tmp_path):
    root = tmp_path / "datamunt" / "synthetic"
    with pytest.raises(FileNotFoundError, match="train.csv not found.*data.generate=true"):
        loop.train(compose_config(f"data.root={root}", *QUICK), tmp_path / "run")
    assert not root.exists()


def test_divergence_with_finite_numbers_is_caught():
    assert loop.divergence({"train_loss": 2e9}) == "train loss 2e+09"
    assert "val KL 15.9 against the prior's 0.91" == loop.divergence(
        {"train_loss": 0.5, "val_kl_all": 15.9, "prior_kl_all": 0.91})
    assert loop.divergence({"train_loss": 0.7, "val_kl_all": 0.95, "prior_kl_all": 0.91}) is None


def test_a_diverged_run_stops_in_one_line_and_keeps_its_checkpoint(small_set, tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "divergence", lambda record: "train loss 2e+09")
    with pytest.raises(loop.DivergedRun, match="epoch 1 diverged .train loss 2e.09.; its checkpoint is"):
        run(small_set, tmp_path, *QUICK)
    assert (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "metrics.json").exists()
    metrics = run(small_set, tmp_path / "on", *QUICK, "trainer.stop_on_divergence=false")
    assert metrics["history"][-1]["diverged"] == "train loss 2e+09"


def train_py(*args, env=None, **kwargs):
    return subprocess.run([sys.executable, str(REPO / "train.py"), *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}, **kwargs)


def one_line_error(done, *names):
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-1500:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and all(name in lines[0] for name in names), done.stderr[-1500:]


@pytest.mark.parametrize("bad, names", [
    (["trainer.batch_size=0"], ["trainer.batch_size"]),
    (["trainer.device=cuda"], ["trainer.device=cuda"]) if not torch.cuda.is_available() else (["fold=9"], ["fold"]),
    (["init_from=NOT_A_CHECKPOINT"], ["not a readable checkpoint"]),
    (["model.backbone=nosuchnet", "model=spec_attn"], ["nosuchnet", "spec_attn"]),  # Hydra's InstantiationException
])
def test_train_py_prints_one_line_and_no_traceback(small_set, tmp_path, bad, names):
    bad = [b.replace("NOT_A_CHECKPOINT", str(small_set / "train.csv")) for b in bad]
    done = train_py(f"data.root={small_set}", *QUICK, *bad, f"hydra.run.dir={tmp_path / 'run'}")
    one_line_error(done, *names)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_hms_debug_shows_the_traceback(small_set, tmp_path):
    done = train_py(f"data.root={small_set}", *QUICK, "trainer.batch_size=0", f"hydra.run.dir={tmp_path}",
                    env={"HMS_DEBUG": "1"})
    assert done.returncode != 0 and "Traceback" in done.stderr and "trainer.batch_size" in done.stderr


def test_ctrl_c_says_where_the_last_checkpoint_is(small_set, tmp_path):
    process = subprocess.Popen([sys.executable, str(REPO / "train.py"), f"data.root={small_set}", "model=stft",
                                "aug=none", "trainer.epochs=200", "data.num_workers=0", "trainer.batch_size=4",
                                f"hydra.run.dir={tmp_path}"], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                               # a shell without job control starts background jobs with SIGINT ignored, and
                               # Python keeps an ignored SIGINT ignored: give the child the default back
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    while not (tmp_path / "checkpoint.pt").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)  # a loaded machine can take minutes to reach its handler
    assert process.returncode == 130 and "Traceback" not in stderr, stderr[-1500:]
    assert f"interrupted: the last checkpoint is {tmp_path / 'checkpoint.pt'}: resume=true" in stderr


# ------------------------------------------ every script: one handler (hms.data.kaggle.run_main), one line
# (script, its arguments; FOLDER is a folder, FILE a file, MISSING a path that does not exist,
#  the text the line must hold)
SCRIPT_ERRORS = [
    ("predict.py", ["--data-root", "MISSING", "--checkpoints", "MISSING/a.pt", "--out", "FOLDER"], "FOLDER: is a folder"),
    ("predict.py", ["--data-root", "MISSING", "--checkpoints", "MISSING/a.pt", "--out", "FILE/sub.csv"],
     "FILE/sub.csv: cannot create its folder (FILE is a file)"),
    ("predict.py", ["--data-root", "MISSING", "--checkpoints", "MISSING/a.pt", "--out", "OUT/deeper/sub.csv"],
     "MISSING/test.csv"),
    ("predict.py", ["--data-root", "MISSING", "--checkpoints", "MISSING/a.pt", "--out", "OUT"], "MISSING/test.csv"),
    ("blend_weights.py", ["MISSING/a", "--out", "FOLDER"], "FOLDER: is a folder"),
    ("blend_weights.py", ["MISSING/a", "--out", "OUT"], "MISSING/a: no oof.csv found"),
    ("blend_weights.py", ["--apply", "MISSING/blend.json", "FILE", "--out", "OUT"], "FILE: missing columns"),
    ("pseudo_label.py", ["--data-root", "MISSING", "--checkpoints", "MISSING/a.pt", "--out", "FOLDER"],
     "FOLDER: is a folder"),
    ("pseudo_label.py", ["--data-root", "MISSING", "--checkpoints", "MISSING/a.pt", "--out", "OUT"], "MISSING"),
    ("predict_edf.py", ["MISSING/a.edf", "--checkpoints", "MISSING/a.pt", "--out", "OUT"], "MISSING/a.pt"),
    ("make_synthetic.py", ["--out", "FILE/set", "--patients", "2"], "FILE"),
    ("make_synthetic.py", ["--out", "OUT", "--patients", "0"], "patients must be a positive integer"),
    ("realism_report.py", ["--root", "MISSING", "--out", "OUT"], "MISSING/train.csv: file not found"),
    ("spectrogram_constants.py", ["--root", "MISSING"], "MISSING/train.csv: file not found"),
    ("bench_data.py", ["--root", "MISSING"], "MISSING/train.csv: file not found"),
    ("describe_model.py", ["model=nosuch"], "Could not find 'model/nosuch'"),
    ("describe_model.py", ["model=spec_attn", "model.backbone=nosuchnet"], "timm cannot build 'nosuchnet'"),
]


@pytest.mark.parametrize("script, args, problem", SCRIPT_ERRORS, ids=[f"{s}-{i}" for i, (s, *_) in
                                                                      enumerate(SCRIPT_ERRORS)])
def test_every_script_refuses_in_one_line_naming_the_path_and_writes_nothing(tmp_path, capsys, monkeypatch,
                                                                          script, args, problem):
    monkeypatch.delenv("HMS_DEBUG", raising=False)
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("eeg_id\n1\n")
    places = {"FOLDER": tmp_path / "folder", "FILE": tmp_path / "file", "MISSING": tmp_path / "missing",
              "OUT": tmp_path / "out"}
    fill = lambda text: next((text.replace(k, str(v)) for k, v in places.items() if text.startswith(k)), text)
    before = sorted(tmp_path.rglob("*"))
    done = run_script_here(capsys, script, *map(fill, args))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-1500:]
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1, done.stderr[-1500:]
    assert fill(problem) in done.stderr, done.stderr
    assert sorted(tmp_path.rglob("*")) == before  # nothing written, not even a folder
