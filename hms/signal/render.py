"""The 16th-place HMS image (mkotyushev/hms, RECIPES 3.2-3.3): one 640 x 1920 grey image in [0, 1] per window,

    rows 0-319,   columns 0-319:     the Kaggle 10-min spectrogram (log10, clipped to its 1 % / 99 % quantiles,
                                     min-max scaled, resized 300 x 400 -> 320 x 320),
    rows 320-639, columns 0-319:     the cached EEG mel (226 frames x 4 chains x 128 mels -> 320 x 320),
    rows 0-639,   columns 320-1919:  line plots of 20 filtered traces of the central 20 s.

Two renderers with the same output: `Render16` (and its thin wrapper `render_image`) renders a batch on any
device in fp32 without a loop over samples; `render_reference` renders one sample with numpy and scipy the way
the published code did (lfilter, numpy quantiles, a per-trace line drawing), to check the first and to time the
per-sample path.

Spectrogram columns [quirk]: the published column list runs LL, LP, RL, RP, each block in natural-sort order of
the column names, which is not quite frequency order (LL_12.3, LL_12.5, LL_12.7, LL_12.11).
spec_column_order="natural" (as published) or "frequency" (fixed).

Resizing: cv2.resize INTER_LINEAR samples the source at half-pixel centres, (i + 0.5) * in / out - 0.5, and
interpolates linearly between the two nearest pixels, the edge pixel alone beyond the outer centres, with NO
antialiasing when it shrinks (here 400 -> 320 and 512 -> 320 columns). That is torch's F.interpolate(bilinear,
align_corners=False, antialias=False) in both directions, not antialias=True (torchvision's and PIL's
downscaling). cv2 switches INTER_LINEAR to INTER_AREA only for an exact 2x shrink of both axes, which no size
here is. cv2 is not a dependency: `linear_resize_taps` writes its formula out for the reference.

Line plots: each trace is drawn into its own window of the 640 x 1600 plot (columns 0-1598; column 1599 stays
empty), windows overlapping by 32 rows, a pixel lit by any trace is 1.0. The published code drew with justpyplot
0.1.1 `vectorized_lines_with_thickness(thickness=1)`, which draws two-pixel-wide lines (`LINE_RULES`); the
pixels it lights, derived from that function, are stated in `Render16.draw_line_plots`.
"""
import re
import sys
from functools import reduce

import numpy as np
import torch
import torch.nn.functional as F
from scipy import signal as scipy_signal
from torch import nn

from hms.layout import CHAINS, EEG_COLUMNS, EEG_RATE, EEG_WINDOW, MIDLINE_PAIRS, SPEC_POWER_COLUMNS, SPEC_WINDOW_ROWS
from hms.signal.filters import causal_convolve

IMAGE_SHAPE = (640, 1920)
TILE = 320  # the spectrogram and mel tiles are TILE x TILE, the plots start at column TILE
MEL_SHAPE = (226, 512)  # (10000 - 1000) // 40 + 1 frames; 4 chains x 128 mels, chain-major LL, LP, RL, RP
SPEC_BLOCKS = ("LL", "LP", "RL", "RP")  # the published column blocks (our SPEC_POWER_COLUMNS run LL, RL, LP, RP)
SPEC_COLUMN_ORDERS = ("natural", "frequency")
SPEC_LOG_EPS = 1e-6
SPEC_QUANTILES = (0.01, 0.99)

PLOT_START, PLOT_SAMPLES = 3000, 4000  # the central 20 s of the 50 s window
PLOT_COLUMNS = IMAGE_SHAPE[1] - TILE  # 1600
LINE_WIDTH = PLOT_COLUMNS - 1  # the windows span columns 0-1598: sample n is drawn at int(n / 4000 * 1599)
# Top to bottom: the parasagittal then the temporal chains, left before right, the two midline pairs, then the
# raw EKG and the raw C3 electrode (a 1-tuple is drawn as is).
TRACES = (*(pair for chain in ("LP", "RP", "LL", "RL") for pair in zip(CHAINS[chain], CHAINS[chain][1:])),
          *MIDLINE_PAIRS, ("EKG",), ("C3",))
# M_i (16th: EEG_DIFF_ABS_MAX): each trace is clipped to +-2 M_i and mapped to y = (x + 2 M_i) / (4 M_i) in [0, 1].
TRACE_SCALES = (116.34481, 102.60141, 87.55995, 110.57861, 109.53565, 101.4466, 98.31189, 122.75707, 100.77059,
                100.71571, 101.946915, 98.06077, 109.903534, 88.95162, 92.10137, 113.432465, 89.53329, 98.25634,
                575.77045, 192.73958)
# (first row, height) of each trace's window: trace i spans rows [32i - 16, 32i + 48), the outer two are cut to 48.
TRACE_WINDOWS = ((0, 48), *((32 * i - 16, 64) for i in range(1, len(TRACES) - 1)), (592, 48))
NOTCH_BAND, PASS_BAND, FILTER_ORDER = (59.0, 61.0), (1.0, 70.0), 5
FRAME, QUARTER = 64, 16  # trace i's window lies in its frame, image rows [32i - 16, 32i + 48): a 64-bit mask per
# column, read as 4 int16 quarters of 16 rows (little-endian: quarter q holds bits 16q to 16q + 15)

# [quirk] justpyplot's thickness 1 shifts each line by arange(-1 // 2, 1 // 2 + 1) = [-1, 0] steps, so it draws
# every segment twice, the second copy one column and one row back along the segment's direction: lines are two
# pixels wide. "justpyplot" (as published) draws both copies, "thin" (fixed) only the first.
LINE_RULES = ("justpyplot", "thin")


def natural_key(name: str) -> list:
    """Sort key that compares digit runs as integers: LL_12.7 < LL_12.11, as the published column list is sorted."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _check_option(name: str, value: str, options: tuple) -> None:
    if value not in options:
        raise ValueError(f"{name} {value!r} is not one of {options}")


def _check_shape(name: str, x, shape: tuple) -> None:
    if tuple(x.shape) != shape:
        raise ValueError(f"{name} must have shape {list(shape)}, got {list(x.shape)}")


def spec_column_names(order: str = "natural") -> tuple:
    """The published column order of the 300 x 400 spectrogram tile: blocks LL, LP, RL, RP of 100 columns, each in
    natural-sort order of the names ("natural", as published) or by frequency ("frequency", the fix)."""
    _check_option("spec_column_order", order, SPEC_COLUMN_ORDERS)
    names = []
    for block in SPEC_BLOCKS:
        in_frequency_order = [c for c in SPEC_POWER_COLUMNS if c.startswith(f"{block}_")]  # layout's order
        names += sorted(in_frequency_order, key=natural_key) if order == "natural" else in_frequency_order
    return tuple(names)


def spec_column_permutation(order: str = "natural") -> np.ndarray:
    """Indices into SPEC_POWER_COLUMNS that give the tile's columns: tile = spec[:, permutation]."""
    return np.array([SPEC_POWER_COLUMNS.index(name) for name in spec_column_names(order)])


def trace_electrodes() -> tuple[np.ndarray, np.ndarray]:
    """EEG_COLUMNS indices of each trace's first electrode [20] and of the second electrode of the pairs [18]
    (the pairs come first in TRACES)."""
    first = np.array([EEG_COLUMNS.index(names[0]) for names in TRACES])
    second = np.array([EEG_COLUMNS.index(names[1]) for names in TRACES if len(names) == 2])
    return first, second


def trace_filters() -> list:
    """(b, a) of the two causal filters, in order: Butterworth band-stop 59-61 Hz and band-pass 1-70 Hz, order 5."""
    return [scipy_signal.butter(FILTER_ORDER, band, btype=kind, fs=EEG_RATE)
            for band, kind in ((NOTCH_BAND, "bandstop"), (PASS_BAND, "bandpass"))]


def trace_filter_taps() -> np.ndarray:
    """The impulse response of both filters in cascade over the 4000-sample segment (float64): convolved with it,
    a segment gets exactly lfilter's output from zero state."""
    response = np.zeros(PLOT_SAMPLES)
    response[0] = 1.0
    for b, a in trace_filters():  # lfilter of (b, a), as published; sosfilt differs by 2e-10 of the peak
        response = scipy_signal.lfilter(b, a, response)
    return response


def significant_taps(taps: np.ndarray, floor: float = 1e-9) -> np.ndarray:
    """The taps up to the last one above `floor` times the largest: the rest cannot change a float32 output (the
    band-pass's 4000-sample response falls below 1e-9 of its peak after 1949 samples, a 22 % shorter FFT)."""
    above = np.flatnonzero(np.abs(taps) > floor * np.abs(taps).max())
    return taps[:above[-1] + 1]


def column_runs(permutation: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of the runs of consecutive indices in `permutation`, in order: x[..., permutation] is the
    concatenation of x[..., start:start + length]."""
    breaks = np.flatnonzero(np.diff(permutation) != 1) + 1
    return [(int(run[0]), len(run)) for run in np.split(permutation, breaks)]


def linear_resize_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cv2 INTER_LINEAR along one axis: output i = (1 - w) * input[lo] + w * input[hi] for the returned lo, hi, w."""
    centre = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    lo = np.floor(centre).astype(int)
    weight = centre - lo
    outside = (lo < 0) | (lo >= n_in - 1)  # before the first or past the last source centre: the edge pixel
    weight[outside] = 0.0
    lo = np.clip(lo, 0, n_in - 1)
    return lo, np.minimum(lo + 1, n_in - 1), weight


def column_samples() -> np.ndarray:
    """The samples drawn in each plot column, [3, 1599]: sample n lies in column int(n / 4000 * 1599), computed in
    integers (the published float product never lands on a whole column except at n = 0, so it floors to the same
    columns). Every column holds 2 or 3 consecutive samples; a 2-sample column repeats its last."""
    columns = np.arange(PLOT_SAMPLES) * LINE_WIDTH // PLOT_SAMPLES
    per_column = np.bincount(columns, minlength=LINE_WIDTH)
    assert set(per_column) == {2, 3}, "a column with fewer than 2 or more than 3 samples"
    first_sample = np.cumsum(per_column) - per_column
    return (first_sample[:, None] + np.minimum(np.arange(3), per_column[:, None] - 1)).T


class Render16(nn.Module):
    """(eeg [B, 20, 10000], spec [B, 300, 400], eeg_mel [B, 226, 512]) -> image [B, 1, 640, 1920], float32 in [0, 1].

    eeg: raw microvolts in EEG_COLUMNS order; spec: Kaggle power in SPEC_POWER_COLUMNS order; eeg_mel: the cached
    EEG mel read back in [0, 1] (time down, columns LL, LP, RL, RP x 128 mels). NaN in eeg or spec counts as 0.
    Every step is batched on the device of the buffers; see the module docstring and the methods for the recipe.
    """

    def __init__(self, spec_column_order: str = "natural", line_rule: str = "justpyplot"):
        super().__init__()
        _check_option("line_rule", line_rule, LINE_RULES)
        if sys.byteorder != "little":
            raise RuntimeError("Render16 reads its 64-bit row masks as int16 quarters: it needs a little-endian host")
        self.spec_column_order, self.line_rule = spec_column_order, line_rule
        first, second = trace_electrodes()
        tops, heights = np.array(TRACE_WINDOWS).T
        # the tile's columns as runs of consecutive spectrogram columns: slices copy faster than a gather
        self.spec_column_runs = column_runs(spec_column_permutation(spec_column_order))
        # window row + frame_offset = row in the trace's frame (trace 0's window starts 16 rows into its frame)
        frame_offset = tops - (FRAME // 2 * np.arange(len(TRACES)) - FRAME // 4)
        buffers = {"first_electrode": first, "second_electrode": second,
                   "taps": significant_taps(trace_filter_taps()).astype(np.float32),
                   "scales": np.array(TRACE_SCALES, dtype=np.float32)[:, None],
                   "window_heights": heights.astype(np.float32)[:, None],
                   # a run's first frame row lies in [offset, offset + H - 1], one past its last in [offset + 1,
                   # offset + H]: clamping to these clips the run into the window
                   "run_bounds": np.stack([frame_offset, frame_offset + heights - 1, frame_offset + 1,
                                           frame_offset + heights]).astype(np.int16),  # [4, 20]
                   "column_samples": column_samples().ravel(),  # unflattens to [3, 1599]
                   "one": np.ones(1, dtype=np.int64)}
        for name, value in buffers.items():
            self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(value)), persistent=False)

    def forward(self, eeg: torch.Tensor, spec: torch.Tensor, eeg_mel: torch.Tensor) -> torch.Tensor:
        batch = eeg.shape[0] if eeg.ndim == 3 else -1
        _check_shape("eeg", eeg, (batch, len(EEG_COLUMNS), EEG_WINDOW))
        _check_shape("spec", spec, (batch, SPEC_WINDOW_ROWS, len(SPEC_POWER_COLUMNS)))
        _check_shape("eeg_mel", eeg_mel, (batch, *MEL_SHAPE))
        image = eeg.new_empty((batch, 1, *IMAGE_SHAPE), dtype=torch.float32)
        image[:, 0, :TILE, :TILE] = self.spectrogram_tile(spec.float())
        image[:, 0, TILE:, :TILE] = resize_linear(eeg_mel.float(), TILE, TILE)
        self.draw_line_plots(self.trace_levels(self.filtered_traces(eeg.float())), image[:, 0, :, TILE:])
        return image

    def spectrogram_tile(self, spec: torch.Tensor) -> torch.Tensor:
        """[B, 300, 400] -> [B, 320, 320]: the published column order, NaN -> 0, log10(x + 1e-6), clipped to the
        sample's own 1 % and 99 % quantiles (numpy's default linear interpolation), min-max scaled to [0, 1], then
        resized. A constant tile (the published code divides 0 by 0) becomes 0."""
        x = torch.cat([spec[..., start:start + length] for start, length in self.spec_column_runs], -1)
        x = x.nan_to_num_(nan=0.0, posinf=float("inf"), neginf=float("-inf")).add_(SPEC_LOG_EPS).log10_()
        low, high = sample_quantiles(x.flatten(1), SPEC_QUANTILES).unbind(-1)
        low, high = low[:, None, None], high[:, None, None]
        span = high - low
        # a constant tile clips to 0 after subtracting low, whatever the factor
        scaled = x.clamp_(low, high).sub_(low).mul_(torch.where(span > 0, 1 / span, 0.0))
        return resize_linear(scaled, TILE, TILE)

    def filtered_traces(self, eeg: torch.Tensor) -> torch.Tensor:
        """[B, 20, 10000] -> [B, 20, 4000]: the 20 traces on the central 20 s, NaN -> 0, then the causal band-stop
        and band-pass from zero state on the segment alone (one convolution with their 4000-sample impulse
        response, which is exact)."""
        segment = eeg[..., PLOT_START:PLOT_START + PLOT_SAMPLES].contiguous()  # whole rows: gathers copy faster
        traces = segment.index_select(1, self.first_electrode)
        traces[:, :len(self.second_electrode)] -= segment.index_select(1, self.second_electrode)
        # NaN after the difference, as published
        traces = traces.nan_to_num_(nan=0.0, posinf=float("inf"), neginf=float("-inf"))
        return causal_convolve(traces, self.taps)

    def trace_levels(self, traces: torch.Tensor) -> torch.Tensor:
        """Filtered traces -> y in [0, 1]: clipped to +-2 M_i, (x + 2 M_i) / (4 M_i), first sample 0 and last 1."""
        bound = 2 * self.scales
        levels = torch.clamp(traces, -bound, bound).add_(bound).div_(2 * bound)
        levels[..., 0], levels[..., -1] = 0.0, 1.0
        return levels

    def line_plots(self, levels: torch.Tensor) -> torch.Tensor:
        """y [B, 20, 4000] -> the plot region [B, 640, 1600]: 1.0 where a trace passes, else 0.0 (draw_line_plots)."""
        plot = levels.new_empty((levels.shape[0], IMAGE_SHAPE[0], PLOT_COLUMNS))
        self.draw_line_plots(levels, plot)
        return plot

    def draw_line_plots(self, levels: torch.Tensor, plot: torch.Tensor) -> None:
        """Draw y [B, 20, 4000] into plot [B, 640, 1600] (a view of the image, overwritten).

        Sample n of a trace with window height H is the point (row r_n, column c_n) = (int(-y_n H) + H,
        int(n / 4000 * 1599)) of its window: r_n runs from 0 (y = 1) to H (y = 0, one past the window's last row).
        Segment n joins sample n to sample n + 1: dc = c_{n+1} - c_n is 0 or 1, dr = r_{n+1} - r_n, and
        D = max(1, max_n |dr|) is the trace's largest step. justpyplot 0.1.1 samples every segment of a trace at
        the same D + 1 points t = k / D, k = 0..D, lights the pixels (int(r_n + t dr), int(c_n + t dc)) and, with the
        "justpyplot" rule, the same pixels moved by (-sign(dr), -dc), then clips every pixel into the window: row H
        (y = 0, e.g. the forced first sample) lands on the window's last row H - 1, a copy's row -1 on row 0.
        In exact arithmetic that is, for segment n,

          - column c_n, every row from r_n to r_n + e with e = floor((D - dc) dr / D): when dc = 0 all rows from
            r_n to r_{n+1}; when dc = 1 the rows from r_n towards r_{n+1}, which itself is lit by the next segment
            in the next column; the floor stops them one row short of r_{n+1} when dr > 0 or |dr| = D, and lets
            them reach r_{n+1} when dr < 0 and |dr| < D;
          - with "justpyplot", the same rows minus sign(dr) in column max(c_n - dc, 0);

        and the last sample its own pixel (row 0, column 1598). In a column, the runs of one trace's segments that
        start there (and their copies that stay there) all contain their segment's first row and chain through
        the shared samples, so their union is one run, [min, max]; at most one more run arrives, the copy of the
        segment that leaves the next column. So each trace lights at most two runs per column, found from the
        column's 2 or 3 samples and the next column's first. A run of rows is a 64-bit mask of the trace's 64-row
        frame, read as four 16-bit quarters; the quarters of the two traces sharing each 16-row block of the image
        are OR-ed (overlapping windows take the union, i.e. the max), and the 40 blocks are unpacked bit by bit
        into the plot.

        justpyplot computes the points in float64 (np.linspace, a product and a sum): on segments with |dr| = D,
        where every point falls on a whole row, rounding can put a point one row below the exact floor used here,
        a few pixels per image of extreme traces and none on the real fixture (tests/signal/test_render.py counts
        them against render_reference, which does the float64 sampling)."""
        # the plots run on lanes, [4000, B * 20] int16 (sample-major: gathers of samples copy whole rows, and every
        # elementwise step runs along 20 B contiguous lanes)
        batch = levels.shape[0]
        rows = torch.mul(levels, self.window_heights).floor_().neg_().add_(self.window_heights)  # int(-y H) + H
        rows = rows.permute(2, 0, 1).to(torch.int16, memory_format=torch.contiguous_format).flatten(1)
        # per column [1599, lanes]: its samples, whose two segments lie within it (the second empty in a 2-sample
        # column), and the segment leaving it for the next column's first sample (every column but the last)
        head, middle, tail = rows.index_select(0, self.column_samples).unflatten(0, (3, LINE_WIDTH)).unbind(0)
        leaving_step = head[1:] - tail[:-1]
        steps = reduce(torch.maximum, [step.abs().amax(0) for step in (middle - head, tail - middle, leaving_step)])
        steps.clamp_(min=1)  # D
        copies = self.line_rule == "justpyplot"
        first, last = self.within_column_run(head, middle, copies)
        second_first, second_last = self.within_column_run(middle, tail, copies)
        # the leaving segment's run: one row short at the far end if dr > 0, or at the near end (from r_{n+1} + 1)
        # if dr = -D
        down = leaving_step > 0
        leaving_first = torch.minimum(tail[:-1], head[1:]).add_(leaving_step == -steps)
        leaving_last = torch.maximum(tail[:-1], head[1:]).add_(down, alpha=-1)
        if copies:  # its copy, moved back by sign(dr), goes to the previous column, and stays in column 0
            back = leaving_step[1:].sign()
            copy_first, copy_last = leaving_first[1:] - back, leaving_last[1:] - back
            leaving_first[0].add_(down[0], alpha=-1)
            leaving_last[0].add_(leaving_step[0] < 0)
        # the union of each column's runs is one run, from the lowest first row to the highest last row
        torch.minimum(first, second_first, out=first)
        torch.maximum(last, second_last, out=last)
        torch.minimum(first[:-1], leaving_first, out=first[:-1])
        torch.maximum(last[:-1], leaving_last, out=last[:-1])
        bounds = self.run_bounds.repeat(1, batch)
        masks = self.run_masks(first, last, bounds)  # [1599, B * 20] int64
        if copies:  # a copy arrives in every column but the last two
            masks[:-2] |= self.run_masks(copy_first, copy_last, bounds)
        # block m of 16 image rows, [16 m - 16, 16 m), holds quarter 0 (m even) or 1 (m odd) of trace m // 2's frame
        # and quarter 2 or 3 of trace m // 2 - 1's; blocks 1-40 are the image's rows
        quarters = masks.view(torch.int16).unflatten(-1, (batch, len(TRACES), 4))
        quarters = quarters.permute(1, 2, 3, 0)  # [B, 20, 4, 1599]
        blocks = quarters.new_zeros((batch, len(TRACES) + 1, 2, LINE_WIDTH))
        blocks[:, :-1] = quarters[:, :, :2]
        blocks[:, 1:] |= quarters[:, :, 2:]
        blocks = blocks.flatten(1, 2)[:, 1:-1]  # [B, 40, 1599]
        plot_blocks = plot[..., :LINE_WIDTH].unflatten(1, (-1, QUARTER))  # [B, 40, 16, 1599]
        bits = torch.empty_like(blocks)  # one buffer for every pass: fresh ones cost a third more here
        for bit in range(QUARTER):
            plot_blocks[:, :, bit] = torch.bitwise_right_shift(blocks, bit, out=bits).bitwise_and_(1)
        plot[..., LINE_WIDTH:] = 0.0

    @staticmethod
    def within_column_run(start: torch.Tensor, end: torch.Tensor, copies: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(first, last) row of a segment within one column (dc = 0), from `start` to `end` [n, lanes]: every row
        between them, and with `copies` one more row back along the segment (its copy stays in the column)."""
        first, last = torch.minimum(start, end), torch.maximum(start, end)
        if copies:
            step = end - start
            first.add_(step > 0, alpha=-1)
            last.add_(step < 0)
        return first, last

    def run_masks(self, first: torch.Tensor, last: torch.Tensor, bounds: torch.Tensor) -> torch.Tensor:
        """Runs of window rows [first, last] [n, lanes] (clipped into the window) -> the bits they light in the
        trace's 64-row frame, [n, lanes] int64 (bit j = frame row j; `bounds` [4, lanes] from run_bounds). A run to
        the frame's last row sets bit 63 by wrapping: torch shifts 1 << 64 to 0 (on every device), and
        0 - (1 << start) is every bit from `start` up in two's complement."""
        start = torch.clamp(first + bounds[0], bounds[0], bounds[1])
        stop = torch.clamp(last + bounds[2], bounds[2], bounds[3])
        return (self.one << stop) - (self.one << start)


def sample_quantiles(x: torch.Tensor, quantiles) -> torch.Tensor:
    """Quantiles of each row of x [B, n] (no NaN) -> [B, len(quantiles)] by numpy's default ("linear") method: the
    ordered values at the virtual index q (n - 1), interpolated linearly. The order statistics come from
    `extreme_values` at the nearer end, and only the ranks needed are put in order (torch.quantile sorts, 16x
    slower here, and refuses more than 2^24 elements, 140 spectrograms)."""
    n = x.shape[-1]
    position = np.asarray(quantiles, dtype=np.float64) * (n - 1)
    below = np.floor(position).astype(int)
    above = np.minimum(below + 1, n - 1)
    ranks = sorted({*below, *above})
    low, high = [r for r in ranks if r < n // 2], [r for r in ranks if r >= n // 2]
    ranked = {}
    if low:  # the low[-1] + 1 smallest values, then from the largest of them down to rank low[0]
        part = extreme_values(x, low[-1] + 1, largest=False, sorted=False).topk(low[-1] + 1 - low[0], dim=-1).values
        ranked.update({r: part[:, low[-1] - r] for r in low})
    if high:  # the n - high[0] largest values, then from the smallest of them up to rank high[-1]
        part = extreme_values(x, n - high[0], largest=True, sorted=False).topk(high[-1] + 1 - high[0], dim=-1,
                                                                               largest=False).values
        ranked.update({r: part[:, r - high[0]] for r in high})
    weight = torch.tensor(position - below, dtype=x.dtype, device=x.device)
    low_values, high_values = (torch.stack([ranked[r] for r in ranks], dim=-1) for ranks in (below, above))
    return low_values + (high_values - low_values) * weight


def extreme_values(x: torch.Tensor, count: int, largest: bool, sorted: bool = True, group: int = 8) -> torch.Tensor:
    """x.topk(count, largest=largest, sorted=sorted).values of x [B, n] (no NaN), 2x faster for a small count of
    many values (1,201 of a spectrogram's 120,000: 6 instead of 13 ms for 32 rows here). The row's first n - n %
    group values are dealt into n // group groups of `group` (group j: every (n // group)-th value from j). The
    `count` groups with the smallest minima, with the n % group values left over, hold the `count` smallest values:
    a value outside them is at least the largest of those minima, and below or at it these groups already hold
    `count` values. So a topk of the minima picks the groups and a topk of their count x group values finishes
    (largest: maxima)."""
    rows, n = x.shape
    width = n // group
    if width < 4 * count:  # too few groups to leave many out
        return x.topk(count, dim=-1, largest=largest, sorted=sorted).values
    dealt = x[:, :group * width].reshape(rows, group, width)  # a view when group divides n
    extremes = dealt.amax(1) if largest else dealt.amin(1)  # across `group` rows of `width`: vectorised
    picked = extremes.topk(count, dim=-1, largest=largest, sorted=False).indices
    candidates = dealt.gather(2, picked[:, None].expand(-1, group, -1)).flatten(1)
    candidates = torch.cat([candidates, x[:, group * width:]], dim=-1)
    return candidates.topk(count, dim=-1, largest=largest, sorted=sorted).values


def resize_linear(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[B, h, w] -> [B, height, width], cv2.resize INTER_LINEAR (see the module docstring)."""
    return F.interpolate(images[:, None], size=(height, width), mode="bilinear", align_corners=False,
                         antialias=False)[:, 0]


def render_image(eeg: torch.Tensor, spec: torch.Tensor, eeg_mel: torch.Tensor, spec_column_order: str = "natural",
                 line_rule: str = "justpyplot") -> torch.Tensor:
    """The 16th-place image of a batch, [B, 1, 640, 1920] float32 in [0, 1], on eeg's device (see Render16)."""
    return Render16(spec_column_order, line_rule).to(eeg.device)(eeg, spec, eeg_mel)


# ------------------------------------------------------------------------------------------------------------------
# The per-sample reference: numpy and scipy, the way the published code computed each step.

def render_reference(eeg: np.ndarray, spec: np.ndarray, eeg_mel: np.ndarray, spec_column_order: str = "natural",
                     line_rule: str = "justpyplot") -> np.ndarray:
    """One sample: eeg [20, 10000], spec [300, 400], eeg_mel [226, 512] -> [1, 640, 1920] float32 (as Render16)."""
    _check_shape("eeg", eeg, (len(EEG_COLUMNS), EEG_WINDOW))
    _check_shape("spec", spec, (SPEC_WINDOW_ROWS, len(SPEC_POWER_COLUMNS)))
    _check_shape("eeg_mel", eeg_mel, MEL_SHAPE)
    _check_option("line_rule", line_rule, LINE_RULES)
    image = np.zeros(IMAGE_SHAPE, dtype=np.float32)
    image[:TILE, :TILE] = resize_linear_reference(spectrogram_tile_reference(spec, spec_column_order), TILE, TILE)
    image[TILE:, :TILE] = resize_linear_reference(np.asarray(eeg_mel, dtype=np.float64), TILE, TILE)
    image[:, TILE:] = line_plots_reference(eeg, line_rule)
    return image[None]


def spectrogram_tile_reference(spec: np.ndarray, spec_column_order: str = "natural") -> np.ndarray:
    """[300, 400] -> the normalised [300, 400] tile in float64 (before resizing), as Render16.spectrogram_tile."""
    x = np.asarray(spec, dtype=np.float64)[:, spec_column_permutation(spec_column_order)]
    x = np.log10(np.where(np.isnan(x), 0.0, x) + SPEC_LOG_EPS)
    low, high = np.quantile(x, SPEC_QUANTILES)
    return (np.clip(x, low, high) - low) / (high - low) if high > low else np.zeros_like(x)


def resize_linear_reference(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """cv2.resize(image, (width, height)) with INTER_LINEAR, written out: along the columns, then the rows."""
    lo, hi, weight = linear_resize_taps(image.shape[1], width)
    image = image[:, lo] * (1 - weight) + image[:, hi] * weight
    lo, hi, weight = linear_resize_taps(image.shape[0], height)
    return image[lo] * (1 - weight[:, None]) + image[hi] * weight[:, None]


def filtered_traces_reference(eeg: np.ndarray) -> np.ndarray:
    """[20, 10000] -> the 20 filtered traces [20, 4000] in float64: scipy lfilter, trace by trace, as published."""
    segment = np.asarray(eeg, dtype=np.float64)[:, PLOT_START:PLOT_START + PLOT_SAMPLES]
    (b_stop, a_stop), (b_pass, a_pass) = trace_filters()
    traces = []
    for names in TRACES:
        trace = segment[EEG_COLUMNS.index(names[0])].copy()
        if len(names) == 2:
            trace -= segment[EEG_COLUMNS.index(names[1])]
        trace[np.isnan(trace)] = 0.0
        traces.append(scipy_signal.lfilter(b_pass, a_pass, scipy_signal.lfilter(b_stop, a_stop, trace)))
    return np.stack(traces)


def line_plots_reference(eeg: np.ndarray, line_rule: str = "justpyplot") -> np.ndarray:
    """[20, 10000] -> the plot region [640, 1600] float32, each trace drawn into its window one after the other."""
    plot = np.zeros((IMAGE_SHAPE[0], PLOT_COLUMNS), dtype=np.float32)
    columns = (np.arange(PLOT_SAMPLES) / PLOT_SAMPLES * LINE_WIDTH).astype(int)
    for trace, scale, (top, height) in zip(filtered_traces_reference(eeg), TRACE_SCALES, TRACE_WINDOWS):
        levels = (np.clip(trace, -2 * scale, 2 * scale) + 2 * scale) / (4 * scale)
        levels[0], levels[-1] = 0.0, 1.0
        rows = (-levels * height).astype(int) + height
        draw_polyline_reference(plot[top:top + height, :LINE_WIDTH], rows, columns, doubled=line_rule == "justpyplot")
    return plot


def draw_polyline_reference(window: np.ndarray, rows: np.ndarray, columns: np.ndarray, doubled: bool) -> None:
    """Set to 1 the pixels of the polyline through (rows[n], columns[n]) in `window`, in place, by justpyplot
    0.1.1's sampling: every segment at the same D + 1 float64 points (D = the largest row or column step), each
    point truncated to a pixel, plus (doubled) a copy one step back along the segment, all clipped into the
    window. Render16.draw_line_plots states the resulting pixels."""
    row_step, column_step = np.diff(rows), np.diff(columns)
    steps = max(np.abs(row_step).max(), np.abs(column_step).max())
    t = np.linspace(0.0, 1.0, steps + 1)[:, None]  # [D + 1, 1] against the segments [n - 1]
    point_rows = (rows[:-1] + t * row_step).astype(int)
    point_columns = (columns[:-1] + t * column_step).astype(int)
    for back in (0, 1) if doubled else (0,):
        window[np.clip(point_rows - back * np.sign(row_step), 0, window.shape[0] - 1),
               np.clip(point_columns - back * np.sign(column_step), 0, window.shape[1] - 1)] = 1.0
