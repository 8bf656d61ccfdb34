"""The Cranjis-McB spectrogram CNNs (hms/models/spectrogram_cnn.py) number by number (RECIPES.md 4.1-4.2, 5.1):
the published image of each part list, the normalisations and features against a numpy port of the notebooks'
_normalize / __getitem__, Chris Deotte's EEG spectrogram against librosa, the backbone and head, the image-mix
hook, and the refusals."""
import warnings

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

import hms.models.spectrogram_cnn as spectrogram_cnn
from hms.layout import EEG_COLUMNS
from hms.models.backbone import create_backbone
from hms.models.spectrogram_cnn import DropoutLinear, SpectrogramCNN, percentiles, plane_features
from tests.helpers import compose_config


def part(source, features, norm):
    return {"source": source, "features": features, "norm": norm}


BASELINE = [part("spec", "panels", "panel")]
PUBLISHED = {  # name: (parts, norm_stats, image H x W)
    "baseline": (BASELINE, None, (400, 300)),
    "global_features": ([part("spec", "global", "joint")], None, (400, 300)),
    "spectrogram_percentiles": ([part("spec", "percentiles", "joint")], None, (400, 300)),
    "6a": ([part("spec", "panels", "panel"), part("spec", "percentiles", "joint")], None, (400, 600)),
    "7a": ([part("spec", "panels", "global")], (-0.08340271, 1.9072835), (400, 300)),
    "7b": ([part("spec", "global", "global")], (0.07975473, 1.9484872), (400, 300)),
    "eeg_4a": ([part("eeg", "panels", "none"), part("eeg", "percentiles", "none")], None, (512, 512)),
    "eeg_4b": ([part("eeg", "global", "none")], None, (512, 256)),
}
# Chris Deotte's EEG spectrogram against librosa: measured at most 6.5e-6 absolute over 12 windows (6 seeds x 2,
# amplitudes 5-500 uV, a NaN stretch and an all-NaN electrode); the images lie in [-1, 1].
EEG_ATOL = 5e-5
# Chris Deotte's chains in his output order, written out here so the test does not share the model's table
CHRIS_CHAINS = (("Fp1", "F7", "T3", "T5", "O1"), ("Fp1", "F3", "C3", "P3", "O1"), ("Fp2", "F8", "T4", "T6", "O2"),
                ("Fp2", "F4", "C4", "P4", "O2"))
ATOL = 1e-5  # the spectrogram normalisations and features (fp32 against numpy)


def model(parts=BASELINE, norm_stats=None, **kwargs):
    stats = {} if norm_stats is None else {"norm_stats": norm_stats}
    return SpectrogramCNN(parts=parts, **stats, **kwargs).eval()


def spec_batch(n=3, seed=0):
    """Kaggle-like power spanning both clip bounds, with NaN rows (time), a NaN block in one panel, and (n > 2)
    in the last sample a whole region (RL) missing."""
    g = np.random.default_rng(seed)
    spec = np.exp(g.uniform(-6, 10, size=(n, 300, 400))).astype(np.float32)
    spec[0, 40:55] = np.nan
    spec[1 % n, :, 230:260] = np.nan
    if n > 2:
        spec[-1, :, 100:200] = np.nan
    return spec


def eeg_batch(seed=0):
    g = np.random.default_rng(seed)
    eeg = (g.standard_normal((2, 20, 10_000)) * 50).astype(np.float32)
    eeg[0, EEG_COLUMNS.index("F7"), 3000:4500] = np.nan  # a NaN stretch: the pairs Fp1-F7, F7-T3 repaired by their mean
    eeg[1, EEG_COLUMNS.index("T4")] = np.nan  # a dead electrode: F8-T4 and T4-T6 all NaN -> 0
    return eeg


# ---- numpy port of the notebooks (baseline.ipynb cell 10, spectrogram_stat_image-nb cell 14,
# vote-weighted-kldiv-loss-cutmix-nb cell 14, effb4_global_normalization cell 12, effb2-global-cutmix cell 13)
def np_normalize(img, m=None, s=None):
    img = np.clip(img, np.exp(-4), np.exp(8))
    img = np.log(img)
    with warnings.catch_warnings():  # an all-NaN region: nanmean NaN, the image 0
        warnings.simplefilter("ignore", RuntimeWarning)
        m = np.nanmean(img.flatten()) if m is None else m
        s = np.nanstd(img.flatten()) if s is None else s
    img = (img - m) / (s + 1e-6)
    return np.nan_to_num(img, nan=0.0)


def np_panels(spec):  # [300, 400] -> (4, 100, 300)
    return np.stack([spec[:, k * 100:(k + 1) * 100].T for k in range(4)])


def np_global(x):
    low, high = np.min(x, axis=0), np.max(x, axis=0)
    return np.vstack([low, high, np.mean(x, axis=0), high - low])


def np_percentiles(x):
    return np.vstack([np.percentile(x, q=q, axis=0) for q in (20, 40, 60, 80)])


def np_image(name, spec):
    """One sample's published image [H, W] as the notebook built it."""
    x = np_panels(spec)
    if name == "baseline":
        return np.vstack([np_normalize(p) for p in x])
    if name == "global_features":
        return np_global(np_normalize(x))
    if name == "spectrogram_percentiles":
        return np_percentiles(np_normalize(x))
    if name == "6a":
        return np.hstack([np.vstack([np_normalize(p) for p in x]), np_percentiles(np_normalize(x))])
    if name == "7a":
        return np_normalize(np.vstack(list(x)), -0.08340271, 1.9072835)
    if name == "7b":
        return np_global(np_normalize(x, 0.07975473, 1.9484872))
    raise KeyError(name)


def librosa_chains(eeg):
    """Chris Deotte's recipe for one window [20, T] -> [4, 128, 256]."""
    import librosa
    chains = []
    for electrodes in CHRIS_CHAINS:
        images = []
        for a, b in zip(electrodes, electrodes[1:]):
            x = eeg[EEG_COLUMNS.index(a)] - eeg[EEG_COLUMNS.index(b)]
            x = np.zeros_like(x) if np.isnan(x).all() else np.nan_to_num(x, nan=float(np.nanmean(x)))
            mel = librosa.feature.melspectrogram(y=x, sr=200, hop_length=39, n_fft=1024, n_mels=128, fmin=0,
                                                 fmax=20, win_length=128)
            images.append((librosa.power_to_db(mel, ref=np.max) + 40) / 40)
        chains.append(np.mean(images, axis=0)[:, :256])
    return np.stack(chains)


# ---- tests
@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_each_published_part_list_gives_its_published_image(name):
    parts, stats, shape = PUBLISHED[name]
    m = model(parts, stats)
    batch = {"spec": torch.tensor(spec_batch(1)), "eeg": torch.tensor(eeg_batch()[:1])}
    image = m.images(batch)
    assert image.shape == (1, 1, *shape) and image.dtype == torch.float32 and torch.isfinite(image).all()


@pytest.mark.parametrize("name", ["baseline", "global_features", "spectrogram_percentiles", "6a", "7a", "7b"])
def test_spectrogram_images_equal_the_notebooks_numpy(name):
    parts, stats, _ = PUBLISHED[name]
    spec = spec_batch(3)
    image = model(parts, stats).images({"spec": torch.tensor(spec)})[:, 0].numpy()
    for b in range(len(spec)):
        np.testing.assert_allclose(image[b], np_image(name, spec[b]), rtol=0, atol=ATOL, err_msg=f"sample {b}")
    # the missing RL region: 0 under the per-panel norm (baseline), its own rows 100-199
    if name == "baseline":
        assert (image[-1, 100:200] == 0).all() and (image[-1, :100] != 0).mean() > 0.9


def test_features_equal_numpy_min_max_mean_and_percentiles_over_the_planes():
    g = np.random.default_rng(1)
    planes = g.standard_normal((2, 4, 5, 7)).astype(np.float32)
    planes[0, :2, 0, 0] = 0.5  # ties
    x = torch.tensor(planes)
    for b in range(2):
        np.testing.assert_allclose(plane_features(x, "global")[b].numpy(), np_global(planes[b]), rtol=0, atol=ATOL)
        np.testing.assert_allclose(plane_features(x, "percentiles")[b].numpy(), np_percentiles(planes[b]),
                                   rtol=0, atol=ATOL)
        np.testing.assert_allclose(plane_features(x, "panels")[b].numpy(), np.vstack(list(planes[b])), rtol=0, atol=0)
    q = torch.tensor([0.2, 0.4, 0.6, 0.8])
    torch.testing.assert_close(percentiles(x, dim=1), torch.quantile(x, q, dim=1).movedim(0, 1))  # the same numbers
    # 6 values: positions 1, 2, 3, 4 exactly (q (n - 1) integral), and 2.5 for the median
    six = torch.arange(6.0)[None, :, None].flip(1)
    assert percentiles(six, (20, 40, 60, 80, 50), dim=1).flatten().tolist() == [1.0, 2.0, 3.0, 4.0, 2.5]


def test_eeg_planes_equal_chris_deottes_librosa_recipe():
    eeg = eeg_batch()
    m = model(PUBLISHED["eeg_4a"][0])
    image = m.images({"eeg": torch.tensor(eeg)})[:, 0].numpy()  # [2, 512, 512]
    for b in range(2):
        ref = librosa_chains(eeg[b])  # [4, 128, 256]
        np.testing.assert_allclose(image[b, :, :256], np.vstack(list(ref)), rtol=0, atol=EEG_ATOL)
        np.testing.assert_allclose(image[b, :, 256:], np_percentiles(ref), rtol=0, atol=EEG_ATOL)
    # the dead T4 silences F8-T4 and T4-T6: their dB image is 0 everywhere ((0 + 40) / 40 = 1 in the chain mean)
    assert image.min() >= -1 - 1e-6 and image.max() <= 1 + 1e-6
    rp = image[1, 256:384, :256]  # chain "RP" (Fp2-F8-T4-T6-O2), the third
    torch.testing.assert_close(torch.tensor(rp), torch.tensor(librosa_chains(eeg[1])[2]), rtol=0, atol=EEG_ATOL)
    assert (rp > 0.45).all()  # two of its four pairs contribute 1 / 4 each
    # 4b: min, max, mean, range over the chains
    global_image = model(PUBLISHED["eeg_4b"][0]).images({"eeg": torch.tensor(eeg)})[0, 0].numpy()
    np.testing.assert_allclose(global_image, np_global(librosa_chains(eeg[0])), rtol=0, atol=EEG_ATOL)


def test_images_stay_fp32_under_autocast():
    spec = torch.tensor(spec_batch(1))
    m = model(PUBLISHED["6a"][0])
    plain = m.images({"spec": spec})
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = m.images({"spec": spec})
    assert cast.dtype == torch.float32
    torch.testing.assert_close(cast, plain, rtol=0, atol=0)


def test_backbone_input_parameters_and_heads():
    torch.manual_seed(0)
    m = model()
    seen = []
    m.backbone.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape))
    out = m({"spec": torch.tensor(spec_batch(2))})
    assert seen == [(2, 1, 400, 300)] and out["logits"].shape == (2, 6)
    assert out["aux"] == {} and set(out) == {"logits", "aux"}
    assert m.backbone.conv_stem.in_channels == 1 and m.num_features == 256
    backbone_params = sum(p.numel() for p in create_backbone("test_efficientnet", 1).parameters())
    assert sum(p.numel() for p in m.parameters()) == backbone_params + 256 * 6 + 6 == 100_306
    # published head: Dropout(0.3) then Linear, a Linear to the fusion and the checkpoints
    assert isinstance(m.head, DropoutLinear) and m.head.dropout.p == 0.3 and m.head.out_features == 6
    assert set(m.head.state_dict()) == {"weight", "bias"}
    f = torch.randn(64, 256)
    torch.testing.assert_close(m.head(f), torch.nn.functional.linear(f, m.head.weight, m.head.bias))  # eval: no dropout
    m.head.train()
    assert not torch.allclose(m.head(f), torch.nn.functional.linear(f, m.head.weight, m.head.bias))
    # head_dropout null: timm's plain Linear classifier (spectrogram_stat_image-nb cell 17)
    plain = model(head_dropout=None)
    assert type(plain.head) is torch.nn.Linear and plain.head.in_features == 256
    # drop_path_rate reaches the backbone
    rates = [mod.drop_prob for mod in model(drop_path_rate=0.2).backbone.modules() if type(mod).__name__ == "DropPath"]
    assert rates and 0.1 < max(rates) <= 0.2


def test_image_mix_hook_mixes_the_image_and_returns_its_target(monkeypatch):
    torch.manual_seed(0)
    m = model()
    calls = []

    def fake_mix(images, target, mix):
        calls.append((images.clone(), target.clone(), mix))
        return images.flip(-1), torch.full_like(target, 1 / 6)

    monkeypatch.setattr(spectrogram_cnn, "apply_image_mix", fake_mix)
    assert SpectrogramCNN.supports_image_mix is True
    spec = torch.tensor(spec_batch(2))
    target = torch.eye(6)[:2]
    mix = {"kind": "cutmix", "p": 1.0}
    out = m({"spec": spec, "target": target, "image_mix": mix})
    assert len(calls) == 1 and calls[0][2] is mix
    torch.testing.assert_close(calls[0][0], m.images({"spec": spec}))
    torch.testing.assert_close(calls[0][1], target)
    torch.testing.assert_close(out["target"], torch.full((2, 6), 1 / 6))
    with torch.no_grad():
        torch.testing.assert_close(out["logits"], m.head(m.backbone(m.images({"spec": spec}).flip(-1))))
    assert "target" not in m({"spec": spec, "target": target}) and len(calls) == 1  # no mix key: no mix


def test_the_real_image_mix_runs_inside_forward():
    from hms.models.image_mix import mosaic
    torch.manual_seed(0)
    m = model()
    spec = torch.tensor(spec_batch(2))
    target = torch.eye(6)[:2]
    out = m({"spec": spec, "target": target, "image_mix": {"kind": "mosaic", "seed": 3}})
    images, mixed = mosaic(m.images({"spec": spec}), target, torch.Generator().manual_seed(3))
    torch.testing.assert_close(out["target"], mixed)
    with torch.no_grad():
        torch.testing.assert_close(out["logits"], m.head(m.backbone(images)))
    assert images.shape == (2, 1, 400, 300) and out["target"].sum(dim=1).allclose(torch.ones(2))


@pytest.mark.parametrize("kwargs, match", [
    (dict(parts=[part("raw", "panels", "panel")]), r"parts\[0\]\.source"),
    (dict(parts=[part("spec", "median", "panel")]), r"parts\[0\]\.features"),
    (dict(parts=[part("spec", "panels", "none")]), r"parts\[0\]\.norm"),
    (dict(parts=[part("spec", "panels", "panel"), part("eeg", "global", "joint")]),
     r"parts\[1\]\.norm.*not re-normalised"),
    (dict(parts=[part("spec", "panels", "panel"), part("eeg", "panels", "none")]),
     r"equal heights.*parts\[0\] spec/panels/panel 400 rows, parts\[1\] eeg/panels/none 512 rows"),
    (dict(parts=[{"source": "spec", "features": "panels"}]), r"parts\[0\].*missing \['norm'\]"),
    (dict(parts=[dict(part("spec", "panels", "panel"), scale=2)]), r"parts\[0\].*unknown \['scale'\]"),
    (dict(parts=[]), "parts is empty"),
    (dict(parts="spec"), "parts must be a list"),
    (dict(norm_stats=[0.0, 0.0]), "norm_stats"),
    (dict(norm_stats=[0.1]), "norm_stats"),
    (dict(head_dropout=1.5), "head_dropout"),
    (dict(drop_path_rate=-0.1), "drop_path_rate"),
])
def test_bad_options_are_refused_by_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SpectrogramCNN(**kwargs)


def test_the_config_builds_the_baseline_at_its_tiny_size():
    cfg = compose_config("model=spectrogram_cnn", "name=x")
    assert [dict(p) for p in cfg.model.parts] == BASELINE and cfg.model.head_dropout == 0.3
    m = instantiate(cfg.model)
    assert m.parts == BASELINE and m.norm_stats == (-0.08340271, 1.9072835) and isinstance(m.head, DropoutLinear)
    assert m.mel is None  # no eeg part: no mel filters
