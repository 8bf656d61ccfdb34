"""Benchmark the on-device front-end against the per-sample CPU recipes of the public notebooks, and
each extractor's forward+backward speed.

    python scripts/bench_frontend.py [--batch 32] [--threads 2] [--sizes tiny published_hgnet ...]
                                     [--experiments hms15_cfg1 hms15_cfg5]
        [--default-malloc]

Two front-ends on [B, 20, 10000] raw electrodes, each beside its per-sample, per-node-difference CPU
recipe (scipy butter + sosfiltfilt, then librosa), producing the same images:
- mel: Chris Deotte's public EEG spectrogram (banana16, band-pass 0.5-20 Hz, mel 1024/128/39, 128 mels
  0-20 Hz, power_to_db(ref=max), (dB + 40) / 40, the 4 pairs of each chain averaged: [4, 128, 256]).
  The device runs hms.signal.spectra.MelSpectrogram; the CPU runs librosa.feature.melspectrogram.
- stft: the stft extractor's "fine" preset (banana16, band-pass 0.5-20 Hz, |STFT|^2 110/64/23 to 20 Hz).
Then the 3rd place's mel (mel3) and the 16th place's 640 x 1920 image (hms.signal.render.Render16 on the
batch vs render_reference per window, with its steps timed the same way). Each per-sample recipe is warmed
on one window first: its first call in a process (librosa's numba kernels) is not part of its rate.
Prints windows per second of both, the ratio and the largest difference relative to the peak of the
power (frames more than 10 s from the window's ends), then each step's milliseconds beside its ceiling
here: a bare GEMM of the step's shape (STFT and mel projection), a bare rfft + irfft (the filter) or a
memory copy of its input and output (montage, dB). Both sides share this machine's CPU cores; on a
GPU only the device side changes.
"""
import argparse
import resource
from pathlib import Path

import librosa
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from scipy import signal as scipy_signal

from hms.benchmark import (append_figures, copy_seconds, fft_seconds, figure, gemm_seconds, rates, repeat_seconds,
                           synchronised)
from hms.data.kaggle import run_main
from hms.data.inputs import INPUTS, random_batch
from hms.models.stft import STFT_PRESETS
from hms.signal.filters import SpectralFilter, causal_fft_length
from hms.signal.montage import NodeDifferences
from hms.signal.render import PLOT_SAMPLES, TILE, Render16, render_reference, resize_linear
from hms.signal.spectra import BandLimitedSTFT, MelSpectrogram, TorchaudioMel, power_to_db
from hms.train.cpu_memory import keep_freed_cpu_memory

RATE, FMAX = 200, 20.0
MEL = {"n_fft": 1024, "win_length": 128, "hop_length": 39, "n_mels": 128, "fmin": 0.0, "fmax": FMAX}
MEL_WIDTH = 256  # the recipe crops its 257 frames to a multiple of 32 after power_to_db
N_FFT, WIN, HOP = STFT_PRESETS["fine"]
STFT_BINS = int(FMAX * N_FFT / RATE) + 1
CONF = str(Path(__file__).resolve().parent.parent / "conf")
PAIRS = NodeDifferences("banana16")  # LL, RL, LP, RP chains, 4 pairs each
# The 3rd place's cfg_5a main mel: interleaved pairs, causal band-pass 0.5-20 Hz (order 2), clip, /32,
# torchaudio MelSpectrogram 512/128/32, 64 HTK mels 0.53-30 Hz without norm, reflect-padded centre.
MEL3 = {"n_fft": 512, "win_length": 128, "hop_length": 32, "n_mels": 64, "fmin": 0.53, "fmax": 30.0}
PAIRS3 = NodeDifferences("interleaved16")


def device_mel(eeg: torch.Tensor, band: SpectralFilter, mel: MelSpectrogram):
    """(mel power [B, 16, 128, 257], the recipe's image [B, 4, 128, 256])."""
    diffs = band(PAIRS(eeg))
    b, d, t = diffs.shape
    power = mel(diffs.reshape(b * d, t))
    image = (power_to_db(power)[..., :MEL_WIDTH] + 40) / 40
    return power.reshape(b, d, *power.shape[1:]), image.reshape(b, 4, d // 4, *image.shape[1:]).mean(2)


def device_stft(eeg: torch.Tensor, band: SpectralFilter, stft: BandLimitedSTFT):
    diffs = band(PAIRS(eeg))
    b, d, t = diffs.shape
    power = stft(diffs.reshape(b * d, t)).reshape(b, d, STFT_BINS, -1)
    return power, power


def device_mel3(eeg: torch.Tensor, band: SpectralFilter, mel: TorchaudioMel):
    diffs = (band(PAIRS3(eeg)).clamp(-1024, 1024) / 32)
    b, d, t = diffs.shape
    power = mel(diffs.reshape(b * d, t))
    return power.reshape(b, d, *power.shape[1:]), power


def cpu_mel3(eeg: np.ndarray):
    """The per-sample dataset loop of the 3rd place: lfilter per pair, then a mel per pair."""
    b, a = scipy_signal.butter(2, [0.5 / 100, 20 / 100], btype="band")
    powers = []
    for sample in eeg:
        pairs = (sample[x] - sample[y] for x, y in zip(PAIRS3.a.tolist(), PAIRS3.b.tolist()))
        filtered = (np.clip(scipy_signal.lfilter(b, a, p), -1024, 1024).astype(np.float32) / 32 for p in pairs)
        powers.append(np.stack([librosa.feature.melspectrogram(y=x, sr=RATE, htk=True, norm=None, pad_mode="reflect",
                                                               **MEL3) for x in filtered]))
    return np.stack(powers), np.stack(powers)


def cpu_pairs(sample: np.ndarray):
    """The band-passed node differences of one window, one at a time, as the notebooks loop."""
    sos = scipy_signal.butter(4, [0.5, 20], btype="bandpass", fs=RATE, output="sos")
    for a, b in zip(PAIRS.a.tolist(), PAIRS.b.tolist()):
        yield scipy_signal.sosfiltfilt(sos, sample[a] - sample[b]).astype(np.float32)


def cpu_mel(eeg: np.ndarray):
    powers, images = [], []
    for sample in eeg:
        power = [librosa.feature.melspectrogram(y=x, sr=RATE, **MEL) for x in cpu_pairs(sample)]
        image = [(librosa.power_to_db(p, ref=np.max)[:, :MEL_WIDTH] + 40) / 40 for p in power]
        powers.append(np.stack(power))
        images.append(np.stack(image).reshape(4, 4, *image[0].shape).mean(1))
    return np.stack(powers), np.stack(images)


def cpu_stft(eeg: np.ndarray):
    power = np.stack([np.stack([np.abs(librosa.stft(x, n_fft=N_FFT, hop_length=HOP, win_length=WIN,
                                                    center=False)[:STFT_BINS]) ** 2 for x in cpu_pairs(s)])
                      for s in eeg])
    return power, power


def compare(name, device_fn, cpu_fn, eeg, inner, device, repeats, figures) -> None:
    """The device path on the batch beside the per-sample CPU recipe: windows/s of both, their ratio and
    the largest difference of the power relative to its peak."""
    x = torch.from_numpy(eeg).to(device)
    with torch.no_grad():
        t_dev, dev = repeat_seconds(synchronised(lambda: device_fn(x), device), repeats)
    cpu_fn(eeg[:1])  # warm: in a fresh environment librosa's first call compiles its numba kernels (seconds)
    t_cpu, ref = repeat_seconds(lambda: cpu_fn(eeg), 1, warmup=0)
    dev, ref = dev[0].cpu().numpy()[..., inner], ref[0][..., inner]  # the power; the dB image is relative to a
    # peak that may sit in the edge transients, so it is shifted wherever they differ
    rel = np.abs(dev - ref).max() / np.abs(ref).max()
    n = len(eeg)
    device_rate, cpu_rate = rates(n, t_dev), rates(n, t_cpu)
    figures += [figure(f"frontend {name}: device batched", device_rate, "windows/s", batch=n, device=str(device)),
                figure(f"frontend {name}: per-sample CPU recipe", cpu_rate, "windows/s"),
                figure(f"frontend {name}: ratio", [r / cpu_rate[0] for r in device_rate], "x", largest_difference=rel)]
    print(f"  {name:5s} device batched {np.median(device_rate):7.1f}   per-sample CPU {cpu_rate[0]:6.1f} windows/s   "
          f"ratio {np.median(device_rate) / cpu_rate[0]:5.1f}x   largest difference {rel:.1e} of the peak")


def profile_steps(name, steps, batch, device, repeats, figures) -> None:
    """Milliseconds per batch of each step of a front-end, in order, the first fed `batch` (numpy) and each next
    the previous step's output, beside the step's ceiling on this machine (steps: [(label, fn, ceiling)],
    ceiling(input, output) -> (seconds, what bounds it)). The sum is the path's cost; a step far from its
    ceiling is the place to work."""
    x = torch.from_numpy(batch).to(device)
    parts = []
    with torch.no_grad():
        for label, fn, ceiling in steps:
            seconds, out = repeat_seconds(synchronised(lambda: fn(x), device), repeats)
            floor, bound = ceiling(x, out)
            figures.append(figure(f"frontend {name} step: {label}", [1000 * s for s in seconds], "ms/batch",
                                  batch=len(batch), ceiling_ms=1000 * floor, ceiling=bound,
                                  of_ceiling=floor / float(np.median(seconds))))
            parts.append(f"{label} {1000 * np.median(seconds):.1f} (ceiling {1000 * floor:.1f}, {bound})")
            x = out
    print(f"  {name:5s} steps, ms per batch of {len(batch)}:\n    " + "\n    ".join(parts))


def memory_ceiling(x, out):
    """A gather or elementwise step reads its input and writes its output once at least."""
    return copy_seconds((x.nbytes + out.nbytes) // 2, x.device), "memory copy of input and output"


def filter_ceiling(band: SpectralFilter):
    def ceiling(x, out):
        rows, n = x.reshape(-1, x.shape[-1]).shape
        return fft_seconds(rows, band.fft_length(n), x.device), f"rfft + irfft at length {band.fft_length(n)}"
    return ceiling


def conv_gemm_seconds(stft: BandLimitedSTFT, signals: int, frames: int, device) -> float:
    """The strided conv1d STFT is one GEMM: [signals x frames, kernel width] @ [width, 2 x bins]."""
    bins, _, width = stft.wcos.shape
    return gemm_seconds(signals * frames, width, 2 * bins, device)


def mel_ceiling(mel: MelSpectrogram):
    def ceiling(x, out):
        signals, n_mels, frames = out.shape
        bins = mel.basis_t.shape[0]
        return (conv_gemm_seconds(mel.stft, signals, frames, x.device)
                + gemm_seconds(signals * frames, bins, n_mels, x.device)), "the Fourier GEMM + the mel GEMM"
    return ceiling


def stft_ceiling(stft: BandLimitedSTFT):
    def ceiling(x, out):
        return conv_gemm_seconds(stft, out.shape[0], out.shape[-1], x.device), "the Fourier GEMM"
    return ceiling


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--default-malloc", action="store_true",
                        help="keep glibc's default allocator (training on CPU keeps freed memory: trainer.keep_cpu_memory)")
    parser.add_argument("--sizes", nargs="*", default=["tiny", "published_hgnet", "published_effnet"],
                        help="extractor sizes to time forward+backward (none: only the front-ends)")
    parser.add_argument("--experiments", nargs="*", default=[],
                        help="presets whose whole model to time forward+backward at batch 1 (e.g. hms15_cfg1)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats of every device figure")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", choices=["none", "bf16", "fp16"], default="none",
                        help="autocast for the forward+backward timings (the front-ends' power stays fp32)")
    parser.add_argument("--channels-last", action="store_true", help="forward+backward in channels_last")
    parser.add_argument("--compile", action="store_true", help="torch.compile each model before timing it")
    parser.add_argument("--json", default=None, help="append the figures to this JSON list (scripts/bench.py)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device, figures = torch.device(args.device), []
    if not args.default_malloc:
        keep_freed_cpu_memory()
    rng = np.random.default_rng(0)
    # smooth-ish EEG-like signals (integrated noise) so power spans realistic ranges
    eeg = np.cumsum(rng.standard_normal((args.batch, 20, 10000)), axis=-1).astype(np.float32) * 2
    band = SpectralFilter("bandpass0.5-20")
    print(f"front-ends on {args.batch} windows (banana16, band-pass 0.5-20 Hz); power compared on frames more "
          f"than 10 s from the window's ends (the FFT filter and filtfilt differ in their edge transients):")
    mel, stft = MelSpectrogram(RATE, **MEL), BandLimitedSTFT(N_FFT, WIN, HOP, STFT_BINS, rate=RATE)
    band, mel, stft = band.to(device), mel.to(device), stft.to(device)
    compare("mel", lambda x: device_mel(x, band, mel), cpu_mel, eeg, slice(52, -52), device, args.repeats, figures)
    compare("stft", lambda x: device_stft(x, band, stft), cpu_stft, eeg, slice(87, -87), device, args.repeats, figures)
    band3, mel3 = SpectralFilter("bandpass0.5-20_causal_o2").to(device), TorchaudioMel(RATE, **MEL3).to(device)
    compare("mel3", lambda x: device_mel3(x, band3, mel3), cpu_mel3, eeg, slice(None), device, args.repeats, figures)
    pairs = PAIRS.to(device)
    flat = lambda x: x.reshape(-1, x.shape[-1])
    profile_steps("mel", [("montage", pairs, memory_ceiling), ("filter", band, filter_ceiling(band)),
                          ("mel power", lambda x: mel(flat(x)), mel_ceiling(mel)),
                          ("dB", power_to_db, memory_ceiling)], eeg, device, args.repeats, figures)
    profile_steps("stft", [("montage", pairs, memory_ceiling), ("filter", band, filter_ceiling(band)),
                           ("power", lambda x: stft(flat(x)), stft_ceiling(stft))], eeg, device, args.repeats, figures)
    # the 16th place's 640 x 1920 image: the device renderer on the batch vs the per-sample reference
    spec = (rng.random((args.batch, 300, 400)) * 20).astype(np.float32)
    eeg_mel = rng.random((args.batch, 226, 512)).astype(np.float32)
    render = Render16().to(device)
    tensors = [torch.from_numpy(a).to(device) for a in (eeg, spec, eeg_mel)]
    with torch.no_grad():  # three warm-ups: the first two batches of 640 x 1920 images fault in fresh pages
        t_dev, images = repeat_seconds(synchronised(lambda: render(*tensors), device), args.repeats, warmup=3)
    render_reference(eeg[0], spec[0], eeg_mel[0])  # warm, as the recipes above
    t_cpu, reference = repeat_seconds(lambda: [render_reference(*(a[i] for a in (eeg, spec, eeg_mel)))
                                               for i in range(len(eeg))], 1, warmup=0)
    differing = float(np.mean(np.abs(images.cpu().numpy()[:, 0] - np.stack(reference).reshape(images.shape[0], 640, 1920))
                              > 1e-3))
    device_rate, cpu_rate = rates(len(eeg), t_dev), rates(len(eeg), t_cpu)
    figures += [figure("render16: device batched", device_rate, "windows/s", batch=len(eeg), device=str(device)),
                figure("render16: per-sample CPU reference", cpu_rate, "windows/s"),
                figure("render16: ratio", [r / cpu_rate[0] for r in device_rate], "x", pixels_differing=differing)]
    print(f"  render device batched {np.median(device_rate):7.1f}   per-sample CPU {cpu_rate[0]:6.1f} windows/s   "
          f"ratio {np.median(device_rate) / cpu_rate[0]:5.1f}x   pixels differing {differing:.1e}")
    taps_fft = causal_fft_length(PLOT_SAMPLES, len(render.taps))
    trace_filter_ceiling = (lambda x, out: (fft_seconds(out.shape[0] * out.shape[1], taps_fft, x.device),
                                            f"rfft + irfft at length {taps_fft}"))
    for part, steps, batch in (
            ("traces", [("filter", render.filtered_traces, trace_filter_ceiling),
                        ("levels", render.trace_levels, memory_ceiling),
                        ("line plots", render.line_plots, memory_ceiling)], eeg),
            ("spectrogram", [("tile", render.spectrogram_tile, memory_ceiling)], spec),
            ("mel", [("tile", lambda x: resize_linear(x, TILE, TILE), memory_ceiling)], eeg_mel)):
        profile_steps(f"render16 {part}", steps, batch, device, args.repeats, figures)

    # The published WaveNet keeps 10,000 steps x 24 differences x 54 layers of activations: batch 8
    # needs more than 24 GB on a CPU, so published sizes are timed at batch 1.
    print("forward+backward in training mode, samples/s and seconds per step (tiny at batch 8, published at batch 1):")
    families = sorted(p.stem for p in (Path(CONF) / "model").glob("*.yaml"))  # every model family
    runs = [(f"{size} {name}", [f"model={name}", f"size={size}"], 8 if size == "tiny" else 1)
            for size in args.sizes for name in families]
    runs += [(experiment, [f"experiment={experiment}", "pretrained=false"], 1) for experiment in args.experiments]
    with initialize_config_dir(CONF, version_base="1.3"):
        for label, overrides, n in runs:
            # every declared input (the 16th place's eeg_mel too), the EEG-like signals as the EEG
            batch = {k: v.to(device) for k, v in (random_batch(list(INPUTS), n) | {"eeg": torch.from_numpy(eeg[:n])}).items()}
            model = instantiate(compose("config", overrides=[*overrides, "name=x"]).model).to(device)
            if args.channels_last:
                model = model.to(memory_format=torch.channels_last)
            forward = torch.compile(model) if args.compile else model
            amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)

            def step():
                with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                    out = forward(batch)
                    loss = out["logits"].float().sum() + sum(v.float().sum() for v in out["aux"].values())
                loss.backward()

            seconds, _ = repeat_seconds(synchronised(step, device), 1)
            peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
            figures.append(figure(f"train step {label}", rates(n, seconds), "samples/s", batch=n, amp=args.amp,
                                  channels_last=args.channels_last, compile=args.compile, device=str(device)))
            print(f"  {label:27s} {n / seconds[0]:8.2f} samples/s {seconds[0]:7.2f} s/step   (process peak memory so far "
                  f"{peak_gb:.1f} GB)", flush=True)
    append_figures(args.json, figures)

if __name__ == "__main__":
    run_main(main)
