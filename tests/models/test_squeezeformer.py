"""The 3rd-place 1-D model (hms/models/squeezeformer.py) number by number against RECIPES.md 2.2 and 2.6:
stage shapes and the parameter count at the published size, the rotary embedding, both quirks and
their fixes, the order and effect of the train-time signal augmentations, and the tiny default training."""
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from scipy import signal as scipy_signal

from hms.layout import EEG_COLUMNS, FLIP_LR
from hms.models.squeezeformer import EEGSqueezeformer, apply_rotary, rotary_tables
from tests.helpers import compose_config

TINY = dict(F1=16, D=2, dim=32, heads=2, blocks=1)  # conf/model/squeezeformer.yaml's size
NO_AUGMENT = dict(time_reverse_p=0.0, swap_p=0.0, band_pass_p=0.0, montage_drop_p=0.0)


def eeg(n=1, seed=0, length=10000):
    return torch.randn(n, 20, length, generator=torch.Generator().manual_seed(seed)) * 50


def published_pairs(x: torch.Tensor) -> torch.Tensor:
    """ds_2.py's 16 differences, written out from the pair names of RECIPES 2.2."""
    first = ["Fp1", "Fp2", "F7", "F8", "T3", "T4", "T5", "T6", "Fp1", "Fp2", "F3", "F4", "C3", "C4", "P3", "P4"]
    second = ["F7", "F8", "T3", "T4", "T5", "T6", "O1", "O2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2"]
    return x[:, [EEG_COLUMNS.index(c) for c in first]] - x[:, [EEG_COLUMNS.index(c) for c in second]]


def test_every_stage_has_the_published_shape():
    model = EEGSqueezeformer().eval()
    shapes = {}
    for name in ("cnn.block_1", "cnn.block_2", "cnn.cbam", "cnn.block_3", "cnn.block_4", "encoder"):
        model.get_submodule(name).register_forward_hook(
            lambda module, args, out, name=name: shapes.__setitem__(name, tuple(out.shape)))
    model.encoder.register_forward_pre_hook(lambda module, args: shapes.__setitem__("tokens", tuple(args[0].shape)))
    with torch.no_grad():
        out = model({"eeg": eeg(), "spec": torch.rand(1, 300, 400)})
    assert shapes == {
        "cnn.block_1": (1, 64, 16, 1249),   # (10000 + 14 - 16 + 1) // 8
        "cnn.block_2": (1, 128, 16, 624),   # (1249 + 14 - 16) // 2 + 1
        "cnn.cbam": (1, 128, 16, 624),
        "cnn.block_3": (1, 128, 14, 624),   # the unpadded (3, 1) depthwise conv: 16 rows -> 14
        "cnn.block_4": (1, 128, 14, 312),   # 624 + 7 - 8 + 1 = 624, pooled by 2
        "tokens": (1, 312, 128),            # GeM over the 14 rows
        "encoder": (1, 312, 128),
    }
    assert out["logits"].shape == (1, 6) and out["aux"] == {}
    assert model.cnn.block_2.depthwise.groups == 128 and model.cnn.block_3.expand.groups == 4
    assert not any(m.bias is not None for m in model.cnn.modules() if isinstance(m, torch.nn.Conv2d))


def test_the_published_parameter_count():
    model = EEGSqueezeformer()
    block_1 = 64 * 16 + 2 * 64                                      # conv 1->64 (1,16); BN
    block_2 = 64 * 128 + 128 * 16 + 2 * 128 + 128 * 128 + 2 * 128   # 1x1; depthwise (1,16); BN; 1x1; BN
    cbam = 128 * 32 + 32 * 128 + 2 * 3 * 3                          # channel MLP 128->32->128; spatial conv 2->1
    block_3 = 128 // 4 * 256 + 256 * 3 + 2 * 256 + 256 // 4 * 128 + 2 * 128  # groups 4; depthwise (3,1)
    block_4 = 128 * 256 + 256 * 8 + 2 * 256 + 256 // 4 * 128 + 2 * 128        # 1x1; depthwise (1,8); groups 4
    attention = 4 * 128 * 128                                       # q, k, v, o without bias
    feed_forward = 2 * (128 * 128 + 128)                            # 128->128->128 with biases
    conv_module = (128 * 256 + 256) + 128 * 51 + 2 * 128 + (128 * 128 + 128)  # pw 128->256; dw 51; BN1d; pw
    block = 4 * 2 * 128 + attention + 2 * feed_forward + conv_module + 4 * 2 * 128  # scale/shift x4; LN x4
    gem, head = 1, 128 * 6 + 6                                      # one shared p; Linear(128, 6)
    expected = block_1 + block_2 + cbam + block_3 + block_4 + 3 * block + gem + head
    counted = sum(p.numel() for p in model.parameters())
    print(f"published size: {counted:,} parameters (CNN {block_1 + block_2 + cbam + block_3 + block_4:,}, "
          f"Squeezeformer block {block:,})")
    assert expected == counted == 668_825
    assert all(p.requires_grad for p in model.parameters())  # the rotary tables are buffers, not parameters
    assert sum(p.numel() for p in EEGSqueezeformer(shared_gem=False).parameters()) == 668_826


def test_rotary_embedding_is_relative_and_the_identity_at_position_zero():
    cos, sin = rotary_tables(32, 625)
    model = EEGSqueezeformer()
    attn = model.encoder[0].attn
    assert cos.shape == sin.shape == (625, 32) and torch.equal(attn.cos, cos) and torch.equal(attn.sin, sin)
    assert "cos" not in dict(model.named_parameters()) and not attn.cos.requires_grad  # frozen
    q, k = torch.randn(2, 32, dtype=torch.float64).unbind(0)
    cos, sin = rotary_tables(32, 625, dtype=torch.float64)

    def at(x, position):
        return apply_rotary(x, cos[position], sin[position])

    torch.testing.assert_close(at(q, 0), q)
    for m, n in ((7, 3), (300, 296), (4, 0)):  # m - n = 4 every time
        torch.testing.assert_close(at(q, m) @ at(k, n), at(q, 4) @ at(k, 0))
    assert not torch.isclose(at(q, 5) @ at(k, 0), at(q, 4) @ at(k, 0))
    # rotate-half: dims (i, i + 16) turn as one complex number by position * 10000^(-2i/32)
    m = 123
    z = torch.complex(q[:16], q[16:]) * torch.polar(torch.ones(16, dtype=torch.float64),
                                                    m * 10000.0 ** (-torch.arange(0, 32, 2, dtype=torch.float64) / 32))
    torch.testing.assert_close(at(q, m), torch.cat([z.real, z.imag]))


def test_shared_gem_is_one_module_and_the_fix_two():
    shared, fixed = EEGSqueezeformer(**TINY), EEGSqueezeformer(**TINY, shared_gem=False)
    assert shared.electrode_pool is shared.time_pool and shared.electrode_pool.p is shared.time_pool.p
    assert fixed.electrode_pool.p is not fixed.time_pool.p
    assert {n for n, _ in shared.named_parameters() if n.endswith("pool.p")} == {"electrode_pool.p"}
    assert {n for n, _ in fixed.named_parameters() if n.endswith("pool.p")} == {"electrode_pool.p", "time_pool.p"}
    assert shared.electrode_pool.p.item() == 3.0 and shared.electrode_pool.eps == 1e-6


def test_input_and_attention_dropout_apply_only_with_the_fix():
    kwargs = dict(TINY, **NO_AUGMENT, ff_dropout=0.0, conv_dropout=0.0)
    torch.manual_seed(0)
    quirk = EEGSqueezeformer(**kwargs)
    fixed = EEGSqueezeformer(**kwargs, apply_dropouts=True)
    fixed.load_state_dict(quirk.state_dict())
    assert quirk.input_dropout.p == 0 and quirk.encoder[0].attn.dropout.p == 0
    assert fixed.input_dropout.p == 0.1 and fixed.encoder[0].attn.dropout.p == 0.2
    batch = {"eeg": eeg(2, length=2000)}  # 62 tokens: enough to see dropout, 5x cheaper
    with torch.no_grad():
        torch.testing.assert_close(quirk.eval()(batch)["logits"], fixed.eval()(batch)["logits"])
        quirk.train(), fixed.train()
        runs = {}
        for name, model in (("quirk", quirk), ("fixed", fixed)):
            for seed in (0, 1):
                torch.manual_seed(seed)
                runs[name, seed] = model(batch)["logits"]
    torch.testing.assert_close(runs["quirk", 0], runs["quirk", 1])  # no dropout is applied anywhere
    assert not torch.allclose(runs["fixed", 0], runs["fixed", 1])
    assert not torch.allclose(runs["fixed", 0], runs["quirk", 0])


def test_eval_signal_is_the_published_pairs_lfilter_clip_and_scale():
    x = eeg(2)
    x[0, EEG_COLUMNS.index("T3"), 500:900] = float("nan")
    model = EEGSqueezeformer(**TINY).eval()
    pairs = published_pairs(x).double().nan_to_num(0.0).numpy()
    b, a = scipy_signal.butter(1, [1.6 / 100, 30 / 100], btype="band")  # cfg_2a: order 1, lfilter
    expected = np.clip(scipy_signal.lfilter(b, a, pairs, axis=-1), -1024, 1024) / 32
    torch.testing.assert_close(model.signal(x), torch.from_numpy(expected).float(), atol=1e-4, rtol=1e-4)
    assert EEGSqueezeformer(**TINY, filter="bandpass1.6-30_causal_o2").band_pass_order == 2  # cfg_2b
    assert model.band_pass_order == 1


def test_time_reversal_comes_before_the_causal_filter():
    x = eeg(2)
    x[1, 0, :50] = float("nan")  # NaN -> 0 happens on the pairs, before the reversal
    model = EEGSqueezeformer(**TINY, **dict(NO_AUGMENT, time_reverse_p=1.0)).train()
    pairs = published_pairs(x).nan_to_num(0.0)
    filtered_reversed = (model.filter(pairs.flip(-1)).clamp(-1024, 1024) / 32)
    reversed_filtered = (model.filter(pairs).flip(-1).clamp(-1024, 1024) / 32)
    out = model.signal(x)
    torch.testing.assert_close(out, filtered_reversed)
    assert (out - reversed_filtered).abs().max() > 1.0  # the causal filter does not commute with reversal


def test_left_right_swap_exchanges_pair_columns_2k_and_2k_plus_1():
    x = eeg(2)
    model = EEGSqueezeformer(**TINY, **dict(NO_AUGMENT, swap_p=1.0))
    plain = model.eval().signal(x)
    swapped = model.train().signal(x)
    torch.testing.assert_close(swapped[:, 0::2], plain[:, 1::2])
    torch.testing.assert_close(swapped[:, 1::2], plain[:, 0::2])
    # the same as mirroring the electrodes left/right (the 2-D datasets' flip)
    torch.testing.assert_close(swapped, model.eval().signal(x[:, list(FLIP_LR)]))


def test_random_band_pass_refilters_1_to_8_pairs_in_training():
    x = eeg(16)
    model = EEGSqueezeformer(**TINY, **dict(NO_AUGMENT, band_pass_p=1.0))
    plain = model.eval().signal(x)
    torch.manual_seed(0)
    changed = ((model.train().signal(x) - plain).abs().amax(-1) > 1e-4).sum(1)
    assert changed.min() >= 1 and changed.max() <= 8


def test_montage_drop_zeroes_1_to_8_montages_only_in_training():
    model = EEGSqueezeformer(**TINY, montage_drop_p=1.0)
    x = torch.randn(200, 16, 50) + 5
    torch.manual_seed(0)
    zeroed = (model.train().drop_montages(x) == 0).all(-1).sum(1)
    assert zeroed.min() >= 1 and zeroed.max() <= 8 and len(set(zeroed.tolist())) > 4
    assert torch.equal(model.eval().drop_montages(x), x)
    half = EEGSqueezeformer(**TINY).train()  # p 0.5: about half the samples keep every montage
    untouched = ((half.drop_montages(x) == 0).all(-1).sum(1) == 0).float().mean()
    assert 0.35 < untouched < 0.65


def test_the_tiny_default_trains_with_finite_logits_and_gradients():
    torch.manual_seed(0)
    model = instantiate(compose_config("model=squeezeformer", "name=x").model).train()
    assert isinstance(model, EEGSqueezeformer) and model.encoder[0].attn.heads == 2
    x = eeg(4)
    x[0, 3, 100:400] = float("nan")
    out = model({"eeg": x, "spec": torch.rand(4, 300, 400)})
    assert out["logits"].shape == (4, 6) and torch.isfinite(out["logits"]).all()
    torch.nn.functional.kl_div(out["logits"].log_softmax(1), torch.full((4, 6), 1 / 6), reduction="batchmean").backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kwargs, message", [
    (dict(dim=64), "dim 64 must equal D \\* F1"),
    (dict(heads=3), "heads"),
    (dict(conv_kernel=50), "must be odd"),
    (dict(filter="bandpass9"), "is not one of"),
    (dict(conv_groups=3), "conv_groups 3"),
    (dict(swap_p=1.5), "probabilities"),
])
def test_bad_kwargs_raise_a_one_line_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        EEGSqueezeformer(**kwargs)
    assert "\n" not in str(error.value)
