"""The instruction-set builds of the kernels against the baseline build, in one process.

Every level this CPU supports runs the same call in turn (interleaved, medians, equal
thread counts); R = baseline time / level time (R > 1: the level is faster than the
baseline). The cases are those of bench_conv.py and bench_pool.py.

    python benchmarks/bench_isa.py [--threads 2] [--cases C2:forward P1:max_pool2d ...]
"""

import argparse

import bench_conv
import bench_pool
from _timing import interleaved_medians, machine_summary, repeats_for

import fastconv
from fastconv._dispatch import KERNELS, supported_levels

DEFAULT_CASES = ["C2:forward", "C2:backward_input", "C10:forward", "D1:forward",
                 "D1:backward_weight", "P1:max_pool2d", "P2:max_pool2d", "P3:avg_pool2d",
                 "P1:max_pool2d_backward", "P1:max_unpool2d"]


def fastconv_call(case, op, threads):
    """The fastconv callable of ``op`` on the named case of bench_conv or bench_pool."""
    if case in bench_conv.CASES:
        _, calls = bench_conv.make_calls(bench_conv.CASES[case], threads, "auto")
        return calls[op][0]
    calls, _ = bench_pool.make_calls(bench_pool.CASES[case], threads)
    return calls[op][1]


def on_level(level, function):
    """``function`` run on the kernels of ``level``."""
    def call():
        KERNELS.use(level)
        function()
    return call


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cases", nargs="+", default=DEFAULT_CASES,
                        help="CASE:OP pairs, for example C2:forward or P1:max_pool2d")
    args = parser.parse_args()

    levels = supported_levels()
    chosen = KERNELS.level
    print(f"machine: {machine_summary()}")
    print(f"fastconv {fastconv.__version__}, levels {', '.join(levels)} (import chose "
          f"{chosen}), {args.threads} thread(s), float32, medians of "
          "interleaved runs; every column runs all kernels at its level")
    print(f"{'case':4} {'op':20}" + "".join(f" {level + ' ms':>12}" for level in levels)
          + "".join(f" {'R ' + level:>9}" for level in levels[1:]))
    for item in args.cases:
        case, op = item.split(":")
        function = fastconv_call(case, op, args.threads)
        calls = [on_level(level, function) for level in levels]
        times = interleaved_medians(calls, repeats_for(calls[0], least=11))
        print(f"{case:4} {op:20}" + "".join(f" {t * 1e3:12.2f}" for t in times)
              + "".join(f" {times[0] / t:9.2f}" for t in times[1:]))
    KERNELS.use(chosen)


if __name__ == "__main__":
    main()
