"""The Pool Skip block, fused: ``x + conv(max_unpool_e(max_pool_e(x)))`` and its gradients.

Pool Skip (Sun et al., "Beyond Skip Connection: Pooling and Unpooling Design for
Elimination Singularities", AAAI 2025) pools x with an e x e window and stride e, puts
each maximum back at its position in a zero map of x's size, convolves that map with
"same" padding and adds x. The unpooled map holds one non-zero per e x e block and
channel, so the ``pool_skip`` kernels spread each maximum through the filter taps
instead of convolving the zeros: 1/e^2 of the dense work. When e does not divide H or
W, the rows and columns past the last whole block are never selected and the map
still has x's size.
"""

from typing import NamedTuple

import numpy as np

from fastconv._dispatch import KERNELS
from fastconv._params import (
    allocate,
    as_4d_float_array,
    as_float_array,
    as_pair,
    check_grad_output,
    check_same_dtype,
    equal_part,
    num_threads_value,
    pool_geometry,
)
from fastconv._scratch import Scratch
from fastconv.conv import _bias_grad
from fastconv.pool import max_pool2d


class Maxima(NamedTuple):
    """What both passes need: x's maxima and the filters."""

    pooled: np.ndarray    # (N, C, L) values of the maxima, L = OH * OW
    indices: np.ndarray   # (N, C, L) their flat positions in x's (H, W) planes
    weight: np.ndarray    # (K, C, R, S), C-contiguous
    e: tuple              # (e_h, e_w): the pooling window and stride
    pooled_w: int         # OW
    x_shape: tuple        # (N, C, H, W)


def find_maxima(x, weight, bias, e, num_threads):
    """Validate the operands and pool x; return (x, bias, Maxima)."""
    x = as_4d_float_array("x", x)
    weight = as_4d_float_array("weight", weight)
    check_same_dtype(x=x, weight=weight)
    C = x.shape[1]
    K, Cw, R, S = weight.shape
    if (K, Cw) != (C, C):
        raise ValueError(f"weight: expected shape ({C}, {C}, R, S) for x with {C} channels, "
                         f"got shape {weight.shape}")
    if R % 2 == 0 or S % 2 == 0:
        raise ValueError(f"weight: the kernel size must be odd (for 'same' padding), "
                         f"got {(R, S)}")
    if bias is not None:
        bias = as_float_array("bias", bias)
        if bias.shape != (C,):
            raise ValueError(f"bias: expected shape ({C},), got shape {bias.shape}")
        check_same_dtype(x=x, bias=bias)
    e = as_pair("e", e, 1)
    g = pool_geometry(x.shape, e, None, 0)
    N = x.shape[0]
    pooled, indices = max_pool2d(x, e, return_indices=True, num_threads=num_threads)
    L = g["OH"] * g["OW"]
    return x, bias, Maxima(pooled.reshape(N, C, L), indices.reshape(N, C, L), weight, e,
                           g["OW"], x.shape)


def pool_skip(x, weight, bias=None, e=2, *, num_threads=None):
    """Pool Skip: ``x + conv2d(max_unpool2d(max_pool2d(x, e), e), weight, bias, 'same')``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
        float32 or float64; H and W at least e, not necessarily multiples of it.
    weight : ndarray, shape (C, C, R, S)
        Filters of the convolution, R and S odd (3 x 3 in the paper); same dtype as x.
    bias : ndarray, shape (C,), optional
    e : int or (int, int)
        Window and stride of the max pooling (2 or 4 in the paper).
    num_threads : int, optional
        Upper bound on OpenMP threads; None uses OpenMP's current default.

    Returns
    -------
    y : ndarray, shape (N, C, H, W)
        Equal, up to rounding, to the composed max_pool2d, max_unpool2d (with
        ``output_size=(H, W)``) and conv2d (``padding='same'``) plus x.
    """
    threads = num_threads_value(num_threads)
    x, bias, maxima = find_maxima(x, weight, bias, e, threads)
    with Scratch() as scratch:
        return forward(x, bias, maxima, threads, scratch)


#: Bytes of a band of channels-last rows, the forward's per-thread buffer of output
#: rows: small enough to stay in a core's L2 cache beside the filters.
BAND_BYTES = 256 * 1024

#: Bytes of the forward's filters for one chunk of input channels and one block of
#: output channels, which the maxima of a band's rows sweep: a slab that the L1 cache
#: holds much of. At e = 2 on 128 and 256 channels (chunks of 64 channels, 36 KiB in
#: float32), 1.18-1.31x faster than 192 KiB (all the channels); 32 KiB ran 1.08-1.27x.
SLAB_BYTES = 48 * 1024

#: Maxima that a chunk's lists hold per position on average, at least: a chunk of
#: channels leaves 1 / e^2 of its maxima at each position, and the sweep reads and
#: writes a pixel's sums once per list, so short lists cost more than a small slab
#: saves. At e = 4 on 128 and 256 channels, chunks of 4 maxima per position ran
#: 0.90-0.98x against 8, and 8 the same as 16 to within 3 %.
LIST_LENGTH = 8


def _lists(maxima, chunk, dtype, scratch):
    """Return the arguments of the forward kernel's lists of each image's maxima.

    ``list_maxima`` in the kernel lists them by chunk of ``chunk`` channels and by
    position; it takes the block row and column of each position, and the lists'
    bounds, filter offsets and values (from scratch).
    """
    N, C, H, W = maxima.x_shape
    L = maxima.indices.shape[2]
    e_h, e_w = maxima.e
    block_row = np.arange(H, dtype=np.intp) // e_h
    block_col = np.arange(W, dtype=np.intp) // e_w
    bounds = scratch.empty("workspace", (N, -(-C // chunk) * H * W + 1), np.intp)
    offsets = scratch.empty("workspace", (N, C * L), np.int32)
    values = scratch.empty("workspace", (N, C * L), dtype)
    return block_row, block_col, bounds, offsets, values


def _filter_blocks(weight, lanes, num_threads, scratch):
    """Return weight (K, C, R, S) as (ceil(K / lanes), C, R, S, lanes), zero past K.

    The forward kernel's layout: blocks of one vector of output channels.
    """
    K, C, R, S = weight.shape
    blocks = -(-K // lanes)
    if K % lanes:
        padded = scratch.empty("workspace", (blocks * lanes, C, R, S), weight.dtype)
        padded[:K] = weight
        padded[K:] = 0
        weight = padded
    filters = scratch.empty("workspace", (blocks, C, R, S, lanes), weight.dtype)
    # Each block's (lanes, C * R * S) matrix transposed. NumPy would copy a transposed
    # array element by element; the kernel copies it tile by tile, in parallel.
    KERNELS.pool_skip.transpose(weight.reshape(blocks, lanes, C * R * S),
                                filters.reshape(blocks, C * R * S, lanes), num_threads)
    return filters


def forward(x, bias, maxima, num_threads, scratch):
    """Run the fused forward kernel on checked operands, its workspace from scratch."""
    N, C, H, W = x.shape
    y = allocate("output", x.shape, x.dtype)
    if N == 0:
        # Nothing to spread; an empty batch's planes may be too tall for the workspace.
        return y
    R, S = maxima.weight.shape[2:]
    lanes = KERNELS.pool_skip.filter_lanes(x.itemsize)
    e_h, e_w = maxima.e
    chunk = equal_part(C, max(SLAB_BYTES // (R * S * lanes * x.itemsize),
                              LIST_LENGTH * e_h * e_w))
    if C * R * S * lanes > np.iinfo(np.int32).max:
        # The kernel's lists give where a maximum's filters lie in a block as int32.
        raise ValueError(f"weight: shape {maxima.weight.shape} is too large for pool_skip "
                         f"(a block of its filters would hold {C * R * S * lanes} "
                         f"elements, over 2**31 - 1)")
    filters = _filter_blocks(maxima.weight, lanes, num_threads, scratch)
    pixel = filters.shape[0] * lanes
    band = equal_part(H, BAND_BYTES // ((W + S - 1) * pixel * x.itemsize))
    workers = min(num_threads, N * -(-H // band))
    lists = _lists(maxima, chunk, x.dtype, scratch)
    acc = scratch.empty("workspace", (workers, band * (W + S - 1) * pixel), x.dtype)
    KERNELS.pool_skip.forward(x.reshape(N, C, H * W), maxima.indices, maxima.pooled, filters,
                              bias, *lists, acc, y.reshape(N, C, H * W),
                              maxima.pooled_w, chunk, band)
    return y


def pool_skip_backward(grad_output, x, weight, e=2, *, needs_bias_grad=True,
                       num_threads=None):
    """Gradients of ``sum(grad_output * pool_skip(x, weight, bias, e))``.

    Parameters
    ----------
    grad_output : ndarray, shape (N, C, H, W)
    x : ndarray, shape (N, C, H, W)
        The forward call's input (its maxima are found again).
    weight : ndarray, shape (C, C, R, S)
    e : int or (int, int)
    needs_bias_grad : bool
        Compute grad_bias (else it is None).
    num_threads : int, optional

    Returns
    -------
    grad_input : ndarray, shape (N, C, H, W)
        ``grad_output`` (the identity path) plus the gradient through each maximum.
    grad_weight : ndarray, shape (C, C, R, S)
    grad_bias : ndarray, shape (C,) or None
    """
    threads = num_threads_value(num_threads)
    _, _, maxima = find_maxima(x, weight, None, e, threads)
    with Scratch() as scratch:
        return backward(grad_output, maxima, needs_bias_grad, threads, scratch)


def backward(grad_output, maxima, needs_bias_grad, num_threads, scratch):
    """Run the fused backward kernel, its workspace from scratch.

    grad_output is checked against the forward's x.
    """
    grad_y = check_grad_output(grad_output, maxima.x_shape)
    check_same_dtype(x=maxima.pooled, grad_output=grad_y)
    N, C, H, W = grad_y.shape
    K, _, R, S = maxima.weight.shape
    grad_x = allocate("output", grad_y.shape, grad_y.dtype)
    grad_weight = allocate("grad_weight", (K, C, R, S), grad_y.dtype)
    if N == 0 or C == 0:
        # Nothing reaches the filters; an empty batch's planes may be too tall for the
        # workspace.
        grad_weight.fill(0)
    else:
        # The kernel's layouts of the filters and of their gradient (see there), and
        # each worker's copy of one image's gradient, channels last; a worker per
        # channel at most.
        layout = (C, R, S, K)
        workers = min(num_threads, C)
        KERNELS.pool_skip.backward(grad_y.reshape(N, C, H * W), maxima.indices,
                                   maxima.pooled, maxima.weight,
                                   scratch.empty("workspace", layout, grad_y.dtype),
                                   scratch.empty("workspace", layout, grad_y.dtype),
                                   scratch.empty("workspace", (workers, H, W, C),
                                                 grad_y.dtype),
                                   grad_x.reshape(N, C, H * W), grad_weight)
    grad_bias = _bias_grad(grad_y, num_threads) if needs_bias_grad else None
    return grad_x, grad_weight, grad_bias
