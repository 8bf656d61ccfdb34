"""Kaggle-spectrogram augmentations of the 15th-place HMS solution, as batched operations on the device.

The input is a float tensor x of shape [B, N, T, F] = [batch, instances, time rows, frequency columns]:
for the 15th-place attention-MIL model, N = 10 instances (4 Kaggle-spectrogram regions + 6 pairwise
differences), T = 300, F = 100, already log-transformed and z-scored. The authors
(brendanartley/HMS-Competition, src/utils/augs.py and src/configs/cfg_*.py) applied albumentations-style
transforms to the whole (300, 100, 10) stack of one sample, so here every random draw is made once per
sample (batch item) and shared by its N instances.

Applied by `spectrogram_augment` in the published list order:

1. `coarse_dropout` (published p=0.5): 1..10 rectangular holes per sample, each 1..10 time rows by
   1..10 frequency columns at a uniform position inside the image, filled with 0
   (albumentations CoarseDropout(min_holes=1, max_holes=10, min/max_height=1/10, min/max_width=1/10,
   fill_value=0)). Holes may overlap.
2. `motion_or_median_blur` (published p=0.3, then MotionBlur or MedianBlur with equal odds).
   The published configs say blur_limit=3 for both, but RECIPES.md records the kernel size as unknown;
   the sizes used here are our choice: motion blur uses a line kernel of odd length drawn per sample
   from `motion_kernel_sizes` (default 3, 5, 7), pointing along time, along frequency or along one of
   the two diagonals, with reflected borders (as cv2.filter2D); median blur uses a 3x3 window with
   replicated borders (as cv2.medianBlur). Pass motion_kernel_sizes=(3,) to follow blur_limit=3.
3. `temporal_resample` (published p=1.0, factor U(0.85, 1.05)): the time axis is linearly resampled to
   floor(T * factor) rows (torch's F.interpolate, mode="linear", align_corners=False, exactly as
   published), then zero-padded symmetrically (extra row at the end) or centre-cropped (extra row
   dropped at the end) back to T rows, as the published TemporalPad and TemporalCenterCrop.
4. `frequency_dropout` (published p=0.5, max_dropout=5): zeroes whole frequency columns of the sample.
   We draw a count 1..5 and that many distinct columns; the published code drew
   torch.randint(0, 5) columns (0..4) with replacement, so it zeroed slightly fewer. Quirk, as
   published: the published transform also returns the sample flipped along time every time it fires
   (its `apply` ends with torch.flip(data, dims=[0])), so half the training samples are time-reversed.
   `reverse_time=True` (the default, `freq_dropout_reverse_time` in `spectrogram_augment`) reproduces
   the quirk; False zeroes the columns only.

Every function takes an optional torch.Generator (on x's device) so a seed gives the same output,
keeps x's shape, dtype and device, and returns a new tensor (or x itself when nothing fires); x is never
modified in place.
"""
from typing import NamedTuple

import torch
import torch.nn.functional as F


def _check_shape(x: torch.Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"expected x of shape [batch, instances, time, freq], got {tuple(x.shape)}")


def _chosen(batch_size: int, p: float, device, generator) -> torch.Tensor:
    """One coin per sample: True where the transform fires (probability p)."""
    return torch.rand(batch_size, generator=generator, device=device) < p


def _randint(low, high, shape, device, generator) -> torch.Tensor:
    """Uniform integers in [low, high] (both inclusive, like random.randint); low/high may be tensors
    broadcastable to `shape`, which torch.randint does not allow."""
    u = torch.rand(shape, generator=generator, device=device)
    value = low + torch.floor(u * (high - low + 1)).long()
    return torch.minimum(value, torch.as_tensor(high, device=device))  # u*(n) can round up to n in float32


# ----------------------------------------------------------------------------------------------------
# 1. CoarseDropout


class Holes(NamedTuple):
    """Rectangles per sample, each [B, max_holes]; `active` marks the holes a sample really has."""
    top: torch.Tensor
    left: torch.Tensor
    height: torch.Tensor
    width: torch.Tensor
    active: torch.Tensor

    def mask(self, time_size: int, freq_size: int) -> torch.Tensor:
        """Bool [B, T, F], True inside any active hole."""
        device = self.top.device
        rows = torch.arange(time_size, device=device)
        cols = torch.arange(freq_size, device=device)
        # [B, holes, T] and [B, holes, F]: which rows / columns each hole covers (inactive holes cover none).
        in_rows = (rows >= self.top[..., None]) & (rows < (self.top + self.height)[..., None]) & self.active[..., None]
        in_cols = (cols >= self.left[..., None]) & (cols < (self.left + self.width)[..., None])
        # A cell is dropped when some hole covers both its row and its column: a [T, holes] @ [holes, F] count.
        return torch.bmm(in_rows.transpose(1, 2).float(), in_cols.float()) > 0


def draw_coarse_dropout_holes(batch_size: int, time_size: int, freq_size: int, p: float = 0.5,
                              max_holes: int = 10, max_height: int = 10, max_width: int = 10, *,
                              device=None, generator=None, min_holes: int = 1, min_height: int = 1,
                              min_width: int = 1) -> Holes:
    """Draw CoarseDropout holes like albumentations: with probability p a sample gets randint(min_holes,
    max_holes) holes, each randint(min_height, max_height) rows by randint(min_width, max_width) columns,
    placed uniformly so it lies inside the image; other samples get none. (albumentations 1.4.1 defaults
    the minima to the maxima; the 15th place's call gets 1..max because it passed min values of 1.)"""
    shape = (batch_size, max_holes)
    chosen = _chosen(batch_size, p, device, generator)
    n_holes = _randint(min_holes, max_holes, (batch_size, 1), device, generator)
    height = _randint(min(min_height, time_size), min(max_height, time_size), shape, device, generator)
    width = _randint(min(min_width, freq_size), min(max_width, freq_size), shape, device, generator)
    top = _randint(0, time_size - height, shape, device, generator)
    left = _randint(0, freq_size - width, shape, device, generator)
    active = (torch.arange(max_holes, device=device) < n_holes) & chosen[:, None]
    return Holes(top, left, height, width, active)


def coarse_dropout(x: torch.Tensor, p: float = 0.5, max_holes: int = 10, max_height: int = 10,
                   max_width: int = 10, fill_value: float = 0.0, generator=None, exact: bool = False) -> torch.Tensor:
    """With probability p per sample, fill 1..max_holes rectangles of at most max_height time rows by
    max_width frequency columns with fill_value, the same rectangles in all N instances; `exact`: always
    max_holes of exactly max_height x max_width (albumentations 1.4.1's defaults, the 16th place)."""
    _check_shape(x)
    batch_size, _, time_size, freq_size = x.shape
    if p <= 0:
        return x
    minima = {"min_holes": max_holes, "min_height": max_height, "min_width": max_width} if exact else {}
    holes = draw_coarse_dropout_holes(batch_size, time_size, freq_size, p, max_holes, max_height, max_width,
                                      device=x.device, generator=generator, **minima)
    dropped = holes.mask(time_size, freq_size)[:, None]  # [B, 1, T, F]: shared by the instances
    return x.masked_fill(dropped, fill_value)


# ----------------------------------------------------------------------------------------------------
# 2. MotionBlur or MedianBlur

# (row step, column step) of each motion direction: along frequency, along time, and the two diagonals.
_MOTION_DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))


def _motion_kernels(kernel_length: torch.Tensor, direction: torch.Tensor, size: int) -> torch.Tensor:
    """[S, size, size] line kernels summing to 1: kernel_length[s] ones centred in a size x size square,
    pointing along _MOTION_DIRECTIONS[direction[s]]. A shorter line padded with zero weights to the common
    size filters exactly like its own small kernel, so all samples share one grouped convolution."""
    device = kernel_length.device
    centre = size // 2
    offsets = torch.arange(-centre, centre + 1, device=device)  # [size]
    steps = torch.tensor(_MOTION_DIRECTIONS, device=device)[direction]  # [S, 2]
    rows = centre + steps[:, :1] * offsets  # [S, size]
    cols = centre + steps[:, 1:] * offsets
    on_line = (offsets.abs() <= kernel_length[:, None] // 2).float() / kernel_length[:, None]
    kernels = torch.zeros(len(kernel_length), size * size, device=device)
    kernels.scatter_(1, rows * size + cols, on_line)  # the line's cells are distinct: no accumulation needed
    return kernels.view(-1, size, size)


def _apply_motion_blur(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Filter each sample of x [S, N, T, F] with its kernel [S, K, K] (reflected borders, like cv2.filter2D)."""
    samples, instances, time_size, freq_size = x.shape
    half = kernels.shape[-1] // 2
    # Grouped convolution with one group per (sample, instance) image: every image gets its sample's kernel.
    images = F.pad(x.reshape(1, samples * instances, time_size, freq_size), (half, half, half, half), mode="reflect")
    weight = kernels.to(x.dtype).repeat_interleave(instances, dim=0)[:, None]  # [S*N, 1, K, K]
    return F.conv2d(images, weight, groups=samples * instances).view_as(x)


def _apply_median_blur(x: torch.Tensor) -> torch.Tensor:
    """3x3 median of each image of x [S, N, T, F] (replicated borders, like cv2.medianBlur)."""
    samples, instances, time_size, freq_size = x.shape
    images = F.pad(x.reshape(samples * instances, 1, time_size, freq_size), (1, 1, 1, 1), mode="replicate")
    windows = images.unfold(2, 3, 1).unfold(3, 3, 1)  # [S*N, 1, T, F, 3, 3]
    return windows.reshape(samples, instances, time_size, freq_size, 9).median(dim=-1).values


def _draw_motion(batch_size: int, motion_kernel_sizes, device, generator):
    """Per sample: motion kernel length (from motion_kernel_sizes) and direction index."""
    if not motion_kernel_sizes or any(k < 1 or k % 2 == 0 for k in motion_kernel_sizes):
        raise ValueError(f"motion_kernel_sizes must be odd and positive, got {motion_kernel_sizes}")
    sizes = torch.tensor(motion_kernel_sizes, device=device)
    length = sizes[_randint(0, len(sizes) - 1, (batch_size,), device, generator)]
    direction = _randint(0, len(_MOTION_DIRECTIONS) - 1, (batch_size,), device, generator)
    return length, direction


def _blur_where(x: torch.Tensor, use_motion: torch.Tensor, use_median: torch.Tensor,
                length: torch.Tensor | None = None, direction: torch.Tensor | None = None) -> torch.Tensor:
    """x with the samples flagged in use_motion motion-blurred (kernel `length` and `direction` per sample)
    and those in use_median median-blurred; only those samples are filtered."""
    if not (use_motion.any() or use_median.any()):
        return x
    out = x.clone()
    motion_idx = use_motion.nonzero()[:, 0]
    if len(motion_idx):
        kernels = _motion_kernels(length[motion_idx], direction[motion_idx], int(length[motion_idx].max()))
        out[motion_idx] = _apply_motion_blur(x[motion_idx], kernels)
    median_idx = use_median.nonzero()[:, 0]
    if len(median_idx):
        out[median_idx] = _apply_median_blur(x[median_idx])
    return out


def motion_blur(x: torch.Tensor, p: float = 0.5, motion_kernel_sizes=(3, 5, 7), generator=None) -> torch.Tensor:
    """With probability p per sample, average along a line of length drawn from motion_kernel_sizes
    in one of 4 directions (time, frequency, two diagonals); the same kernel for all N instances."""
    _check_shape(x)
    if p <= 0:
        return x
    chosen = _chosen(x.shape[0], p, x.device, generator)
    length, direction = _draw_motion(x.shape[0], motion_kernel_sizes, x.device, generator)
    return _blur_where(x, chosen, torch.zeros_like(chosen), length, direction)


def median_blur(x: torch.Tensor, p: float = 0.5, generator=None) -> torch.Tensor:
    """With probability p per sample, replace every cell of each instance by its 3x3 median."""
    _check_shape(x)
    if p <= 0:
        return x
    chosen = _chosen(x.shape[0], p, x.device, generator)
    return _blur_where(x, torch.zeros_like(chosen), chosen)


def motion_or_median_blur(x: torch.Tensor, p: float = 0.3, motion_kernel_sizes=(3, 5, 7),
                          generator=None) -> torch.Tensor:
    """With probability p per sample, apply motion blur or median blur (equal odds, like albumentations
    OneOf([MotionBlur(p=0.5), MedianBlur(p=0.5)], p=p), which force-applies the one it picks)."""
    _check_shape(x)
    if p <= 0:
        return x
    batch_size = x.shape[0]
    chosen = _chosen(batch_size, p, x.device, generator)
    pick_motion = _chosen(batch_size, 0.5, x.device, generator)
    length, direction = _draw_motion(batch_size, motion_kernel_sizes, x.device, generator)
    return _blur_where(x, chosen & pick_motion, chosen & ~pick_motion, length, direction)


# ----------------------------------------------------------------------------------------------------
# 3. TemporalResample (+ TemporalPad + TemporalCenterCrop back to T rows)


def temporal_resample(x: torch.Tensor, p: float = 1.0, resample_range=(0.85, 1.05), generator=None) -> torch.Tensor:
    """With probability p per sample, linearly resample the time axis to floor(T * factor) rows,
    factor ~ U(resample_range), then zero-pad symmetrically or centre-crop back to T rows.

    All samples are done at once: for every output row we compute which row of the resized sample it
    shows and evaluate F.interpolate's linear (align_corners=False) formula there with two gathers.
    """
    _check_shape(x)
    low, high = resample_range
    if not 0 < low <= high:
        raise ValueError(f"resample_range must satisfy 0 < low <= high, got {resample_range}")
    batch_size, _, time_size, _ = x.shape
    if p <= 0:
        return x
    device = x.device
    chosen = _chosen(batch_size, p, device, generator)
    # float64 so that floor(T * factor) matches the published int(length * factor) for round factors
    # (300 * 1.05 is 315 in float64 but 314.99998 in float32).
    factor = torch.empty(batch_size, dtype=torch.float64, device=device).uniform_(low, high, generator=generator)
    new_size = torch.floor(time_size * factor).long().clamp(min=1)  # [B] rows after resampling

    # Output row i shows row i + shift of the resized sample: TemporalPad puts (T - L) // 2 zero rows
    # in front, TemporalCenterCrop drops (L - T) // 2 rows from the front.
    shift = torch.where(new_size >= time_size, (new_size - time_size) // 2, -((time_size - new_size) // 2))
    resized_row = torch.arange(time_size, device=device) + shift[:, None]  # [B, T]
    inside = (resized_row >= 0) & (resized_row < new_size[:, None])  # False on the zero padding

    # F.interpolate(mode="linear", align_corners=False) with an output size: source = (j + 0.5) * T / L - 0.5,
    # clamped at 0, between rows floor(source) and the next one (clamped at the last row). float32 as torch.
    scale = (time_size / new_size.float())[:, None]
    source = ((resized_row.float() + 0.5) * scale - 0.5).clamp(min=0)
    row0 = source.long().clamp(max=time_size - 1)
    row1 = (row0 + 1).clamp(max=time_size - 1)
    weight1 = (source - row0.float()).to(x.dtype)[:, None, :, None]  # [B, 1, T, 1]

    def rows(index):  # gather time rows of x per sample; index [B, T] broadcast over instances and frequencies
        return torch.take_along_dim(x, index[:, None, :, None], dim=2)

    resampled = (1 - weight1) * rows(row0) + weight1 * rows(row1)
    resampled = resampled.masked_fill(~inside[:, None, :, None], 0.0)
    return torch.where(chosen[:, None, None, None], resampled, x)


# ----------------------------------------------------------------------------------------------------
# 4. FrequencyDropout


def frequency_dropout(x: torch.Tensor, p: float = 0.5, max_columns: int = 5, reverse_time: bool = True,
                      generator=None) -> torch.Tensor:
    """With probability p per sample, zero up to max_columns - 1 frequency columns in all instances: as
    published, a count drawn from 0..max_columns-1 (torch.randint(0, 5)) and that many columns drawn with
    replacement. reverse_time=True reproduces the published quirk: the sample also comes back flipped
    along time whenever the transform fires (even with no column zeroed); False only zeroes the columns."""
    _check_shape(x)
    batch_size, _, _, freq_size = x.shape
    if p <= 0:
        return x
    device = x.device
    chosen = _chosen(batch_size, p, device, generator)
    n_columns = _randint(0, max_columns - 1, (batch_size, 1), device, generator)
    columns = _randint(0, freq_size - 1, (batch_size, max_columns - 1), device, generator)  # with replacement
    used = (torch.arange(max_columns - 1, device=device) < n_columns).float()
    dropped = torch.zeros(batch_size, freq_size, device=device).scatter_reduce(1, columns, used, "amax") > 0
    dropped &= chosen[:, None]  # [B, F]
    out = x.masked_fill(dropped[:, None, None, :], 0.0)
    if reverse_time:
        out = torch.where(chosen[:, None, None, None], out.flip(2), out)
    return out


# ----------------------------------------------------------------------------------------------------


def spectrogram_augment(x: torch.Tensor, *, coarse_dropout_p: float = 0.5, blur_p: float = 0.3,
                        resample_p: float = 1.0, resample_range=(0.85, 1.05), freq_dropout_p: float = 0.5,
                        freq_dropout_reverse_time: bool = True, motion_kernel_sizes=(3, 5, 7),
                        generator=None) -> torch.Tensor:
    """The 15th-place Kaggle-spectrogram training augmentation of x [B, N, T, F], in the published order:
    CoarseDropout, motion-or-median blur, TemporalResample, FrequencyDropout. Defaults are the published
    values (motion_kernel_sizes is our choice; see the module docstring)."""
    x = coarse_dropout(x, coarse_dropout_p, generator=generator)
    x = motion_or_median_blur(x, blur_p, motion_kernel_sizes, generator=generator)
    x = temporal_resample(x, resample_p, resample_range, generator=generator)
    return frequency_dropout(x, freq_dropout_p, reverse_time=freq_dropout_reverse_time, generator=generator)
