"""Every benchmark in one command, on any machine (`make bench`): the data loader, the front-ends and
renderers, forward+backward of every family, inference, the blend fit and DDP scale-out, on CUDA when
present and on the CPU otherwise. Writes bench.json (the machine, the versions, the options and every
figure with min / median / max over its repeats) and prints a table.

    python scripts/bench.py [--quick] [--out bench.json] [--only data frontend predict blend ddp]
        [--device cuda|cpu] [--amp none|bf16|fp16] [--channels-last] [--compile]

--quick (under 2 minutes on a 2-core CPU) runs each benchmark at a small size; the full run takes under
10 minutes there. The embedded sets the data and DDP figures need are built on first use (not timed):
datamount/synthetic (full) or datamount/synthetic_quick (--quick, the set of ./run_train.sh --quick).
--amp, --channels-last and --compile apply to the forward+backward timings and are recorded with them.
Each benchmark is also a script of its own (scripts/bench_<name>.py --help).
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from hms.benchmark import format_table, machine
from hms.data.kaggle import output_file, run_main
from hms.synthetic import ensure_synthetic

SCRIPTS = Path(__file__).resolve().parent
FULL_SET, QUICK_SET, QUICK_PATIENTS = "datamount/synthetic", "datamount/synthetic_quick", 150
# name -> (script, arguments of the full run, arguments of --quick)
BENCHMARKS = {
    "data": ("bench_data.py", ["--root", FULL_SET],
             ["--root", QUICK_SET, "--samples", "200", "--passes", "2", "--epochs", "2", "--notebook-samples", "20"]),
    "frontend": ("bench_frontend.py", ["--sizes", "tiny", "published_hgnet", "--repeats", "3"],
                 ["--sizes", "tiny", "--batch", "8", "--repeats", "2"]),
    "predict": ("bench_predict.py", ["--sizes", "tiny", "published_hgnet", "--windows", "2", "--batch-size", "2"],
                ["--sizes", "tiny", "--windows", "8", "--tta", "no"]),
    "blend": ("bench_blend.py", [], ["--models", "5", "--rows", "4000"]),
    "ddp": ("bench_ddp.py", ["--root", QUICK_SET, "--model", "fusion", "--steps", "10"],
            ["--root", QUICK_SET, "--model", "stft", "--steps", "6"]),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="bench.json")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", choices=["none", "bf16", "fp16"], default="none")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    out = output_file(args.out)
    if {"data", "ddp"} & set(args.only):
        ensure_synthetic(QUICK_SET, patients=QUICK_PATIENTS)
    if "data" in args.only and not args.quick:
        ensure_synthetic(FULL_SET)
    extra = {"frontend": ["--device", args.device, "--amp", args.amp] + ["--channels-last"] * args.channels_last
             + ["--compile"] * args.compile, "predict": ["--device", args.device]}
    figures, seconds = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            script, full, quick = BENCHMARKS[name]
            part = Path(tmp) / f"{name}.json"
            command = [sys.executable, str(SCRIPTS / script), *(quick if args.quick else full), *extra.get(name, []),
                       "--json", str(part)]
            print(f"== {name}: {' '.join(command[1:])}", flush=True)
            started = time.perf_counter()
            done = subprocess.run(command)
            seconds[name] = round(time.perf_counter() - started, 1)
            if done.returncode != 0:
                raise ChildProcessError(f"{script} failed (exit status {done.returncode}); its output is above")
            figures += [f | {"benchmark": name} for f in json.loads(part.read_text())]
    report = {"machine": machine(), "quick": args.quick, "device": args.device,
              "options": {"amp": args.amp, "channels_last": args.channels_last, "compile": args.compile},
              "seconds": seconds, "figures": figures}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(format_table(figures))
    print(f"seconds per benchmark {seconds}; wrote {out}")
    return 0


if __name__ == "__main__":
    run_main(main)
