"""Pooling ops: any memory layout gives the same result; every thread count the same bits."""

import numpy as np
import pytest
from test_layouts_and_threads import (
    LAYOUTS,
    assert_bitwise_equal,
    assert_eight_threads_at_once_equal_serial,
)

import fastconv


def pool_calls():
    """Every pooling op, as (name, function of (x, g, indices)): x (3, 4, 33, 29),
    g shaped like the 3x3/2 pooled output (3, 4, 17, 15) and indices from it."""
    return [
        ("max_pool2d", lambda x, g, i, **kw: fastconv.max_pool2d(
            x, (3, 2), 2, 1, (1, 2), True, True, **kw)),
        ("max_pool2d_backward", lambda x, g, i, **kw: fastconv.max_pool2d_backward(
            g, i, x.shape, **kw)),
        ("argmax_mask", lambda x, g, i, **kw: fastconv.argmax_mask(i, x.shape, **kw)),
        ("max_unpool2d", lambda x, g, i, **kw: fastconv.max_unpool2d(
            g, i, 3, 2, 1, output_size=x.shape[2:], **kw)),
        ("max_unpool2d_backward", lambda x, g, i, **kw: fastconv.max_unpool2d_backward(
            x, i, **kw)),
        ("avg_pool2d", lambda x, g, i, **kw: fastconv.avg_pool2d(x, 3, 2, 1, True, False, **kw)),
        ("avg_pool2d_backward", lambda x, g, i, **kw: fastconv.avg_pool2d_backward(
            g, x.shape, 3, 2, 1, True, False, **kw)),
        ("lp_pool2d", lambda x, g, i, **kw: fastconv.lp_pool2d(x, 1.5, 3, 2, True, **kw)),
        ("lp_pool2d_backward", lambda x, g, i, **kw: fastconv.lp_pool2d_backward(
            g[:, :, :16, :14], x, 1.5, 3, 2, **kw)),
    ]


def inputs(dtype=np.float32):
    rng = np.random.default_rng(11)
    x = rng.integers(-4, 4, (3, 4, 33, 29)).astype(dtype)  # ties: overlapping windows
    _, indices = fastconv.max_pool2d(x, (3, 2), 2, 1, (1, 2), True, True)
    g = rng.standard_normal(indices.shape).astype(dtype)
    return x, g, indices


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layouts_give_the_same_bits_and_stay_unmodified(layout):
    x, g, indices = inputs()
    for name, call in pool_calls():
        expected = call(x, g, indices)
        xs, gs, ids = (LAYOUTS[layout](a) for a in (x, g, indices))
        copies = [a.copy() for a in (xs, gs, ids)]
        assert_bitwise_equal(call(xs, gs, ids), expected)
        for original, copy in zip((xs, gs, ids), copies, strict=True):
            np.testing.assert_array_equal(original, copy, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_two_and_three_threads_give_the_same_bits(dtype):
    x, g, indices = inputs(dtype)
    for _, call in pool_calls():
        serial = call(x, g, indices, num_threads=1)
        assert_bitwise_equal(call(x, g, indices, num_threads=2), serial)
        assert_bitwise_equal(call(x, g, indices, num_threads=3), serial)


def test_eight_python_threads_at_once_equal_serial():
    x, g, indices = inputs()
    calls = pool_calls()
    assert_eight_threads_at_once_equal_serial(
        lambda: [call(x, g, indices) for _, call in calls])
