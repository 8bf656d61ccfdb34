"""The 15th-place Kaggle-spectrogram augmentations (hms/train/spec_augment.py) with real numbers."""
import pytest
import torch
import torch.nn.functional as F

from hms.models.spec_augment import (
    coarse_dropout,
    draw_coarse_dropout_holes,
    frequency_dropout,
    median_blur,
    motion_blur,
    motion_or_median_blur,
    spectrogram_augment,
    temporal_resample,
)

B, N, T, FREQ = 4, 10, 300, 100  # the attention-MIL input: 10 instances of 300 time rows x 100 frequencies


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def spectrogram(batch=B, instances=N, time=T, freq=FREQ, seed=0, dtype=torch.float32) -> torch.Tensor:
    """Strictly positive values, so every exact zero in an output was put there by a dropout."""
    return torch.rand(batch, instances, time, freq, generator=seeded(seed), dtype=dtype) + 1


TRANSFORMS = {
    "coarse_dropout": lambda x, p, g: coarse_dropout(x, p, generator=g),
    "motion_blur": lambda x, p, g: motion_blur(x, p, generator=g),
    "median_blur": lambda x, p, g: median_blur(x, p, generator=g),
    "motion_or_median_blur": lambda x, p, g: motion_or_median_blur(x, p, generator=g),
    "temporal_resample": lambda x, p, g: temporal_resample(x, p, generator=g),
    "frequency_dropout": lambda x, p, g: frequency_dropout(x, p, generator=g),
    "spectrogram_augment": lambda x, p, g: spectrogram_augment(
        x, coarse_dropout_p=p, blur_p=p, resample_p=p, freq_dropout_p=p, generator=g),
}


@pytest.mark.parametrize("name", TRANSFORMS)
def test_zero_probability_is_identity(name):
    x = spectrogram()
    assert torch.equal(TRANSFORMS[name](x, 0.0, seeded()), x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", TRANSFORMS)
def test_shape_dtype_kept_and_input_untouched(name, dtype):
    x = spectrogram(batch=2, instances=3, dtype=dtype)
    before = x.clone()
    out = TRANSFORMS[name](x, 1.0, seeded())
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert torch.equal(x, before)
    assert not torch.equal(out, x)  # p=1: every transform changed something


def test_same_seed_same_output():
    x = spectrogram(instances=3)
    first = spectrogram_augment(x, generator=seeded(7))
    again = spectrogram_augment(x, generator=seeded(7))
    other = spectrogram_augment(x, generator=seeded(8))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_one_draw_per_sample_shared_by_its_instances():
    # Identical instances stay identical through every transform: each draw is per sample, not per instance.
    x = spectrogram(batch=2, instances=1).expand(2, N, T, FREQ)
    out = spectrogram_augment(x, coarse_dropout_p=1, blur_p=1, resample_p=1, freq_dropout_p=1, generator=seeded(3))
    assert torch.equal(out, out[:, :1].expand_as(out))


# ---------------------------------------------------------------------------------------------------- CoarseDropout


def test_coarse_dropout_holes_published_sizes():
    batch = 8
    x = spectrogram(batch=batch)
    out = coarse_dropout(x, p=1.0, generator=seeded(1))
    holes = draw_coarse_dropout_holes(batch, T, FREQ, p=1.0, generator=seeded(1))  # the same draws

    zero = out == 0
    assert torch.equal(zero, zero[:, :1].expand_as(zero))  # the same holes in all 10 instances
    assert torch.equal(zero[:, 0], holes.mask(T, FREQ))
    assert torch.equal(out[~zero], x[~zero])  # nothing else changes

    n_holes = holes.active.sum(1)
    assert n_holes.min() >= 1 and n_holes.max() <= 10 and n_holes.max() > 1
    active = holes.active
    assert holes.height[active].min() >= 1 and holes.height[active].max() <= 10
    assert holes.width[active].min() >= 1 and holes.width[active].max() <= 10
    assert (holes.top[active] >= 0).all() and (holes.top + holes.height)[active].max() <= T
    assert (holes.left[active] >= 0).all() and (holes.left + holes.width)[active].max() <= FREQ
    area = zero[:, 0].sum((1, 2))
    assert area.min() >= 1 and area.max() <= 10 * 10 * 10


def test_coarse_dropout_single_hole_is_a_rectangle_of_at_most_10x10():
    x = spectrogram(batch=16, instances=2)
    zero = coarse_dropout(x, p=1.0, max_holes=1, generator=seeded(2))[:, 0] == 0
    for sample in zero:
        rows = sample.any(1).nonzero()[:, 0]
        cols = sample.any(0).nonzero()[:, 0]
        assert 1 <= len(rows) <= 10 and 1 <= len(cols) <= 10
        box = sample[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert box.all() and sample.sum() == box.numel()


def test_coarse_dropout_fires_about_half_the_time():
    x = spectrogram(batch=400, instances=1, time=20, freq=20)
    fired = (coarse_dropout(x, p=0.5, generator=seeded(4)) == 0).flatten(1).any(1).float().mean()
    assert 0.4 < fired < 0.6


# ---------------------------------------------------------------------------------------------------- blur


BLURS = {"motion_blur": motion_blur, "median_blur": median_blur, "motion_or_median_blur": motion_or_median_blur}


@pytest.mark.parametrize("name", BLURS)
def test_blur_keeps_a_constant_image_constant(name):
    x = torch.full((B, 3, 100, 60), 3.7)
    out = BLURS[name](x, p=1.0, generator=seeded())
    torch.testing.assert_close(out, x, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", BLURS)
def test_blur_reduces_noise_variance(name):
    x = torch.randn(B, 3, 100, 60, generator=seeded(5))
    out = BLURS[name](x, p=1.0, generator=seeded())
    # A 3-line average leaves 1/3 of white-noise variance, a 3x3 median about 0.18.
    assert (out.var(dim=(1, 2, 3)) < 0.4 * x.var(dim=(1, 2, 3))).all()


def test_motion_blur_impulse_is_a_line_of_3_to_7_cells():
    x = torch.zeros(32, 2, 31, 31)
    x[:, :, 15, 15] = 1.0
    out = motion_blur(x, p=1.0, generator=seeded(6))
    assert torch.equal(out[:, 0], out[:, 1])
    directions = set()
    for sample in out[:, 0]:
        cells = (sample > 1e-6).nonzero() - 15  # offsets from the impulse
        length = len(cells)
        assert length in (3, 5, 7)
        torch.testing.assert_close(sample[sample > 1e-6], torch.full((length,), 1 / length))
        step = cells[-1] - cells[0]  # from one end of the line to the other
        direction = tuple((step // (length - 1)).tolist())
        assert direction in {(0, 1), (1, 0), (1, 1), (1, -1)}
        assert torch.equal(cells, torch.arange(-(length // 2), length // 2 + 1)[:, None] * torch.tensor(direction))
        directions.add(direction)
    assert len(directions) == 4


def test_median_blur_removes_an_isolated_spike():
    x = torch.zeros(2, N, 30, 30)
    x[:, :, 10, 10] = 100.0
    assert torch.equal(median_blur(x, p=1.0, generator=seeded()), torch.zeros_like(x))


def test_one_of_blur_fires_with_p_and_picks_both_kinds():
    x = torch.randn(400, 1, 12, 12, generator=seeded(9))
    out = motion_or_median_blur(x, p=0.3, generator=seeded(10))
    changed = (out != x).flatten(1).any(1)
    assert 0.22 < changed.float().mean() < 0.38
    # A median output is always one of the sample's own values; a line average almost never is.
    is_median = torch.stack([torch.isin(o, xi).all() for o, xi in zip(out[changed], x[changed])])
    assert 0.3 < is_median.float().mean() < 0.7


# ---------------------------------------------------------------------------------------------------- TemporalResample


def published_resample(sample: torch.Tensor, factor: float, length: int = T) -> torch.Tensor:
    """The published TemporalResample + TemporalPad + TemporalCenterCrop on one [N, T, F] sample,
    with the authors' (T, F, N) layout."""
    data = sample.permute(1, 2, 0)
    new_size = max(int(data.shape[0] * factor), 1)
    data = F.interpolate(data.permute(2, 1, 0), new_size, mode="linear").permute(2, 1, 0)
    if data.shape[0] < length:
        pad = length - data.shape[0]
        data = F.pad(data, (0, 0, 0, 0, pad // 2, pad - pad // 2))
    if data.shape[0] > length:
        crop = data.shape[0] - length
        data = data[crop // 2:crop // 2 + length]
    return data.permute(2, 0, 1)


# Both F.interpolate and temporal_resample compute the source row in float32 (as torch does for float32),
# each about 3e-5 of a row off the exact value near row 300, in slightly different ways.
INTERPOLATION_ATOL = 1e-4


def test_temporal_resample_factor_one_is_identity():
    x = spectrogram()
    assert torch.equal(temporal_resample(x, p=1.0, resample_range=(1.0, 1.0), generator=seeded()), x)


@pytest.mark.parametrize("factor", [0.85, 0.9, 0.97, 1.0, 1.02, 1.05])
def test_temporal_resample_matches_published_code(factor):
    x = spectrogram(batch=2, instances=2)
    out = temporal_resample(x, p=1.0, resample_range=(factor, factor), generator=seeded())
    expected = torch.stack([published_resample(sample, factor) for sample in x])
    torch.testing.assert_close(out, expected, rtol=0, atol=INTERPOLATION_ATOL)


def test_temporal_resample_shrink_moves_content_to_centre_and_zero_pads():
    bright_row = T // 2 + 60  # 210
    x = torch.zeros(2, 3, T, FREQ)
    x[:, :, bright_row] = 1.0
    out = temporal_resample(x, p=1.0, resample_range=(0.85, 0.85), generator=seeded())
    profile = out.sum(dim=(1, 3))  # [2, T]
    centre_of_mass = (profile * torch.arange(T)).sum(1) / profile.sum(1)
    moved = bright_row - centre_of_mass  # 60 rows from the centre * (1 - 0.85) = 9
    assert ((moved > 8.5) & (moved < 10)).all()

    # int(300 * 0.85) = 255 rows: 22 zero rows in front, 23 at the end, the constant in between.
    ones = temporal_resample(torch.ones(2, 3, T, FREQ), p=1.0, resample_range=(0.85, 0.85), generator=seeded())
    assert (ones[:, :, :22] == 0).all() and (ones[:, :, 277:] == 0).all()
    torch.testing.assert_close(ones[:, :, 22:277], torch.ones(2, 3, 255, FREQ))


def test_temporal_resample_stretch_is_a_centre_crop():
    x = spectrogram(batch=2, instances=3)
    out = temporal_resample(x, p=1.0, resample_range=(1.05, 1.05), generator=seeded())
    # int(300 * 1.05) = 315 rows, of which rows 7..306 are kept.
    stretched = F.interpolate(x.flatten(0, 1).transpose(1, 2), 315, mode="linear").transpose(1, 2)
    torch.testing.assert_close(out, stretched[:, 7:307].view_as(x), rtol=0, atol=INTERPOLATION_ATOL)
    assert (out != 0).all()  # cropping, no padding


def test_temporal_resample_draws_a_factor_per_sample():
    bright_row = 210
    x = torch.zeros(64, 1, T, 4)
    x[:, :, bright_row] = 1.0
    profile = temporal_resample(x, p=1.0, generator=seeded(11)).sum(dim=(1, 3))
    moved = bright_row - (profile * torch.arange(T)).sum(1) / profile.sum(1)
    # factor in U(0.85, 1.05): a row 60 from the centre moves between +9 (shrink) and -3 (stretch) rows.
    assert moved.min() > -3.5 and moved.max() < 9.5
    assert moved.std() > 1  # different factors in different samples


# ---------------------------------------------------------------------------------------------------- FrequencyDropout


def dropped_columns(out: torch.Tensor) -> torch.Tensor:
    """[B, F] bool: the frequency columns that are zero everywhere in a sample."""
    zero = out == 0
    columns = zero.all(dim=(1, 2))
    assert torch.equal(zero, columns[:, None, None, :].expand_as(zero))  # only whole columns are zeroed
    return columns


def test_frequency_dropout_zeroes_0_to_4_columns_and_reverses_time():
    x = spectrogram(batch=200, instances=2, time=20)
    out = frequency_dropout(x, p=1.0, reverse_time=True, generator=seeded(12))
    columns = dropped_columns(out)
    assert set(columns.sum(1).tolist()) == {0, 1, 2, 3, 4}  # randint(0, 5) columns, with replacement
    kept = ~columns[:, None, None, :].expand_as(out)
    assert torch.equal(out[kept], x.flip(2)[kept])  # the published quirk: time-reversed


def test_frequency_dropout_without_reverse_keeps_time_order():
    x = spectrogram(batch=50, time=20)
    out = frequency_dropout(x, p=1.0, reverse_time=False, generator=seeded(13))
    columns = dropped_columns(out)
    assert columns.sum(1).max() <= 4
    kept = ~columns[:, None, None, :].expand_as(out)
    assert torch.equal(out[kept], x[kept])
    reversed_out = frequency_dropout(x, p=1.0, reverse_time=True, generator=seeded(13))
    assert torch.equal(reversed_out, out.flip(2))  # same columns; the option only adds the flip


def test_frequency_dropout_reverses_only_the_samples_it_fires_on():
    x = spectrogram(batch=200, instances=1, time=20, freq=20)
    out = frequency_dropout(x, p=0.5, reverse_time=True, generator=seeded(14))
    fired = (out != x).flatten(1).any(1)  # reversed (random data is never its own time reversal)
    assert 0.4 < fired.float().mean() < 0.6
    assert torch.equal(out[~fired], x[~fired])
    fired_out, fired_x = out[fired], x[fired].flip(2)
    assert torch.equal(fired_out[fired_out != 0], fired_x[fired_out != 0])
