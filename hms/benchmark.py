"""Benchmark figures: every scripts/bench_*.py reports its timings as figures (a name, a unit and the
min / median / max over repeats), printed and, with --json PATH, appended to a JSON list that `make bench`
(scripts/bench.py) gathers into bench.json beside the machine's description. Nothing here is timed in a
test: speed goals live in these figures, never in assertions."""
import json
import os
import platform
import statistics
import time
from pathlib import Path


def repeat_seconds(fn, repeats: int = 3, warmup: int = 1) -> tuple[list[float], object]:
    """Seconds of `repeats` calls of fn after `warmup` calls (first calls compile, allocate and fault in
    fresh pages), and the last result."""
    result = None
    for _ in range(warmup):
        result = fn()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - start)
    return seconds, result


def median_seconds(fn, repeats: int = 3) -> float:
    """Median seconds of fn after one warm-up call."""
    return statistics.median(repeat_seconds(fn, repeats)[0])


def gemm_seconds(m: int, k: int, n: int, device="cpu", repeats: int = 3) -> float:
    """Seconds of one float32 [m, k] @ [k, n] product: what a step that is this GEMM cannot beat on this
    machine (a conv1d STFT is one, its im2col rows being the frames)."""
    import torch
    a, b = torch.rand(m, k, device=device), torch.rand(k, n, device=device)
    return median_seconds(synchronised(lambda: torch.mm(a, b), device), repeats)


def copy_seconds(nbytes: int, device="cpu", repeats: int = 3) -> float:
    """Seconds to read and write `nbytes` once (a tensor copy into a reused buffer): the floor of a step
    that is bound by memory traffic, such as a gather or an elementwise log."""
    import torch
    source = torch.rand(max(nbytes // 4, 1), device=device)
    target = torch.empty_like(source)
    return median_seconds(synchronised(lambda: target.copy_(source), device), repeats)


def fft_seconds(rows: int, length: int, device="cpu", repeats: int = 3) -> float:
    """Seconds of a float32 rfft and irfft of [rows, length]: the floor of an FFT filter of that length."""
    import torch
    x = torch.rand(rows, length, device=device)
    return median_seconds(synchronised(lambda: torch.fft.irfft(torch.fft.rfft(x), n=length), device),
                          repeats)


def synchronised(fn, device):
    """fn, waiting for the device's queue: a GPU returns before it has computed."""
    import torch

    def run():
        result = fn()
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        return result
    return run


def figure(name: str, values, unit: str, **options) -> dict:
    """One figure: min / median / max of `values` (rates, seconds, bytes...) and how it was measured."""
    values = [float(v) for v in values]
    return {"name": name, "unit": unit, "min": min(values), "median": statistics.median(values),
            "max": max(values), "repeats": len(values), "options": options}


def rates(count: float, seconds) -> list[float]:
    """`count` items per second of each timing (so a figure's min is its slowest repeat)."""
    return [count / max(s, 1e-12) for s in seconds]


def append_figures(path, figures: list[dict]) -> None:
    """Add figures to the JSON list at `path` (created when missing): one file for every script of a run."""
    if path is None:
        return
    path = Path(path)
    old = json.loads(path.read_text()) if path.exists() and path.stat().st_size else []
    path.write_text(json.dumps(old + figures, indent=1, default=float))  # numpy scalars among the options


def machine() -> dict:
    """What the figures were measured on: CPU, cores, memory, accelerator and library versions."""
    import numpy
    import torch
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else None
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(memory / 2**30, 1) if memory else None,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "platform": platform.platform()}


def format_table(figures: list[dict]) -> str:
    """Figures as aligned text: name, median and [min, max] with the unit, and a step's ceiling when it has one."""
    width = max((len(f["name"]) for f in figures), default=10)
    lines = [f"{'figure':{width}s}  {'median':>12s}  {'min':>12s}  {'max':>12s}  unit"]
    for f in figures:
        ceiling = f.get("options", {}).get("ceiling_ms")
        note = f"   ceiling {ceiling:.1f} ms ({f['options']['ceiling']})" if ceiling is not None else ""
        lines.append(f"{f['name']:{width}s}  {f['median']:12.4g}  {f['min']:12.4g}  {f['max']:12.4g}  {f['unit']}{note}")
    return "\n".join(lines)
