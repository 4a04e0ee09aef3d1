"""Pooling and unpooling: every bad input gets a clear exception naming the argument."""

import re

import numpy as np
import pytest
from test_validation_conv import raises

import fastconv

X = np.ones((2, 3, 8, 8), np.float32)
Y, INDICES = fastconv.max_pool2d(X, 2, return_indices=True)   # (2, 3, 4, 4)

FORWARDS = {
    "max_pool2d": lambda x, **kw: fastconv.max_pool2d(x, **{"kernel_size": 2, **kw}),
    "avg_pool2d": lambda x, **kw: fastconv.avg_pool2d(x, **{"kernel_size": 2, **kw}),
    "lp_pool2d": lambda x, **kw: fastconv.lp_pool2d(x, 2, **{"kernel_size": 2, **kw}),
    "max_unpool2d": lambda x, **kw: fastconv.max_unpool2d(
        x, np.zeros(x.shape, np.int64) if isinstance(x, np.ndarray) else INDICES,
        **{"kernel_size": 2, **kw}),
}


@pytest.mark.parametrize("op", FORWARDS)
@pytest.mark.parametrize("bad", [[[1.0]], 2.0, np.ones((1, 1, 4, 4), np.int32),
                                 np.ones((1, 1, 4, 4), bool), np.ones((1, 1, 4, 4), complex)])
def test_non_float_input_is_a_type_error(op, bad):
    raises(TypeError, "x: expected float32 or float64 array, got", FORWARDS[op], bad)


@pytest.mark.parametrize("op", FORWARDS)
@pytest.mark.parametrize("shape", [(3, 8, 8), (1, 1, 1, 8, 8), ()])
def test_wrong_ndim(op, shape):
    raises(ValueError, re.escape(f"x: expected 4-D (N, C, H, W) input, got shape {shape}"),
           FORWARDS[op], np.ones(shape, np.float32))


@pytest.mark.parametrize("op", FORWARDS)
@pytest.mark.parametrize("name", ["kernel_size", "stride"])
@pytest.mark.parametrize("value, exception, pattern", [
    (0, ValueError, "must be >= 1, got 0"), (-1, ValueError, "must be >= 1, got -1"),
    ((2, 0), ValueError, "must be >= 1, got 0"), (2.0, TypeError, "must be an int, got 2.0"),
    (True, TypeError, "must be an int, got True"),
    ((1, 2, 3), ValueError, "must be an int or a pair"),
    (2**40, ValueError, "is too large: 1099511627776")])
def test_bad_kernel_and_stride(op, name, value, exception, pattern):
    raises(exception, f"{name} {pattern}", FORWARDS[op], X, **{name: value})


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
def test_padding_over_half_the_kernel(op):
    raises(ValueError, re.escape("padding should be at most half of kernel_size, got "
                                 "padding=(2, 2), kernel_size=(3, 3)"),
           FORWARDS[op], X, kernel_size=3, padding=2)
    raises(ValueError, "padding must be >= 0, got -1", FORWARDS[op], X, padding=-1)
    raises(ValueError, "padding is too large", FORWARDS[op], X, kernel_size=3, padding=2**62)


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d", "lp_pool2d"])
def test_output_size_below_one(op):
    raises(ValueError, r"computed output size \(0\) is too small along the height",
           FORWARDS[op], np.ones((1, 1, 2, 8), np.float32), kernel_size=3)


def test_dilated_window_covering_only_padding_is_refused():
    # PyTorch returns -inf with index 6 on this 2x2 plane.
    raises(ValueError, "window 0 along the height covers only padding",
           fastconv.max_pool2d, np.ones((1, 1, 2, 2)), 2, 1, 1, dilation=3)
    raises(ValueError, "dilation is too large", fastconv.max_pool2d, X, 2, dilation=2**40)


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d", "lp_pool2d"])
def test_zero_height_is_refused(op):
    raises(ValueError, "x: expected non-zero height and width", FORWARDS[op],
           np.ones((1, 1, 0, 4), np.float32))


def test_non_bool_flags():
    raises(TypeError, "ceil_mode must be a bool, got 1", fastconv.max_pool2d, X, 2, ceil_mode=1)
    raises(TypeError, "count_include_pad must be a bool, got 'yes'", fastconv.avg_pool2d, X, 2,
           count_include_pad="yes")


def test_bad_divisor_override():
    raises(ValueError, "divisor_override must be non-zero, got 0", fastconv.avg_pool2d, X, 2,
           divisor_override=0)
    raises(TypeError, "divisor_override must be an int, got 1.5", fastconv.avg_pool2d, X, 2,
           divisor_override=1.5)


@pytest.mark.parametrize("norm_type, exception, pattern", [
    (0, ValueError, "norm_type must be > 0 .or inf., got 0"),
    (-2.0, ValueError, "norm_type must be > 0 .or inf., got -2.0"),
    (float("nan"), ValueError, "norm_type must be > 0 .or inf., got nan"),
    (True, TypeError, "norm_type must be a real number, got True"),
    ("2", TypeError, "norm_type must be a real number, got '2'")])
def test_bad_norm_type(norm_type, exception, pattern):
    raises(exception, pattern, fastconv.lp_pool2d, X, norm_type, 2)
    raises(exception, pattern, fastconv.lp_pool2d_backward, np.ones((2, 3, 4, 4), np.float32),
           X, norm_type, 2)


@pytest.mark.parametrize("shape", [(1, 3, 4, 4), (2, 2, 4, 4), (2, 3, 4, 5), (2, 3, 3, 4)])
def test_grad_output_shape_mismatch(shape):
    gy = np.ones(shape, np.float32)
    expected = re.escape(f"grad_output has shape {shape}, expected (2, 3, 4, 4)")
    raises(ValueError, expected, fastconv.avg_pool2d_backward, gy, X.shape, 2)
    raises(ValueError, expected, fastconv.lp_pool2d_backward, gy, X, 2, 2)


@pytest.mark.parametrize("shape", [(1, 3, 4, 4), (2, 2, 4, 4), (0, 3, 4, 4)])
def test_max_pool2d_backward_batch_and_channel_mismatch(shape):
    raises(ValueError, re.escape(f"grad_output has shape {shape}, expected batch and channels"),
           fastconv.max_pool2d_backward, np.ones(shape, np.float32), INDICES, X.shape)


@pytest.mark.parametrize("indices_shape", [(2, 3, 4, 3), (1, 3, 4, 4), (0, 3, 4, 4)])
def test_indices_shape_mismatch(indices_shape):
    indices = np.zeros(indices_shape, np.int64)
    pattern = re.escape(f"indices has shape {indices_shape}, expected (2, 3, 4, 4)")
    raises(ValueError, pattern, fastconv.max_pool2d_backward, Y, indices, X.shape)
    raises(ValueError, pattern, fastconv.max_unpool2d, Y, indices, 2)


@pytest.mark.parametrize("indices", [INDICES.astype(np.float64), INDICES.astype(bool),
                                     INDICES.astype(np.uint64), INDICES.tolist()])
def test_non_integer_indices_are_a_type_error(indices):
    raises(TypeError, "indices: expected an integer array", fastconv.max_unpool2d, Y, indices, 2)
    raises(TypeError, "indices: expected an integer array", fastconv.max_pool2d_backward, Y,
           indices, X.shape)


@pytest.mark.parametrize("input_shape, pattern", [
    ((2, 3, 8), "input_shape must be a sequence of 4 ints"),
    ((2, 3, 8, -8), "input_shape must be >= 0, got -8"),
    ((2, 3, 0, 8), "input_shape: expected non-zero height and width"),
    ((2, 3, 8, 2**40), "input_shape is too large")])
def test_bad_input_shape(input_shape, pattern):
    raises(ValueError, pattern, fastconv.max_pool2d_backward, Y, INDICES, input_shape)
    raises(ValueError, pattern, fastconv.argmax_mask, INDICES, input_shape)
    raises(ValueError, pattern, fastconv.avg_pool2d_backward, Y, input_shape, 2)


@pytest.mark.parametrize("output_size, pattern", [
    ((8,), r"output_size must be \(H, W\) or \(N, C, H, W\)"),
    ((8, 8, 8), r"output_size must be \(H, W\) or \(N, C, H, W\)"),
    ((-1, 8), "output_size must be >= 0, got -1"),
    ((10, 8), re.escape("invalid output_size (10, 8)")),
    ((3, 3, 8, 8), re.escape("output_size (3, 3, 8, 8) does not match"))])
def test_bad_unpool_output_size(output_size, pattern):
    raises(ValueError, pattern, fastconv.max_unpool2d, Y, INDICES, 2, output_size=output_size)


def test_unpool_default_size_below_one():
    x = np.ones((1, 1, 1, 1))
    raises(ValueError, "computed output size", fastconv.max_unpool2d, x,
           np.zeros((1, 1, 1, 1), np.int64), 1, 1, padding=1)


def test_unpool_backward_mismatched_indices():
    raises(ValueError, r"indices: expected shape \(N, C, H, W\) with \(N, C\) = \(2, 3\)",
           fastconv.max_unpool2d_backward, X, np.zeros((2, 4, 4, 4), np.int64))
