"""The benchmark scripts run end to end on tiny inputs (their figures are reported, never asserted here:
speed goals do not belong in timed tests), and their equality checks between the two paths hold."""
import re
import subprocess
import sys

from tests.helpers import SCRIPTS


def run(*args):
    done = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_bench_data_runs_and_both_paths_return_the_same_windows(small_set):
    out = run(SCRIPTS / "bench_data.py", "--root", small_set, "--samples", "6", "--notebook-samples", "3",
              "--passes", "1", "--rebuild")
    assert re.search(r"peak resident memory \d+\.\d\d GB", out)
    ratios = [float(r) for r in re.findall(r"(\d+)x", out.splitlines()[-1])]
    assert len(ratios) == 2 and min(ratios) > 1  # slices of a memory map beat reading parquet files


def test_bench_frontend_runs_and_matches_the_cpu_recipes():
    out = run(SCRIPTS / "bench_frontend.py", "--batch", "2", "--sizes")
    differences = [float(d) for d in re.findall(r"largest difference (\S+) of the peak", out)]
    assert len(differences) == 3 and max(differences) < 1e-3  # mel, stft and the 3rd-place mel give librosa's numbers
