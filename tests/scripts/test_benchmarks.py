"""The benchmark scripts run end to end on tiny inputs (their figures are reported, never asserted here:
speed goals do not belong in timed tests), and their equality checks between the two paths hold."""
import json
import re
import subprocess
import sys

from tests.helpers import SCRIPTS


def run(*args):
    done = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_bench_data_runs_and_both_paths_return_the_same_windows(small_set, tmp_path):
    out = run(SCRIPTS / "bench_data.py", "--root", small_set, "--samples", "6", "--notebook-samples", "3",
              "--passes", "1", "--rebuild", "--workers", "1", "--epochs", "2", "--json", tmp_path / "data.json")
    assert re.search(r"peak resident memory \d+\.\d\d GB", out)
    figures = {f["name"]: f for f in json.loads((tmp_path / "data.json").read_text())}
    notebook = figures["data: notebook pattern (pandas parquet), steady"]["median"]
    for reader in ("pread", "map"):  # reading the caches beats reading parquet files, on a first pass too
        for when in ("first pass", "steady"):
            assert figures[f"data: Dataset {reader}, unflipped, {when}"]["median"] > notebook
        assert figures[f"data: loader {reader}, persistent workers, later epochs"]["repeats"] == 1
        assert figures[f"data: loader {reader}, 1 threads, epoch 1"]["median"] > 0


def test_bench_py_writes_bench_json_with_the_machine_and_a_table(tmp_path):
    out = run(SCRIPTS / "bench.py", "--quick", "--only", "blend", "--out", tmp_path / "bench.json")
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["quick"] and report["machine"]["cores"] >= 1 and report["machine"]["torch"]
    (figure,) = report["figures"]
    assert figure["name"].startswith("blend: stack fit with nested CV") and figure["unit"] == "s"
    assert figure["min"] <= figure["median"] <= figure["max"] and figure["benchmark"] == "blend"
    assert figure["name"] in out and "wrote" in out.splitlines()[-1]


def test_bench_frontend_runs_and_matches_the_cpu_recipes(tmp_path):
    out = run(SCRIPTS / "bench_frontend.py", "--batch", "2", "--sizes", "--repeats", "1", "--json", tmp_path / "f.json")
    differences = [float(d) for d in re.findall(r"largest difference (\S+) of the peak", out)]
    assert len(differences) == 3 and max(differences) < 1e-3  # mel, stft and the 3rd-place mel give librosa's numbers
    steps = [f for f in json.loads((tmp_path / "f.json").read_text()) if " step: " in f["name"]]
    assert [f["name"].removeprefix("frontend ") for f in steps] == [
        *(f"mel step: {s}" for s in ("montage", "filter", "mel power", "dB")),
        *(f"stft step: {s}" for s in ("montage", "filter", "power")),
        *(f"render16 traces step: {s}" for s in ("filter", "levels", "line plots")),
        "render16 spectrogram step: tile", "render16 mel step: tile"]
    assert float(re.search(r"render device batched .* pixels differing (\S+)", out)[1]) < 1e-3  # as the reference
    assert all(f["options"]["ceiling_ms"] > 0 and f["options"]["ceiling"] for f in steps)
