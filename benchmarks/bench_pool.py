"""Pooling and unpooling: fastconv against PyTorch CPU, NCHW float32.

Both run in this process with the same thread count, interleaved, and the medians are
compared: R = torch time / fastconv time (R > 1: fastconv is faster). GB/s counts the
bytes each op must read and write once (inputs, outputs, indices); % bw relates it to
the nominal BANDWIDTH_GBS. The machine's bandwidth varies with its load, so a copy of
the case's input (torch's clone, same threads) runs interleaved with the two: "copy"
is its GB/s and % copy the op's GB/s relative to it.

    python benchmarks/bench_pool.py [--threads 1 2] [--cases P1 P2 P3]
"""

import argparse

import numpy as np
import torch
from _timing import interleaved_medians, machine_summary, repeats_for

import fastconv

BANDWIDTH_GBS = 30.0  # two cores (ARCHITECTURE.md)

# name: (op, (N, C, H, W), kernel, stride, padding)
CASES = {
    "P1": ("max", (8, 64, 112, 112), 3, 2, 1),
    "P2": ("max", (8, 256, 56, 56), 2, 2, 0),
    "P3": ("avg", (8, 64, 112, 112), 3, 2, 1),
}


def make_calls(case, threads):
    """``{op name: (bytes moved, fastconv call, torch call)}`` for one case, and the
    bytes moved by the copy of its input and the call that copies it."""
    kind, shape, k, s, p = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    xt = torch.from_numpy(x)
    copy = (2 * x.nbytes, xt.clone)
    F = torch.nn.functional
    if kind == "avg":
        y = fastconv.avg_pool2d(x, k, s, p)
        return {"avg_pool2d": (x.nbytes + y.nbytes,
                               lambda: fastconv.avg_pool2d(x, k, s, p, num_threads=threads),
                               lambda: F.avg_pool2d(xt, k, s, p))}, copy
    y, indices = fastconv.max_pool2d(x, k, s, p, return_indices=True)
    gy = rng.standard_normal(y.shape, dtype=np.float32)
    yt, it, gyt = torch.from_numpy(y), torch.from_numpy(indices), torch.from_numpy(gy)
    size = shape[2:]
    return {
        "max_pool2d": (
            x.nbytes + y.nbytes + indices.nbytes,
            lambda: fastconv.max_pool2d(x, k, s, p, return_indices=True, num_threads=threads),
            lambda: F.max_pool2d(xt, k, s, p, return_indices=True)),
        "max_pool2d_backward": (
            gy.nbytes + indices.nbytes + x.nbytes,
            lambda: fastconv.max_pool2d_backward(gy, indices, shape, num_threads=threads),
            lambda: torch.ops.aten.max_pool2d_with_indices_backward(
                gyt, xt, [k, k], [s, s], [p, p], [1, 1], False, it)),
        "max_unpool2d": (
            y.nbytes + indices.nbytes + x.nbytes,
            lambda: fastconv.max_unpool2d(y, indices, k, s, p, output_size=size,
                                          num_threads=threads),
            lambda: F.max_unpool2d(yt, it, k, s, p, output_size=size)),
    }, copy


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cases", nargs="+", default=list(CASES))
    args = parser.parse_args()

    print(f"machine: {machine_summary()}")
    print(f"fastconv {fastconv.__version__}, torch {torch.__version__}, float32 NCHW, "
          f"medians of interleaved runs")
    print(f"{'case':4} {'op':20} {'thr':>3} {'fastconv ms':>11} {'torch ms':>9} "
          f"{'GB/s':>6} {'% bw':>6} {'copy':>6} {'% copy':>6} {'R':>6}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name in args.cases:
            calls, (copy_bytes, copy) = make_calls(CASES[name], threads)
            for op, (nbytes, ours, theirs) in calls.items():
                repeats = repeats_for(theirs, least=11)
                t_ours, t_theirs, t_copy = interleaved_medians([ours, theirs, copy], repeats)
                gbs, copy_gbs = nbytes / t_ours / 1e9, copy_bytes / t_copy / 1e9
                print(f"{name:4} {op:20} {threads:3d} {t_ours * 1e3:11.2f} "
                      f"{t_theirs * 1e3:9.2f} {gbs:6.1f} {100 * gbs / BANDWIDTH_GBS:5.0f}% "
                      f"{copy_gbs:6.1f} {100 * gbs / copy_gbs:5.0f}% {t_theirs / t_ours:6.2f}",
                      flush=True)


if __name__ == "__main__":
    main()
