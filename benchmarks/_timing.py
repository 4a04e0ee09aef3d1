"""Timing helpers shared by the benchmarks: interleaved runs, medians, machine summary."""

import os
import platform
import statistics
import time


def interleaved_medians(functions, repeats, warmup=2):
    """Median seconds of each function, calling them in turn so noise hits all alike."""
    for _ in range(warmup):
        for f in functions:
            f()
    samples = [[] for _ in functions]
    for _ in range(repeats):
        for f, times in zip(functions, samples, strict=True):
            start = time.perf_counter()
            f()
            times.append(time.perf_counter() - start)
    return [statistics.median(times) for times in samples]


def repeats_for(function, budget_seconds=1.5, least=5, most=40):
    """How many repeats fit the time budget, judged from one call."""
    start = time.perf_counter()
    function()
    once = max(time.perf_counter() - start, 1e-6)
    return max(least, min(most, int(budget_seconds / once)))


def machine_summary():
    """One line naming the CPU and core count."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical cores, {platform.system()}"
