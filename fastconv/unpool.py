"""Max-unpooling and its backward pass, driven by the indices of max pooling.

The wrappers prove every index lies in its output plane before the scatter kernels
(``fastconv._dispatch``) touch any memory.
"""

from fastconv._dispatch import KERNELS
from fastconv._params import (
    allocate,
    as_4d_float_array,
    as_int,
    as_pair,
    checked_indices,
    num_threads_value,
)


def _unpool_output_size(x_shape, kernel_size, stride, padding, output_size):
    """PyTorch's unpooled (H, W): the default, or ``output_size`` checked against it."""
    N, C, H, W = x_shape
    kernel = as_pair("kernel_size", kernel_size, 1)
    strides = kernel if stride is None else as_pair("stride", stride, 1)
    pads = as_pair("padding", padding, 0)
    default = tuple((size - 1) * s - 2 * p + k
                    for size, k, s, p in zip((H, W), kernel, strides, pads, strict=True))
    if output_size is None:
        if min(default) < 1:
            raise ValueError(f"computed output size {default} is too small: input {(H, W)}, "
                             f"kernel_size {kernel}, stride {strides}, padding {pads}")
        return default
    if not isinstance(output_size, (tuple, list)) or len(output_size) not in (2, 4):
        raise ValueError(f"output_size must be (H, W) or (N, C, H, W), got {output_size!r}")
    requested = tuple(as_int("output_size", v, 0) for v in output_size)
    if len(requested) == 4:
        if requested[:2] != (N, C):
            raise ValueError(f"output_size {requested} does not match the batch and channels "
                             f"{(N, C)} of x")
        requested = requested[2:]
    low = tuple(d - s for d, s in zip(default, strides, strict=True))
    high = tuple(d + s for d, s in zip(default, strides, strict=True))
    for size, lo, hi in zip(requested, low, high, strict=True):
        if not lo < size < hi or size < 1:
            raise ValueError(f"invalid output_size {tuple(output_size)}: each of (H, W) must "
                             f"lie strictly between {low} and {high}, and be >= 1")
    return requested


def max_unpool2d(x, indices, kernel_size, stride=None, padding=0, output_size=None, *,
                 num_threads=None):
    """Place each value of ``x`` at its index in a zero map: the inverse of max pooling.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
        Pooled values.
    indices : ndarray of int, shape (N, C, H, W)
        Flat positions ``i * W_out + j`` within each output plane, as returned by
        ``max_pool2d(..., return_indices=True)``.
    kernel_size, stride, padding : int or (int, int)
        Those of the pooling; ``stride=None`` means ``kernel_size``.
    output_size : (int, int) or (int, int, int, int), optional
        The output's (H_out, W_out) (or its full shape); each must lie strictly within
        ``stride`` of the default ``(H - 1) * stride - 2 * padding + kernel_size``.
    num_threads : int, optional

    Returns
    -------
    y : ndarray, shape (N, C, H_out, W_out)
        Zero except at the indices. Where several indices of a plane coincide, the
        last in row-major order of ``x``'s plane wins, for every thread count.

    Raises
    ------
    IndexError
        If an index lies outside ``[0, H_out * W_out)``; nothing is written.
    """
    x = as_4d_float_array("x", x)
    N, C, H, W = x.shape
    if H < 1 or W < 1:
        raise ValueError(f"x: expected non-zero height and width, got shape {x.shape}")
    H_out, W_out = _unpool_output_size(x.shape, kernel_size, stride, padding, output_size)
    threads = num_threads_value(num_threads)
    flat_indices = checked_indices(indices, x.shape, H_out * W_out, threads)
    y = allocate("output", (N, C, H_out, W_out), x.dtype)
    KERNELS.scatter.scatter(x.reshape(N * C, H * W), flat_indices,
                            y.reshape(N * C, H_out * W_out), False, threads)
    return y


def max_unpool2d_backward(grad_output, indices, *, num_threads=None):
    """Gradient of :func:`max_unpool2d` with respect to ``x``: a gather.

    Parameters
    ----------
    grad_output : ndarray, shape (N, C, H_out, W_out)
    indices : ndarray of int, shape (N, C, H, W)
        The indices of the forward call.
    num_threads : int, optional

    Returns
    -------
    grad_input : ndarray, shape (N, C, H, W)
        ``grad_input[n, c, i, j] = grad_output[n, c].flat[indices[n, c, i, j]]``. Where
        indices coincide every one receives the gradient, as in PyTorch.

    Raises
    ------
    IndexError
        If an index lies outside ``[0, H_out * W_out)``.
    """
    grad_y = as_4d_float_array("grad_output", grad_output)
    N, C, H_out, W_out = grad_y.shape
    if H_out < 1 or W_out < 1:
        raise ValueError(f"grad_output: expected non-zero height and width, got shape "
                         f"{grad_y.shape}")
    shape = getattr(indices, "shape", None)
    if shape is None or len(shape) != 4 or tuple(shape[:2]) != (N, C):
        raise ValueError(f"indices: expected shape (N, C, H, W) with (N, C) = {(N, C)}, "
                         f"got {shape if shape is not None else type(indices).__name__}")
    threads = num_threads_value(num_threads)
    flat_indices = checked_indices(indices, shape, H_out * W_out, threads)
    grad_x = allocate("grad_input", shape, grad_y.dtype)
    KERNELS.scatter.gather(grad_y.reshape(N * C, H_out * W_out), flat_indices,
                           grad_x.reshape(N * C, shape[2] * shape[3]), threads)
    return grad_x
