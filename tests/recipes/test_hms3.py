"""The 3rd-place presets number by number (../shared/RECIPES.md section 2): shapes, parameters, training."""
import pytest
import torch
from hydra.utils import instantiate

from hms.data.inputs import random_batch
from hms.ensemble.predict import predict_folder
from hms.models.describe import describe
from tests.helpers import compose_config
from tests.train.test_loop import run

# cfg -> (backbone, image fed to it, epochs, batch, accumulate, amp)
MEL = {"hms3_cfg1": ("mixnet_xl", (1, 2048, 257), 12, 8, 4, "none"),
       "hms3_cfg3": ("mixnet_l", (3, 1024, 313), 12, 32, 1, "fp16"),
       "hms3_cfg4": ("mixnet_xl", (3, 1024, 602), 12, 16, 2, "fp16"),
       "hms3_cfg5a": ("mixnet_xl", (3, 1024, 852), 16, 16, 2, "fp16"),
       "hms3_cfg5b": ("mixnet_xl", (3, 1024, 852), 16, 16, 2, "fp16"),
       "hms3_cfg5c": ("mixnet_xl", (3, 1024, 852), 16, 16, 2, "fp16"),
       "hms3_cfg5d": ("mixnet_xl", (3, 1024, 1452), 16, 8, 4, "fp16")}
# The mel CNN shrunk to CPU size for smoke runs: only sizes change, the rest is the preset's.
MEL_TINY = ["pretrained=false", "model.backbone=test_efficientnet_gn", "model.n_fft=256", "model.hop_length=200",
            "model.n_mels=8", "model.zoom_n_fft=256", "model.zoom_win_length=32", "model.zoom_hop_length=48",
            "model.drop_rate=0", "model.drop_path_rate=0"]


@pytest.mark.parametrize("name", sorted(MEL))
def test_every_2d_preset_composes_and_builds_its_published_image(name):
    backbone, image, epochs, batch, accumulate, amp = MEL[name]
    cfg = compose_config(f"experiment={name}", "pretrained=false")
    m, tr = cfg.model, cfg.trainer
    assert cfg.name == name and compose_config(f"experiment={name}").pretrained
    assert (m.backbone, tr.epochs, tr.batch_size, tr.accumulate, tr.amp) == (backbone, epochs, batch, accumulate, amp)
    assert cfg.optim._target_ == "torch.optim.Adam" and (cfg.optim.lr, cfg.optim.weight_decay) == (1.2e-3, 0.0)
    assert cfg.sched.warmup_fraction == 0 and cfg.sched.min_lr_ratio == 0 and tr.grad_clip == 20
    assert cfg.loss.weighting == "none" and tr.ema_decay is None and not cfg.aug.tta
    assert (cfg.aug.flip_lr_p, cfg.aug.flip_fb_p, cfg.aug.cropcat_p) == (0.5, 0.0, 0.0)
    assert (cfg.data.n_folds, list(cfg.data.inputs)) == (4, ["eeg"])
    sm = cfg.sampling
    assert (sm.train_min_votes, sm.dedup, sm.val_dedup, sm.val_min_votes) == (9, "max_overlap", "max_overlap_first_per_eeg", 9)
    assert sm.time_shift_seconds * 200 == pytest.approx(3333)
    assert (m.filter, m.band_pass_p, m.drop_path_rate) == ("bandpass0.5-20_causal_o2", 0.2, 0.2)
    assert m.drop_rate == (0.3 if name == "hms3_cfg5b" else 0.2)
    assert m.montage_drop_p == (0.7 if name == "hms3_cfg5c" else 0.5)
    assert m.reinit_stem == (name != "hms3_cfg1") and m.centre_jitter_p == (0.7 if "cfg5" in name else 0.0)
    model = instantiate(m)
    rows = describe(model, random_batch(["eeg"]))
    assert rows[0]["backbone_input"] == (1, *image)
    # timm's mixnet_xl / mixnet_l without classifier, GeM's p and Linear(features, 6); cfg_1's 1-plane stem
    # has 2 x 9 x 40 = 720 weights fewer than the 3-plane one
    assert rows[-1]["parameters"] == {"hms3_cfg1": 10_368_271, "hms3_cfg3": 5_801_475}.get(name, 10_368_991)


def test_the_best_2d_model_has_the_published_size():
    model = instantiate(compose_config("experiment=hms3_cfg5a", "pretrained=false").model)
    total = sum(p.numel() for p in model.parameters())
    assert model.num_features == 1536 and total == 10_368_991  # mixnet_xl without classifier + GeM p + Linear(1536, 6)


@pytest.mark.parametrize("name", sorted(MEL))
def test_every_2d_preset_trains_a_few_steps_at_cpu_size(name, small_set, tmp_path):
    metrics = run(small_set, tmp_path, f"experiment={name}", *MEL_TINY, "trainer=smoke", "trainer.max_steps=2",
                  "trainer.batch_size=4", "trainer.accumulate=1", "trainer.val_batch_size=8",
                  "sampling.train_min_votes=1", "data.n_folds=4", "name=test")
    assert metrics["steps"] == 2 and torch.isfinite(torch.tensor(metrics["history"][-1]["train_loss"]))
    if name == "hms3_cfg5a":  # and predicts the test folder from its checkpoint
        probs, rows = predict_folder(small_set, [tmp_path / "checkpoint.pt"], tta=False, progress=False)
        assert probs["test"].shape == (len(rows), 6) and (probs["test"] > 0).all()


SQUEEZE_TINY = ["model.F1=16", "model.dim=32", "model.heads=2", "model.blocks=1"]


@pytest.mark.parametrize("name, filter_preset", [("hms3_cfg2a", "bandpass1.6-30_causal_o1"),
                                                 ("hms3_cfg2b", "bandpass1.6-30_causal_o2")])
def test_the_1d_presets_compose_with_their_published_numbers(name, filter_preset):
    cfg = compose_config(f"experiment={name}")
    m, tr, sm = cfg.model, cfg.trainer, cfg.sampling
    assert cfg.name == name and m._target_.endswith("EEGSqueezeformer") and m.filter == filter_preset
    assert (m.F1, m.D, m.dim, m.heads, m.blocks, m.conv_kernel, m.ff_dropout, m.conv_dropout) == (64, 2, 128, 4, 3, 51, 0.2, 0.2)
    assert (m.time_reverse_p, m.swap_p, m.band_pass_p, m.montage_drop_p) == (0.5, 0.5, 0.2, 0.5)
    assert list(m.band_pass_low) == [1.6, 2.0] and list(m.band_pass_high) == [10, 30]
    assert m.shared_gem and not m.apply_dropouts  # both quirks as published
    assert (tr.epochs, tr.batch_size, tr.accumulate, tr.grad_clip, tr.amp) == (30, 64, 3, 4.0, "fp16")
    assert cfg.optim._target_ == "torch.optim.Adam" and cfg.optim.lr == 1e-3 and cfg.optim.weight_decay == 0
    assert cfg.loss.weighting == "vote_groups" and dict(cfg.loss.vote_groups) == {
        "bounds": [3, 8], "start": [0.3, 0.5], "decay": 1.2, "epochs": 30, "floor": 0.02}
    assert (sm.train_min_votes, sm.dedup, sm.val_dedup) == (1, "max_overlap", "max_overlap_first_per_eeg")
    assert (cfg.aug.flip_lr_p, cfg.aug.flip_fb_p) == (0.0, 0.0)  # the model swaps left/right itself
    model = instantiate(m)
    assert sum(p.numel() for p in model.parameters()) == 668_825


@pytest.mark.parametrize("name", ["hms3_cfg2a", "hms3_cfg2b"])
def test_the_1d_presets_train_a_few_steps_at_cpu_size(name, small_set, tmp_path):
    metrics = run(small_set, tmp_path, f"experiment={name}", *SQUEEZE_TINY, "trainer=smoke", "trainer.max_steps=2",
                  "trainer.batch_size=4", "trainer.accumulate=1", "trainer.val_batch_size=8", "data.n_folds=4")
    assert metrics["steps"] == 2 and torch.isfinite(torch.tensor(metrics["history"][-1]["train_loss"]))
    if name == "hms3_cfg2a":  # and predicts the test folder from its checkpoint
        probs, rows = predict_folder(small_set, [tmp_path / "checkpoint.pt"], tta=False, progress=False)
        assert probs["test"].shape == (len(rows), 6)
