"""Benchmark the on-device front-end against the per-sample CPU recipe of the public notebooks, and
each extractor's forward+backward speed.

    python scripts/bench_frontend.py [--batch 32] [--threads 2]

Front-end: montage -> band-pass filter -> STFT power, on a batch of windows [B, 20, 10000], versus per
sample and per node difference: scipy butter + sosfiltfilt, then librosa.stft power with the same
n_fft / window / hop. Prints windows per second of both, the ratio and the largest relative difference.
"""
import argparse
import time

import librosa
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from pathlib import Path
from scipy import signal as scipy_signal

from hms.signal.filters import SpectralFilter
from hms.signal.montage import NodeDifferences

N_FFT, WIN, HOP = 110, 64, 23
CONF = str(Path(__file__).resolve().parent.parent / "conf")


def device_frontend(eeg: torch.Tensor) -> torch.Tensor:
    diffs = SpectralFilter("bandpass0.5-20")(NodeDifferences("banana16")(eeg))
    b, d, t = diffs.shape
    window = torch.hann_window(WIN, device=eeg.device)
    spec = torch.stft(diffs.reshape(b * d, t), N_FFT, HOP, WIN, window, center=False, return_complex=True)
    return (spec.abs() ** 2).reshape(b, d, *spec.shape[1:])


def cpu_recipe(eeg: np.ndarray) -> np.ndarray:
    sos = scipy_signal.butter(4, [0.5, 20], btype="bandpass", fs=200, output="sos")
    pairs = NodeDifferences("banana16")
    out = []
    for sample in eeg:
        per_diff = []
        for a, b in zip(pairs.a.tolist(), pairs.b.tolist()):
            x = scipy_signal.sosfiltfilt(sos, sample[a] - sample[b])
            s = librosa.stft(x.astype(np.float32), n_fft=N_FFT, hop_length=HOP, win_length=WIN, window="hann",
                             center=False)
            per_diff.append(np.abs(s) ** 2)
        out.append(np.stack(per_diff))
    return np.stack(out)


def timed(fn, repeat=2):
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        result = fn()
    return (time.perf_counter() - start) / repeat, result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    # smooth-ish EEG-like signals (integrated noise) so power spans realistic ranges
    eeg = np.cumsum(rng.standard_normal((args.batch, 20, 10000)), axis=-1).astype(np.float32) * 2
    with torch.no_grad():
        t_dev, dev = timed(lambda: device_frontend(torch.from_numpy(eeg)))
    t_cpu, ref = timed(lambda: cpu_recipe(eeg), repeat=1)
    # compare where the power matters (relative to each spectrogram's peak), away from the filter edges
    dev = dev.numpy()
    inner = slice(50, -50)
    rel = np.abs(dev[..., inner] - ref[..., inner]).max() / np.abs(ref[..., inner]).max()
    print(f"front-end (banana16, band-pass 0.5-20 Hz, STFT {N_FFT}/{WIN}/{HOP}) on {args.batch} windows:")
    print(f"  device batched: {args.batch / t_dev:8.1f} windows/s")
    print(f"  per-sample CPU: {args.batch / t_cpu:8.1f} windows/s (scipy sosfiltfilt + librosa.stft)")
    print(f"  ratio {t_cpu / t_dev:.1f}x, largest relative difference {rel:.2e} (frames away from the ends)")

    print("forward+backward samples/s (batch 8):")
    batch = {"eeg": torch.from_numpy(eeg[:8]), "spec": torch.rand(8, 300, 400) * 20}
    with initialize_config_dir(CONF, version_base="1.3"):
        for size in ("tiny", "published_hgnet"):
            for name in ("wavenet", "stft", "spec_attn", "fusion"):
                model = instantiate(compose("config", overrides=[f"model={name}", f"size={size}", "name=x"]).model)

                def step():
                    out = model(batch)
                    (out["logits"].sum() + sum(v.sum() for v in out["aux"].values())).backward()

                seconds, _ = timed(step, repeat=1)
                print(f"  {size:16s} {name:10s} {8 / seconds:8.2f}")


if __name__ == "__main__":
    main()
