"""2-D convolution, its gradients, transposed convolution, im2col and col2im.

Each function validates its arguments, normalises them, allocates the outputs and
calls one kernel module of the chosen instruction set (``fastconv._dispatch``):
``conv_direct`` (loops over windows) or ``conv_gemm`` (im2col + GEMM).
"""

import numpy as np

from fastconv._dispatch import KERNELS
from fastconv._params import (
    allocate,
    as_4d_float_array,
    as_float_array,
    as_int,
    check_grad_output,
    check_same_dtype,
    conv_geometry,
    conv_transpose_geometry,
    direct_plan,
    direct_row_pitch,
    gemm_plan,
    num_threads_value,
    window_geometry,
)

ALGORITHMS = ("auto", "direct", "im2col")
# 'auto' runs the direct forward for fewer taps per output (C / groups x R x S) than
# this, or for at most DIRECT_MAX_CHANNELS output channels per group.
DIRECT_MAX_TAPS = 256
DIRECT_MAX_CHANNELS = 128


def _direct_forward_wins(g, itemsize):
    # Measured by benchmarks/bench_conv.py (float32, 2 threads, im2col time / direct
    # time). With one input channel per group (depthwise) each GEMM has one row of
    # filters, and the direct tiles win by 2.6 (D1). A 1x1 kernel copies nothing for
    # the GEMM, which wins by 3x (C3). With one or two output channels per group the
    # narrow tile loads an input vector per multiply-add: C10's input gradient as a
    # forward convolution (32 input, 3 output channels) ran 15% slower than the GEMM.
    # Output rows that fill less than 3/4 of their accumulator rows (direct_row_pitch)
    # waste the rest: C7's rows of 7 pixels in 16 ran at a third of the GEMM's speed.
    # Otherwise the direct tiles win when each im2col column serves few output channels
    # or holds few taps, so copying it costs more than it serves: 1.7 (C10, 3 x 5 x 5
    # taps), 1.3 (C1), 1.1 (C2, C5, C8: 64 or 128 output channels), but 0.98 and 0.87
    # with 256 output channels and 2304 taps (C6, C9).
    if g["C"] // g["groups"] == 1:
        return True
    if g["R"] * g["S"] == 1:
        return False
    channels, pixels = KERNELS.conv_direct.tile_shape(itemsize, g["K"] // g["groups"])
    if channels == 1 or 4 * g["OW"] < 3 * direct_row_pitch(g, pixels)[0]:
        return False
    return (g["C"] // g["groups"] * g["R"] * g["S"] < DIRECT_MAX_TAPS
            or g["K"] // g["groups"] <= DIRECT_MAX_CHANNELS)


def _direct_backward_wins(g, itemsize):
    # Measured likewise: with one input channel per group (depthwise) a GEMM has too
    # little work per call, and the direct loops win.
    return g["C"] // g["groups"] == 1


def _input_grad_as_forward(g):
    """Return the geometry of the input gradient as a forward convolution, or None.

    With stride 1 the input gradient is the convolution of grad_output with the filters
    reversed in both taps and in/out channels swapped (see :func:`_reversed_filters`),
    padded by what the forward's padding leaves of the dilated kernel.
    """
    pad_top = (g["R"] - 1) * g["dilation_h"] - g["pad_top"]
    pad_left = (g["S"] - 1) * g["dilation_w"] - g["pad_left"]
    if g["stride_h"] != 1 or g["stride_w"] != 1 or pad_top < 0 or pad_left < 0:
        return None
    return dict(g, C=g["K"], H=g["OH"], W=g["OW"], K=g["C"], OH=g["H"], OW=g["W"],
                pad_top=pad_top, pad_left=pad_left)


def _reversed_filters(weight, groups):
    """Return the filters of the input gradient as a forward convolution.

    That is (C, K // groups, R, S): each group's filters with in and out channels
    swapped and the taps reversed.
    """
    K, Cg, R, S = weight.shape
    per_group = weight.reshape(groups, K // groups, Cg, R, S)[:, :, :, ::-1, ::-1]
    return np.ascontiguousarray(per_group.transpose(0, 2, 1, 3, 4)).reshape(
        groups * Cg, K // groups, R, S)


def _direct_input_grad_wins(g, itemsize):
    # As a forward convolution (stride 1), the input gradient runs on the forward's
    # register tiles wherever they win there; otherwise as the other backward passes.
    adjoint = _input_grad_as_forward(g)
    if adjoint is None:
        return _direct_backward_wins(g, itemsize)
    return _direct_forward_wins(adjoint, itemsize)


def _choose_algorithm(algorithm, g, itemsize, direct_wins):
    """Resolve ``algorithm`` to ("direct", None) or ("im2col", plan) for geometry g.

    ``direct_wins(g, itemsize)`` says which 'auto' takes when both can run.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if g["C"] == 0 or g["K"] == 0:
        # No channels on one side: nothing to multiply, and the GEMM kernels would form
        # addresses into an empty axis. The direct loops just write the zeros (or bias).
        return "direct", None
    plan = gemm_plan(g, itemsize)
    if algorithm == "im2col":
        if plan is None:
            raise ValueError("algorithm='im2col': the shape is too large for the 32-bit BLAS "
                             "interface; use algorithm='direct'")
        return "im2col", plan
    if algorithm == "direct" or plan is None or direct_wins(g, itemsize):
        return "direct", None
    return "im2col", plan


def _check_bias(bias, out_channels):
    if bias is None:
        return None
    bias = as_float_array("bias", bias)
    if bias.shape != (out_channels,):
        raise ValueError(f"bias: expected shape ({out_channels},), got shape {bias.shape}")
    return bias


def _direct_forward(x, weight, bias, g, y, num_threads):
    """Run the direct forward kernel of geometry g into y (N, K, OH, OW)."""
    tile = KERNELS.conv_direct.tile_shape(x.itemsize, g["K"] // g["groups"])
    plan = direct_plan(g, x.itemsize, tile)
    KERNELS.conv_direct.conv2d_forward(x, weight, bias, y, g, plan["Hq"], plan["Wq"],
                                       plan["row_pitch"], plan["block"], plan["band"],
                                       plan["chunk"], num_threads)


def _forward(x, weight, bias, g, algorithm, num_threads):
    """Run the forward kernel of geometry g: y (N, K, OH, OW)."""
    y = allocate("output", (g["N"], g["K"], g["OH"], g["OW"]), x.dtype)
    algorithm, plan = _choose_algorithm(algorithm, g, x.itemsize, _direct_forward_wins)
    if algorithm == "direct":
        _direct_forward(x, weight, bias, g, y, num_threads)
    else:
        KERNELS.conv_gemm.conv2d_forward(x, weight, bias, y, g, plan["tile"],
                                         plan["images"], num_threads)
    return y


def _input_grad(grad_y, weight, g, algorithm, num_threads):
    """Run the input-gradient kernel of geometry g: grad_x (N, C, H, W)."""
    grad_x = allocate("grad_input", (g["N"], g["C"], g["H"], g["W"]), grad_y.dtype)
    algorithm, plan = _choose_algorithm(algorithm, g, grad_y.itemsize,
                                        _direct_input_grad_wins)
    adjoint = _input_grad_as_forward(g)
    if algorithm == "direct" and adjoint is not None:
        _direct_forward(grad_y, _reversed_filters(weight, g["groups"]), None, adjoint, grad_x,
                        num_threads)
    elif algorithm == "direct":
        KERNELS.conv_direct.conv2d_backward_input(grad_y, weight, grad_x, g, num_threads)
    else:
        KERNELS.conv_gemm.conv2d_backward_input(grad_y, weight, grad_x, g, plan["block"],
                                                plan["backward_tile"], num_threads)
    return grad_x


def _weight_grad(grad_y, x, g, algorithm, num_threads):
    """Run the weight-gradient kernel of geometry g: grad_w (K, C // groups, R, S)."""
    shape = (g["K"], g["C"] // g["groups"], g["R"], g["S"])
    grad_w = allocate("grad_weight", shape, grad_y.dtype)
    algorithm, plan = _choose_algorithm(algorithm, g, grad_y.itemsize, _direct_backward_wins)
    if algorithm == "direct":
        KERNELS.conv_direct.conv2d_backward_weight(grad_y, x, grad_w, g, num_threads)
    else:
        images = plan["weight_grad_images"]
        runs = max(1, -(-g["N"] // images))
        partial = grad_w[None] if runs == 1 else allocate("weight workspace",
                                                           (runs, *shape), grad_y.dtype)
        KERNELS.conv_gemm.conv2d_backward_weight(grad_y, x, partial, g, plan["block"],
                                                 images, plan["backward_tile"], num_threads)
        if runs > 1:
            np.sum(partial, axis=0, out=grad_w)
    return grad_w


def _bias_grad(grad_y, num_threads):
    grad_b = np.empty(grad_y.shape[1], dtype=grad_y.dtype)
    KERNELS.conv_direct.bias_grad(grad_y, grad_b, num_threads)
    return grad_b


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           algorithm="auto", num_threads=None):
    """2-D cross-correlation, as ``torch.nn.functional.conv2d``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
        Input, float32 or float64.
    weight : ndarray, shape (K, C // groups, R, S)
        Filters, same dtype as `x`.
    bias : ndarray, shape (K,), optional
        Added to every output pixel of each channel.
    stride, dilation : int or (int, int)
        Step between windows and between kernel taps, each >= 1.
    padding : int, (int, int), ((int, int), (int, int)), 'valid' or 'same'
        Zero padding: all sides, (height, width), ((top, bottom), (left, right)), none,
        or what keeps the size with stride 1 (an odd total puts the extra pixel at the
        bottom/right, as PyTorch does).
    groups : int
        Number of channel groups; ``groups == C`` is a depthwise convolution.
    algorithm : {'auto', 'direct', 'im2col'}
        Loops over windows, or im2col + GEMM; 'auto' picks by shape.
    num_threads : int, optional
        Upper bound on OpenMP threads; None uses OpenMP's current default.

    Returns
    -------
    y : ndarray, shape (N, K, OH, OW)
        ``OH = (H + top + bottom - dilation_h * (R - 1) - 1) // stride_h + 1``, likewise OW.
    """
    x = as_4d_float_array("x", x)
    weight = as_4d_float_array("weight", weight)
    check_same_dtype(x=x, weight=weight)
    bias = _check_bias(bias, weight.shape[0])
    check_same_dtype(x=x, bias=bias)
    g = conv_geometry(x.shape, weight.shape, stride, padding, dilation, groups)
    return _forward(x, weight, bias, g, algorithm, num_threads_value(num_threads))


def conv2d_backward(grad_output, x, weight, stride=1, padding=0, dilation=1, groups=1, *,
                    needs_input_grad=True, needs_weight_grad=True, needs_bias_grad=True,
                    algorithm="auto", num_threads=None):
    """Gradients of ``sum(grad_output * conv2d(x, weight, bias, ...))``.

    Parameters
    ----------
    grad_output : ndarray, shape (N, K, OH, OW)
        Gradient of the loss with respect to the output of :func:`conv2d`.
    x, weight, stride, padding, dilation, groups
        The arguments of the forward call.
    needs_input_grad, needs_weight_grad, needs_bias_grad : bool
        Which gradients to compute; the others are returned as None.
    algorithm : {'auto', 'direct', 'im2col'}
        As in :func:`conv2d`.
    num_threads : int, optional
        Upper bound on OpenMP threads.

    Returns
    -------
    grad_input : ndarray, shape (N, C, H, W), or None
    grad_weight : ndarray, shape (K, C // groups, R, S), or None
    grad_bias : ndarray, shape (K,), or None
    """
    x = as_4d_float_array("x", x)
    weight = as_4d_float_array("weight", weight)
    check_same_dtype(x=x, weight=weight)
    g = conv_geometry(x.shape, weight.shape, stride, padding, dilation, groups)
    grad_y = check_grad_output(grad_output, (g["N"], g["K"], g["OH"], g["OW"]))
    check_same_dtype(x=x, grad_output=grad_y)
    nt = num_threads_value(num_threads)
    return (_input_grad(grad_y, weight, g, algorithm, nt) if needs_input_grad else None,
            _weight_grad(grad_y, x, g, algorithm, nt) if needs_weight_grad else None,
            _bias_grad(grad_y, nt) if needs_bias_grad else None)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, *, algorithm="auto", num_threads=None):
    """Transposed 2-D convolution (the adjoint of :func:`conv2d`), as PyTorch's.

    Parameters
    ----------
    x : ndarray, shape (N, C_in, H, W)
    weight : ndarray, shape (C_in, C_out // groups, R, S)
    bias : ndarray, shape (C_out,), optional
    stride, padding, dilation : int or (int, int)
        As in the convolution this is the adjoint of; padding is removed from the output.
    output_padding : int or (int, int)
        Extra rows/columns at the bottom/right, smaller than stride or dilation.
    groups : int
        Number of channel groups (note: before `dilation`, as in PyTorch).
    algorithm : {'auto', 'direct', 'im2col'}
    num_threads : int, optional

    Returns
    -------
    y : ndarray, shape (N, C_out, OH, OW)
        ``OH = (H - 1) * stride_h - 2 * padding_h + dilation_h * (R - 1)
        + output_padding_h + 1``, likewise OW.
    """
    x = as_4d_float_array("x", x)
    weight = as_4d_float_array("weight", weight)
    check_same_dtype(x=x, weight=weight)
    g = conv_transpose_geometry(x.shape, weight.shape, stride, padding, output_padding,
                                groups, dilation)
    bias = _check_bias(bias, g["C"])
    check_same_dtype(x=x, bias=bias)
    y = _input_grad(x, weight, g, algorithm, num_threads_value(num_threads))
    if bias is not None:
        y += bias[:, None, None]
    return y


def conv_transpose2d_backward(grad_output, x, weight, stride=1, padding=0, output_padding=0,
                              groups=1, dilation=1, *, needs_input_grad=True,
                              needs_weight_grad=True, needs_bias_grad=True,
                              algorithm="auto", num_threads=None):
    """Gradients of ``sum(grad_output * conv_transpose2d(x, weight, bias, ...))``.

    Parameters
    ----------
    grad_output : ndarray, shape (N, C_out, OH, OW)
    x, weight, stride, padding, output_padding, groups, dilation
        The arguments of the forward call.
    needs_input_grad, needs_weight_grad, needs_bias_grad : bool
        Which gradients to compute; the others are returned as None.
    algorithm : {'auto', 'direct', 'im2col'}
    num_threads : int, optional

    Returns
    -------
    grad_input : ndarray, shape (N, C_in, H, W), or None
    grad_weight : ndarray, shape (C_in, C_out // groups, R, S), or None
    grad_bias : ndarray, shape (C_out,), or None
    """
    x = as_4d_float_array("x", x)
    weight = as_4d_float_array("weight", weight)
    check_same_dtype(x=x, weight=weight)
    g = conv_transpose_geometry(x.shape, weight.shape, stride, padding, output_padding,
                                groups, dilation)
    grad_y = check_grad_output(grad_output, (g["N"], g["C"], g["H"], g["W"]))
    check_same_dtype(x=x, grad_output=grad_y)
    nt = num_threads_value(num_threads)
    # The transposed convolution is conv2d's input gradient, so its input gradient is
    # conv2d itself and its weight gradient conv2d's weight gradient with roles swapped.
    return (_forward(grad_y, weight, None, g, algorithm, nt) if needs_input_grad else None,
            _weight_grad(x, grad_y, g, algorithm, nt) if needs_weight_grad else None,
            _bias_grad(grad_y, nt) if needs_bias_grad else None)


def im2col(x, kernel_size, stride=1, padding=0, dilation=1, *, num_threads=None):
    """Unfold sliding windows into columns, as ``torch.nn.functional.unfold``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    kernel_size, stride, dilation : int or (int, int)
    padding : int, (int, int), ((int, int), (int, int)), 'valid' or 'same'
        As in :func:`conv2d`.
    num_threads : int, optional

    Returns
    -------
    cols : ndarray, shape (N, C * R * S, OH * OW)
        Row ``(c * R + r) * S + s``, column ``oh * OW + ow``.
    """
    x = as_4d_float_array("x", x)
    g = window_geometry(x.shape, kernel_size, stride, padding, dilation)
    shape = (g["N"], g["C"] * g["R"] * g["S"], g["OH"] * g["OW"])
    cols = allocate("cols", shape, x.dtype)
    KERNELS.im2col.im2col(x, cols, g, num_threads_value(num_threads))
    return cols


def col2im(cols, output_size, kernel_size, stride=1, padding=0, dilation=1, *,
           num_threads=None):
    """Fold columns back into images, summing overlaps (the adjoint of :func:`im2col`).

    Parameters
    ----------
    cols : ndarray, shape (N, C * R * S, L)
        ``L`` must equal the number of windows of an ``output_size`` image.
    output_size : (int, int)
        Height and width (H, W) of the image.
    kernel_size, stride, padding, dilation
        As in :func:`im2col`.
    num_threads : int, optional

    Returns
    -------
    x : ndarray, shape (N, C, H, W)
    """
    cols = as_float_array("cols", cols)
    if cols.ndim != 3:
        raise ValueError(f"cols: expected 3-D (N, C * R * S, L) input, got shape {cols.shape}")
    if not isinstance(output_size, (tuple, list)) or len(output_size) != 2:
        raise ValueError(f"output_size must be a pair (H, W), got {output_size!r}")
    H, W = (as_int("output_size", v, 1) for v in output_size)
    N, rows, L = cols.shape
    g = window_geometry((N, 1, H, W), kernel_size, stride, padding, dilation)
    RS = g["R"] * g["S"]
    if rows % RS:
        raise ValueError(f"cols: dimension 1 ({rows}) must be divisible by the kernel size "
                         f"product {RS}")
    if L != g["OH"] * g["OW"]:
        raise ValueError(f"cols: dimension 2 ({L}) must equal the number of windows "
                         f"{g['OH']} x {g['OW']} = {g['OH'] * g['OW']} of output_size {(H, W)}")
    g["C"] = rows // RS
    x = allocate("output", (N, g["C"], H, W), cols.dtype)
    x.fill(0)
    KERNELS.im2col.col2im(cols, x, g, num_threads_value(num_threads))
    return x
