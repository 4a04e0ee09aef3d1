"""Max, average and LP pooling, the max-pooling argmax mask, and their backward passes.

Each function validates its arguments, normalises them, allocates the outputs and
calls one kernel module of the chosen instruction set (``fastconv._dispatch``):
``pool_max`` (max pooling), ``pool_avg`` (average and LP pooling) or ``scatter``
(everything driven by max-pool indices).
"""

import numpy as np

from fastconv._dispatch import KERNELS
from fastconv._params import (
    MAX_PARAMETER,
    allocate,
    as_4d_float_array,
    as_int,
    as_shape,
    check_grad_output,
    check_same_dtype,
    check_windows_overlap_input,
    checked_indices,
    num_threads_value,
    pool_geometry,
)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, num_threads=None):
    """2-D max pooling, optionally with the index of each maximum.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
        float32 or float64.
    kernel_size, stride, dilation : int or (int, int)
        ``stride=None`` means ``kernel_size``.
    padding : int or (int, int)
        Implicit -inf padding on both sides, at most half of ``kernel_size``.
    ceil_mode : bool
        Round the output size up, as PyTorch does (a last window that would start in
        the right padding is dropped).
    return_indices : bool
        Also return the indices of the maxima.
    num_threads : int, optional
        OpenMP threads; None means OpenMP's current default.

    Returns
    -------
    y : ndarray, shape (N, C, OH, OW)
        ``OH = floor((H + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1``
        (ceil with ``ceil_mode``), likewise ``OW``.
    indices : ndarray of int64, shape (N, C, OH, OW)
        Only with ``return_indices``: the flat position ``ih * W + iw`` of each maximum
        in its own (n, c) plane. Ties select the first maximum in row-major window
        order; a window holding NaN yields NaN and the position of its last NaN.

    Raises
    ------
    ValueError
        If a dilated window would hold padding only (PyTorch then returns an index
        outside the plane).
    """
    x = as_4d_float_array("x", x)
    g = pool_geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    check_windows_overlap_input(g)
    out_shape = (g["N"], g["C"], g["OH"], g["OW"])
    y = allocate("output", out_shape, x.dtype)
    indices = allocate("indices", out_shape, np.int64) if return_indices else None
    # Positions fit 32 bits with room to spare (see the kernel's notes).
    wide_codes = g["H"] * g["W"] >= 2**30
    KERNELS.pool_max.max_pool2d(x, y, indices, g, wide_codes, num_threads_value(num_threads))
    return (y, indices) if return_indices else y


def _input_shape(input_shape):
    """Check ``input_shape`` is (N, C, H, W) with H, W >= 1; return it as a tuple."""
    shape = as_shape("input_shape", input_shape, 4)
    if shape[2] < 1 or shape[3] < 1:
        raise ValueError(f"input_shape: expected non-zero height and width, got {shape}")
    return shape


def max_pool2d_backward(grad_output, indices, input_shape, *, num_threads=None):
    """Gradient of :func:`max_pool2d` with respect to its input.

    Parameters
    ----------
    grad_output : ndarray, shape (N, C, OH, OW)
        Gradient of the loss with respect to the pooled output.
    indices : ndarray of int, shape (N, C, OH, OW)
        The indices returned by ``max_pool2d(..., return_indices=True)``.
    input_shape : tuple of 4 ints
        The shape (N, C, H, W) of the pooled input.
    num_threads : int, optional

    Returns
    -------
    grad_input : ndarray, shape input_shape
        Each ``grad_output`` element added at its index, in row-major order of the
        pooled plane (overlapping windows sum), so the result is deterministic.

    Raises
    ------
    IndexError
        If an index lies outside ``[0, H * W)``; nothing is computed.
    """
    N, C, H, W = _input_shape(input_shape)
    grad_output = as_4d_float_array("grad_output", grad_output)
    if grad_output.shape[:2] != (N, C):
        raise ValueError(f"grad_output has shape {grad_output.shape}, expected batch and "
                         f"channels {(N, C)} of input_shape {(N, C, H, W)}")
    threads = num_threads_value(num_threads)
    flat_indices = checked_indices(indices, grad_output.shape, H * W, threads)
    grad_input = allocate("grad_input", (N, C, H, W), grad_output.dtype)
    KERNELS.scatter.scatter(grad_output.reshape(flat_indices.shape), flat_indices,
                            grad_input.reshape(N * C, H * W), True, threads)
    return grad_input


def argmax_mask(indices, input_shape, *, num_threads=None):
    """Return the selection matrix of max pooling: a boolean array shaped like its input.

    Parameters
    ----------
    indices : ndarray of int, shape (N, C, OH, OW)
        The indices returned by ``max_pool2d(..., return_indices=True)``.
    input_shape : tuple of 4 ints
        The shape (N, C, H, W) of the pooled input.
    num_threads : int, optional

    Returns
    -------
    mask : ndarray of bool, shape input_shape
        True at every element some window selected.
    """
    N, C, H, W = _input_shape(input_shape)
    if not isinstance(indices, np.ndarray) or indices.ndim != 4 or indices.shape[:2] != (N, C):
        raise ValueError(f"indices: expected shape (N, C, OH, OW) with (N, C) = {(N, C)}, "
                         f"got {getattr(indices, 'shape', type(indices).__name__)}")
    threads = num_threads_value(num_threads)
    flat_indices = checked_indices(indices, indices.shape, H * W, threads)
    mask = allocate("mask", (N, C, H, W), np.bool_)
    KERNELS.scatter.mark(flat_indices, mask.view(np.uint8).reshape(N * C, H * W), threads)
    return mask


def _avg_divisors(size, out, kernel, stride, padding, count_include_pad):
    """PyTorch's average-pooling divisor along one axis, for each output position.

    A window is first clipped to the padded input (so the ceil-mode overhang never
    counts); ``count_include_pad=False`` then also clips it to the input.
    """
    starts = np.arange(out, dtype=np.int64) * stride - padding
    ends = np.minimum(starts + kernel, size + padding)
    if not count_include_pad:
        starts, ends = np.maximum(starts, 0), np.minimum(ends, size)
    return (ends - starts).astype(np.float64)


def _unit_divisors(g):
    """Divisors of 1 for each output row and column (LP pooling's).

    None are made for an empty batch, whose planes no kernel reads and may have more
    rows than memory holds divisors for.
    """
    if g["N"] * g["C"] == 0:
        return np.ones(0), np.ones(0)
    return np.ones(g["OH"]), np.ones(g["OW"])


def _avg_setup(shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
               divisor_override):
    """Geometry and per-row and per-column divisors of an average pooling."""
    g = pool_geometry(shape, kernel_size, stride, padding, 1, ceil_mode)
    if not isinstance(count_include_pad, (bool, np.bool_)):
        raise TypeError(f"count_include_pad must be a bool, got {count_include_pad!r}")
    if divisor_override is not None:
        divisor = as_int("divisor_override", divisor_override, -MAX_PARAMETER)
        if divisor == 0:
            raise ValueError("divisor_override must be non-zero, got 0")
    if g["N"] * g["C"] == 0:
        return (g, *_unit_divisors(g))
    if divisor_override is not None:
        return g, np.full(g["OH"], float(divisor)), np.ones(g["OW"])
    rows = _avg_divisors(g["H"], g["OH"], g["R"], g["stride_h"], g["pad_top"],
                         count_include_pad)
    cols = _avg_divisors(g["W"], g["OW"], g["S"], g["stride_w"], g["pad_left"],
                         count_include_pad)
    return g, rows, cols


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None, *, num_threads=None):
    """2-D average pooling, with PyTorch's output size and divisor rules.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    kernel_size, stride : int or (int, int)
        ``stride=None`` means ``kernel_size``.
    padding : int or (int, int)
        Zero padding on both sides, at most half of ``kernel_size``.
    ceil_mode : bool
        Round the output size up (see :func:`max_pool2d`).
    count_include_pad : bool
        Divide by the window size including padding; otherwise by the number of
        input elements in the window. The ceil-mode overhang never counts.
    divisor_override : int, optional
        A non-zero divisor for every window, overriding both rules.
    num_threads : int, optional

    Returns
    -------
    y : ndarray, shape (N, C, OH, OW)
        Each window's sum (accumulated in float64) divided by its divisor.
    """
    x = as_4d_float_array("x", x)
    g, rows, cols = _avg_setup(x.shape, kernel_size, stride, padding, ceil_mode,
                               count_include_pad, divisor_override)
    y = allocate("output", (g["N"], g["C"], g["OH"], g["OW"]), x.dtype)
    KERNELS.pool_avg.pool2d(x, y, rows, cols, 0.0, g, num_threads_value(num_threads))
    return y


def avg_pool2d_backward(grad_output, input_shape, kernel_size, stride=None, padding=0,
                        ceil_mode=False, count_include_pad=True, divisor_override=None,
                        *, num_threads=None):
    """Gradient of :func:`avg_pool2d` with respect to its input.

    Parameters
    ----------
    grad_output : ndarray, shape (N, C, OH, OW)
    input_shape : tuple of 4 ints
        The shape (N, C, H, W) of the pooled input.
    kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
        The arguments of the forward call.
    num_threads : int, optional

    Returns
    -------
    grad_input : ndarray, shape input_shape
        Every window spreads ``grad_output / divisor`` over its input elements.
    """
    shape = _input_shape(input_shape)
    g, rows, cols = _avg_setup(shape, kernel_size, stride, padding, ceil_mode,
                               count_include_pad, divisor_override)
    grad_y = check_grad_output(grad_output, (g["N"], g["C"], g["OH"], g["OW"]))
    grad_x = allocate("grad_input", shape, grad_y.dtype)
    KERNELS.pool_avg.pool2d_backward(grad_y, None, grad_x, rows, cols, 0.0, g,
                                     num_threads_value(num_threads))
    return grad_x


def _norm_type(norm_type):
    """Check the LP exponent: a real number > 0, or inf."""
    if isinstance(norm_type, (bool, np.bool_)) or not isinstance(
            norm_type, (int, float, np.integer, np.floating)):
        raise TypeError(f"norm_type must be a real number, got {norm_type!r}")
    p = float(norm_type)
    if not p > 0:
        raise ValueError(f"norm_type must be > 0 (or inf), got {norm_type!r}")
    return p


def lp_pool2d(x, norm_type, kernel_size, stride=None, ceil_mode=False, *, num_threads=None):
    """2-D power-average pooling: the p-norm of every window.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    norm_type : float
        The exponent p > 0, or ``inf`` for the maximum of ``|x|``.
    kernel_size, stride : int or (int, int)
        ``stride=None`` means ``kernel_size``. There is no padding.
    ceil_mode : bool
        Round the output size up; a partial last window is reduced over its
        in-bounds elements only.
    num_threads : int, optional

    Returns
    -------
    y : ndarray, shape (N, C, OH, OW)
        ``(sum over the window of |x| ** p) ** (1 / p)``, summed in float64.

    Notes
    -----
    PyTorch computes ``sum(x ** p) ** (1 / p)`` by way of an average pooling. The two
    agree on full windows whenever ``x ** p == |x| ** p`` (even p, or x >= 0); for
    negative x and odd or fractional p PyTorch returns a signed sum or NaN. On a
    partial ceil-mode window PyTorch scales the sum up to the full window size;
    fastconv does not.
    """
    x = as_4d_float_array("x", x)
    p = _norm_type(norm_type)
    g = pool_geometry(x.shape, kernel_size, stride, 0, 1, ceil_mode)
    y = allocate("output", (g["N"], g["C"], g["OH"], g["OW"]), x.dtype)
    KERNELS.pool_avg.pool2d(x, y, *_unit_divisors(g), p, g,
                            num_threads_value(num_threads))
    return y


def lp_pool2d_backward(grad_output, x, norm_type, kernel_size, stride=None, ceil_mode=False,
                       *, num_threads=None):
    """Gradient of :func:`lp_pool2d` with respect to its input.

    Parameters
    ----------
    grad_output : ndarray, shape (N, C, OH, OW)
    x : ndarray, shape (N, C, H, W)
        The input of the forward call.
    norm_type, kernel_size, stride, ceil_mode
        The arguments of the forward call.
    num_threads : int, optional

    Returns
    -------
    grad_input : ndarray, shape (N, C, H, W)
        ``grad_output * sign(x) * |x| ** (p - 1) / y ** (p - 1)`` summed over the
        windows holding each element; 0 where a window's norm ``y`` is 0 (the
        gradient is not defined there) and where x is 0. For ``p = inf`` the
        gradient goes to each window's first largest ``|x|``.
    """
    x = as_4d_float_array("x", x)
    p = _norm_type(norm_type)
    g = pool_geometry(x.shape, kernel_size, stride, 0, 1, ceil_mode)
    grad_y = check_grad_output(grad_output, (g["N"], g["C"], g["OH"], g["OW"]))
    check_same_dtype(grad_output=grad_y, x=x)
    grad_x = allocate("grad_input", x.shape, x.dtype)
    KERNELS.pool_avg.pool2d_backward(grad_y, x, grad_x, *_unit_divisors(g), p, g,
                                     num_threads_value(num_threads))
    return grad_x
