"""The 16th-place preset number by number (../shared/RECIPES.md section 3), its image and its training."""
import torch
from hydra.utils import instantiate

from hms.data.inputs import random_batch
from hms.ensemble.predict import predict_folder
from hms.models.describe import describe
from tests.helpers import compose_config
from tests.train.test_loop import run

TINY = ["pretrained=false", "size=tiny"]  # the image_vit family's CPU size: test_efficientnet_gn at 160 x 480


def test_the_preset_composes_with_its_published_numbers():
    cfg = compose_config("experiment=hms16_tinyvit")
    m, tr, aug, sm = cfg.model, cfg.trainer, cfg.aug, cfg.sampling
    assert cfg.name == "hms16_tinyvit" and cfg.pretrained and m.backbone == "tiny_vit_21m_512" and m.image_size is None
    assert m.drop_path_rate == 0.1 and tr.deterministic  # timm_vit_tiny.yaml; common.yaml:29-39 (RECIPES.md 3)
    assert list(cfg.data.inputs) == ["eeg", "spec", "eeg_mel"]
    assert cfg.optim._target_ == "torch.optim.AdamW" and (cfg.optim.lr, cfg.optim.weight_decay) == (3e-4, 0.01)
    assert (cfg.sched.warmup_fraction, cfg.sched.warmup_start_ratio, cfg.sched.min_lr_ratio) == (0.1, 0.1, 0.01)
    assert (tr.epochs, tr.batch_size, tr.accumulate, tr.amp, tr.grad_clip) == (16, 8, 3, "bf16", float("inf"))
    assert (tr.ema_decay, tr.ema_every, tr.ema_warmup, tr.ema_average_buffers) == (0.8, "epoch", "torch_ema", False)
    assert cfg.loss.weighting == "none" and cfg.loss.label_smoothing == 0
    assert (aug.flip_lr_p, aug.flip_fb_p, aug.flip_inputs, aug.tta, list(aug.tta_flips)) == (0.5, 0.0, None, True, ["lr"])
    assert (sm.train_min_votes, sm.dedup, sm.one_window_per_eeg, sm.val_dedup) == (8, "none", True, "centre_per_eeg")
    assert (m.brightness_contrast_p, m.brightness_contrast_limit, m.noise_or_blur_p, list(m.noise_variance)) == (
        0.5, 0.1, 0.4, [0.1, 0.3])
    assert (m.holes_p, m.holes, m.hole_size, m.spec_column_order, m.noise_variance_scale) == (0.5, 5, 64, "natural", 1.0)


def test_size_tiny_and_trainer_smoke_keep_the_rest_of_the_recipe():
    """The published size and trainer are groups, so the command line swaps them for the CPU ones (as the 15th
    place's presets); before, the preset's own keys won and `size=tiny trainer=smoke` still trained the published
    model at batch 8 (killed for memory here)."""
    cfg = compose_config("experiment=hms16_tinyvit", *TINY, "trainer=smoke")
    m, tr = cfg.model, cfg.trainer
    assert (m.backbone, list(m.image_size), m.drop_path_rate) == ("test_efficientnet_gn", [160, 480], 0.0)
    assert tr == compose_config("trainer=smoke").trainer and (tr.epochs, tr.batch_size, tr.max_steps) == (1, 4, 3)
    assert list(cfg.data.inputs) == ["eeg", "spec", "eeg_mel"] and cfg.loss.weighting == "none"
    assert (cfg.optim.lr, cfg.sched.warmup_fraction, m.holes, cfg.aug.tta, cfg.sampling.train_min_votes) == (
        3e-4, 0.1, 5, True, 8)


def test_the_published_model_sees_one_640_by_1920_grey_image():
    model = instantiate(compose_config("experiment=hms16_tinyvit", "pretrained=false").model)
    rows = describe(model, random_batch(["eeg", "spec", "eeg_mel"]))
    assert rows[0]["backbone_input"] == (1, 1, 640, 1920) and rows[0]["features"] == 576
    assert rows[-1]["parameters"] == 20_690_256 + 576 * 6 + 6  # timm's tiny_vit_21m_512 (1-channel stem) + head


def test_the_training_augmentations_keep_the_image_in_range_and_cut_5_holes():
    torch.manual_seed(0)
    model = instantiate(compose_config("model=image_vit", "pretrained=false", "model.image_size=null",
                                       "model.brightness_contrast_p=0", "model.noise_or_blur_p=0",
                                       "model.holes_p=1").model).train()
    batch = random_batch(["eeg", "spec", "eeg_mel"], 2) | {"eeg_mel": torch.randint(0, 256, (2, 226, 512))}
    image = model.image(batch)
    assert image.shape == (2, 1, 640, 1920) and image.min() >= 0 and image.max() <= 1
    clean = model.eval().image(batch)
    holes = (image == 0) & (clean > 0)
    assert holes.any() and holes.float().sum(dim=(1, 2, 3)).max() <= 5 * 64 * 64


def test_the_preset_trains_and_predicts_at_cpu_size(small_set, tmp_path):
    metrics = run(small_set, tmp_path, "experiment=hms16_tinyvit", *TINY, "trainer=smoke", "trainer.max_steps=2",
                  "trainer.batch_size=2", "trainer.accumulate=1", "trainer.val_batch_size=8",
                  "sampling.train_min_votes=1", "trainer.deterministic=false")
    assert metrics["steps"] == 2 and torch.isfinite(torch.tensor(metrics["history"][-1]["train_loss"]))
    probs, rows = predict_folder(small_set, [tmp_path / "checkpoint.pt"], tta=True, progress=False)
    assert probs["test"].shape == (len(rows), 6)
