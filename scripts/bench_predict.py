"""Inference speed: windows per second per checkpoint, with and without flip TTA (4 views).

    python scripts/bench_predict.py [--sizes tiny published_hgnet] [--batch-size 8] [--windows 16]
        [--threads 2] [--device cpu] [--tta both|no|yes] [--repeats 1] [--json PATH]

For each fusion size a checkpoint is written in the training loop's format (random weights, the shape
is what costs) to a temp dir, loaded back with hms.ensemble.predict.load_model and run over `windows`
in-memory windows (EEG-like integrated noise, random spectrogram; parquet reading is not timed) with
predict_dataset, after one warm-up batch.
"""
import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from hms.benchmark import append_figures, figure, rates, repeat_seconds
from hms.data.kaggle import run_main
from hms.ensemble.predict import load_model, predict_dataset

CONF = str(Path(__file__).resolve().parent.parent / "conf")


def save_checkpoint(size: str, path: Path) -> Path:
    with initialize_config_dir(CONF, version_base="1.3"):
        cfg = compose("config", overrides=["model=fusion", f"size={size}", f"name=fusion_{size}"])
    model = instantiate(cfg.model)
    torch.save({"model": model.state_dict(), "config": OmegaConf.to_container(cfg, resolve=True)}, path)
    return path


def windows(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    eeg = np.cumsum(rng.standard_normal((n, 20, 10000)), axis=-1).astype(np.float32) * 2
    spec = rng.exponential(10.0, (n, 300, 400)).astype(np.float32)
    return [{"eeg": torch.from_numpy(e), "spec": torch.from_numpy(s)} for e, s in zip(eeg, spec)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "published_hgnet"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--windows", type=int, default=16, help="timed windows per run (after a warm-up batch)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tta", choices=["both", "no", "yes"], default="both",
                        help="time without and/or with the flip TTA (4 forwards per window)")
    parser.add_argument("--repeats", type=int, default=1, help="timed passes over the windows")
    parser.add_argument("--json", default=None, help="append the figures to this JSON list (scripts/bench.py)")
    args = parser.parse_args()
    figures = []
    torch.set_num_threads(args.threads)
    data = windows(args.windows)
    print(f"device {args.device}, {args.threads} threads, batch {args.batch_size}, {args.windows} windows")
    print(f"{'size':18s} {'params':>8s} {'TTA':>4s} {'windows/s':>10s} {'s/window':>9s}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            _, _, model = load_model(save_checkpoint(size, Path(tmp) / f"{size}.pt"), args.device)
            params = sum(p.numel() for p in model.parameters()) / 1e6
            for tta in {"both": (False, True), "no": (False,), "yes": (True,)}[args.tta]:
                predict_dataset(model, data[:args.batch_size], ("eeg", "spec"), args.batch_size, tta, args.device, progress=False)
                seconds, _ = repeat_seconds(lambda: predict_dataset(model, data, ("eeg", "spec"), args.batch_size, tta,
                                                                    args.device, progress=False), args.repeats, warmup=0)
                figures.append(figure(f"predict fusion {size}, {'flip TTA' if tta else 'no TTA'}",
                                      rates(args.windows, seconds), "windows/s", batch=args.batch_size,
                                      device=args.device, params_m=round(params, 2)))
                print(f"{size:18s} {params:7.1f}M {'yes' if tta else 'no':>4s} {args.windows / min(seconds):10.2f} "
                      f"{min(seconds) / args.windows:9.3f}", flush=True)
    append_figures(args.json, figures)


if __name__ == "__main__":
    run_main(main)
