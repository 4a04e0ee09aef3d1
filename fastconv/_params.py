"""Argument checking, normalisation and output-size arithmetic, in Python ints.

Everything a kernel trusts is proved here first: dtypes, shapes, parameter ranges and
sizes. Sizes are computed with Python's unbounded ints, so an absurd parameter is
reported as a ``ValueError`` instead of overflowing into a bogus allocation.
"""

import operator
import sys

import numpy as np

from fastconv._dispatch import KERNELS
from fastconv._kernels._threads import get_max_threads

# Every parameter and dimension must fit comfortably in the kernels' 64-bit index
# arithmetic (products of two of them stay below 2**63).
MAX_PARAMETER = 2**31 - 1
# The BLAS interface takes 32-bit sizes.
MAX_BLAS_DIMENSION = 2**31 - 1


def as_float_array(name, value):
    """Return ``value`` as a C-contiguous native-endian float32/float64 array.

    The input is never modified: a copy is made only when the layout or byte order
    requires one.
    """
    if not isinstance(value, np.ndarray):
        raise TypeError(
            f"{name}: expected float32 or float64 array, got {type(value).__name__}")
    if value.dtype.kind != "f" or value.dtype.itemsize not in (4, 8):
        raise TypeError(f"{name}: expected float32 or float64 array, got dtype {value.dtype}")
    return np.asarray(value, dtype=value.dtype.newbyteorder("="), order="C")


def as_4d_float_array(name, value):
    """:func:`as_float_array` plus the check that the array is (N, C, H, W)."""
    array = as_float_array(name, value)
    if array.ndim != 4:
        raise ValueError(f"{name}: expected 4-D (N, C, H, W) input, got shape {array.shape}")
    return array


def check_same_dtype(**arrays):
    """Raise ``TypeError`` unless every non-None array has the same dtype."""
    named = [(name, a) for name, a in arrays.items() if a is not None]
    first_name, first = named[0]
    for name, array in named[1:]:
        if array.dtype != first.dtype:
            raise TypeError(
                f"{name} has dtype {array.dtype} but {first_name} has dtype {first.dtype}")


def as_int(name, value, minimum):
    """Return ``value`` as a Python int in ``[minimum, MAX_PARAMETER]``."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {value!r}") from None
    if number < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {number}")
    if number > MAX_PARAMETER:
        raise ValueError(f"{name} is too large: {number} (at most {MAX_PARAMETER})")
    return number


def as_pair(name, value, minimum):
    """Normalise an int or an (h, w) pair of ints to a tuple of two ints."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair (h, w), got {value!r}")
        return tuple(as_int(name, v, minimum) for v in value)
    number = as_int(name, value, minimum)
    return number, number


def num_threads_value(num_threads):
    """Resolve ``num_threads``: None is OpenMP's current default; else an int >= 1."""
    if num_threads is None:
        return get_max_threads()
    return as_int("num_threads", num_threads, 1)


def check_size(name, shape, itemsize):
    """Raise ``ValueError`` when an array of ``shape`` could not be addressed."""
    count = 1
    for dim in shape:
        count *= dim
    if count * itemsize > sys.maxsize:
        raise ValueError(f"{name} would be too large: shape {tuple(shape)}")


def allocate(name, shape, dtype):
    """``np.empty(shape, dtype)`` after checking that such an array can be addressed."""
    check_size(name, shape, np.dtype(dtype).itemsize)
    return np.empty(shape, dtype=dtype)


def check_grad_output(grad_output, expected_shape):
    """Return grad_output as a float array after checking it has ``expected_shape``."""
    grad_output = as_4d_float_array("grad_output", grad_output)
    if grad_output.shape != tuple(expected_shape):
        raise ValueError(f"grad_output has shape {grad_output.shape}, "
                         f"expected {tuple(expected_shape)}")
    return grad_output


def conv_padding(padding, kernel, dilation, stride):
    """Normalise convolution padding to ``(top, bottom, left, right)``.

    Accepts an int, an ``(h, w)`` pair, ``((top, bottom), (left, right))``, ``"valid"``
    or ``"same"`` (stride 1 only; an odd total puts the extra pixel bottom/right).
    """
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"padding='same' is not supported for strided convolutions, "
                                 f"got stride={stride}")
            sides = []
            for k, d in zip(kernel, dilation, strict=True):
                total = d * (k - 1)
                sides += [total // 2, total - total // 2]
            return tuple(sides)
        raise ValueError(f"padding must be 'valid', 'same', an int or pairs, got {padding!r}")
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(
            isinstance(p, (tuple, list)) for p in padding):
        (top, bottom), (left, right) = (as_pair("padding", p, 0) for p in padding)
        return top, bottom, left, right
    (ph, pw) = as_pair("padding", padding, 0)
    return ph, ph, pw, pw


def output_length(axis, size, padding, kernel, stride, dilation):
    """``(size + padding - dilation * (kernel - 1) - 1) // stride + 1``, at least 1."""
    length = (size + padding - dilation * (kernel - 1) - 1) // stride + 1
    if length < 1:
        raise ValueError(
            f"computed output size ({length}) is too small along the {axis}: input {size}, "
            f"total padding {padding}, kernel {kernel}, dilation {dilation}, stride {stride}")
    return length


def window_geometry(x_shape, kernel, stride, padding, dilation):
    """Return the sliding-window part of a convolution geometry (see ``_geometry.pxd``)."""
    N, C, H, W = x_shape
    if H < 1 or W < 1:
        raise ValueError(f"x: expected non-zero height and width, got shape {tuple(x_shape)}")
    R, S = as_pair("kernel_size", kernel, 1)
    sh, sw = as_pair("stride", stride, 1)
    dh, dw = as_pair("dilation", dilation, 1)
    top, bottom, left, right = conv_padding(padding, (R, S), (dh, dw), (sh, sw))
    return dict(
        N=N, C=C, H=H, W=W, K=0,
        OH=output_length("height", H, top + bottom, R, sh, dh),
        OW=output_length("width", W, left + right, S, sw, dw),
        R=R, S=S, stride_h=sh, stride_w=sw, pad_top=top, pad_left=left,
        dilation_h=dh, dilation_w=dw, groups=1)


def check_groups(groups, weight_shape, in_channels, out_channels, input_name, input_shape):
    """Check the channel counts of a grouped convolution; return ``groups`` as an int."""
    groups = as_int("groups", groups, 1)
    if out_channels % groups:
        raise ValueError(f"Given groups={groups}, expected weight to be divisible by {groups} "
                         f"at dimension 0, but got weight of size {list(weight_shape)}")
    if in_channels % groups:
        raise ValueError(f"Given groups={groups}, {input_name} of size {list(input_shape)} has "
                         f"{in_channels} channels, not divisible by {groups}")
    return groups


def conv_geometry(x_shape, weight_shape, stride, padding, dilation, groups):
    """Check x (N, C, H, W) against weight (K, C // groups, R, S); return the geometry."""
    K, Cg, R, S = weight_shape
    groups = check_groups(groups, weight_shape, x_shape[1], K, "input", x_shape)
    if Cg * groups != x_shape[1]:
        raise ValueError(f"Given groups={groups}, weight of size {list(weight_shape)}, expected "
                         f"input{list(x_shape)} to have {Cg * groups} channels, but got "
                         f"{x_shape[1]} channels instead")
    geometry = window_geometry(x_shape, (R, S), stride, padding, dilation)
    geometry.update(K=K, groups=groups)
    return geometry


def conv_transpose_geometry(x_shape, weight_shape, stride, padding, output_padding, groups,
                            dilation):
    """Geometry of the convolution whose input gradient is this transposed convolution.

    x (N, C_in, H, W) plays the convolution's output and weight (C_in, C_out // groups,
    R, S) its weight, so ``C = C_out``, ``K = C_in`` and ``(OH, OW) = (H, W)``.
    """
    N, C_in, H, W = x_shape
    K, Cg, R, S = weight_shape
    if K != C_in:
        raise ValueError(f"weight of size {list(weight_shape)} expects {K} input channels, "
                         f"got input of size {list(x_shape)}")
    groups = check_groups(groups, weight_shape, C_in, C_in, "input", x_shape)
    if H < 1 or W < 1:
        raise ValueError(f"x: expected non-zero height and width, got shape {tuple(x_shape)}")
    if R < 1 or S < 1:
        raise ValueError(f"weight: expected a non-empty kernel, got shape {tuple(weight_shape)}")
    sh, sw = as_pair("stride", stride, 1)
    dh, dw = as_pair("dilation", dilation, 1)
    ph, pw = as_pair("padding", padding, 0)
    oph, opw = as_pair("output_padding", output_padding, 0)
    if oph >= max(sh, dh) or opw >= max(sw, dw):
        raise ValueError(f"output_padding must be smaller than either stride or dilation, got "
                         f"output_padding={(oph, opw)}, stride={(sh, sw)}, "
                         f"dilation={(dh, dw)}")
    out_h = (H - 1) * sh - 2 * ph + dh * (R - 1) + oph + 1
    out_w = (W - 1) * sw - 2 * pw + dw * (S - 1) + opw + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(f"computed output size ({out_h}, {out_w}) is too small: input "
                         f"({H}, {W}), padding {(ph, pw)}, kernel {(R, S)}")
    return dict(
        N=N, C=Cg * groups, H=out_h, W=out_w, K=C_in, OH=H, OW=W, R=R, S=S,
        stride_h=sh, stride_w=sw, pad_top=ph, pad_left=pw, dilation_h=dh, dilation_w=dw,
        groups=groups)


# Bytes of im2col columns one thread may hold at once: the column tile is cut to fit,
# which leaves room in a 2 MiB L2 cache for the BLAS's packed panels (1 MiB measured
# best on C1, C2 and C8 of benchmarks/bench_conv.py) and bounds the workspace.
WORKSPACE_BYTES = 2**20
# GEMM columns per forward call below which packing the filters costs more than it
# serves (C7, 7x7 images with 4608-row columns, ran at half PyTorch's speed with 49).
MIN_GEMM_COLUMNS = 256
# The forward's workspace never grows past this to reach MIN_GEMM_COLUMNS.
MAX_WORKSPACE_BYTES = 16 * 2**20
# The backward passes split input channels into at most this many blocks per group...
CHANNEL_BLOCKS = 8
# ...each giving its GEMM at least this many rows (channels * R * S), below which the
# BLAS's packing outweighs the arithmetic (a 1x1 kernel with blocks of 8 ran at a
# third of PyTorch's speed on C3).
MIN_BLOCK_ROWS = 64
# The weight gradient sums runs of images separately (then adds the runs in order)
# when there are fewer than this many (group, channel block) items: with 3 input
# channels (C1, C10) a single item left one core idle.
WEIGHT_GRAD_ITEMS = 8


def equal_part(total, most):
    """Return the size of the fewest equal parts of at most ``most`` that ``total`` splits into.

    The last part may be smaller: 8 at most 5 gives 4 (4 + 4, not 5 + 3), 7 at most 3
    gives 3 (3 + 3 + 1). 1 when ``total`` is 0 or ``most`` below 1.
    """
    if total <= 0:
        return 1
    parts = -(-total // max(1, most))
    return -(-total // parts)


def gemm_plan(g, itemsize):
    """Tile and block sizes for the im2col kernels, or None if BLAS cannot take the shape.

    They depend on the shape alone, never on the thread count, which is what keeps
    the results identical for every thread count. The forward's tile holds at least
    ``MIN_GEMM_COLUMNS`` columns (whole images side by side when an image has fewer),
    so each packing of the filters serves enough arithmetic; the workspace is then the
    larger of ``WORKSPACE_BYTES`` and those columns, and never above ``MAX_WORKSPACE_BYTES``
    unless 16 columns alone are larger.
    """
    N, Cg, Kg = g["N"], g["C"] // g["groups"], g["K"] // g["groups"]
    RS, L = g["R"] * g["S"], g["OH"] * g["OW"]
    if max(L, Cg * RS, Kg, g["H"] * g["W"]) > MAX_BLAS_DIMENSION:
        return None
    block = min(max(1, Cg), max(-(-Cg // CHANNEL_BLOCKS), -(-MIN_BLOCK_ROWS // RS)))

    def columns_within(budget, rows):
        return budget // max(1, rows * itemsize)

    def tile_for(rows):
        return max(min(L, 16), min(L, columns_within(WORKSPACE_BYTES, rows)))

    rows = Cg * RS
    wanted = max(columns_within(WORKSPACE_BYTES, rows), MIN_GEMM_COLUMNS)
    wanted = max(16, min(wanted, columns_within(MAX_WORKSPACE_BYTES, rows + Kg)))
    images = max(1, min(N, wanted // L))
    # As many images in every run as the runs allow: 8 images as 5 + 3 left one
    # core with 5/8 of the work on C7; as 4 + 4 both cores share it evenly.
    images = equal_part(N, images)
    tile = images * L if images > 1 else min(L, wanted)
    runs = max(1, min(N, -(-WEIGHT_GRAD_ITEMS // (g["groups"] * -(-Cg // block)))))
    return dict(tile=tile, images=images, block=block, backward_tile=tile_for(block * RS),
                weight_grad_images=-(-N // runs) if N else 1)


# Bytes of sums one item of the direct forward holds (its output channels over its band
# of rows), and of split input rows it holds at once: together they stay in the L2
# cache. Halving or doubling either changed no case of benchmarks/bench_conv.py by
# more than the machine's noise.
DIRECT_ACCUMULATOR_BYTES = 2**18
DIRECT_SPLIT_BYTES = 2**19


def direct_row_pitch(g, pixels):
    """Return (elements per accumulator row of the direct forward, ``Wq``).

    The row is the shorter of OW rounded up to a multiple of the register tile's
    ``pixels`` and the split input's row, ``Wq``. Padded rows waste what rounding adds;
    rows of ``Wq`` lie end to end, so a vector may span two of them, and waste the
    ``Wq - OW`` columns past each row's outputs.
    """
    extent_w = (g["S"] - 1) * g["dilation_w"] + 1
    Wq = -(-((g["OW"] - 1) * g["stride_w"] + extent_w) // g["stride_w"])
    return min(-(-g["OW"] // pixels) * pixels, Wq), Wq


def direct_plan(g, itemsize, tile):
    """Phase, pitch, block, band and chunk sizes for the direct forward (``conv_direct``).

    ``tile`` is the kernel's register tile, (output channels, pixels). An item computes
    ``block`` output channels (a multiple of the tile's) over a band of ``band`` output
    rows of ``row_pitch`` elements (:func:`direct_row_pitch`): all of a group's channels
    when one of their rows fits in ``DIRECT_ACCUMULATOR_BYTES``, and as many rows as
    fit, so that each split input row serves every output channel; else one row of as
    many channels as fit. Blocks and bands are made equal, like the im2col runs.
    The input rows a band reads are split into stride phases of ``Hq x Wq``, just the
    padded rows and columns its windows reach (no more phases than the window has tap
    offsets, so a stride beyond the window costs nothing), ``chunk`` input channels at
    a time within ``DIRECT_SPLIT_BYTES``.
    """
    Cg, Kg = g["C"] // g["groups"], g["K"] // g["groups"]
    channels, pixels = tile
    row_pitch, Wq = direct_row_pitch(g, pixels)
    tiles = max(1, -(-Kg // channels))
    row_bytes = row_pitch * itemsize
    rows = DIRECT_ACCUMULATOR_BYTES // (tiles * channels * row_bytes)
    if rows >= 1:
        band = equal_part(g["OH"], rows)
    else:
        band = 1
        tiles = equal_part(tiles, DIRECT_ACCUMULATOR_BYTES // (channels * row_bytes))
    extent_h = (g["R"] - 1) * g["dilation_h"] + 1
    extent_w = (g["S"] - 1) * g["dilation_w"] + 1
    Hq = -(-((band - 1) * g["stride_h"] + extent_h) // g["stride_h"])
    phases = min(g["stride_h"], extent_h) * min(g["stride_w"], extent_w)
    chunk = equal_part(Cg, DIRECT_SPLIT_BYTES // (phases * Hq * Wq * itemsize))
    return dict(Hq=Hq, Wq=Wq, row_pitch=row_pitch, block=tiles * channels, band=band,
                chunk=chunk)


def pool_output_length(axis, size, padding, kernel, stride, dilation, ceil_mode):
    """PyTorch's pooling output size along one axis, at least 1.

    ``ceil_mode`` rounds the window count up, but a last window that would start in
    the right padding (at or beyond ``size + padding``) is dropped.
    """
    span = dilation * (kernel - 1) + 1
    length = (size + 2 * padding - span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (length - 1) * stride >= size + padding:
        length -= 1
    if length < 1:
        raise ValueError(
            f"computed output size ({length}) is too small along the {axis}: input {size}, "
            f"padding {padding}, kernel {kernel}, dilation {dilation}, stride {stride}")
    return length


def pool_geometry(x_shape, kernel_size, stride, padding, dilation=1, ceil_mode=False):
    """Check pooling parameters against x (N, C, H, W); return a ``Geometry`` dict.

    ``stride=None`` means the kernel size. As in PyTorch, the padding may be at most
    half the kernel size. ``K`` is the channel count (pooling keeps channels).
    """
    N, C, H, W = x_shape
    if H < 1 or W < 1:
        raise ValueError(f"x: expected non-zero height and width, got shape {tuple(x_shape)}")
    kernel = as_pair("kernel_size", kernel_size, 1)
    strides = kernel if stride is None else as_pair("stride", stride, 1)
    pads = as_pair("padding", padding, 0)
    dilations = as_pair("dilation", dilation, 1)
    if not isinstance(ceil_mode, (bool, np.bool_)):
        raise TypeError(f"ceil_mode must be a bool, got {ceil_mode!r}")
    for k, p in zip(kernel, pads, strict=True):
        if p > k // 2:
            raise ValueError(f"padding should be at most half of kernel_size, got "
                             f"padding={pads}, kernel_size={kernel}")
    OH, OW = (pool_output_length(axis, *args, bool(ceil_mode)) for axis, *args in (
        ("height", H, pads[0], kernel[0], strides[0], dilations[0]),
        ("width", W, pads[1], kernel[1], strides[1], dilations[1])))
    return dict(
        N=N, C=C, H=H, W=W, K=C, OH=OH, OW=OW, R=kernel[0], S=kernel[1],
        stride_h=strides[0], stride_w=strides[1], pad_top=pads[0], pad_left=pads[1],
        dilation_h=dilations[0], dilation_w=dilations[1], groups=C)


def check_windows_overlap_input(g):
    """Raise ``ValueError`` if a dilated window holds padding only.

    PyTorch returns -inf with an index outside the plane for such a window; fastconv
    refuses the geometry instead, so that every index it returns is a real element.
    Only a window starting in the left padding with a dilation larger than the input
    can miss it: its first in-bounds tap is at ``start mod dilation``.
    """
    for axis, size, out, k, s, p, d in (
            ("height", g["H"], g["OH"], g["R"], g["stride_h"], g["pad_top"],
             g["dilation_h"]),
            ("width", g["W"], g["OW"], g["S"], g["stride_w"], g["pad_left"],
             g["dilation_w"])):
        if d <= size:
            continue
        for o in range(min(out, -(-p // s))):
            start = o * s - p
            tap = -(start // d)  # first tap index with start + tap * d >= 0
            if tap >= k or start + tap * d >= size:
                raise ValueError(
                    f"window {o} along the {axis} covers only padding: input {size}, "
                    f"padding {p}, kernel {k}, dilation {d}, stride {s}")


def as_index_array(name, value, shape):
    """Return integer indices as a C-contiguous int64 array of the given shape."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name}: expected an integer array, got {type(value).__name__}")
    if value.dtype.kind not in "iu" or (value.dtype.kind == "u" and value.dtype.itemsize == 8):
        raise TypeError(f"{name}: expected an integer array (int64), got dtype {value.dtype}")
    if value.shape != tuple(shape):
        raise ValueError(f"{name} has shape {value.shape}, expected {tuple(shape)}")
    return np.ascontiguousarray(value, dtype=np.int64)


def as_shape(name, value, length):
    """Return ``value`` as a tuple of ``length`` non-negative ints."""
    if not isinstance(value, (tuple, list)) or len(value) != length:
        raise ValueError(f"{name} must be a sequence of {length} ints, got {value!r}")
    return tuple(as_int(name, v, 0) for v in value)


def checked_indices(indices, shape, plane_size, num_threads):
    """Return indices as (planes, M) int64 after proving every one lies in the plane.

    Raises ``IndexError`` naming the first offending value (row-major order) before
    any kernel writes anything.
    """
    indices = as_index_array("indices", indices, shape)
    flat = indices.reshape(shape[0] * shape[1], shape[2] * shape[3])
    position = np.empty(flat.shape[0], dtype=np.int64)
    KERNELS.scatter.first_invalid(flat, position, plane_size, num_threads)
    bad = np.flatnonzero(position >= 0)
    if bad.size:
        plane = int(bad[0])
        where = np.unravel_index(plane * flat.shape[1] + int(position[plane]), shape)
        raise IndexError(f"indices: invalid max index {int(flat[plane, position[plane]])} "
                         f"at {tuple(int(i) for i in where)} (plane size {plane_size})")
    return flat
