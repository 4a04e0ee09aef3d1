"""conv2d forward, backward-input and backward-weight: fastconv against PyTorch CPU.

Both run in this process with the same thread count, interleaved, and the medians are
compared: R = torch time / fastconv time (R > 1: fastconv is faster).

    python benchmarks/bench_conv.py [--threads 1 2] [--cases C2 C5] [--scaling C2 C5 C9]
                                    [--peak 234]
"""

import argparse
import math

import numpy as np
import torch
from _timing import interleaved_medians, machine_summary, repeats_for

import fastconv

# Two AMD Zen 4 cores at about 117 GFLOP/s FP32 each; --peak sets another machine's.
PEAK_GFLOPS = 234.0

# name: (N, C, H=W, K, R=S, stride, padding, groups)
CASES = {
    "C1": (8, 3, 224, 64, 7, 2, 3, 1),
    "C2": (8, 64, 56, 64, 3, 1, 1, 1),
    "C3": (8, 64, 56, 256, 1, 1, 0, 1),
    "C4": (8, 256, 56, 512, 1, 2, 0, 1),
    "C5": (8, 128, 28, 128, 3, 1, 1, 1),
    "C6": (8, 256, 14, 256, 3, 1, 1, 1),
    "C7": (8, 512, 7, 512, 3, 1, 1, 1),
    "C8": (1, 64, 224, 64, 3, 1, 1, 1),
    "C9": (2, 256, 56, 256, 3, 1, 1, 1),
    "C10": (32, 3, 32, 32, 5, 1, 2, 1),
    "C11": (1, 64, 56, 64, 3, 1, 1, 1),
    "D1": (8, 64, 56, 64, 3, 1, 1, 64),
}
OPS = ("forward", "backward_input", "backward_weight")


def make_calls(case, threads, algorithm):
    """The (fastconv, torch) callables of each op for one case."""
    n, c, hw, k, r, stride, pad, groups = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, hw, hw), dtype=np.float32)
    w = rng.standard_normal((k, c // groups, r, r), dtype=np.float32)
    y = fastconv.conv2d(x, w, stride=stride, padding=pad, groups=groups)
    gy = rng.standard_normal(y.shape, dtype=np.float32)
    xt, wt, gyt = (torch.from_numpy(a) for a in (x, w, gy))
    params = dict(stride=stride, padding=pad, groups=groups)

    def torch_backward(mask):
        return lambda: torch.ops.aten.convolution_backward(
            gyt, xt, wt, None, [stride] * 2, [pad] * 2, [1, 1], False, [0, 0], groups, mask)

    def ours_backward(**needs):
        flags = dict(needs_input_grad=False, needs_weight_grad=False, needs_bias_grad=False)
        flags.update(needs)
        return lambda: fastconv.conv2d_backward(gy, x, w, **params, **flags,
                                                algorithm=algorithm, num_threads=threads)

    flops = 2.0 * y.size * (c // groups) * r * r
    return flops, {
        "forward": (lambda: fastconv.conv2d(x, w, **params, algorithm=algorithm,
                                            num_threads=threads),
                    lambda: torch.nn.functional.conv2d(xt, wt, stride=stride, padding=pad,
                                                       groups=groups)),
        "backward_input": (ours_backward(needs_input_grad=True),
                           torch_backward([True, False, False])),
        "backward_weight": (ours_backward(needs_weight_grad=True),
                            torch_backward([False, True, False])),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cases", nargs="+", default=list(CASES))
    parser.add_argument("--ops", nargs="+", default=list(OPS), choices=OPS)
    parser.add_argument("--scaling", nargs="*", default=["C2", "C5", "C9"],
                        help="cases whose 1 -> 2 thread speed-up is measured")
    parser.add_argument("--algorithm", default="auto", choices=["auto", "direct", "im2col"])
    parser.add_argument("--peak", type=float, default=PEAK_GFLOPS,
                        help="the machine's peak FP32 GFLOP/s that '%% peak' refers to")
    args = parser.parse_args()

    print(f"machine: {machine_summary()}")
    print(f"fastconv {fastconv.__version__} (algorithm={args.algorithm}), "
          f"torch {torch.__version__}, float32, medians of interleaved runs, "
          f"% peak of {args.peak:g} GFLOP/s")
    print(f"{'case':5} {'op':16} {'thr':>3} {'fastconv ms':>11} {'torch ms':>9} "
          f"{'GFLOP/s':>8} {'% peak':>7} {'R':>6}")
    ratios = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name in args.cases:
            flops, calls = make_calls(CASES[name], threads, args.algorithm)
            for op in args.ops:
                ours, theirs = calls[op]
                repeats = repeats_for(theirs)
                t_ours, t_theirs = interleaved_medians([ours, theirs], repeats)
                gflops = flops / t_ours / 1e9
                ratio = t_theirs / t_ours
                ratios[(threads, name, op)] = (ratio, t_ours)
                print(f"{name:5} {op:16} {threads:3d} {t_ours * 1e3:11.2f} "
                      f"{t_theirs * 1e3:9.2f} {gflops:8.1f} {100 * gflops / args.peak:6.1f}% "
                      f"{ratio:6.2f}", flush=True)
    print()
    for threads in args.threads:
        for ops, label in [(["forward"], "forward"),
                           (["backward_input", "backward_weight"], "backward")]:
            values = [ratios[(threads, n, o)][0] for n in args.cases for o in ops
                      if (threads, n, o) in ratios]
            if values:
                geo = math.exp(sum(map(math.log, values)) / len(values))
                print(f"{threads} thread(s) {label:8}: geometric mean R = {geo:.2f}, "
                      f"lowest R = {min(values):.2f}")
    for name in args.scaling:
        # fastconv on 1 and on 2 threads, interleaved, so machine noise hits both alike.
        flops, one = make_calls(CASES[name], 1, args.algorithm)
        _, two = make_calls(CASES[name], 2, args.algorithm)
        t_one, t_two = interleaved_medians([one["forward"][0], two["forward"][0]], 20)
        print(f"thread scaling 1 -> 2, {name} forward: {t_one * 1e3:.2f} ms -> "
              f"{t_two * 1e3:.2f} ms = {t_one / t_two:.2f}x")


if __name__ == "__main__":
    main()
