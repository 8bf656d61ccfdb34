"""Scale-out: train.py's training samples/s in one process beside torchrun with N processes (DDP: gloo on
CPU, nccl on GPU) at the same global batch, on an embedded set.

    python scripts/bench_ddp.py [--root datamount/synthetic_quick] [--processes 2] [--model stft]
        [--batch 8] [--steps 10] [--workers 1] [--repeats 1] [--json PATH]

Each run trains `steps` optimiser steps on every row (fold=-1: no validation to wait for) in a temporary
run dir and reports metrics.json's train_samples_per_s (training time only). On a CPU the one process
gets every core as threads and each of the N processes cores / N, so the figure is what DDP's
communication and duplicated work cost or save on this machine; on a GPU machine each process gets
its own GPU (the default --processes is the GPU count there).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from hms.benchmark import append_figures, figure
from hms.data.kaggle import run_main

TRAIN = Path(__file__).resolve().parent.parent / "train.py"


def train_rate(processes: int, args, run_dir: Path, port: int) -> float:
    """train_samples_per_s of one run with `processes` processes at global batch args.batch."""
    threads = max(1, (os.cpu_count() or 1) // processes) if not torch.cuda.is_available() else 1
    overrides = [f"data.root={args.root}", f"model={args.model}", "fold=-1", "trainer.epochs=1",
                 f"trainer.max_steps={args.steps}", f"trainer.batch_size={args.batch // processes}",
                 f"data.num_workers={args.workers}", "aug.tta=false", f"hydra.run.dir={run_dir}"]
    launcher = ([sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
                 f"--master_port={port}"] if processes > 1 else [sys.executable])
    done = subprocess.run([*launcher, str(TRAIN), *overrides], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise ChildProcessError(f"train.py with {processes} processes failed: {lines[-1] if lines else done.returncode}")
    return json.loads((run_dir / "metrics.json").read_text())["train_samples_per_s"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="datamount/synthetic_quick", help="an embedded or Kaggle-layout set")
    parser.add_argument("--processes", type=int, default=max(2, torch.cuda.device_count()))
    parser.add_argument("--model", default="stft")
    parser.add_argument("--batch", type=int, default=8, help="global batch (split over the processes)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1, help="data.num_workers per process")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", default=None, help="append the figures to this JSON list (scripts/bench.py)")
    args = parser.parse_args()
    if args.batch % args.processes:
        raise ValueError(f"--batch {args.batch} must split evenly over --processes {args.processes}")
    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        for processes in (1, args.processes):
            samples = [train_rate(processes, args, Path(tmp) / f"p{processes}_{r}", 29600 + r) for r in range(args.repeats)]
            figures.append(figure(f"train {args.model}: {processes} process{'es' if processes > 1 else ''}, "
                                  f"global batch {args.batch}", samples, "samples/s", steps=args.steps))
            print(f"{processes} process{'es' if processes > 1 else '  '}: {max(samples):8.1f} training samples/s "
                  f"(model {args.model}, global batch {args.batch}, {args.steps} steps)", flush=True)
    append_figures(args.json, figures)
    return 0


if __name__ == "__main__":
    run_main(main)
