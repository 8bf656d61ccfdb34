"""The loop's parts with real numbers: losses, vote weights, schedule, sampler, augmentations, checkpoints."""
import math
import sys

import numpy as np
import pytest
import torch

from hms.layout import EEG_COLUMNS, FLIP_LR, SPEC_POWER_COLUMNS
from hms.metric import kl_per_row
from hms.data.inputs import flip_batch, get_inputs
from hms.train.augment import cropcat, edge_noise, head_scale
from hms.train.checkpoint import load, save_atomic
from hms.train.losses import kl_per_sample, model_loss, vote_weights, weighted_kl
from hms.train.loop import seed32
from hms.train.sampler import EpochSampler
from hms.train.schedule import cosine_per_epoch, cosine_with_warmup


def test_kl_loss_equals_kaggle_metric_per_row():
    logits = torch.tensor([[2.0, 0.0, -1.0, 0.5, 0.0, 1.0], [0.0] * 6])
    target = torch.tensor([[0.5, 0.5, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1.0]])
    ours = kl_per_sample(logits, target).numpy()
    kaggle = kl_per_row(target.numpy(), logits.softmax(1).numpy())
    np.testing.assert_allclose(ours, kaggle, rtol=1e-6)
    assert ours[1] == pytest.approx(math.log(6), rel=1e-6)


def test_vote_weights_published_values():
    votes = torch.tensor([1.0, 2.0, 15.0, 28.0])
    np.testing.assert_allclose(vote_weights(votes, "log_votes").numpy(), np.log(votes.numpy() + 1) / np.log(3), rtol=1e-6)
    assert vote_weights(votes, "log_votes")[1] == pytest.approx(1.0)
    assert vote_weights(votes, "min10").tolist() == [1, 2, 10, 10]
    with pytest.raises(ValueError, match="weighting"):
        vote_weights(votes, "sqrt")


def test_aux_heads_add_with_their_weights():
    target = torch.full((4, 6), 1 / 6)
    weight = torch.ones(4)
    main, aux = torch.randn(4, 6), torch.randn(4, 6)
    total = model_loss({"logits": main, "aux": {"stft": aux}}, target, weight, {"main": 0.79, "stft": 0.06})
    expected = 0.79 * weighted_kl(main, target, weight) + 0.06 * weighted_kl(aux, target, weight)
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)


def test_cosine_schedule_warms_up_then_decays_each_step():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = cosine_with_warmup(opt, total_steps=100, warmup_fraction=0.1, min_lr_ratio=0.0)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[55] == pytest.approx(0.5, abs=0.02)
    assert lrs[-1] < 0.01


def test_sampler_shards_make_the_global_batch_and_carry_the_epoch():
    indices = lambda sampler: [i for _, i in sampler]
    one = indices(EpochSampler(50, 8, seed=3))
    ranks = [indices(EpochSampler(50, 4, seed=3, rank=r, world=2)) for r in range(2)]
    assert len(one) == 48
    for k in range(6):
        assert sorted(one[k * 8:(k + 1) * 8]) == sorted(ranks[0][k * 4:(k + 1) * 4] + ranks[1][k * 4:(k + 1) * 4])
    s = EpochSampler(50, 8, seed=3)
    s.set_epoch(1)
    assert indices(s) != one and sorted(set(one)) == sorted(one)
    assert {epoch for epoch, _ in s} == {1}  # what persistent workers, which never see set_epoch, draw from


def test_seed_any_integer():
    for seed in (-1, 0, 2**32, 2**70 + 5):
        np.random.default_rng(seed32(seed))
        assert 0 <= seed32(seed) < 2**32


# malloc, fill and free 64 MB five times (a batch's tensors); print the page faults of the last four.
_FAULTS = """
import ctypes, resource, sys
from hms.train.cpu_memory import keep_freed_cpu_memory
if sys.argv[1] == "keep":
    assert keep_freed_cpu_memory()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def churn(size=64 * 2**20):
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    libc.free(block)
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    churn()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_kept_cpu_memory_is_reused_without_page_faults():
    import subprocess
    faults = {mode: int(subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True,
                                       check=True).stdout) for mode in ("default", "keep")}
    assert faults["default"] > 4 * 16_000  # glibc maps every 64 MB block anew: 16,384 pages fault in
    assert faults["keep"] < 100  # served again from the heap


INPUTS = get_inputs(["eeg", "spec"])


def _batch(n=4, t=400):
    g = torch.Generator().manual_seed(0)
    return {"eeg": torch.randn(n, 20, t, generator=g), "spec": torch.rand(n, 300, 400, generator=g),
            "target": torch.eye(6)[:n], "n_votes": torch.tensor([1.0, 10, 20, 3])[:n]}


def test_cropcat_swaps_time_and_mixes_targets():
    batch = _batch()
    out = cropcat(batch, INPUTS, p=1.0, generator=torch.Generator().manual_seed(1))
    for i in range(4):
        j = (i - 1) % 4  # partner = roll by one
        from_partner = (out["eeg"][i] == batch["eeg"][j]).all(dim=0).float()  # per time step
        share = from_partner.mean().item()
        assert share == pytest.approx(0.5)
        np.testing.assert_allclose(out["target"][i], 0.5 * batch["target"][i] + 0.5 * batch["target"][j])
        assert out["target"][i].sum().item() == pytest.approx(1.0)
    assert cropcat(batch, INPUTS, p=0.0)["eeg"] is batch["eeg"]
    # the spectrogram's time axis is its rows: the same quarters move there
    spec_share = (out["spec"][0] == batch["spec"][3]).all(dim=1).float().mean().item()
    assert spec_share == pytest.approx(0.5, abs=0.01)


def test_head_scale_and_edge_noise_change_the_batch():
    batch = _batch()
    scaled = head_scale(batch, 0.96, 1.04)["eeg"]
    ratio = scaled / batch["eeg"]
    assert ((ratio > 0.959) & (ratio < 1.041)).all() and ratio.std() > 0
    noisy = edge_noise(batch, 10.0)["eeg"] - batch["eeg"]
    assert noisy[..., :40].abs().mean() > 5 * noisy[..., 180:220].abs().mean()


def test_flip_batch_moves_electrodes_and_spectrogram_regions():
    batch = _batch()
    out = flip_batch(batch, INPUTS, ("lr",))
    assert torch.equal(out["eeg"][:, EEG_COLUMNS.index("Fp2")], batch["eeg"][:, EEG_COLUMNS.index("Fp1")])
    assert torch.equal(out["eeg"][:, EEG_COLUMNS.index("Cz")], batch["eeg"][:, EEG_COLUMNS.index("Cz")])
    ll, rl = SPEC_POWER_COLUMNS.index("LL_0.59"), SPEC_POWER_COLUMNS.index("RL_0.59")
    assert torch.equal(out["spec"][..., rl], batch["spec"][..., ll])
    twice = flip_batch(out, INPUTS, ("lr",))
    assert torch.equal(twice["eeg"], batch["eeg"]) and torch.equal(twice["spec"], batch["spec"])
    assert list(FLIP_LR) != list(range(20))


def test_checkpoint_is_atomic_and_weights_only(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_atomic({"model": {"w": torch.ones(2)}, "epoch": 1, "history": [{"val_kl": 0.5}]}, path)
    state = load(path)
    assert state["epoch"] == 1 and torch.equal(state["model"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temp file left
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load(tmp_path / "missing.pt")


def test_per_epoch_cosine_is_torchs_cosine_annealing_and_the_published_table():
    """15th place: CosineAnnealingLR(T_max=14, eta_min=1e-7) stepped per epoch; RECIPES.md section 1.9."""
    published = [10.0, 9.875, 9.505, 8.910, 8.119, 7.172, 6.116, 5.005, 3.894, 2.838, 1.891, 1.100, 0.505, 0.135]
    weights = [torch.nn.Parameter(torch.zeros(1))]
    ours_opt, ref_opt = torch.optim.AdamW(weights, lr=1e-4), torch.optim.AdamW(weights, lr=1e-4)
    steps = [3, 5, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3]  # epochs may differ in length (quality stages)
    ours = cosine_per_epoch(ours_opt, sum(steps), steps, t_max=14, eta_min=1e-7)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(ref_opt, T_max=14, eta_min=1e-7)
    for epoch, n in enumerate(steps):
        for _ in range(n):  # constant through the epoch
            assert ours_opt.param_groups[0]["lr"] == pytest.approx(ref_opt.param_groups[0]["lr"], rel=1e-9)
            ours_opt.step(), ours.step()
        assert ref_opt.param_groups[0]["lr"] == pytest.approx(published[epoch] * 1e-5, abs=6e-9)
        ref_opt.step(), ref.step()


def test_vote_group_loss_is_a_sum_of_group_means_with_the_published_weights():
    from hms.train.losses import vote_group_weights, weighted_kl
    n_votes = torch.tensor([1.0, 2, 3, 7, 8, 15, 15, 2])
    published = {0: (0.30, 0.50), 6: (0.228, 0.38), 12: (0.156, 0.26), 23: (0.024, 0.04), 24: (0.02, 0.02)}
    logits, target = torch.randn(8, 6), torch.softmax(torch.randn(8, 6), dim=1)
    kl = torch.nn.functional.kl_div(torch.log_softmax(logits, 1), target, reduction="none").sum(1)
    for epoch, (w0, w1) in published.items():
        weights = vote_group_weights(n_votes, epoch)
        groups = {w0: [0, 1, 7], w1: [2, 3], 1.0: [4, 5, 6]} if w0 != w1 else {w0: [0, 1, 2, 3, 7], 1.0: [4, 5, 6]}
        expected = sum(w * kl[idx].mean() for w, idx in groups.items())  # 8 votes is the top group
        torch.testing.assert_close(weighted_kl(logits, target, weights), expected)


def test_torch_ema_warm_up_gives_the_published_decays_and_keeps_live_buffers():
    """16th place: torch_ema(decay 0.8) updated once per epoch never reaches 0.8 (RECIPES.md 3.6)."""
    from hms.train.ema import make_ema, update_ema
    model = torch.nn.Sequential(torch.nn.Linear(1, 1, bias=False), torch.nn.BatchNorm1d(1))
    torch.nn.init.zeros_(model[0].weight)
    ema = make_ema(model, 0.8, "torch_ema", average_buffers=False)
    published = [0.182, 0.25, 0.308, 0.357, 0.400, 0.438, 0.471, 0.500, 0.526, 0.550, 0.571, 0.591, 0.609, 0.625,
                 0.640, 0.654]
    expected = 0.0
    for epoch, decay in enumerate(published, start=1):
        model[0].weight.data.fill_(float(epoch))  # the weights after this epoch
        model[1].running_mean.fill_(float(epoch))
        update_ema(ema, model, average_buffers=False)
        expected = decay * expected + (1 - decay) * epoch
        assert ema.module[0].weight.item() == pytest.approx(expected, abs=2e-3 * epoch)
        assert ema.module[1].running_mean.item() == epoch  # the live statistics
    # the final average weighs the last epochs' weights 0.346, 0.235, 0.157 (RECIPES.md 3.6): measured by
    # averaging one-hot "weights" through the same EMA
    coefficients = []
    for hot in (16, 15, 14):
        probe = make_ema(model, 0.8, "torch_ema", average_buffers=False)
        probe.module[0].weight.data.zero_()
        for epoch in range(1, 17):
            model[0].weight.data.fill_(float(epoch == hot))
            update_ema(probe, model, average_buffers=False)
        coefficients.append(probe.module[0].weight.item())
    assert coefficients == pytest.approx([0.346, 0.235, 0.157], abs=1e-3)
    constant = make_ema(model, 0.8, "none")
    model[0].weight.data.fill_(1.0)
    update_ema(constant, model)
    model[0].weight.data.fill_(2.0)
    update_ema(constant, model)
    assert constant.module[0].weight.item() == pytest.approx(0.8 * 1 + 0.2 * 2)
