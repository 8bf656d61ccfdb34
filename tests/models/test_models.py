"""The three extractors and the fusion head, number by number (every family's contract is enumerated in
tests/test_configs.py), and the backbones."""
import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from hms.layout import EEG_COLUMNS, SPEC_POWER_COLUMNS
from hms.models.backbone import BackboneError, create_backbone
from hms.models.fusion import Fusion
from hms.models.spec_attn import PAIRS, AttentionPool, SpecAttnExtractor, edge_dropout, instances
from hms.models.stft import STFTExtractor, restack
from hms.models.wavenet import stack_image
from tests.helpers import CONF

torch.manual_seed(0)


def model(name, size="tiny", *overrides):
    with initialize_config_dir(CONF, version_base="1.3"):
        return instantiate(compose("config", overrides=[f"model={name}", f"size={size}", "name=x", *overrides]).model)


def batch(n=2, t=10000):
    return {"eeg": torch.randn(n, 20, t) * 50, "spec": torch.rand(n, 300, 400) * 20}


def test_restack_and_wavenet_stacking_are_exact_rearrangements():
    image = torch.arange(2 * 1 * 8 * 5, dtype=torch.float32).view(2, 1, 8, 5)
    out = restack(image, 2)
    assert out.shape == (2, 1, 4, 10)
    torch.testing.assert_close(out[:, :, :, 5:], image[:, :, 4:])  # second band to the right
    assert torch.equal(out.flatten().sort().values, image.flatten().sort().values)
    features = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).view(2, 3, 4, 6)  # [B, D, C, T]
    stacked = stack_image(features)
    assert stacked.shape == (2, 1, 6, 12)
    assert torch.equal(stacked.flatten().sort().values, features.flatten().sort().values)
    # the last 2 channels of every difference sit together at the end
    torch.testing.assert_close(stacked[0, 0, :, -2:].T, features[0, 2, 2:])


def test_spectrogram_instances_are_regions_and_differences():
    spec = torch.rand(1, 300, 400) * 10 + 0.1
    x = instances(spec)
    assert x.shape == (1, 10, 300, 100) and len(PAIRS) == 6
    log = torch.log(spec.clamp(np.e ** -4, np.e ** 8))
    ll, rl = log[..., :100], log[..., 100:200]
    assert SPEC_POWER_COLUMNS[100].startswith("RL_")
    torch.testing.assert_close(x[0, 4], ((ll - rl) / 1.907)[0])  # pair (LL, RL)


def test_attention_weights_sum_to_one_and_edge_dropout_only_zeroes_edges():
    pool = AttentionPool(8, 16, gated=True, dropout=0.5).train()
    w = pool.weights(torch.randn(4, 10, 8))
    torch.testing.assert_close(w.sum(dim=1), torch.ones(4))
    images = torch.ones(4, 10, 100, 20)
    cut = edge_dropout(images, 0.25)
    assert (cut[:, :, 25:75] == 1).all() and cut.sum() < images.sum()
    m = SpecAttnExtractor().eval()
    b = batch()
    torch.testing.assert_close(m(b)["logits"], m(b)["logits"])  # no dropout at eval


@pytest.mark.parametrize("size", ["published_hgnet", "published_effnet"])
def test_published_sizes_build_and_run_on_a_short_input(size):
    m = model("fusion", size).eval()
    with torch.no_grad():
        out = m(batch(1, 2000))
    assert out["logits"].shape == (1, 6) and set(out["aux"]) == {"wavenet", "stft", "spec_attn"}
    assert m.extractors["wavenet"].wavenets[0].out_channels == 24


def test_tiny_fusion_on_the_real_public_test_pair(real_hms):
    eeg = pd.read_parquet(real_hms / "test_eegs/3911565283.parquet")[list(EEG_COLUMNS)].to_numpy()
    spec = pd.read_parquet(real_hms / "test_spectrograms/853520.parquet")[list(SPEC_POWER_COLUMNS)].to_numpy()
    m = model("fusion").eval()
    with torch.no_grad():
        out = m({"eeg": torch.tensor(eeg.T[None], dtype=torch.float32),
                 "spec": torch.tensor(spec[None], dtype=torch.float32)})
    probs = out["logits"].softmax(1)
    assert torch.isfinite(probs).all() and probs.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_fusion_with_one_extractor_equals_its_head_path():
    extractor = STFTExtractor(hop_length=184, fmax=20).eval()
    for typo in ("wavenet", "sftf"):  # a weight for an extractor that is not there, or a typo, would weigh 0
        with pytest.raises(ValueError, match=f"model.loss_weights: '{typo}' names no extractor .*main, stft"):
            Fusion({"stft": extractor}, {"main": 0.79, "stft": 0.06, typo: 0.09})
    fusion = Fusion({"stft": extractor}, {"main": 0.79, "stft": 0.06}).eval()
    assert fusion.loss_weights == {"main": 0.79, "stft": 0.06}
    b = batch()
    with torch.no_grad():
        torch.testing.assert_close(fusion(b)["aux"]["stft"], extractor(b)["logits"])
        fusion.head.load_state_dict(extractor.head.state_dict())
        torch.testing.assert_close(fusion(b)["logits"], extractor(b)["logits"])


def test_power_stays_fp32_under_autocast():
    m = STFTExtractor(hop_length=184, fmax=20)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        image = m.image(torch.randn(1, 20, 2000) * 1000)
    assert image.dtype == torch.float32 and torch.isfinite(image).all()


def test_backbone_offline_fails_fast_and_local_weights_load(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneError, match="HF_HUB_OFFLINE"):
        create_backbone("test_resnet", 1, pretrained=True)
    with pytest.raises(BackboneError, match="cannot build"):
        create_backbone("no_such_net", 1)
    rgb = create_backbone("test_resnet", 3)
    torch.save(rgb.state_dict(), tmp_path / "w.pt")
    grey = create_backbone("test_resnet", 1, weights_path=str(tmp_path / "w.pt"))
    conv = "conv1.weight" if "conv1.weight" in grey.state_dict() else next(iter(grey.state_dict()))
    torch.testing.assert_close(grey.state_dict()[conv][:, 0], rgb.state_dict()[conv].sum(dim=1), rtol=1e-5, atol=1e-6)
    strided = create_backbone("test_resnet", 1, stem_stride=1)
    assert next(m for m in strided.modules() if isinstance(m, torch.nn.Conv2d)).stride == (1, 1)


def test_backbone_returns_pooled_features_or_the_feature_map_and_passes_drop_rates():
    x = torch.randn(2, 1, 64, 96)
    pooled = create_backbone("test_efficientnet_gn", 1).eval()
    spatial = create_backbone("test_efficientnet_gn", 1, global_pool="").eval()
    spatial.load_state_dict(pooled.state_dict())
    feature_map = spatial(x)
    assert feature_map.shape[:2] == (2, pooled.num_features) and feature_map.shape[2:] == (2, 3)
    torch.testing.assert_close(pooled(x), feature_map.mean(dim=(2, 3)), rtol=1e-5, atol=1e-6)
    assert create_backbone("test_efficientnet_gn", 1, global_pool="max").eval()(x).shape == (2, pooled.num_features)
    dropped = create_backbone("test_efficientnet_gn", 1, drop_rate=0.3, drop_path_rate=0.2)
    assert dropped.drop_rate == 0.3
    rates = [m.drop_prob for m in dropped.modules() if type(m).__name__ == "DropPath"]
    assert rates == sorted(rates) and 0.1 < max(rates) <= 0.2  # timm's linear stochastic-depth schedule
    assert not any(type(m).__name__ == "DropPath" for m in pooled.modules())
    # hgnetv2's head conv widens the map as well as the pooled vector: num_features says so in both
    hgnet = create_backbone("hgnetv2_b0", 1, global_pool="").eval()
    assert hgnet(torch.randn(1, 1, 64, 64)).shape[1] == hgnet.num_features == 2048


@pytest.mark.parametrize("extractor", ["wavenet", "stft", "spec_attn"])
def test_drop_path_rate_reaches_each_extractors_backbone(extractor):
    fusion = model("fusion", "tiny", f"model.extractors.{extractor}.drop_path_rate=0.2")
    rates = {name: max([m.drop_prob for m in e.backbone.modules() if type(m).__name__ == "DropPath"], default=0)
             for name, e in fusion.extractors.items()}
    assert rates[extractor] > 0.1 and all(r == 0 for n, r in rates.items() if n != extractor)


def test_published_restack_lays_adjacent_rows_end_to_end():
    image = torch.arange(2 * 1 * 8 * 5, dtype=torch.float32).view(2, 1, 8, 5)
    out = restack(image, 2, "adjacent")
    assert out.shape == (2, 1, 4, 10)
    for r in range(4):  # new row r = old row 2r, then old row 2r + 1
        torch.testing.assert_close(out[:, :, r], torch.cat([image[:, :, 2 * r], image[:, :, 2 * r + 1]], dim=-1))
    with pytest.raises(ValueError, match="restack layout"):
        restack(image, 2, "diagonal")


def test_nnaudio_linear_scale_stft_of_the_15th_place():
    fine = STFTExtractor(n_fft=110, win_length=64, hop_length=23, fmax=40, freq_scale="linear", window="cosine",
                         full_kernels=True, restack="adjacent", montage="groups24")
    coarse = STFTExtractor(n_fft=190, win_length=96, hop_length=24, fmax=40, freq_scale="linear", window="hann",
                           full_kernels=True, restack="adjacent", montage="groups24")
    assert (fine.n_bins, coarse.n_bins) == (56, 96)
    assert sum(p.numel() for p in fine.stft.parameters()) == 12_320  # 56 bins x 110 samples x (cos, sin)
    assert sum(p.numel() for p in coarse.stft.parameters()) == 36_480
    assert fine.image(torch.randn(1, 20, 10000)).shape == (1, 1, 672, 862)
    assert coarse.image(torch.randn(1, 20, 10000)).shape == (1, 1, 1152, 818)
    # bins spread evenly over 0-40 Hz: a 10 Hz tone peaks in bin 10 / (40 / 56) = 14
    t = torch.arange(10000) / 200.0
    power = fine.stft(torch.sin(2 * torch.pi * 10 * t)[None])[0].mean(dim=1)
    assert power.argmax().item() == 14
    # the cosine window is not the hann window: different kernels, same shape
    hann = STFTExtractor(n_fft=110, win_length=64, hop_length=23, fmax=40, freq_scale="linear", full_kernels=True)
    assert not torch.allclose(hann.stft.wcos, fine.stft.wcos)
    assert fine.stft.wcos[:, 0, :23].abs().max() == 0  # zero outside the 64-sample window until trained


def test_published_spectrogram_instances_are_linear_differences_z_scored():
    spec = torch.rand(2, 300, 400) * 5 + 0.1
    spec[:, :, 100:200] += 10  # RL louder than LL: LL - RL is negative and saturates
    x = instances(spec, "linear_zscore", (0, 1, 3, 2))  # the 15th-place region order LL, RL, RP, LP
    assert x.shape == (2, 10, 300, 100) and x.abs().max() <= 16
    torch.testing.assert_close(x.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-4, rtol=0)
    torch.testing.assert_close(x.std(dim=(1, 2, 3), correction=0), torch.ones(2), atol=1e-4, rtol=0)
    # one-sided: LL - RL is negative everywhere, so instance 4 is log(e^-7) everywhere, a constant
    assert x[0, 4].std() < 1e-5 and x[0, 4, 0, 0] < x[0, 0].min()
    # instance 2 is RP, the input's column block 3 (the 15th-place order), and instance 3 is LP: their
    # z-scored difference is log RP - log LP over one common std
    z = torch.log(spec[0, :, 300:400]) - torch.log(spec[0, :, 200:300])
    ratio = (x[0, 2] - x[0, 3]) / z
    assert ratio.std() < 1e-3 * ratio.abs().mean()
    with pytest.raises(ValueError, match="instance_mode"):
        instances(spec, "zscore")


def test_attention_weight_dropout_without_renormalising_scales_survivors():
    torch.manual_seed(0)
    pool = AttentionPool(8, hidden=16, dropout=0.5, renormalise=False).train()
    x = torch.randn(64, 10, 8)
    w_eval = pool.eval().weights(x)
    w_train = pool.train().weights(x)
    kept = w_train > 0
    torch.testing.assert_close(w_train[kept], 2 * w_eval[kept])  # inverted dropout: x 1 / (1 - 0.5)
    assert 0.4 < kept.float().mean() < 0.6 and not torch.allclose(w_train.sum(dim=1), torch.ones(64))


@pytest.mark.parametrize("name, rate", [("wavenet", 0.1), ("stft", 0.5)])
def test_feature_dropout_acts_on_the_extractor_features(name, rate):
    m = model(name, "tiny", f"model.feature_dropout={rate}")
    b = batch()
    m.train()
    torch.manual_seed(0)
    features = m.forward_features(b)
    assert 0 < (features == 0).float().mean() < 2 * rate + 0.1
    m.eval()
    assert (m.forward_features(b) != 0).float().mean() > 0.99
