"""Pool Skip, fused against composed: fastconv's pool_skip, fastconv's composed ops, torch.

Three paths compute ``x + conv3x3(max_unpool_e(max_pool_e(x)))`` (and its backward) in
one process with the same thread count, interleaved, medians compared:

- fused: ``fastconv.pool_skip`` / ``pool_skip_backward``;
- composed: ``max_pool2d -> max_unpool2d -> conv2d`` (+ x) in fastconv, and the chain
  of backward calls;
- torch: the same composition of ``torch.nn.functional`` ops, autograd for backward.

``x composed`` = composed time / fused time (the issue asks for at least e^2 / 2);
``R torch`` = torch time / fused time; ``faults`` = page faults per fused call when
it runs back to back alone in a fresh process, as in a training loop (memory fresh
from the system costs one per 4 KiB page it touches). Float32, NCHW.

    python benchmarks/bench_poolskip.py [--threads 2] [--cases S1 S2] [--e 2 4]
"""

import argparse
import multiprocessing
import resource

import numpy as np
import torch
from _timing import interleaved_medians, machine_summary, repeats_for

import fastconv

CASES = {"S1": (8, 64, 56, 56), "S2": (8, 256, 14, 14)}


def composed_pooling(x, e, threads):
    """fastconv's max_pool2d -> max_unpool2d: the unpooled map and the indices."""
    pooled, indices = fastconv.max_pool2d(x, e, return_indices=True, num_threads=threads)
    unpooled = fastconv.max_unpool2d(pooled, indices, e, output_size=x.shape[2:],
                                     num_threads=threads)
    return unpooled, indices


def composed_forward(x, w, b, e, threads):
    """fastconv's unfused forward."""
    unpooled, _ = composed_pooling(x, e, threads)
    return x + fastconv.conv2d(unpooled, w, b, padding=1, num_threads=threads)


def composed_backward(gy, x, w, e, threads):
    """fastconv's unfused backward; it pools again, as the fused backward does."""
    unpooled, indices = composed_pooling(x, e, threads)
    grad_unpooled, grad_w, grad_b = fastconv.conv2d_backward(gy, unpooled, w, padding=1,
                                                             num_threads=threads)
    grad_pooled = fastconv.max_unpool2d_backward(grad_unpooled, indices, num_threads=threads)
    grad_x = gy + fastconv.max_pool2d_backward(grad_pooled, indices, x.shape,
                                               num_threads=threads)
    return grad_x, grad_w, grad_b


def torch_calls(x, w, b, gy, e):
    """torch's composed forward, and forward + backward through autograd."""
    F = torch.nn.functional
    xt, wt, bt, gyt = (torch.from_numpy(a) for a in (x, w, b, gy))
    size = x.shape[2:]

    def forward(xt, wt, bt):
        pooled, indices = F.max_pool2d(xt, e, return_indices=True)
        return xt + F.conv2d(F.max_unpool2d(pooled, indices, e, output_size=size), wt, bt,
                             padding=1)

    def backward():
        xg, wg, bg = (t.detach().requires_grad_() for t in (xt, wt, bt))
        return torch.autograd.grad(forward(xg, wg, bg), (xg, wg, bg), gyt)

    def inference():
        with torch.no_grad():
            return forward(xt, wt, bt)

    return inference, backward


def make_passes(x, w, b, gy, e, threads):
    """``{pass: (fused call, composed call, torch call)}``."""
    torch_forward, torch_backward = torch_calls(x, w, b, gy, e)
    return {
        "forward": (lambda: fastconv.pool_skip(x, w, b, e, num_threads=threads),
                    lambda: composed_forward(x, w, b, e, threads),
                    torch_forward),
        "backward": (lambda: fastconv.pool_skip_backward(gy, x, w, e, num_threads=threads),
                     lambda: composed_backward(gy, x, w, e, threads),
                     torch_backward),
    }


def operands(shape):
    """x, weight, bias and grad_output for a case, the same in every process."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    C = shape[1]
    w = (rng.standard_normal((C, C, 3, 3)) / np.sqrt(9 * C)).astype(np.float32)
    b = rng.standard_normal(C, dtype=np.float32)
    gy = rng.standard_normal(shape, dtype=np.float32)
    return x, w, b, gy


def fused_faults(shape, e, pass_name, threads, calls=10):
    """Minor page faults per fused call, called back to back (run in a fresh process)."""
    x, w, b, gy = operands(shape)
    if pass_name == "forward":
        def function():
            return fastconv.pool_skip(x, w, b, e, num_threads=threads)
    else:
        def function():
            return fastconv.pool_skip_backward(gy, x, w, e, num_threads=threads)
    function()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        function()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[2])
    parser.add_argument("--cases", nargs="+", default=list(CASES))
    parser.add_argument("--e", type=int, nargs="+", default=[2, 4])
    args = parser.parse_args()

    print(f"machine: {machine_summary()}")
    print(f"fastconv {fastconv.__version__}, torch {torch.__version__}, float32 NCHW, "
          f"medians of interleaved runs; torch backward includes its forward")
    print(f"{'case':4} {'shape':>16} {'e':>2} {'pass':8} {'thr':>3} {'fused ms':>9} "
          f"{'composed':>9} {'torch ms':>9} {'x composed':>10} {'e^2/2':>6} {'R torch':>8} "
          f"{'faults':>7}")
    fresh = multiprocessing.get_context("spawn")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name in args.cases:
            shape = CASES[name]
            x, w, b, gy = operands(shape)
            for e in args.e:
                for pass_name, calls in make_passes(x, w, b, gy, e, threads).items():
                    repeats = repeats_for(calls[1], least=9)
                    fused, composed, theirs = interleaved_medians(list(calls), repeats)
                    # A fresh process: this one's allocator has met the other paths.
                    with fresh.Pool(1) as pool:
                        faults = pool.apply(fused_faults, (shape, e, pass_name, threads))
                    print(f"{name:4} {str(shape):>16} {e:2d} {pass_name:8} {threads:3d} "
                          f"{fused * 1e3:9.2f} {composed * 1e3:9.2f} {theirs * 1e3:9.2f} "
                          f"{composed / fused:10.2f} {e * e / 2:6.1f} {theirs / fused:8.2f} "
                          f"{faults:7.0f}", flush=True)


if __name__ == "__main__":
    main()
