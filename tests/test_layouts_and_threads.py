"""Any memory layout gives the same result; every thread count gives the same bits."""

import threading

import numpy as np
import pytest

import fastconv

ALGORITHMS = ["direct", "im2col"]


def conv_calls(algorithm):
    """Every conv operation, as (name, function of (x, w, gy)) with shared parameters.

    The transposed convolution reads x (3, 4, 33, 29) as its input and w (6, 2, 3, 3)
    reshaped to (4, 3, 3, 3) as its weight (C_in=4, C_out=6, groups=2).
    """
    params = dict(stride=(2, 1), padding=((1, 2), (0, 1)), dilation=(1, 2), groups=2)
    t_params = dict(stride=2, padding=1, output_padding=1, groups=2, dilation=1)
    return [
        ("conv2d", lambda x, w, gy, **kw: fastconv.conv2d(x, w, **params, **kw,
                                                          algorithm=algorithm)),
        ("conv2d_backward", lambda x, w, gy, **kw: fastconv.conv2d_backward(
            gy, x, w, **params, **kw, algorithm=algorithm)),
        ("conv_transpose2d", lambda x, w, gy, **kw: fastconv.conv_transpose2d(
            x, w.reshape(4, 3, 3, 3), **t_params, **kw, algorithm=algorithm)),
        ("conv_transpose2d_backward", lambda x, w, gy, **kw: fastconv.conv_transpose2d_backward(
            fastconv.conv_transpose2d(x, w.reshape(4, 3, 3, 3), **t_params),
            x, w.reshape(4, 3, 3, 3), **t_params, **kw, algorithm=algorithm)),
        ("im2col", lambda x, w, gy, **kw: fastconv.im2col(x, (2, 3), 2, 1, **kw)),
    ]


def inputs(dtype=np.float32):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 4, 33, 29)).astype(dtype)
    w = rng.standard_normal((6, 2, 3, 3)).astype(dtype)
    y = fastconv.conv2d(x, w, stride=(2, 1), padding=((1, 2), (0, 1)), dilation=(1, 2),
                        groups=2)
    gy = rng.standard_normal(y.shape).astype(dtype)
    return x, w, gy


def as_tuple(result):
    return result if isinstance(result, tuple) else (result,)


def assert_bitwise_equal(a, b):
    for u, v in zip(as_tuple(a), as_tuple(b), strict=True):
        assert u.dtype == v.dtype and u.shape == v.shape
        assert u.tobytes() == v.tobytes()


LAYOUTS = {
    "fortran": np.asfortranarray,
    "negative strides": lambda a: np.ascontiguousarray(a[::-1, ::-1])[::-1, ::-1],
    "non-contiguous": lambda a: np.repeat(a, 2, axis=-1)[..., ::2],
    "byte-swapped": lambda a: a.astype(a.dtype.newbyteorder(">")),
    "read-only": lambda a: np.frombuffer(a.tobytes(), a.dtype).reshape(a.shape),
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_layouts_give_the_same_bits_and_stay_unmodified(layout, algorithm):
    x, w, gy = inputs()
    for name, call in conv_calls(algorithm):
        expected = call(x, w, gy)
        xs, ws, gys = (LAYOUTS[layout](a) for a in (x, w, gy))
        copies = [a.copy() for a in (xs, ws, gys)]
        assert_bitwise_equal(call(xs, ws, gys), expected)
        for original, copy in zip((xs, ws, gys), copies, strict=True):
            np.testing.assert_array_equal(original, copy, err_msg=name)


def test_memory_mapped_input(tmp_path):
    x, w, gy = inputs()
    path = tmp_path / "x.npy"
    np.save(path, x)
    mapped = np.load(path, mmap_mode="r")
    assert_bitwise_equal(fastconv.conv2d(mapped, w, padding=1, groups=2),
                         fastconv.conv2d(x, w, padding=1, groups=2))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_one_and_two_threads_give_the_same_bits(dtype, algorithm):
    x, w, gy = inputs(dtype)
    for _, call in conv_calls(algorithm):
        assert_bitwise_equal(call(x, w, gy, num_threads=1), call(x, w, gy, num_threads=2))
        assert_bitwise_equal(call(x, w, gy, num_threads=1), call(x, w, gy, num_threads=3))


def assert_eight_threads_at_once_equal_serial(run):
    """Call ``run()`` (a list of results) from 8 Python threads at once; compare to serial."""
    expected = run()
    results = [None] * 8
    barrier = threading.Barrier(8)

    def worker(i):
        barrier.wait()
        results[i] = run()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got in results:
        for a, b in zip(got, expected, strict=True):
            assert_bitwise_equal(a, b)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_eight_python_threads_at_once_equal_serial(algorithm):
    x, w, gy = inputs()
    calls = conv_calls(algorithm)
    assert_eight_threads_at_once_equal_serial(lambda: [call(x, w, gy) for _, call in calls])


def test_thread_controls():
    previous = fastconv.get_num_threads()
    try:
        fastconv.set_num_threads(1)
        assert fastconv.get_num_threads() == 1
        fastconv.set_num_threads(2)
        assert fastconv.get_num_threads() == 2
    finally:
        fastconv.set_num_threads(previous)
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        fastconv.set_num_threads(0)


def test_threadpoolctl_limits_the_default():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert fastconv.get_num_threads() == 1
