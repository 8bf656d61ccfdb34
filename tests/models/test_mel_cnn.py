"""The 3rd-place mel 2-D CNN (hms/models/mel_cnn.py) number by number (RECIPES.md 2.2-2.4, 2.10): the image
each published config feeds its backbone, the zoom splice, the three dB planes, the top_db floor, montage drop,
centre jitter, the fresh stem, GeM, and a training step of the tiny default."""
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from scipy import signal as scipy_signal

from hms.layout import EEG_COLUMNS
from hms.models.backbone import create_backbone
from hms.models.mel_cnn import (MONTAGE_ORDERS, NEIGHBOURS, MelCNN, crop_about, drop_montages,
                                re_referenced_planes, splice)
from hms.signal.spectra import amplitude_to_db
from tests.helpers import CONF

NO_ZOOM = dict(zoom_length=None, centre_jitter_p=0.0)
# Published mel and image settings (RECIPES.md 2.4); the constructor's defaults are cfg_5a's
PUBLISHED = {
    "cfg_1": dict(NO_ZOOM, n_fft=1024, win_length=128, hop_length=39, n_mels=128, fmax=40.0, top_db=None,
                  re_reference=False, reinit_stem=False),
    "cfg_3": dict(NO_ZOOM, top_db=None, montage_order="left_right"),
    "cfg_4": dict(zoom_length=2800, zoom_win_length=32, zoom_hop_length=8, centre_jitter_p=0.0),
    "cfg_5a": {},
    "cfg_5d": dict(zoom_win_length=8, zoom_hop_length=2),
}
IMAGES = {"cfg_1": (1, 2048, 257), "cfg_3": (3, 1024, 313), "cfg_4": (3, 1024, 602), "cfg_5a": (3, 1024, 852),
          "cfg_5d": (3, 1024, 1452)}
# a small image for the tests that run the backbone: 8 mels, main 51 frames, zoom 51 frames
SMALL = dict(n_fft=256, win_length=128, hop_length=200, n_mels=8, zoom_n_fft=256, zoom_win_length=32,
             zoom_hop_length=48, drop_rate=0.0, drop_path_rate=0.0)


def eeg(n=2, seed=0, scale=50.0):
    return torch.randn(n, 20, 10_000, generator=torch.Generator().manual_seed(seed)) * scale


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_image_of_each_published_config(name):
    torch.manual_seed(0)
    model = MelCNN(**PUBLISHED[name]).eval()
    image = model.image({"eeg": eeg(1)})
    assert image.shape == (1, *IMAGES[name]) and image.dtype == torch.float32 and torch.isfinite(image).all()
    assert model.backbone.conv_stem.in_channels == IMAGES[name][0]


def test_splice_replaces_the_main_columns_about_the_centre():
    main = torch.arange(313.0).expand(2, 16, 64, 313)  # column index
    zoom = -1 - torch.arange(601.0).expand(2, 16, 64, 601)  # -1 - zoom column
    # c2 = floor(313 centre / 10000), start = clamp(c2 - 31, 0, 250); 62 main columns give way
    for centre, start in ((5000, 125), (0, 0), (1000, 0), (3000, 62), (9999, 250), (8500, 235)):
        out = splice(main, zoom, torch.tensor([centre, 5000]), 10_000, 0.2)
        assert out.shape == (2, 16, 64, 852)
        expected = torch.cat([torch.arange(start), -1 - torch.arange(601.0), torch.arange(start + 62, 313)])
        assert torch.equal(out[0, 3, 7], expected.float()), centre
        assert torch.equal(out[1, 0, 0, 125:726], zoom[0, 0, 0])  # each sample its own centre
    # cfg_4: a 351-frame zoom of a 2800-sample crop, 602 wide
    assert splice(main, zoom[..., :351], torch.tensor([5000, 5000]), 10_000, 0.2).shape[-1] == 602


def test_the_spectrogram_is_the_main_mel_with_the_zoom_mel_of_the_crop_spliced_in():
    model = MelCNN(**SMALL).eval()
    t = torch.arange(10_000) / 200.0
    chirp = torch.sin(2 * np.pi * (1 + 0.0015 * t) * t)[None, None] * torch.arange(1, 17.0)[None, :, None]
    x = torch.cat([chirp, chirp.flip(-1)])  # [2, 16, T], a hand-made signal per montage
    centre = torch.tensor([5000, 1500])
    spliced = model.spectrogram(x, centre)
    main = amplitude_to_db(model.mel(x), 100.0)  # main and zoom each one (B*16) stack: floors per call
    assert main.shape[-1] == 51 and spliced.shape[-1] == 51 - 10 + 51  # buff = int(51 * 0.2 // 2) = 5
    crops = torch.stack([x[0, :, 3800:6200], x[1, :, 300:2700]])  # clamp(centre - 1200, 0, 7600) on
    torch.testing.assert_close(crop_about(x, centre, 2400), crops)
    zoom = amplitude_to_db(model.zoom_mel(crops), 100.0)
    for b, start in ((0, 25 - 5), (1, 7 - 5)):  # c2 = floor(51 centre / 10000)
        torch.testing.assert_close(spliced[b, ..., :start], main[b, ..., :start])
        torch.testing.assert_close(spliced[b, ..., start:start + 51], zoom[b])
        torch.testing.assert_close(spliced[b, ..., start + 51:], main[b, ..., start + 10:])


def test_three_planes_on_constant_montages():
    db = torch.arange(16.0).view(1, 16, 1, 1).expand(1, 16, 4, 5)  # montage k holds k dB
    planes = re_referenced_planes(db)
    assert planes.shape == (1, 16, 3, 4, 5)
    for k in range(16):
        assert torch.all(planes[0, k, 0] == k)
        torch.testing.assert_close(planes[0, k, 1], torch.full((4, 5), k - (120.0 - k) / 15))  # others' mean
        torch.testing.assert_close(planes[0, k, 2], torch.full((4, 5), k - sum(NEIGHBOURS[k]) / 2))
    assert NEIGHBOURS[0] == [2, 8] and NEIGHBOURS[6] == [14, 4] and NEIGHBOURS[15] == [7, 13]


def test_image_rows_follow_the_montage_order():
    assert MONTAGE_ORDERS["left_right"] == [0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15]
    for order, planes in (("left_right", 3), ("interleaved", 1)):
        model = MelCNN(**dict(SMALL, **NO_ZOOM), montage_order=order, re_reference=planes == 3).eval()
        batch = {"eeg": eeg(1)}
        db = model.spectrogram(model.signals(batch["eeg"]), None)
        image = model.image(batch)
        assert image.shape == (1, planes, 16 * 8, 51)
        for row, montage in enumerate(MONTAGE_ORDERS[order]):
            torch.testing.assert_close(image[0, 0, 8 * row:8 * row + 8], db[0, montage])


def test_signals_are_pairs_nan_zero_causal_band_pass_clip_and_scale():
    model = MelCNN(**SMALL).eval()
    x = eeg(1, scale=3000.0)  # large enough for the clip to act
    x[0, EEG_COLUMNS.index("Fp1"), :3000] = float("nan")
    ours = model.signals(x)[0].double().numpy()
    a, b = (x[0, EEG_COLUMNS.index(e)].double().numpy() for e in ("Fp1", "F7"))
    pair = np.nan_to_num(a - b)  # montage 0 is Fp1-F7: its NaN samples are 0 before the filter
    ref = scipy_signal.lfilter(*scipy_signal.butter(2, [0.005, 0.2], "band"), pair).clip(-1024, 1024) / 32
    assert np.abs(ref).max() == 32.0
    np.testing.assert_allclose(ours[0], ref, atol=1e-4)


def test_the_batch_wide_top_db_floor_vs_the_per_spectrogram_fix():
    centre = torch.tensor([5000])
    for floor in ("batch", "spectrogram"):
        model = MelCNN(**SMALL, db_floor=floor).eval()
        loud, quiet = model.signals(eeg(1, seed=1)), model.signals(eeg(1, seed=2)) * 1e-4  # 80 dB apart
        alone = model.spectrogram(quiet, centre)[0]
        together = model.spectrogram(torch.cat([loud, quiet]), centre.repeat(2))[1]
        if floor == "spectrogram":
            torch.testing.assert_close(alone, together)
            continue
        # as published: the quiet window is floored 100 dB below the loud one's peak, the main mel and the
        # zoom (columns 20-70) each below their own peak, so its values depend on the batch it is in
        main_peak = 10 * model.mel(loud).log10().max()
        zoom_peak = 10 * model.zoom_mel(crop_about(loud, centre, 2400)).log10().max()
        zoom_columns = torch.arange(92).ge(20) & torch.arange(92).lt(71)
        assert together[..., ~zoom_columns].min().item() == pytest.approx(main_peak.item() - 100, abs=1e-3)
        assert together[..., zoom_columns].min().item() == pytest.approx(zoom_peak.item() - 100, abs=1e-3)
        assert alone.min() < together.min() - 10


def test_montage_drop_zeroes_1_to_8_montages_in_all_planes_in_training_only():
    x = torch.randn(400, 16, 3, 2, 2) + 5.0
    dropped = drop_montages(x, 1.0, 8)
    zero = (dropped == 0).flatten(2)
    assert torch.equal(zero.all(2), zero.any(2))  # a montage is zeroed in all planes or in none
    counts = zero.all(2).sum(1)
    assert counts.min() == 1 and counts.max() == 8
    assert torch.equal(dropped, x * ~zero.all(2)[..., None, None, None])  # the other montages untouched
    assert torch.equal(drop_montages(x, 0.0, 8), x)
    assert 0.4 < (drop_montages(x, 0.5, 8) == 0).flatten(1).any(1).float().mean() < 0.6
    model = MelCNN(**SMALL, montage_drop_p=1.0)
    batch = {"eeg": eeg(4)}
    rows = lambda image: image.view(4, 3, 16, -1).transpose(1, 2).flatten(2)  # noqa: E731  [B, 16 montages, ...]
    empty = (rows(model.train().image(batch)) == 0).all(2).sum(1)
    assert ((1 <= empty) & (empty <= 8)).all()
    assert (rows(model.eval().image(batch)) == 0).all(2).sum() == 0


def test_centre_jitter_moves_the_zoom_in_training_only():
    model = MelCNN(**SMALL)  # cfg_5a: p 0.7, reach 2400 // 3 = 800 samples
    batch = {"eeg": torch.zeros(2000, 20, 8), "centre": torch.full((2000,), 4000)}
    moved = model.train().centres(batch)
    assert moved.min() >= 3200 and moved.max() <= 4799 and 0.6 < (moved != 4000).float().mean() < 0.8
    assert torch.equal(model.eval().centres(batch), batch["centre"])
    assert torch.equal(model.centres({"eeg": torch.zeros(3, 20, 10_000)}), torch.full((3,), 5000))
    assert (MelCNN(**SMALL, centre_jitter_p=0.0).train().centres(batch) == 4000).all()


def test_the_stem_is_replaced_by_a_fresh_conv_or_kept(tmp_path):
    pretrained = create_backbone("test_efficientnet_gn", 3, global_pool="")
    with torch.no_grad():
        pretrained.conv_stem.weight.fill_(0.5)
    torch.save(pretrained.state_dict(), tmp_path / "weights.pt")
    block = "blocks.1.0.conv_pwl.weight"
    kept = MelCNN(**SMALL, weights_path=str(tmp_path / "weights.pt"), reinit_stem=False)
    assert (kept.backbone.conv_stem.weight == 0.5).all()
    fresh = MelCNN(**SMALL, weights_path=str(tmp_path / "weights.pt"))
    stem = fresh.backbone.conv_stem
    assert type(stem) is torch.nn.Conv2d and stem.bias is None and not (stem.weight == 0.5).any()
    assert (stem.in_channels, stem.out_channels, stem.kernel_size, stem.stride, stem.padding) == \
        (3, 24, (3, 3), (2, 2), (1, 1))
    torch.testing.assert_close(fresh.backbone.state_dict()[block], pretrained.state_dict()[block])  # the rest loaded
    assert MelCNN(**SMALL, re_reference=False).backbone.conv_stem.in_channels == 1
    with pytest.raises(ValueError, match="has none: set reinit_stem=false"):
        MelCNN(**SMALL, backbone="test_resnet")
    MelCNN(**SMALL, backbone="test_resnet", reinit_stem=False)


def test_gem_has_a_trainable_p_and_the_head_is_linear_to_6():
    model = MelCNN(**SMALL)
    assert isinstance(model.pool.p, torch.nn.Parameter) and model.pool.p.item() == 3.0 and model.pool.eps == 1e-6
    assert any(p is model.pool.p for p in model.parameters())
    x = torch.rand(2, 5, 3, 4)
    torch.testing.assert_close(model.pool(x), x.pow(3).mean(dim=(2, 3)).pow(1 / 3))
    torch.testing.assert_close(model.pool(-x), torch.full((2, 5), 1e-6))  # clamped at eps
    assert model.head.in_features == model.num_features and model.head.out_features == 6


def test_bad_kwargs_fail_in_one_line():
    for kwargs, message in ((dict(montage_order="right_left"), "montage_order must be one of"),
                            (dict(db_floor="image"), "db_floor must be one of"),
                            (dict(zoom_length=1000, zoom_n_fft=2048), "must exceed zoom_n_fft // 2 = 1024"),
                            (dict(NO_ZOOM, centre_jitter_p=0.7), "needs a zoom_length"),
                            (dict(splice_fraction=1.5), "splice_fraction must be in"),
                            (dict(montage_drop_max=0), "montage_drop_max must be at least 1")):
        with pytest.raises(ValueError, match=message):
            MelCNN(**dict(SMALL, **kwargs))


def test_the_tiny_default_trains_a_step():
    torch.manual_seed(0)
    with initialize_config_dir(CONF, version_base="1.3"):
        model = instantiate(compose("config", overrides=["model=mel_cnn", "name=x"]).model).train()
    batch = {"eeg": eeg(4), "spec": torch.rand(4, 300, 400), "centre": torch.tensor([5000, 3000, 7000, 1700])}
    batch["eeg"][1, 3, 100:900] = float("nan")
    out = model(batch)
    assert set(out) == {"logits", "aux"} and out["aux"] == {} and out["logits"].shape == (4, 6)
    assert torch.isfinite(out["logits"]).all()
    loss = torch.nn.functional.kl_div(out["logits"].log_softmax(1), torch.full((4, 6), 1 / 6), reduction="batchmean")
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["pool.p"].abs() > 0 and grads["backbone.conv_stem.weight"].abs().sum() > 0
