"""The Cranjis-McB ladder number by number (../shared/RECIPES.md section 4): rows, windows, folds, loss weights,
the never-stepped OneCycleLR, the image mixes' schedule, evaluation twice per epoch keeping the best, and every
preset training and predicting at CPU size."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from sklearn.model_selection import StratifiedGroupKFold

from hms.data.sampling import dedup_mask, group_folds, window_offsets
from hms.ensemble.predict import predict_folder
from hms.layout import VOTE_COLUMNS
from hms.train.augment import image_mix
from hms.train.checkpoint import load
from hms.train.losses import vote_weights
from hms.train.schedule import one_cycle
from tests.helpers import compose_config, options
from tests.train.test_loop import run

PRESETS = [name for name in options("experiment") if name.startswith("cranjis_")]
# preset -> (backbone, image parts as (source, features, norm), epochs, weighting, CutMix p, mosaic epochs)
PUBLISHED = {
    "cranjis_baseline": ("efficientnet_b2", [("spec", "panels", "panel")], 6, "none", 0.0, 0),
    "cranjis_global_features": ("efficientnet_b2", [("spec", "global", "joint")], 6, "none", 0.0, 0),
    "cranjis_spec_percentiles": ("efficientnet_b2", [("spec", "percentiles", "joint")], 6, "none", 0.0, 0),
    "cranjis_eeg_percentiles": ("efficientnet_b2", [("eeg", "panels", "none"), ("eeg", "percentiles", "none")], 6,
                                "none", 0.0, 0),
    "cranjis_eeg_global_features": ("efficientnet_b2", [("eeg", "global", "none")], 6, "none", 0.0, 0),
    "cranjis_vote_cutmix": ("efficientnet_b2", [("spec", "panels", "panel"), ("spec", "percentiles", "joint")], 6,
                            "log1p_votes", 0.4, 0),
    "cranjis_vote_cutmix_global": ("efficientnet_b2", [("spec", "global", "joint")], 6, "log1p_votes", 0.4, 0),
    "cranjis_global_norm": ("efficientnet_b4", [("spec", "panels", "global")], 6, "log1p_votes", 0.0, 0),
    "cranjis_global_norm_features": ("efficientnet_b2", [("spec", "global", "global")], 6, "log1p_votes", 0.4, 0),
    "cranjis_mosaic_xloss": ("efficientnet_b0", [("spec", "panels", "global")], 8, "min10", 0.0, 3),
    "cranjis_mosaic_xloss_global": ("efficientnet_b0", [("spec", "global", "global")], 8, "min10", 0.0, 3),
    "cranjis_two_stage": ("efficientnet_b0", [("spec", "panels", "global")], 6, "min10", 0.0, 0),
    "cranjis_two_stage_modified_loss": ("efficientnet_b0", [("spec", "panels", "global")], 6, "cmb_modified", 0.0, 0),
    "cranjis_two_stage_global": ("efficientnet_b0", [("spec", "global", "global")], 5, "min10", 0.0, 0),
}
STATS_7A, STATS_7B = [-0.08340271, 1.9072835], [0.07975473, 1.9484872]
TINY = ["pretrained=false", "model.backbone=test_efficientnet", "model.drop_path_rate=0", "trainer.amp=none",
        "trainer.batch_size=4", "trainer.val_batch_size=16", "data.n_folds=4", "name=test"]
# whole epochs in seconds: the high-vote rows only
SHORT = ["sampling.train_min_votes=10", "trainer.batch_size=4", "trainer.max_steps=null"]


def test_every_preset_is_listed_with_its_published_numbers():
    assert sorted(PRESETS) == sorted(PUBLISHED)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_every_preset_composes_with_its_published_numbers(name):
    backbone, parts, epochs, weighting, cutmix_p, mosaic_epochs = PUBLISHED[name]
    cfg = compose_config(f"experiment={name}")
    m, tr, sm, aug = cfg.model, cfg.trainer, cfg.sampling, cfg.aug
    assert cfg.name == name and cfg.pretrained and m._target_.endswith("SpectrogramCNN")
    plain_timm = name == "cranjis_global_features"  # timm.create_model(num_classes=6) as is (cell 17)
    assert m.backbone == backbone and m.drop_path_rate == (0.0 if plain_timm else 0.2)
    assert m.head_dropout == (None if plain_timm else 0.3)
    assert [(p.source, p.features, p.norm) for p in m.parts] == parts
    if any(p[2] == "global" for p in parts):
        assert list(m.norm_stats) == (STATS_7B if parts[0][1] == "global" else STATS_7A)
    assert list(cfg.data.inputs) == (["eeg"] if parts[0][0] == "eeg" else ["spec"])
    assert (tr.epochs, tr.batch_size, tr.accumulate, tr.amp, tr.ema_decay) == (epochs, 32, 1, "fp16", None)
    assert (tr.eval_at, tr.keep_best, tr.best_metric, tr.grad_clip) == ("half_epochs", True, "val_kl_all", math.inf)
    assert cfg.optim._target_ == "torch.optim.AdamW" and (cfg.optim.lr, cfg.optim.weight_decay) == (1e-3, 1e-2)
    assert cfg.sched._target_.endswith("one_cycle") and not cfg.sched.stepped and cfg.sched.max_lr == 1e-3
    assert (cfg.sched.pct_start, cfg.sched.div_factor, cfg.sched.final_div_factor) == (0.0, 25, 0.4)
    assert cfg.loss.weighting == weighting and aug.cutmix_p == cutmix_p and aug.mosaic_epochs == mosaic_epochs
    assert (aug.flip_lr_p, aug.flip_fb_p, aug.cropcat_p, aug.tta) == (0.0, 0.0, 0.0, False)
    rows = "first_per_vote_vector" + ("_good" if "two_stage" in name else "")
    assert (sm.dedup, sm.val_dedup, sm.window, sm.folds) == (rows, rows, "group_middle", "vote_vector_groups")
    assert (sm.train_min_votes, sm.one_window_per_eeg, cfg.data.n_folds, cfg.data.fold_seed) == (1, False, 5, 42)
    if cutmix_p:  # 6a cuts a second band 300 on (cut_eeg_spec); every CutMix on the height, as trained
        assert OmegaConf.to_container(aug.cutmix) == {
            "threshold": 0.5, "margin": 50, "min_size": 25, "max_size": 75, "span": 300, "axis": "height",
            "second_band_offset": 300 if name == "cranjis_vote_cutmix" else None}
    if mosaic_epochs:
        assert aug.mosaic_validation and aug.mosaic_reset == "every_eval"


def test_the_two_stage_recipes_run_their_noisy_stage_first():
    cfg = compose_config("experiment=cranjis_two_stage", "stage=cranjis_noisy")
    assert (cfg.sampling.dedup, cfg.sampling.val_dedup) == ("first_per_vote_vector_noisy",) * 2
    assert (cfg.trainer.epochs, cfg.aug.mosaic_epochs, cfg.loss.weighting) == (6, 2, "min10")
    assert compose_config("experiment=cranjis_two_stage_modified_loss", "stage=cranjis_noisy").loss.weighting == "min10"


def annotation_rows() -> pd.DataFrame:
    """Rows of three EEGs: groups of one vote vector each, the vote columns as fractions (as prepared)."""
    spec = [0, 10, 22, 6, 8, 100, 300, 40, 40, 0]
    eeg = [0, 10, 22, 6, 8, 100, 300, 40, 40, 2]
    eeg_id = [1, 1, 1, 1, 1, 2, 2, 3, 3, 4]
    raw = [[3, 0, 0, 0, 0, 0]] * 3 + [[0, 4, 0, 0, 0, 0]] * 2 + [[2, 2, 0, 0, 0, 0]] * 2 + [[1, 1, 1, 1, 1, 0]] * 2 \
        + [[0, 0, 0, 0, 0, 1]]
    raw = np.array(raw, dtype=float)
    rows = pd.DataFrame(raw / raw.sum(axis=1, keepdims=True), columns=list(VOTE_COLUMNS))
    return rows.assign(eeg_id=eeg_id, n_votes=raw.sum(axis=1).astype(int), spectrogram_label_offset_seconds=spec,
                       eeg_label_offset_seconds=eeg, label_id=np.arange(10) + 100)


def test_one_row_per_vote_vector_the_first_and_the_noisy_good_split():
    rows = annotation_rows()
    assert np.flatnonzero(dedup_mask(rows, "first_per_vote_vector")).tolist() == [0, 3, 5, 7, 9]
    # 3 votes: noisy; 4 votes all one class: good; 4 votes split: noisy; 5 votes: good; 1 vote: noisy
    assert np.flatnonzero(dedup_mask(rows, "first_per_vote_vector_good")).tolist() == [3, 7]
    assert np.flatnonzero(dedup_mask(rows, "first_per_vote_vector_noisy")).tolist() == [0, 5, 9]


def test_the_windows_sit_at_the_middle_of_each_group():
    offsets = window_offsets(annotation_rows(), "group_middle")
    # the spectrogram row r = int((min + max) // 4), offset 2 r; the EEG at (min + max) / 2
    assert offsets["spectrogram_label_offset_seconds"].tolist() == [10] * 3 + [6] * 2 + [200] * 2 + [40] * 2 + [0]
    assert offsets["eeg_label_offset_seconds"].tolist() == [11] * 3 + [7] * 2 + [200] * 2 + [40] * 2 + [2]
    assert window_offsets(annotation_rows(), "row") == {}
    with pytest.raises(ValueError, match="sampling.window"):
        window_offsets(annotation_rows(), "centre")


def test_the_folds_are_the_notebooks_stratified_group_folds_of_the_groups():
    rng = np.random.default_rng(0)
    n = 400
    raw = rng.integers(0, 3, size=(n, 6))
    raw[raw.sum(axis=1) == 0, 5] = 1
    rows = pd.DataFrame(raw / raw.sum(axis=1, keepdims=True), columns=list(VOTE_COLUMNS)).assign(
        eeg_id=rng.integers(0, 120, n), n_votes=raw.sum(axis=1), patient_id=0,
        expert_consensus=np.array(["Seizure", "LPD", "GPD", "LRDA", "GRDA", "Other"])[raw.argmax(axis=1)])
    rows["patient_id"] = rows.eeg_id // 3
    ours = group_folds(rows, 5, 42)
    # the notebooks' cells 3 and 7 on the raw votes: groupby (eeg_id, votes), first, merge, StratifiedGroupKFold
    train = pd.DataFrame(raw, columns=list(VOTE_COLUMNS)).assign(eeg_id=rows.eeg_id, patient_id=rows.patient_id,
                                                                  expert_consensus=rows.expert_consensus)
    keys = ["eeg_id", *VOTE_COLUMNS]
    grouped = train.groupby(keys)[["patient_id", "expert_consensus"]].agg("first").reset_index()
    folds = np.full(len(grouped), -1)
    for k, (_, val) in enumerate(StratifiedGroupKFold(5, shuffle=True, random_state=42).split(
            grouped, grouped.expert_consensus, grouped.patient_id)):
        folds[val] = k
    expected = train.merge(grouped.assign(fold=folds), on=keys, how="left").fold.to_numpy()
    np.testing.assert_array_equal(ours, expected)
    assert (rows.assign(fold=ours).groupby("patient_id").fold.nunique() == 1).all()


def test_the_published_loss_weights():
    votes = torch.tensor([1.0, 3, 9, 10, 11, 15, 20, 28])
    np.testing.assert_allclose(vote_weights(votes, "log1p_votes").numpy(), np.log(votes.numpy() + 1), rtol=1e-6)
    np.testing.assert_allclose(vote_weights(torch.tensor([1.0, 3, 10, 28]), "log1p_votes"),
                               [0.693, 1.386, 2.398, 3.367], atol=1e-3)
    assert vote_weights(votes, "min10").tolist() == [1, 3, 9, 10, 10, 10, 10, 10]  # clamp(max=10), as coded
    np.testing.assert_allclose(vote_weights(votes, "cmb_modified"), [1, 3, 9, 10, 12.58, 14.53, 16.40, 18.66], atol=5e-3)


def test_the_one_cycle_is_built_and_never_stepped_as_published():
    def optimizer():
        return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3, weight_decay=1e-2)

    total = 6 * 497  # 6 epochs of the ~15,900 training rows of a fold in batches of 32
    opt = optimizer()
    sched = one_cycle(opt, total, None, max_lr=1e-3)
    for _ in range(100):
        sched.step()
    group = opt.param_groups[0]
    assert group["lr"] == pytest.approx(0.99999975e-3, abs=2e-12) and group["betas"][0] == pytest.approx(0.85, abs=1e-6)
    opt = optimizer()
    fixed = one_cycle(opt, total, None, max_lr=1e-3, stepped=True)
    for _ in range(total - 1):
        opt.step()
        fixed.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-4) and opt.param_groups[0]["betas"][0] == pytest.approx(0.95)


def test_the_image_mixes_follow_the_recipe_schedule():
    aug = compose_config("experiment=cranjis_vote_cutmix").aug
    g = torch.Generator().manual_seed(0)
    mixes = [image_mix(aug, epoch=0, generator=g) for _ in range(2000)]
    chosen = [m for m in mixes if m is not None]
    assert abs(len(chosen) / len(mixes) - 0.4) < 0.03 and {m["kind"] for m in chosen} == {"cutmix"}
    assert chosen[0]["second_band_offset"] == 300 and len({m["seed"] for m in chosen}) == len(chosen)
    aug = compose_config("experiment=cranjis_mosaic_xloss").aug
    assert all(image_mix(aug, epoch)["kind"] == "mosaic" for epoch in range(3)) and image_mix(aug, 3) is None


def test_evaluations_twice_per_epoch_keep_the_best(small_set, tmp_path):
    metrics = run(small_set, tmp_path, "experiment=cranjis_baseline", *TINY, *SHORT, "trainer.epochs=2")
    evaluations = [e for h in metrics["history"] for e in h["evaluations"]]
    n = metrics["steps"] // 2  # batches per epoch
    assert [e["batch"] for e in metrics["history"][0]["evaluations"]] == [
        i for i in range(1, n) if i % max(1, n // 2 - 1) == 0]
    best = min(evaluations, key=lambda e: e["val_kl_all"])
    assert metrics["val_kl_all"] == best["val_kl_all"] and metrics["best_step"] == best["step"]
    state = load(tmp_path / "best.pt")
    assert state["step"] == best["step"] and state["metrics"]["val_kl_all"] == best["val_kl_all"]
    oof = pd.read_csv(tmp_path / "oof.csv")  # the best evaluation's predictions
    assert len(oof) == best["n_val_all"]


def test_the_mosaic_warm_up_validates_on_mosaics_and_restarts_the_tracker(small_set, tmp_path):
    metrics = run(small_set, tmp_path, "experiment=cranjis_mosaic_xloss", *TINY, *SHORT, "trainer.epochs=3",
                  "aug.mosaic_epochs=1")
    first, second, third = (h["evaluations"] for h in metrics["history"])
    assert all("val_kl_mosaic" in e for e in first) and not any("val_kl_mosaic" in e for e in second + third)
    # every evaluation of the first epoch after the warm-up restarts the tracker: its last one is a candidate
    # whatever the earlier ones scored, so the best comes from it or the epoch after
    assert metrics["best_epoch"] >= 1
    candidates = [second[-1], *third]
    assert metrics["val_kl_all"] == min(e["val_kl_all"] for e in candidates)


def test_the_mosaic_fixes_validate_plainly_and_restart_the_tracker_once(small_set, tmp_path):
    metrics = run(small_set, tmp_path, "experiment=cranjis_mosaic_xloss", *TINY, *SHORT, "trainer.epochs=2",
                  "aug.mosaic_epochs=1", "aug.mosaic_validation=false", "aug.mosaic_reset=once")
    first, second = (h["evaluations"] for h in metrics["history"])
    assert not any("val_kl_mosaic" in e for e in first + second)
    assert metrics["val_kl_all"] == min(e["val_kl_all"] for e in second)  # restarted once, then the best


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_every_preset_trains_and_predicts_at_cpu_size(name, small_set, tmp_path):
    metrics = run(small_set, tmp_path, f"experiment={name}", *TINY, "trainer.epochs=2", "trainer.max_steps=3")
    assert metrics["steps"] == 3 and all(np.isfinite(h["train_loss"]) for h in metrics["history"])
    weights = tmp_path / ("best.pt" if (tmp_path / "best.pt").exists() else "checkpoint.pt")
    probs, rows = predict_folder(small_set, [weights], tta=False, progress=False)
    assert probs["test"].shape == (len(rows), 6) and np.allclose(probs["test"].sum(axis=1), 1, atol=1e-5)


def test_the_second_stage_starts_from_the_first_stages_best(small_set, tmp_path):
    stage1 = tmp_path / "stage1"
    run(small_set, stage1, "experiment=cranjis_two_stage", "stage=cranjis_noisy", *TINY, "trainer.epochs=2",
        "aug.mosaic_epochs=1", "trainer.max_steps=null")
    best = load(stage1 / "best.pt")
    assert best["epoch"] >= 1  # after the mosaic warm-up
    metrics = run(small_set, tmp_path / "stage2", "experiment=cranjis_two_stage", *TINY, "trainer.epochs=1",
                  f"init_from={stage1 / 'best.pt'}", "trainer.max_steps=1")
    assert metrics["steps"] == 1
