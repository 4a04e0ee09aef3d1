"""``python -m fastconv``: configuration, a self-check, and a timing against PyTorch."""

import sys
import time

import numpy as np

import fastconv
from fastconv.testing import (
    avg_pool2d_reference,
    conv2d_backward_reference,
    conv2d_reference,
    lp_pool2d_reference,
    max_pool2d_reference,
    max_unpool2d_reference,
)

# (x shape, weight shape, stride, padding, dilation, groups)
SELF_CHECK_CASES = [
    ((2, 4, 11, 9), (6, 4, 3, 2), (2, 1), ((1, 0), (2, 1)), (1, 2), 1),
    ((2, 6, 9, 9), (6, 1, 3, 3), 1, "same", 1, 6),
    ((1, 5, 7, 6), (3, 5, 1, 1), 1, 0, 1, 1),
]
TIMING_CASES = {  # name: (N, C, H=W, K, R=S, stride, padding)
    "8x64x56x56 3x3 -> 64": (8, 64, 56, 64, 3, 1, 1),
    "8x128x28x28 3x3 -> 128": (8, 128, 28, 128, 3, 1, 1),
}


def self_check():
    """Compare every algorithm and dtype with the float64 references; return success."""
    rng = np.random.default_rng(0)
    ok = True
    for x_shape, w_shape, stride, padding, dilation, groups in SELF_CHECK_CASES:
        params = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
        expected = conv2d_reference(x, w, **params)
        gy = rng.standard_normal(expected.shape)
        expected_grads = conv2d_backward_reference(gy, x, w, **params)
        for dtype, tol in ((np.float32, 1e-4), (np.float64, 1e-10)):
            for algorithm in ("direct", "im2col"):
                cast = [a.astype(dtype) for a in (x, w, gy)]
                y = fastconv.conv2d(*cast[:2], **params, algorithm=algorithm)
                grads = fastconv.conv2d_backward(cast[2], *cast[:2], **params,
                                                 algorithm=algorithm)
                error = max(np.abs(a - b).max() / max(1.0, np.abs(b).max())
                            for a, b in zip((y, *grads), (expected, *expected_grads), strict=True))
                passed = error < tol
                ok &= passed
                print(f"  {'ok  ' if passed else 'FAIL'} conv2d{w_shape} {dtype.__name__:7} "
                      f"{algorithm:6}  max relative error {error:.1e}")
    return ok


def pool_self_check():
    """Compare the pooling ops of both dtypes with the float64 references; return success."""
    x = np.random.default_rng(1).permutation(np.linspace(-1, 1, 2 * 3 * 11 * 10))
    x = x.reshape(2, 3, 11, 10)
    expected_y, expected_indices = max_pool2d_reference(x, 3, 2, 1, ceil_mode=True)
    ok = True
    for dtype, tol in ((np.float32, 1e-6), (np.float64, 1e-12)):
        xd = x.astype(dtype)
        y, indices = fastconv.max_pool2d(xd, 3, 2, 1, ceil_mode=True, return_indices=True)
        unpooled = fastconv.max_unpool2d(y, indices, 3, 2, 1, output_size=(11, 10))
        checks = [
            ("max_pool2d", y, expected_y, np.array_equal(indices, expected_indices)),
            ("max_unpool2d", unpooled, max_unpool2d_reference(y, indices, (11, 10)), True),
            ("avg_pool2d", fastconv.avg_pool2d(xd, 3, 2, 1, True, False),
             avg_pool2d_reference(x, 3, 2, 1, True, False), True),
            ("lp_pool2d", fastconv.lp_pool2d(xd, 2, (2, 3)), lp_pool2d_reference(x, 2, (2, 3)),
             True),
        ]
        for name, got, expected, same_indices in checks:
            error = np.abs(got - expected).max()
            passed = bool(same_indices and error < tol)
            ok &= passed
            print(f"  {'ok  ' if passed else 'FAIL'} {name:12} {dtype.__name__:7} "
                  f"max error {error:.1e}")
    return ok


def time_against_torch(repeats=15):
    """Median forward times of fastconv and torch, interleaved, on 2 threads each."""
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed: skipping the timing against it")
        return
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    for name, (n, c, hw, k, r, stride, padding) in TIMING_CASES.items():
        x = rng.standard_normal((n, c, hw, hw), dtype=np.float32)
        w = rng.standard_normal((k, c, r, r), dtype=np.float32)
        xt, wt = torch.from_numpy(x), torch.from_numpy(w)
        ours, theirs = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            fastconv.conv2d(x, w, stride=stride, padding=padding, num_threads=2)
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            torch.nn.functional.conv2d(xt, wt, stride=stride, padding=padding)
            theirs.append(time.perf_counter() - start)
        mine, peer = np.median(ours) * 1e3, np.median(theirs) * 1e3
        print(f"  conv2d {name}: fastconv {mine:.2f} ms, torch {peer:.2f} ms, "
              f"torch/fastconv = {peer / mine:.2f}")


def main():
    """Print the configuration, run the self-check, time against PyTorch."""
    fastconv.show_config()
    print("\nself-check against the float64 references:")
    ok = self_check()
    ok &= pool_self_check()
    print("\nconv2d forward, float32, 2 threads, median of interleaved runs:")
    time_against_torch()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
