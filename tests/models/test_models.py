"""Montages, filters, the three extractors and the fusion head."""
import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from scipy import signal as scipy_signal

from hms.layout import EEG_COLUMNS, FLIP_FB, FLIP_LR, SPEC_POWER_COLUMNS
from hms.models.backbone import BackboneError, create_backbone
from hms.models.fusion import Fusion
from hms.models.spec_attn import PAIRS, AttentionPool, SpecAttnExtractor, edge_dropout, instances
from hms.models.stft import STFT_PRESETS, STFTExtractor, restack
from hms.models.wavenet import WaveNetExtractor, stack_image
from hms.signal.filters import SpectralFilter
from hms.signal.montage import MONTAGES, NodeDifferences, flip_on_differences
from hms.signal.spectra import MelSpectrogram, power_to_db
from tests.helpers import CONF

torch.manual_seed(0)


def model(name, size="tiny", *overrides):
    with initialize_config_dir(CONF, version_base="1.3"):
        return instantiate(compose("config", overrides=[f"model={name}", f"size={size}", "name=x", *overrides]).model)


def batch(n=2, t=10000):
    return {"eeg": torch.randn(n, 20, t) * 50, "spec": torch.rand(n, 300, 400) * 20}


@pytest.mark.parametrize("montage", sorted(MONTAGES))
@pytest.mark.parametrize("flip", ["lr", "fb"])
def test_flip_commutes_with_montage(montage, flip):
    eeg = torch.randn(3, 20, 50)
    perm = FLIP_LR if flip == "lr" else FLIP_FB
    diffs = NodeDifferences(montage)
    order, signs = flip_on_differences(diffs.pairs, perm)
    flipped_then_diff = diffs(eeg[:, list(perm)])
    diff_then_permuted = diffs(eeg)[:, order] * torch.tensor(signs)[:, None]
    torch.testing.assert_close(flipped_then_diff, diff_then_permuted)
    assert len(diffs.pairs) == {"chris8": 8, "banana16": 16, "banana18": 18, "groups24": 24}[montage]


def test_a_montage_not_closed_under_a_flip_is_refused():
    with pytest.raises(ValueError, match="not closed"):
        flip_on_differences([("Fp1", "F7"), ("F7", "T3")], FLIP_FB)  # would need T5-T3


def test_node_difference_values():
    eeg = torch.randn(1, 20, 5)
    d = NodeDifferences("banana16")
    assert d.pairs[0] == ("Fp1", "F7")
    torch.testing.assert_close(d(eeg)[:, 0], eeg[:, EEG_COLUMNS.index("Fp1")] - eeg[:, EEG_COLUMNS.index("F7")])
    assert NodeDifferences("groups24").groups == [list(range(8)), list(range(8, 16)), list(range(16, 24))]


def test_filters_match_scipy_and_their_passbands():
    t = torch.arange(8000) / 200.0
    x = torch.sin(2 * np.pi * 10 * t) + torch.sin(2 * np.pi * 60 * t) + torch.sin(2 * np.pi * 0.1 * t)
    band = SpectralFilter("bandpass0.5-20")(x[None])[0][2000:6000]  # the ends carry filtfilt-like transients
    spectrum = torch.fft.rfft(band).abs() / 2000
    freqs = torch.fft.rfftfreq(4000, 1 / 200)
    at = lambda f: spectrum[(freqs - f).abs().argmin()].item()  # noqa: E731
    assert at(10) == pytest.approx(1.0, abs=0.02) and at(60) < 1e-3 and at(0.1) < 1e-2
    tone = torch.sin(2 * np.pi * 50 * t.double()).float()  # a float32 phase drifts off 50 Hz over 40 s
    notch = SpectralFilter("notch50")(tone[None])[0]
    assert notch[1000:-1000].abs().max() < 1e-3
    # the same zero-phase filtering as scipy's butter + sosfiltfilt (both odd-extend the ends), 5 s from the ends
    noise = np.random.default_rng(0).standard_normal(4000)
    for preset, args in (("lowpass50", (4, 50, "lowpass")), ("bandpass0.5-20", (4, [0.5, 20], "bandpass"))):
        ref = scipy_signal.sosfiltfilt(scipy_signal.butter(*args, fs=200, output="sos"), noise)
        ours = SpectralFilter(preset)(torch.tensor(noise[None], dtype=torch.float32))[0].numpy()
        middle = slice(1000, 3000)
        assert np.abs(ours[middle] - ref[middle]).max() < 2e-3 * np.abs(ref).max(), preset


def test_band_limited_stft_equals_torch_stft():
    for preset, fmax in (("fine", 40), ("coarse", 20)):
        n_fft, win, hop = STFT_PRESETS[preset]
        m = STFTExtractor(n_fft=n_fft, win_length=win, hop_length=hop, fmax=fmax, montage="banana16")
        x = torch.randn(3, 2000)
        ours = m.stft(x)
        ref = torch.stft(x, n_fft=n_fft, win_length=win, hop_length=hop, window=torch.hann_window(win),
                         center=False, return_complex=True).abs()[:, :m.n_bins] ** 2  # only bins up to fmax
        assert m.n_bins == int(fmax * n_fft / 200) + 1 and m.stft.wsin.shape == (m.n_bins, 1, win)
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4 * ref.max().item())


def test_device_mel_equals_librosa_melspectrogram_and_power_to_db():
    librosa = pytest.importorskip("librosa")
    x = np.cumsum(np.random.default_rng(1).standard_normal((2, 3000)), axis=-1).astype(np.float32)
    for center in (True, False):
        mel = MelSpectrogram(center=center)  # Chris Deotte's recipe: 1024 / 128 / 39, 128 mels 0-20 Hz
        ours = mel(torch.from_numpy(x))
        ref = np.stack([librosa.feature.melspectrogram(y=s, sr=200, n_fft=1024, win_length=128, hop_length=39,
                                                       n_mels=128, fmin=0, fmax=20, center=center) for s in x])
        assert ours.shape == ref.shape and mel.stft.wcos.shape[0] == 103  # only bins below 20 Hz computed
        np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-3, atol=1e-5 * ref.max())
        db = power_to_db(torch.from_numpy(ref)).numpy()
        np.testing.assert_allclose(db, np.stack([librosa.power_to_db(r, ref=np.max) for r in ref]), atol=1e-3)
    assert db.max() == 0 and db.min() >= -80


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


@pytest.mark.parametrize("name", ["wavenet", "stft", "spec_attn", "fusion"])
def test_tiny_models_shapes_and_gradients(name):
    m = model(name)
    out = m(batch())
    assert out["logits"].shape == (2, 6)
    loss = out["logits"].sum() + sum(v.sum() for v in out["aux"].values())
    loss.backward()
    missing = [n for n, p in m.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert not missing, missing


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
