"""The training loop: one plain PyTorch loop you can read top to bottom.

data -> prepared caches -> Dataset (slices) -> device batch -> augment -> model -> KL -> AdamW step,
with warm-up/cosine per step, clipping, accumulation, EMA, AMP on CUDA, DDP under torchrun, an atomic
checkpoint every epoch, and a run dir holding oof.csv, metrics.json, checkpoint.pt and curves.png.
"""
import json
import math
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.utils.data import DataLoader
from tqdm import tqdm

from hms.data.inputs import get_inputs, tta_probabilities
from hms.data.loader import ThreadLoader
from hms.data.sampling import pseudo_label_rows, sampling_folds, select_rows, stage_min_votes, window_offsets
from hms.layout import PRED_COLUMNS, VOTE_COLUMNS
from hms.metric import kl_per_row
from hms.log import make_logger
from hms.log.curves import plot_curves
from hms.train import checkpoint, distributed
from hms.train.augment import augment_batch, image_mix, mosaic_epoch
from hms.train.config_check import ConfigError, check_config, check_resume
from hms.train.cpu_memory import keep_freed_cpu_memory
from hms.train.ema import make_ema, update_ema
from hms.train.losses import kl_per_sample, model_loss, smooth, vote_weights
from hms.train.sampler import EpochSampler


class NonFiniteLoss(RuntimeError):
    pass


class DivergedRun(RuntimeError):
    """The loss or the validation KL ran away with finite values (trainer.stop_on_divergence)."""


# The synthetic set is built on first use only here, or where data.generate=true or data.patients asks for it:
# a mistyped data.root must not fill a new folder with 1.5 GB.
DEFAULT_SYNTHETIC_ROOT = "datamount/synthetic"


AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}


def seed32(seed: int) -> int:
    """Any integer the user typed, as a seed every library accepts (numpy needs 0 <= seed < 2**32)."""
    return int(seed) % 2**32


def load_data(cfg, d: distributed.Dist):
    """The data set folder and its prepared caches. Rank 0 builds the embedded synthetic set on first
    use and the caches when stale, under a file lock: parallel sweep jobs share one build."""
    from hms.data.prepare import folder_lock, load_prepared, prepare_data
    root = Path(cfg.data.root)
    generate = cfg.data.generate
    if generate not in (True, False, "auto"):
        raise ConfigError(f"data.generate must be auto, true or false, not {generate!r}")
    if generate == "auto":
        generate = str(cfg.data.root) == DEFAULT_SYNTHETIC_ROOT or cfg.data.patients is not None
    if not (root / "train.csv").exists() and not generate:
        hint = ("; data.generate=true builds the embedded synthetic set there" if cfg.data.generate == "auto"
                else ", or use data=synthetic")
        raise FileNotFoundError(f"{root}/train.csv not found: point data.root at a folder in the "
                                f"Kaggle layout (HMS_FACTS section 1){hint}")
    cache_dir = Path(cfg.data.cache_dir) if cfg.data.cache_dir else root / "cache"
    if d.main:
        with folder_lock(root):
            # first use, or an explicit data.patients for a synthetic set built at another size
            asked = cfg.data.patients is not None and (root / "stats.json").exists()
            if generate and (not (root / "train.csv").exists() or asked):
                from hms.synthetic import ensure_synthetic
                kwargs = {} if cfg.data.patients is None else {"patients": cfg.data.patients}
                ensure_synthetic(root, seed=cfg.data.generate_seed, **kwargs)
            prepare_data(root, cache_dir, n_folds=cfg.data.n_folds, seed=cfg.data.fold_seed,
                         workers=cfg.data.num_workers, inputs=cfg.data.inputs)
    distributed.barrier(d)
    return root, load_prepared(cache_dir, cfg.data.inputs)


def to_device(batch: dict, device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def stored_targets(path, rows: pd.DataFrame) -> torch.Tensor:
    """Stored predictions (an oof.csv, or scripts/pseudo_label.py's file: label_id + <class>_pred) aligned
    to the prepared rows, NaN where a row has none."""
    oof = pd.read_csv(path)
    missing = [c for c in ("label_id", *PRED_COLUMNS) if c not in oof.columns]
    if missing:
        raise ValueError(f"{path}: a file of stored predictions needs columns {missing}")
    aligned = rows[["label_id"]].merge(oof[["label_id", *PRED_COLUMNS]], on="label_id", how="left")
    return torch.tensor(aligned[list(PRED_COLUMNS)].to_numpy(np.float32))


def make_loader(dataset, batch_size: int, data, order, drop_last: bool = False, pin_memory: bool = False):
    """Batches of `dataset` in the order of `order` (a sampler, or a list of indices): data.loader "workers"
    is a DataLoader with data.num_workers processes (0: this one), persistent, so that a run starts them
    once; "threads" is hms.data.loader.ThreadLoader with data.num_workers reading threads in this process.
    The batches are the same either way."""
    if data.loader == "threads":
        return ThreadLoader(dataset, batch_size, order, threads=data.num_workers, pin_memory=pin_memory,
                            drop_last=drop_last)
    return DataLoader(dataset, batch_size=batch_size, sampler=order, drop_last=drop_last, num_workers=data.num_workers,
                      pin_memory=pin_memory, persistent_workers=data.num_workers > 0, generator=own_generator())


def shard_loader(dataset, batch_size: int, d: distributed.Dist, data):
    """This rank's share of `dataset`, in order, in batches (validation and inference); a run builds it
    once and every evaluation reuses it."""
    shard = np.array_split(np.arange(len(dataset)), d.world)[d.rank]
    return make_loader(dataset, batch_size, data, shard.tolist())


def own_generator() -> torch.Generator:
    """A DataLoader's own generator: each new iterator of a loader draws its workers' base seed from it,
    which would otherwise be a draw from the global torch RNG, the one augmentation uses, so that the
    augmentation of epoch 2 on would depend on how many loaders were made (and on persistent_workers).
    Our items take no randomness from it (HMSDataset draws from (seed, epoch, index))."""
    return torch.Generator().manual_seed(0)


def waited(batches, clock: dict):
    """`batches`, adding to clock["wait"] the seconds spent waiting for each one (the loader's share of an
    epoch: near 0 when the workers keep ahead of the model)."""
    batches = iter(batches)
    while True:
        started = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:
            return
        clock["wait"] += time.perf_counter() - started
        yield batch


@torch.no_grad()
def mixed_validation_kl(model, loader: DataLoader, d: distributed.Dist, mix_cfg, seed: int) -> float:
    """The mean over validation batches of the batch-mean plain KL on image-mixed batches (Cranjis-McB
    validated its mosaic warm-up epochs on mosaicked batches: the printed loss and its best-checkpoint
    choice, RECIPES.md 4.4). Each rank's shard; the mix of its batch k is seeded with (seed, k)."""
    model.eval()
    losses = []
    for k, batch in enumerate(loader):
        batch = to_device(batch, d.device)
        batch["image_mix"] = dict(mix_cfg, seed=int(np.random.default_rng([seed, k]).integers(2**62)))
        out = model(batch)
        losses.append(float(kl_per_sample(out["logits"], out["target"]).mean()))
    return float(np.mean(distributed.gather(d, np.array(losses)))) if losses else math.nan


@torch.no_grad()
def predict(model, loader: DataLoader, d: distributed.Dist, tta: bool, flips) -> np.ndarray:
    """Probabilities for every item of the shard_loader's dataset (in order), sharded over ranks and
    gathered; TTA flips the inputs the training flips act on."""
    dataset = loader.dataset
    inputs = {name: source.input for name, source in dataset.sources.items() if name in dataset.flip_inputs}
    model.eval()
    probs = []
    for batch in tqdm(loader, desc="validate", leave=False, disable=not d.main):
        probs.append(tta_probabilities(model, to_device(batch, d.device), inputs, tta, flips).cpu().numpy())
    mine = np.concatenate(probs) if probs else np.zeros((0, 6), np.float32)
    return np.concatenate(distributed.gather(d, mine))


def oof_frame(rows: pd.DataFrame, probs: np.ndarray) -> pd.DataFrame:
    oof = rows[["eeg_id", "label_id", "patient_id", "n_votes", *VOTE_COLUMNS]].reset_index(drop=True)
    return pd.concat([oof, pd.DataFrame(probs, columns=list(PRED_COLUMNS))], axis=1)


def score(oof: pd.DataFrame, prior: np.ndarray, oracle: pd.DataFrame | None, min_votes: int) -> dict:
    """Val KL of the model, of the training prior and of the oracle, on min_votes+ rows and on all."""
    out = {}
    for suffix, part in (("", oof[oof.n_votes >= min_votes]), ("_all", oof)):
        if len(part) == 0:  # e.g. a tiny set whose fold has no 10+ vote row: the keys stay, as null
            out |= {f"{key}{suffix}": None for key in ("val_kl", "prior_kl", "bayes_kl")} | {f"n_val{suffix}": 0}
            continue
        target = part[list(VOTE_COLUMNS)].to_numpy()
        out[f"val_kl{suffix}"] = float(kl_per_row(target, part[list(PRED_COLUMNS)].to_numpy()).mean())
        out[f"prior_kl{suffix}"] = float(kl_per_row(target, np.broadcast_to(prior, target.shape)).mean())
        if oracle is not None:
            truth = part[["label_id"]].merge(oracle, on="label_id", how="left")[list(VOTE_COLUMNS)]
            out[f"bayes_kl{suffix}"] = float(kl_per_row(target, truth.to_numpy()).mean())
        out[f"n_val{suffix}"] = int(len(part))
    if None not in (out.get("val_kl"), out.get("prior_kl"), out.get("bayes_kl")) and out["prior_kl"] > out["bayes_kl"]:
        out["gap_closed"] = (out["prior_kl"] - out["val_kl"]) / (out["prior_kl"] - out["bayes_kl"])
    return out


def divergence(record: dict) -> str | None:
    """Why an epoch looks diverged with finite numbers: a train loss above 1e3 (KL is a few units at most, a
    vote weight 10 at most), or a validation KL above 3 x the prior's + 1 (far worse than knowing nothing)."""
    loss, val, prior = record.get("train_loss"), record.get("val_kl_all"), record.get("prior_kl_all")
    if loss is not None and loss > 1e3:
        return f"train loss {loss:.3g}"
    if val is not None and prior is not None and val > 3 * prior + 1:
        return f"val KL {val:.3g} against the prior's {prior:.3g}"
    return None


def train(cfg, run_dir: Path) -> dict:
    """Train one model on one fold; returns the metrics written to run_dir/metrics.json. The config is
    checked first (hms/train/config_check.py) and the run dir held by this run alone."""
    check_config(cfg)
    d = distributed.setup(cfg.trainer.device)
    run_dir = Path(distributed.gather(d, str(run_dir))[0])  # every rank writes under rank 0's dir
    with checkpoint.run_dir_lock(run_dir) if d.main else nullcontext():
        return fit(cfg, run_dir, d)


def fit(cfg, run_dir: Path, d: distributed.Dist) -> dict:
    """train()'s work, in the run dir it holds."""
    from hms.data.dataset import HMSDataset

    tr = cfg.trainer
    seed = seed32(cfg.seed)
    torch.manual_seed(seed)
    if tr.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    cuda = d.device.type == "cuda"
    if not cuda and tr.keep_cpu_memory:
        keep_freed_cpu_memory()

    # ---- data: every row is available; the stage decides which ones an epoch trains on
    root, prepared = load_data(cfg, d)
    inputs = get_inputs(cfg.data.inputs)
    sm = cfg.sampling
    rows = prepared.rows.assign(fold=sampling_folds(prepared.rows, sm.folds, cfg.data.n_folds, cfg.data.fold_seed))
    offsets = window_offsets(rows, sm.window)
    val_pos = select_rows(rows, cfg.fold, "val", 1, sm.val_dedup) if cfg.fold >= 0 else []
    datasets, samplers = {}, {}  # one per vote threshold the stages use
    pseudo_rows = (pseudo_label_rows(sm.pseudo_labels, rows, cfg.fold, sm.dedup) if sm.pseudo_labels
                   else np.zeros(0, dtype=int))
    for min_votes in sorted({stage_min_votes(sm, e) for e in range(tr.epochs)}):
        # the rows of the stage's vote threshold, and the pseudo-labelled rows below it
        positions = np.union1d(select_rows(rows, cfg.fold, "train", min_votes, sm.dedup), pseudo_rows)
        datasets[min_votes] = HMSDataset(
            prepared, positions, one_window_per_eeg=sm.one_window_per_eeg,
            time_shift_seconds=sm.time_shift_seconds, flip_lr_p=cfg.aug.flip_lr_p,
            flip_fb_p=cfg.aug.flip_fb_p, seed=seed, flip_inputs=cfg.aug.flip_inputs, window_offsets=offsets,
            reader=cfg.data.reader)
        samplers[min_votes] = EpochSampler(len(datasets[min_votes]), tr.batch_size, seed, d.rank, d.world)
    epoch_steps = [samplers[stage_min_votes(sm, e)].steps // tr.accumulate for e in range(tr.epochs)]
    total_steps = sum(epoch_steps) if tr.max_steps is None else min(tr.max_steps, sum(epoch_steps))
    # the score to beat: the mean target of the 10+ vote training rows (of all of them when a stage has none,
    # e.g. Cranjis-McB's noisy-row stage)
    prior_pos = select_rows(rows, cfg.fold, "train", sm.val_min_votes, sm.val_dedup)
    if len(prior_pos) == 0:
        prior_pos = select_rows(rows, cfg.fold, "train", 1, sm.val_dedup)
    prior = rows.iloc[prior_pos][list(VOTE_COLUMNS)].to_numpy().mean(axis=0)
    oracle = pd.read_csv(root / "oracle.csv") if (root / "oracle.csv").exists() else None
    noisy = stored_targets(cfg.loss.noisy_student_oof, rows).to(d.device) if cfg.loss.noisy_student_oof else None
    pseudo = stored_targets(sm.pseudo_labels, rows).to(d.device) if sm.pseudo_labels else None

    # ---- model, optimizer, schedule, EMA
    model = instantiate(cfg.model).to(d.device)
    if cfg.init_from and not (cfg.resume and (run_dir / "checkpoint.pt").exists()):
        # a stage of a staged recipe: another run's weights, with a fresh optimizer, schedule and EMA
        checkpoint.load_weights(model, cfg.init_from, d.device)
    if tr.channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_weights = getattr(model, "loss_weights", None)
    optimizer = instantiate(cfg.optim)(model.parameters())
    scheduler = instantiate(cfg.sched)(optimizer, total_steps=max(1, total_steps), epoch_steps=epoch_steps)
    if tr.amp not in AMP_DTYPES:
        raise ValueError(f"trainer.amp must be one of {sorted(AMP_DTYPES)}, not {tr.amp!r}")
    amp_dtype = AMP_DTYPES[tr.amp] if cuda else None
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    ema = make_ema(model, tr.ema_decay, tr.ema_warmup, tr.ema_average_buffers)
    net = torch.nn.parallel.DistributedDataParallel(model) if d.on else model

    start_epoch, step, history = 0, 0, []
    best = {"score": math.inf, "metrics": None, "reset": False}  # trainer.keep_best: the best evaluation so far
    ckpt_path = run_dir / "checkpoint.pt"
    if not cfg.resume and ckpt_path.exists():
        raise ConfigError(f"{run_dir} holds a previous run (checkpoint.pt): resume=true continues it, another "
                          "hydra.run.dir starts afresh")
    if cfg.resume:
        if not ckpt_path.exists():
            raise FileNotFoundError(f"{ckpt_path}: resume=true but there is no checkpoint to continue "
                                    "(drop resume=true to start afresh)")
        state = checkpoint.load(ckpt_path, d.device)
        check_resume(state["config"], cfg, ckpt_path)
        model.load_state_dict(state["train_model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        if ema is not None:
            ema.module.load_state_dict(state["model"])
            ema.n_averaged.fill_(state["ema_n_averaged"])
        checkpoint.set_rng_state(state["rng"])
        start_epoch, step, history = state["epoch"] + 1, state["step"], state["history"]
        best = state.get("best", best)
        if d.main:
            print(f"resumed {ckpt_path} after epoch {state['epoch'] + 1} (fold {cfg.fold}, "
                  f"{cfg.model._target_}, {cfg.data.root})")

    logger = make_logger(cfg.logger, run_dir, d.main)
    logger.log_config(OmegaConf.to_container(cfg, resolve=True))
    eval_model = ema.module if ema is not None else model
    val_set = (HMSDataset(prepared, val_pos, flip_inputs=cfg.aug.flip_inputs, window_offsets=offsets,
                          reader=cfg.data.reader) if len(val_pos) else None)
    val_loader = shard_loader(val_set, tr.val_batch_size, d, cfg.data) if val_set is not None else None
    # one loader per stage, built once: its workers persist over epochs (a new worker's first windows are
    # its slowest), and the sampler hands them each index with its epoch, (epoch, i)
    train_loaders = {}
    if (cfg.aug.cutmix_p > 0 or cfg.aug.mosaic_epochs > 0) and not getattr(model, "supports_image_mix", False):
        raise ValueError(f"aug.cutmix_p / aug.mosaic_epochs mix the model's images: {type(model).__name__} "
                         "does not (spectrogram_cnn does)")
    if tr.eval_at not in ("epoch_end", "half_epochs"):
        raise ValueError(f"trainer.eval_at must be epoch_end or half_epochs, not {tr.eval_at!r}")
    train_seconds, train_samples = 0.0, 0
    for h in history:
        train_seconds, train_samples = train_seconds + h["seconds"], train_samples + h["samples"]

    # ---- the loop
    def evaluate(epoch: int, final: bool) -> dict:
        """The validation fold's scores now (flip TTA only for the final, reported score). With trainer.keep_best
        the best evaluation by trainer.best_metric wins: its weights go to best.pt, its predictions to oof.csv
        (the checkpoint chosen on the fold it is scored on: an optimistic CV, as Cranjis-McB's)."""
        probs = predict(eval_model, val_loader, d, cfg.aug.tta and final, cfg.aug.tta_flips)
        oof = oof_frame(rows.iloc[val_pos], probs)
        metrics = score(oof, prior, oracle, sm.val_min_votes)
        if mosaic_epoch(cfg.aug, epoch) and cfg.aug.mosaic_validation:
            metrics["val_kl_mosaic"] = mixed_validation_kl(eval_model, val_loader, d, {"kind": "mosaic"}, seed + epoch)
        if not tr.keep_best:
            if d.main:
                oof.to_csv(run_dir / "oof.csv", index=False)
            return metrics
        # the tracker restarts after the mosaic warm-up: at every evaluation of the first epoch after it, as
        # published (aug.mosaic_reset=every_eval), or at its first one (once)
        if cfg.aug.mosaic_epochs and epoch == cfg.aug.mosaic_epochs and (
                cfg.aug.mosaic_reset == "every_eval" or not best["reset"]):
            best.update(score=math.inf, reset=True)
        value = metrics.get("val_kl_mosaic", metrics.get(tr.best_metric))
        if value is not None and value < best["score"]:
            best.update(score=value, metrics=metrics | {"best_epoch": epoch, "best_step": step})
            if d.main:
                oof.to_csv(run_dir / "oof.csv", index=False)
                checkpoint.save_atomic({"model": eval_model.state_dict(), "epoch": epoch, "step": step,
                                        "metrics": best["metrics"],
                                        "config": OmegaConf.to_container(cfg, resolve=True)}, run_dir / "best.pt")
        return metrics

    for epoch in range(start_epoch, tr.epochs):
        if tr.max_steps is not None and step >= tr.max_steps:
            break
        stage = stage_min_votes(sm, epoch)
        samplers[stage].set_epoch(epoch)
        if stage not in train_loaders:
            train_loaders[stage] = make_loader(datasets[stage], tr.batch_size, cfg.data, samplers[stage],
                                               drop_last=True, pin_memory=cuda)
        loader = train_loaders[stage]
        # half_epochs (Cranjis-McB): after the batches i > 0 with i % (len // 2 - 1) == 0, not at the epoch's end
        eval_every = max(1, len(loader) // 2 - 1)
        evaluations = []
        net.train()
        started, losses, seen, clock = time.time(), [], 0, {"wait": 0.0}
        bar = tqdm(waited(loader, clock), total=len(loader), desc=f"epoch {epoch + 1}/{tr.epochs}", disable=not d.main,
                   leave=False)
        for i, batch in enumerate(bar):
            batch = to_device(batch, d.device)
            if pseudo is not None:  # a pseudo-labelled row's target is its pseudo-label
                stored = pseudo[batch["row"]]
                batch["target"] = torch.where(torch.isnan(stored).any(dim=1, keepdim=True), batch["target"], stored)
            if noisy is not None:  # before CropCat, which then mixes the replaced targets (15th place)
                stored = noisy[batch["row"]]
                swap = (torch.rand(len(stored), device=d.device) < cfg.loss.noisy_student_p)
                swap &= ~torch.isnan(stored).any(dim=1)
                batch["target"] = torch.where(swap[:, None], stored, batch["target"])
            batch = augment_batch(batch, inputs, cfg.aug)
            mix = image_mix(cfg.aug, epoch)  # CutMix or mosaic of the model's images, which the model applies
            if mix is not None:
                batch["image_mix"] = mix
            target = batch["target"]
            if cfg.loss.label_smoothing:
                target = smooth(target, cfg.loss.label_smoothing)
            weight = vote_weights(batch["n_votes"], cfg.loss.weighting, epoch, cfg.loss.vote_groups)
            if mosaic_epoch(cfg.aug, epoch):  # the mosaic warm-up trains on plain KL (Cranjis-McB)
                weight = torch.ones_like(weight)
            if cfg.loss.low_vote_decay != 1.0:
                low = batch["n_votes"] < sm.val_min_votes
                weight = torch.where(low, weight * cfg.loss.low_vote_decay ** epoch, weight)
            with torch.autocast(d.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                outputs = net(batch)
                loss = model_loss(outputs, outputs.get("target", target), weight, loss_weights)
            if distributed.any_true(d, not torch.isfinite(loss).item()):
                raise NonFiniteLoss(f"non-finite loss ({loss.item()}) at epoch {epoch + 1}, step {step + 1} "
                                    f"(batch {i}); nothing saved for this epoch: lower optim.lr or "
                                    f"check the data (rows {batch['row'][:8].tolist()}...)")
            scaler.scale(loss / tr.accumulate).backward()
            losses.append(loss.item())
            seen += len(target) * d.world
            if (i + 1) % tr.accumulate:
                continue
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), tr.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            step += 1
            if ema is not None and tr.ema_every == "step":
                update_ema(ema, model, tr.ema_average_buffers)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
            if val_set is not None and tr.eval_at == "half_epochs" and i > 0 and i % eval_every == 0:
                evaluations.append({"batch": i, "step": step} | evaluate(epoch, final=False))
                net.train()
            if tr.max_steps is not None and step >= tr.max_steps:
                break
        if ema is not None and tr.ema_every == "epoch":
            update_ema(ema, model, tr.ema_average_buffers)
        seconds = time.time() - started
        train_seconds, train_samples = train_seconds + seconds, train_samples + seen

        record = {"epoch": epoch, "step": step, "train_loss": float(np.mean(losses)) if losses else math.nan,
                  "lr": scheduler.get_last_lr()[0], "seconds": seconds, "samples": seen,
                  "loader_wait_s": clock["wait"]}
        if val_set is not None and tr.eval_at == "epoch_end":
            last = epoch == tr.epochs - 1 or (tr.max_steps is not None and step >= tr.max_steps)
            record |= evaluate(epoch, final=last)
        elif evaluations:  # the epoch's last evaluation, and all of them
            record |= {k: v for k, v in evaluations[-1].items() if k not in ("batch", "step")}
            record["evaluations"] = evaluations
        history.append(record)
        logger.log_metrics({k: v for k, v in record.items() if k != "evaluations"}, step)
        if d.main:
            summary = " ".join(f"{k} {v:.4f}" for k, v in record.items()
                               if k in ("train_loss", "val_kl", "val_kl_all", "prior_kl", "bayes_kl") and v is not None)
            print(f"epoch {epoch + 1}/{tr.epochs} step {step} {summary} "
                  f"({seconds:.0f}s, {seen / max(seconds, 1e-9):.1f} samples/s)", flush=True)
            checkpoint.save_atomic({
                "model": eval_model.state_dict(), "train_model": model.state_dict(),
                "ema_n_averaged": int(ema.n_averaged.item()) if ema is not None else 0,
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "rng": checkpoint.rng_state(), "epoch": epoch,
                "step": step, "history": history, "best": best,
                "config": OmegaConf.to_container(cfg, resolve=True),
            }, ckpt_path)
        distributed.barrier(d)
        reason = divergence(record)
        if reason and tr.stop_on_divergence:
            raise DivergedRun(f"epoch {epoch + 1} diverged ({reason}); its checkpoint is {ckpt_path}: lower "
                              "optim.lr, or trainer.stop_on_divergence=false to train on")
        if reason and d.main:
            print(f"warning: epoch {epoch + 1} looks diverged ({reason})", file=sys.stderr)
            record["diverged"] = reason

    # ---- outputs
    reported = best["metrics"] if tr.keep_best and best["metrics"] else (history[-1] if history else {})
    metrics = {k: v for k, v in reported.items() if k.startswith(("val_", "prior_", "bayes_", "n_val", "gap_", "best_"))}
    metrics |= {"history": history, "epochs": len(history), "steps": step, "fold": cfg.fold,
                "train_samples_per_s": train_samples / max(train_seconds, 1e-9),
                "train_seconds": train_seconds}
    if d.main:
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        plot_curves(history, run_dir / "curves.png", metrics.get("prior_kl"), metrics.get("bayes_kl"))
    logger.close()
    distributed.teardown(d)
    return metrics
