"""hms.benchmark's figures and ceiling primitives compute what they say (never how fast: speed goals are
benchmark figures, not assertions)."""
import json

import pytest
import torch

from hms.benchmark import append_figures, copy_seconds, fft_seconds, figure, format_table, gemm_seconds, rates


def test_a_figure_is_min_median_max_of_its_values_with_how_it_was_measured():
    f = figure("x", [3, 1, 2, 10], "windows/s", batch=4)
    assert (f["min"], f["median"], f["max"], f["repeats"], f["options"]) == (1, 2.5, 10, 4, {"batch": 4})
    assert rates(8, [2.0, 4.0]) == [4.0, 2.0]
    assert "x" in format_table([f]).splitlines()[1] and "2.5" in format_table([f])
    step = figure("frontend mel step: dB", [60], "ms/batch", ceiling_ms=8.64, ceiling="memory copy")
    assert format_table([f, step]).splitlines()[2].endswith("ms/batch   ceiling 8.6 ms (memory copy)")


def test_append_figures_gathers_every_scripts_figures_in_one_list(tmp_path):
    path = tmp_path / "part.json"
    append_figures(path, [figure("a", [1], "s")])
    append_figures(path, [figure("b", [2], "s")])
    append_figures(None, [figure("c", [3], "s")])  # no --json: nothing written
    assert [f["name"] for f in json.loads(path.read_text())] == ["a", "b"]


@pytest.mark.parametrize("primitive, args, runs, shape", [(gemm_seconds, (64, 32, 16), "mm", (64, 32)),
                                                          (copy_seconds, (4096,), "copy_", (1024,)),
                                                          (fft_seconds, (4, 100), "rfft", (4, 100))])
def test_ceiling_primitives_time_the_operation_they_name(primitive, args, runs, shape, monkeypatch):
    calls = []
    target = torch.fft if runs == "rfft" else (torch if runs == "mm" else torch.Tensor)
    real = getattr(target, runs)
    monkeypatch.setattr(target, runs, lambda *a, **k: calls.append(a[-1] if runs == "copy_" else a[0]) or real(*a, **k))
    seconds = primitive(*args, repeats=3)
    assert seconds > 0 and len(calls) == 4  # one warm-up, then the median of 3
    assert all(tuple(c.shape) == shape for c in calls)  # the float32 operand of the size asked (copy: 4 bytes each)
