"""The 16th-place image (hms.signal.render): the batched device renderer against the per-sample numpy reference on
the real public test pair, where each region sits, the spectrogram column quirk, the filters and batching."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import signal as scipy_signal

from hms.data.kaggle import read_eeg, read_spectrogram
from hms.layout import SPEC_FREQS, SPEC_POWER_COLUMNS
from hms.signal import render
from hms.signal.render import (LINE_RULES, TILE, TRACE_WINDOWS, Render16, filtered_traces_reference,
                               render_image, render_reference)

LINES = (slice(None), slice(TILE, None))  # the line-plot region of an image [640, 1920]
TILES = {"spectrogram": (slice(0, TILE), slice(0, TILE)), "mel": (slice(TILE, None), slice(0, TILE))}


@pytest.fixture(scope="module")
def real_pair(real_hms):
    """The public test pair as (eeg [20, 10000], spec [300, 400], eeg_mel [226, 512]) with a random mel in [0, 1]
    (uniform noise: the hardest input for the resize, neighbouring pixels differ by up to 1)."""
    eeg = read_eeg(real_hms / "test_eegs" / "3911565283.parquet").T.copy()
    _, spec = read_spectrogram(real_hms / "test_spectrograms" / "853520.parquet")
    eeg_mel = np.random.default_rng(0).uniform(size=render.MEL_SHAPE).astype(np.float32)
    return eeg, spec, eeg_mel


def with_nan(eeg, spec, eeg_mel):
    """The pair with a NaN stretch in two electrodes (inside the plotted 20 s) and two NaN spectrogram rows."""
    eeg, spec = eeg.copy(), spec.copy()
    eeg[[2, 19], 4000:4100] = np.nan  # C3 (in 3 pairs and a raw trace) and EKG
    spec[[10, 11]] = np.nan
    return eeg, spec, eeg_mel


def device_render(*sample, **options) -> np.ndarray:
    """One sample through the batched renderer -> [640, 1920]."""
    return render_image(*(torch.from_numpy(x)[None] for x in sample), **options)[0, 0].numpy()


@pytest.mark.parametrize("line_rule", LINE_RULES)
@pytest.mark.parametrize("nan", [False, True], ids=["clean", "nan"])
def test_device_equals_reference_on_the_real_pair(real_pair, line_rule, nan):
    sample = with_nan(*real_pair) if nan else real_pair
    ours, ref = device_render(*sample, line_rule=line_rule), render_reference(*sample, line_rule=line_rule)[0]
    # measured: 1.2e-7 (spectrogram) and 2.1e-5 (random mel; both resizers place the source in fp32, cv2 too)
    for region in TILES.values():
        np.testing.assert_allclose(ours[region], ref[region], rtol=0, atol=1e-4)
    lit = ref[LINES].sum()
    assert lit > 50_000 and set(np.unique(ours[LINES])) == {0.0, 1.0}
    # fp32 filters and levels against float64 can move a sample across a row boundary: measured 0 pixels here
    assert (ours[LINES] != ref[LINES]).sum() <= 1e-3 * lit


@pytest.mark.parametrize("line_rule", LINE_RULES)
def test_exact_line_rule_against_float_sampling_on_extreme_traces(line_rule):
    """Full-scale noise and square waves (every step the largest, |dr| = D): the device's exact floors against
    justpyplot's float64 sampling in the reference. The float rounding only drops pixels, which the device lights
    (measured, noise / square wave: 0.002 % / 0.04 % of the lit pixels with "justpyplot", 0.002 % / 0.13 % "thin")."""
    rng = np.random.default_rng(1)
    levels = np.stack([rng.uniform(size=(20, 4000)), (rng.uniform(size=(20, 4000)) > 0.5).astype(float)])
    levels[..., 0], levels[..., -1] = 0.0, 1.0
    ours = Render16(line_rule=line_rule).line_plots(torch.tensor(levels, dtype=torch.float32)).numpy()
    columns = (np.arange(4000) / 4000 * render.LINE_WIDTH).astype(int)
    for sample, plot in zip(levels, ours):
        ref = np.zeros_like(plot)
        for trace, (top, height) in zip(sample, TRACE_WINDOWS):
            rows = (-trace * height).astype(int) + height
            render.draw_polyline_reference(ref[top:top + height, :render.LINE_WIDTH], rows, columns,
                                           doubled=line_rule == "justpyplot")
        assert (plot >= ref).all() and (plot != ref).sum() <= 5e-3 * ref.sum()


def test_image_shape_range_and_regions(real_pair):
    eeg, spec, eeg_mel = real_pair
    image = render_image(*(torch.from_numpy(x)[None] for x in real_pair))
    assert image.shape == (1, 1, 640, 1920) and image.dtype == torch.float32
    assert image.min() >= 0 and image.max() <= 1
    base = image[0, 0].numpy()
    assert (base[LINES][:, -1] == 0).all()  # plot column 1599 stays empty
    changed = {"spectrogram": (eeg, spec[::-1].copy(), eeg_mel), "mel": (eeg, spec, 1 - eeg_mel),
               "lines": (-eeg, spec, eeg_mel)}
    for name, sample in changed.items():
        moved = device_render(*sample) != base
        region = TILES.get(name, LINES)
        assert moved[region].any() and moved.sum() == moved[region].sum(), name


@pytest.mark.parametrize("line_rule", LINE_RULES)
def test_flat_traces_are_drawn_on_their_window_centres(line_rule):
    """RECIPES 3.3 [derived]: a trace that is 0 after filtering has y = 0.5, window row H / 2: image row 24 for
    trace 0, 32i + 16 for traces 1-18, 616 for trace 19, except near the forced first and last samples."""
    sample = (np.zeros((20, 10000), np.float32), np.ones((300, 400), np.float32), np.zeros((226, 512), np.float32))
    centres = [top + height // 2 for top, height in TRACE_WINDOWS]
    assert centres == [24, *(32 * i + 16 for i in range(1, 19)), 616]
    for image in (device_render(*sample, line_rule=line_rule), render_reference(*sample, line_rule=line_rule)[0]):
        plot = image[LINES]
        lit_rows = np.flatnonzero(plot[:, 10:1590].any(axis=1))
        assert lit_rows.tolist() == centres and plot[centres, 10:1590].all()
        for top, height in TRACE_WINDOWS:
            assert plot[top + height - 1, 0] == 1  # y[0] = 0 gives row H, clipped onto the window's last row
            assert plot[top, 1598] == 1  # y[-1] = 1 gives row 0


def test_spectrogram_column_quirk():
    natural, frequency = render.spec_column_names("natural"), render.spec_column_names("frequency")
    assert [natural[i] for i in (0, 100, 200, 300)] == ["LL_0.59", "LP_0.59", "RL_0.59", "RP_0.59"]
    assert natural[58:64] == ("LL_11.91", "LL_12.3", "LL_12.5", "LL_12.7", "LL_12.11", "LL_12.89")  # as published
    assert frequency[58:64] == ("LL_11.91", "LL_12.11", "LL_12.3", "LL_12.5", "LL_12.7", "LL_12.89")
    assert sorted(natural) == sorted(frequency) == sorted(SPEC_POWER_COLUMNS)
    hz = np.array([float(name.split("_")[1]) for name in frequency]).reshape(4, 100)
    assert (np.diff(hz, axis=1) > 0).all()
    differ = np.flatnonzero(np.array(natural) != np.array(frequency))
    assert len(differ) == 32 and set(differ % 100) == {59, 60, 61, 62, 80, 81, 82, 83}
    # a spectrogram whose power rises with frequency: the tile rises along each block, except at the quirk
    rising = np.tile(np.array(SPEC_FREQS * 4, dtype=np.float32) ** 2, (300, 1))
    for order, descents in (("frequency", 0), ("natural", 2)):
        row = render.spectrogram_tile_reference(rising, order)[0].reshape(4, 100)
        assert ((np.diff(row, axis=1) < 0).sum(axis=1) == descents).all()
    # the renderer copies the tile's columns as runs of consecutive spectrogram columns
    for order, n_runs in (("natural", 28), ("frequency", 4)):
        permutation, runs = render.spec_column_permutation(order), render.column_runs(render.spec_column_permutation(order))
        assert len(runs) == n_runs
        assert np.concatenate([np.arange(start, start + length) for start, length in runs]).tolist() == permutation.tolist()


def test_spectrogram_column_order_changes_only_the_spectrogram(real_pair):
    moved = device_render(*real_pair, spec_column_order="frequency") != device_render(*real_pair)
    assert moved[TILES["spectrogram"]].any() and moved.sum() == moved[TILES["spectrogram"]].sum()


def test_filters_equal_scipy_lfilter(real_pair):
    full, kept = render.trace_filter_taps(), render.significant_taps(render.trace_filter_taps())
    assert len(kept) == 1949 and np.abs(full[len(kept):]).max() < 1e-9 * np.abs(full).max()
    eeg = real_pair[0]
    noise = np.random.default_rng(2).standard_normal((20, 10000)).astype(np.float32) * 100
    for sample in (eeg, noise):
        ours = Render16().filtered_traces(torch.from_numpy(sample)[None])[0].double().numpy()
        segment = sample[:, 3000:7000].astype(np.float64)
        first, second = render.trace_electrodes()
        traces = np.concatenate([segment[first[:18]] - segment[second], segment[first[18:]]])
        for order, band, kind in ((5, (59, 61), "bandstop"), (5, (1, 70), "bandpass")):
            traces = scipy_signal.lfilter(*scipy_signal.butter(order, band, btype=kind, fs=200), traces, axis=-1)
        # measured: 2e-7 of the peak (fp32 FFT convolution)
        assert np.abs(ours - traces).max() < 1e-5 * np.abs(traces).max()
        np.testing.assert_allclose(filtered_traces_reference(sample), traces, rtol=0, atol=1e-9 * np.abs(traces).max())


def test_batch_equals_each_sample_alone(real_pair):
    eeg, spec, eeg_mel = real_pair
    rng = np.random.default_rng(3)
    samples = [real_pair, with_nan(3 * eeg, spec * 10, eeg_mel[::-1].copy()),
               ((rng.standard_normal(eeg.shape) * 80).astype(np.float32), rng.uniform(0, 50, spec.shape).astype(
                   np.float32), rng.uniform(size=eeg_mel.shape).astype(np.float32))]
    batch = render_image(*(torch.from_numpy(np.stack(parts)) for parts in zip(*samples))).numpy()
    for image, sample in zip(batch, samples):
        alone = device_render(*sample)
        np.testing.assert_allclose(image[0], alone, rtol=0, atol=1e-6)
        assert (image[0][LINES] == alone[LINES]).all()


def test_resize_matches_the_cv2_formula():
    """cv2.resize INTER_LINEAR, half-pixel centres, edge pixel beyond the outer centres, no antialiasing: known
    cv2 outputs, and torch's antialias=False resize against the written-out formula for the image's two tiles."""
    row = np.array([[0.0, 1.0, 2.0, 3.0]])
    np.testing.assert_allclose(render.resize_linear_reference(row, 1, 2), [[0.5, 2.5]])  # shrinks without a blur
    np.testing.assert_allclose(render.resize_linear_reference(row[:, :2], 1, 4), [[0.0, 0.25, 0.75, 1.0]])
    rng = np.random.default_rng(4)
    for shape in ((300, 400), (226, 512)):
        x = rng.uniform(size=shape)
        ours = render.resize_linear(torch.tensor(x, dtype=torch.float32)[None], TILE, TILE)[0].numpy()
        np.testing.assert_allclose(ours, render.resize_linear_reference(x, TILE, TILE), rtol=0, atol=1e-4)
        blurred = F.interpolate(torch.tensor(x)[None, None], size=(TILE, TILE), mode="bilinear", antialias=True)
        assert np.abs(blurred[0, 0].numpy() - ours).max() > 0.05  # what cv2 does not do when shrinking


def test_sample_quantiles_match_numpy():
    rng = np.random.default_rng(5)
    x = np.round(rng.standard_normal((3, 120_000)), 2).astype(np.float32)  # with ties, as the rounded power has
    quantiles = (0.01, 0.3, 0.5, 0.99)
    ours = render.sample_quantiles(torch.from_numpy(x), quantiles).numpy()
    np.testing.assert_allclose(ours, np.quantile(x.astype(np.float64), quantiles, axis=1).T, rtol=0, atol=1e-6)


def test_bad_shapes_and_options_raise(real_pair):
    eeg, spec, eeg_mel = (torch.from_numpy(x)[None] for x in real_pair)
    for bad in ((eeg[..., :9000], spec, eeg_mel), (eeg, spec[:, :, :200], eeg_mel), (eeg, spec, eeg_mel[:, :100]),
                (eeg, spec.repeat(2, 1, 1), eeg_mel)):
        with pytest.raises(ValueError, match="must have shape"):
            render_image(*bad)
    with pytest.raises(ValueError, match="must have shape"):
        render_reference(real_pair[0][:19], *real_pair[1:])
    with pytest.raises(ValueError, match="line_rule"):
        Render16(line_rule="thick")
    with pytest.raises(ValueError, match="spec_column_order"):
        Render16(spec_column_order="alphabetical")


@pytest.mark.parametrize("n", [120_000, 120_005, 20_000])
@pytest.mark.parametrize("largest", [False, True], ids=["smallest", "largest"])
def test_extreme_values_equal_topk(n, largest):
    """The grouped selection against a plain topk, with ties (rounded values), a group that does not divide n (the
    5 values left over) and a row too short to group; the row with its extreme values in one group is the case a
    sampled threshold would get wrong."""
    rng = np.random.default_rng(6)
    x = np.round(rng.standard_normal((3, n)), 1).astype(np.float32)
    x[2, ::n // 8] = -100.0 if not largest else 100.0  # all in group 0 of the 8 interleaved groups
    x = torch.from_numpy(x)
    for count in (1, 7, 1201):
        expected = x.topk(count, dim=-1, largest=largest).values
        assert torch.equal(render.extreme_values(x, count, largest), expected)
