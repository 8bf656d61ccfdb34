"""Benchmark the on-device front-end against the per-sample CPU recipe of the public notebooks, and
each extractor's forward+backward speed.

    python scripts/bench_frontend.py [--batch 32] [--threads 2] [--sizes tiny published_hgnet ...]

Front-end: montage (banana16) -> band-pass 0.5-20 Hz -> STFT power 0-20 Hz (the stft extractor's
"fine" preset), batched on [B, 20, 10000], versus per sample and per node difference: scipy butter +
sosfiltfilt, then librosa.stft power with the same n_fft / window / hop. Prints windows per second of
both, the ratio and the largest difference relative to the peak power.
"""
import argparse
import resource
import time

import librosa
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from pathlib import Path
from scipy import signal as scipy_signal

from hms.models.stft import STFT_PRESETS, BandLimitedSTFT
from hms.signal.filters import SpectralFilter
from hms.signal.montage import NodeDifferences

N_FFT, WIN, HOP = STFT_PRESETS["fine"]
FMAX, RATE = 20.0, 200
CONF = str(Path(__file__).resolve().parent.parent / "conf")


N_BINS = int(FMAX * N_FFT / RATE) + 1


def device_frontend(eeg: torch.Tensor, montage: NodeDifferences, band: SpectralFilter, stft) -> torch.Tensor:
    diffs = band(montage(eeg))
    b, d, t = diffs.shape
    return stft(diffs.reshape(b * d, t)).reshape(b, d, N_BINS, -1)


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
            per_diff.append(np.abs(s[:N_BINS]) ** 2)
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
    parser.add_argument("--sizes", nargs="*", default=["tiny", "published_hgnet", "published_effnet"],
                        help="extractor sizes to time forward+backward (none: only the front-end)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    # smooth-ish EEG-like signals (integrated noise) so power spans realistic ranges
    eeg = np.cumsum(rng.standard_normal((args.batch, 20, 10000)), axis=-1).astype(np.float32) * 2
    with torch.no_grad():
        modules = NodeDifferences("banana16"), SpectralFilter("bandpass0.5-20"), BandLimitedSTFT(
            N_FFT, WIN, HOP, N_BINS, trainable=False, rate=RATE)
        t_dev, dev = timed(lambda: device_frontend(torch.from_numpy(eeg), *modules), repeat=5)
    t_cpu, ref = timed(lambda: cpu_recipe(eeg), repeat=1)
    # compare where the power matters (relative to each spectrogram's peak), away from the filter edges
    dev = dev.numpy()
    inner = slice(50, -50)  # 50 hops of 23 samples: frames more than 5.75 s from the window's ends
    rel = np.abs(dev[..., inner] - ref[..., inner]).max() / np.abs(ref[..., inner]).max()
    print(f"front-end (banana16, band-pass 0.5-20 Hz, STFT {N_FFT}/{WIN}/{HOP}) on {args.batch} windows:")
    print(f"  device batched: {args.batch / t_dev:8.1f} windows/s")
    print(f"  per-sample CPU: {args.batch / t_cpu:8.1f} windows/s (scipy sosfiltfilt + librosa.stft)")
    print(f"  ratio {t_cpu / t_dev:.1f}x, largest difference {rel:.2e} of the peak power (frames > 5.75 s from the ends)")

    # The published WaveNet keeps 10,000 steps x 24 differences x 54 layers of activations: batch 8
    # needs more than 24 GB on a CPU, so published sizes are timed at batch 1.
    print("forward+backward samples/s (tiny at batch 8, published at batch 1):")
    with initialize_config_dir(CONF, version_base="1.3"):
        for size in args.sizes:
            n = 8 if size == "tiny" else 1
            batch = {"eeg": torch.from_numpy(eeg[:n]), "spec": torch.rand(n, 300, 400) * 20}
            for name in ("wavenet", "stft", "spec_attn", "fusion"):
                model = instantiate(compose("config", overrides=[f"model={name}", f"size={size}", "name=x"]).model)

                def step():
                    out = model(batch)
                    (out["logits"].sum() + sum(v.sum() for v in out["aux"].values())).backward()

                seconds, _ = timed(step, repeat=1)
                peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
                print(f"  {size:16s} {name:10s} {n / seconds:8.2f}   (process peak memory so far {peak_gb:.1f} GB)",
                      flush=True)

if __name__ == "__main__":
    main()
