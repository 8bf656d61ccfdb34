"""Render the 16th-place image of the public test pair (tests/fixtures/hms: EEG 3911565283, spectrogram 853520)
and save it as a PNG with its three regions labelled.

    python scripts/render_example.py [--out docs/render_example.png] [--line-rule justpyplot|thin]

The EEG mel is made here by the 16th-place recipe (RECIPES 5.2; 16th: src/scripts/convert_eeg_to_spectrograms.py)
with librosa, over the whole record: per bipolar pair of each chain NaN -> the pair's mean (0 if all NaN), mel power
(sr 200, n_fft 1000, hop 40, 128 mels 0-20 Hz, center False), power_to_db(ref=max), (dB + 40) / 40, the mean of the
chain's 4 pairs, stored as uint8 (x + 1) / 2 * 255 and read back / 255; the window's frames [5 offset, +226) side
by side, chain-major LL, LP, RL, RP. The test pair's offsets are 0.
"""
import argparse
from pathlib import Path

import librosa
import matplotlib
import numpy as np
import torch

from hms.data.kaggle import read_eeg, read_spectrogram, run_main
from hms.layout import CHAINS, EEG_COLUMNS, EEG_RATE, EEG_WINDOW, SPEC_WINDOW_ROWS
from hms.signal.render import LINE_RULES, MEL_SHAPE, SPEC_BLOCKS, TILE, TRACE_WINDOWS, TRACES, render_image

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "hms"
EEG_ID, SPECTROGRAM_ID = 3911565283, 853520
MEL = {"sr": EEG_RATE, "n_fft": 1000, "hop_length": 40, "n_mels": 128, "fmin": 0, "fmax": 20, "center": False}


def eeg_mel_cache(eeg: np.ndarray) -> np.ndarray:
    """A whole record [n_samples, 20] -> the 16th-place cache entry, uint8 [128 mels, frames, 4 chains]."""
    chains = []
    for chain in SPEC_BLOCKS:  # LL, LP, RL, RP
        electrodes = [EEG_COLUMNS.index(name) for name in CHAINS[chain]]
        pairs = []
        for a, b in zip(electrodes, electrodes[1:]):
            x = eeg[:, a].astype(np.float64) - eeg[:, b]
            x = np.nan_to_num(x, nan=np.nanmean(x)) if not np.isnan(x).all() else np.zeros_like(x)
            power = librosa.feature.melspectrogram(y=x, **MEL)
            pairs.append((librosa.power_to_db(power, ref=np.max).astype(np.float32) + 40) / 40)
        chains.append(np.mean(pairs, axis=0))
    return np.clip((np.stack(chains, axis=-1) + 1) / 2 * 255, 0, 255).astype(np.uint8)


def window_mel(cache: np.ndarray, offset_seconds: float = 0.0) -> np.ndarray:
    """The cache entry -> the window's [226, 512] in [0, 1]: frames [5 offset, +226), chains side by side."""
    start = int(offset_seconds * EEG_RATE) // MEL["hop_length"]
    frames = cache[:, start:start + MEL_SHAPE[0]].astype(np.float32) / 255.0  # [128, 226, 4]
    return frames.transpose(1, 2, 0).reshape(MEL_SHAPE)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "render_example.png")
    parser.add_argument("--line-rule", default="justpyplot", choices=LINE_RULES)
    args = parser.parse_args()

    record = read_eeg(FIXTURES / "test_eegs" / f"{EEG_ID}.parquet")
    _, spec = read_spectrogram(FIXTURES / "test_spectrograms" / f"{SPECTROGRAM_ID}.parquet")
    eeg, spec, mel = record[:EEG_WINDOW].T, spec[:SPEC_WINDOW_ROWS], window_mel(eeg_mel_cache(record))
    image = render_image(*(torch.from_numpy(np.ascontiguousarray(x))[None] for x in (eeg, spec, mel)),
                         line_rule=args.line_rule)[0, 0].numpy()

    height, width = image.shape
    margin = {"left": 45, "right": 130, "bottom": 30, "top": 75}  # pixels around the image for the labels
    size = (width + margin["left"] + margin["right"], height + margin["bottom"] + margin["top"])
    figure = plt.figure(figsize=(size[0] / 100, size[1] / 100), dpi=100)  # one image pixel per PNG pixel
    axes = figure.add_axes([margin["left"] / size[0], margin["bottom"] / size[1], width / size[0], height / size[1]])
    axes.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    # the region borders, drawn between pixels, and the region labels outside the image
    axes.plot([TILE - 0.5] * 2, [-0.5, height - 0.5], [-0.5, TILE - 0.5], [TILE - 0.5] * 2, color="tab:orange",
              linewidth=1)
    labels = ((-6, TILE / 2, "Kaggle spectrogram\n300 x 400 -> 320 x 320", 90),
              (-6, 3 * TILE / 2, "EEG mel (16th recipe, librosa)\n226 x 512 -> 320 x 320", 90),
              ((TILE + width) / 2, -6, f"20 line plots of samples 3000-6999 (line rule {args.line_rule!r})", 0))
    for x, y, text, rotation in labels:
        axes.text(x, y, text, rotation=rotation, fontsize=9, ha="right" if rotation else "center",
                  va="center" if rotation else "bottom")
    axes.yaxis.tick_right()
    axes.set_yticks([top + h // 2 for top, h in TRACE_WINDOWS], ["-".join(names) for names in TRACES], fontsize=7)
    axes.set_xticks([0, TILE, width - 1])
    axes.set_title(f"16th-place image of the public test pair: EEG {EEG_ID}, spectrogram {SPECTROGRAM_ID} "
                   f"(640 x 1920, grey = value in [0, 1])", fontsize=10, pad=22)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run_main(main)
