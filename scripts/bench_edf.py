"""predict_edf speed and memory on synthetic clinical recordings: windows per second and peak memory.

    python scripts/bench_edf.py [--minutes 15 60] [--step 10] [--tta both|no|yes] [--threads 2]

Writes an EDF per length (256 Hz, 21 channels: the 19 electrodes with 10-10 names, ECG and A2-A1; 1/f-ish
noise plus a 10 Hz rhythm, in microvolts) and a tiny fusion checkpoint (random weights, the training
loop's format: scripts/bench_predict.py) to a temp dir, then runs each recording in a fresh process:
first the inputs alone (reading, resampling, the Kaggle spectrogram: RecordingWindows over every
window), then hms.ensemble.clinical.predict_edf as the command line runs it (outputs included). Peak
memory is that process's resource.getrusage maxrss, so 15 and 60 minutes show whether it grows with
the recording's length.
"""
import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LABELS = [f"EEG {e}-REF" for e in ("Fp1", "F3", "C3", "P3", "F7", "T7", "P7", "O1", "Fz", "Cz", "Pz",
                                   "Fp2", "F4", "C4", "P4", "F8", "T8", "P8", "O2")] + ["ECG", "EEG A2-A1"]
RATE = 256


def write_recording(path: Path, minutes: float, seed: int = 0) -> Path:
    import edfio
    rng = np.random.default_rng(seed)
    n = int(minutes * 60 * RATE)
    t = np.arange(n) / RATE
    signals = []
    for label in LABELS:
        noise = np.convolve(rng.standard_normal(n), np.ones(8) / 8, mode="same") * 30  # low-passed noise
        x = np.clip(noise + 20 * np.sin(2 * np.pi * 10 * t + rng.uniform(0, 6.28)), -990, 990)
        signals.append(edfio.EdfSignal(x, RATE, label=label, physical_dimension="uV", physical_range=(-1000, 1000)))
    edfio.Edf(signals).write(path)
    return path


def child(recording: Path, checkpoint: Path, out: Path, step: float, tta: bool) -> dict:
    """One recording in this process: inputs alone, then predict_edf; prints its figures as JSON."""
    from hms.data.edf import open_recording, window_starts
    from hms.ensemble.clinical import RecordingWindows, predict_edf
    start = time.perf_counter()
    opened = open_recording(recording)
    windows = RecordingWindows(opened, window_starts(opened.n_samples, step), ("eeg", "spec"))
    for i in range(len(windows)):
        windows[i]
    inputs_seconds = time.perf_counter() - start
    start = time.perf_counter()
    report = predict_edf([recording], [checkpoint], out, step=step, tta=tta, progress=False)
    seconds = time.perf_counter() - start
    n = report["recordings"][0]["windows"]
    return {"windows": n, "inputs_per_s": n / inputs_seconds, "windows_per_s": n / seconds, "seconds": seconds,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[15, 60])
    parser.add_argument("--step", type=float, default=10.0)
    parser.add_argument("--tta", choices=["both", "no", "yes"], default="both")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", nargs=3, default=None, help=argparse.SUPPRESS)  # recording checkpoint out
    args = parser.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(child(*map(Path, args.child), args.step, args.tta == "yes")))
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_predict import save_checkpoint
    print(f"{args.threads} threads, step {args.step} s, tiny fusion (random weights)")
    print(f"{'minutes':>7s} {'TTA':>4s} {'windows':>8s} {'inputs/s':>9s} {'windows/s':>10s} {'seconds':>8s} "
          f"{'peak MB':>8s}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        checkpoint = save_checkpoint("tiny", tmp / "fusion.pt")
        for minutes in args.minutes:
            recording = write_recording(tmp / f"synthetic_{minutes:g}min.edf", minutes)
            for tta in {"both": ("no", "yes"), "no": ("no",), "yes": ("yes",)}[args.tta]:
                command = [sys.executable, __file__, "--child", str(recording), str(checkpoint), str(tmp / "out"),
                           "--step", str(args.step), "--tta", tta, "--threads", str(args.threads)]
                result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
                print(f"{minutes:7g} {tta:>4s} {result['windows']:8d} {result['inputs_per_s']:9.1f} "
                      f"{result['windows_per_s']:10.2f} {result['seconds']:8.1f} {result['peak_mb']:8.0f}", flush=True)


if __name__ == "__main__":
    main()
