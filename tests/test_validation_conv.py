"""Every bad input gets a clear exception naming the argument, and no input changes."""

import re

import numpy as np
import pytest

import fastconv

X = np.ones((2, 4, 8, 8), np.float32)
W = np.ones((6, 4, 3, 3), np.float32)


def raises(exception, pattern, func, *args, **kwargs):
    """Assert the exception and message, and that no ndarray argument was modified."""
    arrays = [a for a in list(args) + list(kwargs.values()) if isinstance(a, np.ndarray)]
    copies = [a.copy() for a in arrays]
    with pytest.raises(exception, match=pattern):
        func(*args, **kwargs)
    for a, c in zip(arrays, copies, strict=True):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("bad", [[[1.0]], 3.0, np.ones((1, 1, 3, 3), np.int64),
                                 np.ones((1, 1, 3, 3), complex), np.ones((1, 1, 3, 3), bool),
                                 np.ones((1, 1, 3, 3), object), np.ones((1, 1, 3, 3), np.float16)])
def test_non_float_input_is_a_type_error(bad):
    raises(TypeError, r"x: expected float32 or float64 array, got", fastconv.conv2d, bad, W)
    raises(TypeError, r"weight: expected float32 or float64 array", fastconv.conv2d, X, bad)


@pytest.mark.parametrize("shape", [(4, 8, 8), (1, 2, 4, 8, 8), ()])
def test_wrong_ndim(shape):
    raises(ValueError, re.escape(f"x: expected 4-D (N, C, H, W) input, got shape {shape}"),
           fastconv.conv2d, np.ones(shape, np.float32), W)


def test_mismatched_dtypes():
    raises(TypeError, "weight has dtype float64 but x has dtype float32",
           fastconv.conv2d, X, W.astype(np.float64))
    raises(TypeError, "bias has dtype float64 but x has dtype float32",
           fastconv.conv2d, X, W, np.ones(6))
    raises(TypeError, "grad_output has dtype float64 but x has dtype float32",
           fastconv.conv2d_backward, np.ones((2, 6, 6, 6)), X, W)


@pytest.mark.parametrize("name", ["stride", "dilation"])
@pytest.mark.parametrize("value, exception, pattern", [
    (0, ValueError, "must be >= 1, got 0"),
    (-2, ValueError, "must be >= 1, got -2"),
    ((1, 0), ValueError, "must be >= 1, got 0"),
    (1.0, TypeError, "must be an int, got 1.0"),
    (True, TypeError, "must be an int, got True"),
    ((1, 2, 3), ValueError, r"must be an int or a pair \(h, w\), got \(1, 2, 3\)"),
    (2**40, ValueError, "is too large: 1099511627776"),
])
def test_bad_stride_and_dilation(name, value, exception, pattern):
    raises(exception, f"{name} {pattern}", fastconv.conv2d, X, W, **{name: value})


@pytest.mark.parametrize("padding, exception, pattern", [
    (-1, ValueError, "padding must be >= 0, got -1"),
    (((1, -1), (0, 0)), ValueError, "padding must be >= 0, got -1"),
    ("full", ValueError, "padding must be 'valid', 'same', an int or pairs, got 'full'"),
    (2**62, ValueError, "padding is too large: 4611686018427387904"),
    (1.5, TypeError, "padding must be an int, got 1.5"),
])
def test_bad_padding(padding, exception, pattern):
    raises(exception, pattern, fastconv.conv2d, X, W, padding=padding)


def test_same_padding_needs_stride_one():
    raises(ValueError, r"padding='same' is not supported for strided convolutions, got "
           r"stride=\(2, 1\)", fastconv.conv2d, X, W, padding="same", stride=(2, 1))


def test_output_too_small():
    raises(ValueError, r"computed output size \(0\) is too small along the height",
           fastconv.conv2d, np.ones((1, 4, 2, 8), np.float32), W)
    raises(ValueError, r"computed output size \(-2\) is too small along the width",
           fastconv.conv2d, X, W, dilation=(1, 5))


def test_zero_height_or_width():
    raises(ValueError, r"x: expected non-zero height and width, got shape \(1, 4, 0, 8\)",
           fastconv.conv2d, np.ones((1, 4, 0, 8), np.float32), W)


@pytest.mark.parametrize("weight_shape, groups, pattern", [
    ((6, 4, 3, 3), 0, "groups must be >= 1, got 0"),
    ((6, 2, 3, 3), 4, r"Given groups=4, expected weight to be divisible by 4 at dimension 0"),
    ((6, 1, 3, 3), 3, r"Given groups=3, input of size \[2, 4, 8, 8\] has 4 channels, not "
                      r"divisible by 3"),
    ((6, 3, 3, 3), 2, r"Given groups=2, weight of size \[6, 3, 3, 3\], expected "
                      r"input\[2, 4, 8, 8\] to have 6 channels, but got 4 channels instead"),
])
def test_bad_groups(weight_shape, groups, pattern):
    raises(ValueError, pattern, fastconv.conv2d, X, np.ones(weight_shape, np.float32),
           groups=groups)


def test_bad_bias_shape():
    raises(ValueError, r"bias: expected shape \(6,\), got shape \(5,\)",
           fastconv.conv2d, X, W, np.ones(5, np.float32))


@pytest.mark.parametrize("shape", [(2, 6, 6, 5), (1, 6, 6, 6), (3, 6, 6, 6), (2, 5, 6, 6)])
def test_grad_output_shape_mismatch(shape):
    raises(ValueError, re.escape(f"grad_output has shape {shape}, expected (2, 6, 6, 6)"),
           fastconv.conv2d_backward, np.ones(shape, np.float32), X, W)


def test_bad_algorithm_and_num_threads():
    raises(ValueError, r"algorithm must be one of \('auto', 'direct', 'im2col'\), got 'fft'",
           fastconv.conv2d, X, W, algorithm="fft")
    raises(ValueError, "num_threads must be >= 1, got 0", fastconv.conv2d, X, W, num_threads=0)
    raises(TypeError, "num_threads must be an int, got 1.5", fastconv.conv2d, X, W,
           num_threads=1.5)


def test_output_too_large_is_a_value_error():
    # A 1x1 kernel with huge padding: the output would need 2**64 bytes.
    raises(ValueError, "output would be too large", fastconv.conv2d, X,
           np.ones((6, 4, 1, 1), np.float32), padding=2**31 - 1)


def test_transposed_convolution_checks():
    w = np.ones((4, 3, 3, 3), np.float32)
    raises(ValueError, r"output_padding must be smaller than either stride or dilation, got "
           r"output_padding=\(1, 1\)", fastconv.conv_transpose2d, X, w, output_padding=1)
    raises(ValueError, r"weight of size \[5, 3, 3, 3\] expects 5 input channels",
           fastconv.conv_transpose2d, X, np.ones((5, 3, 3, 3), np.float32))
    raises(ValueError, r"computed output size \(-2, -2\) is too small",
           fastconv.conv_transpose2d, X, w, padding=6)
    raises(ValueError, r"grad_output has shape \(2, 3, 9, 9\), expected \(2, 3, 10, 10\)",
           fastconv.conv_transpose2d_backward, np.ones((2, 3, 9, 9), np.float32), X, w)


def test_im2col_checks():
    raises(ValueError, "kernel_size must be >= 1, got 0", fastconv.im2col, X, 0)
    raises(ValueError, r"computed output size \(-1\) is too small", fastconv.im2col, X, 10)
