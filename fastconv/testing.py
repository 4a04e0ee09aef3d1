"""Naive float64 reference implementations and a numerical gradient check.

The references follow the definitions directly (a sum over kernel taps of shifted,
strided views of the zero-padded input) and share no code with fastconv's kernels, so
users can check fastconv, and their own layers, against them. They are slow: use small
arrays.
"""

import numpy as np

from fastconv._params import as_pair, conv_padding


def _taps(x_padded, r, s, out_h, out_w, stride, dilation):
    """View of the padded input seen by kernel tap (r, s) at every output pixel."""
    (sh, sw), (dh, dw) = stride, dilation
    return x_padded[:, :, r * dh: r * dh + sh * (out_h - 1) + 1: sh,
                    s * dw: s * dw + sw * (out_w - 1) + 1: sw]


def _padded_geometry(x_shape, kernel, stride, padding, dilation):
    R, S = as_pair("kernel_size", kernel, 1)
    stride = as_pair("stride", stride, 1)
    dilation = as_pair("dilation", dilation, 1)
    top, bottom, left, right = conv_padding(padding, (R, S), dilation, stride)
    padded_h = x_shape[2] + top + bottom
    padded_w = x_shape[3] + left + right
    # The number of window positions whose last tap still lies inside the padded image.
    out_h = (padded_h - dilation[0] * (R - 1) - 1) // stride[0] + 1
    out_w = (padded_w - dilation[1] * (S - 1) - 1) // stride[1] + 1
    return (R, S), stride, dilation, ((top, bottom), (left, right)), (out_h, out_w)


def _padded_operands(x, weight, stride, padding, dilation):
    """float64 copies, x zero-padded, and the tap geometry of a convolution."""
    x = np.asarray(x, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    _, stride, dilation, pads, out_size = _padded_geometry(
        x.shape, weight.shape[2:], stride, padding, dilation)
    return np.pad(x, ((0, 0), (0, 0)) + pads), weight, stride, dilation, pads, out_size


def conv2d_reference(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Compute the reference of :func:`fastconv.conv2d`, in float64.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)
    weight : array_like, shape (K, C // groups, R, S)
    bias : array_like, shape (K,), optional
    stride, padding, dilation, groups
        As in :func:`fastconv.conv2d`.

    Returns
    -------
    ndarray, shape (N, K, OH, OW), float64
    """
    xp, weight, stride, dilation, _, (oh, ow) = _padded_operands(x, weight, stride, padding,
                                                               dilation)
    K, Cg, R, S = weight.shape
    Kg = K // groups
    y = np.zeros((xp.shape[0], K, oh, ow))
    for grp in range(groups):
        for r in range(R):
            for s in range(S):
                view = _taps(xp[:, grp * Cg:(grp + 1) * Cg], r, s, oh, ow, stride, dilation)
                y[:, grp * Kg:(grp + 1) * Kg] += np.einsum(
                    "nchw,kc->nkhw", view, weight[grp * Kg:(grp + 1) * Kg, :, r, s])
    if bias is not None:
        y += np.asarray(bias, dtype=np.float64)[:, None, None]
    return y


def conv2d_backward_reference(grad_output, x, weight, stride=1, padding=0, dilation=1,
                              groups=1):
    """Compute the reference of :func:`fastconv.conv2d_backward`, in float64.

    Returns
    -------
    grad_input, grad_weight, grad_bias : ndarray
        Shapes of x, weight and (K,).
    """
    gy = np.asarray(grad_output, dtype=np.float64)
    xp, weight, stride, dilation, pads, (oh, ow) = _padded_operands(x, weight, stride, padding,
                                                                  dilation)
    K, Cg, R, S = weight.shape
    gxp = np.zeros_like(xp)
    gw = np.zeros_like(weight)
    Kg = K // groups
    for grp in range(groups):
        cs, ks = slice(grp * Cg, (grp + 1) * Cg), slice(grp * Kg, (grp + 1) * Kg)
        for r in range(R):
            for s in range(S):
                _taps(gxp[:, cs], r, s, oh, ow, stride, dilation)[...] += np.einsum(
                    "nkhw,kc->nchw", gy[:, ks], weight[ks, :, r, s])
                gw[ks, :, r, s] = np.einsum(
                    "nkhw,nchw->kc", gy[:, ks], _taps(xp[:, cs], r, s, oh, ow, stride,
                                                     dilation))
    (top, bottom), (left, right) = pads
    gx = gxp[:, :, top:xp.shape[2] - bottom, left:xp.shape[3] - right]
    return gx, gw, gy.sum(axis=(0, 2, 3))


def conv_transpose2d_reference(x, weight, bias=None, stride=1, padding=0, output_padding=0,
                               groups=1, dilation=1):
    """Compute the reference of :func:`fastconv.conv_transpose2d`, in float64.

    Every input pixel adds ``x[n, ci, i, j] * weight[ci, co]`` into the output window at
    ``(i * stride - padding, j * stride - padding)``, taps ``dilation`` apart.

    Returns
    -------
    ndarray, shape (N, C_out, OH, OW), float64
    """
    x = np.asarray(x, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    N, C_in, H, W = x.shape
    _, Cog, R, S = weight.shape
    (sh, sw), (dh, dw) = as_pair("stride", stride, 1), as_pair("dilation", dilation, 1)
    (ph, pw) = as_pair("padding", padding, 0)
    (oph, opw) = as_pair("output_padding", output_padding, 0)
    full = np.zeros((N, Cog * groups, (H - 1) * sh + dh * (R - 1) + 1 + oph,
                     (W - 1) * sw + dw * (S - 1) + 1 + opw))
    Cig = C_in // groups
    for grp in range(groups):
        cis, cos = slice(grp * Cig, (grp + 1) * Cig), slice(grp * Cog, (grp + 1) * Cog)
        for r in range(R):
            for s in range(S):
                full[:, cos, r * dh: r * dh + sh * (H - 1) + 1: sh,
                     s * dw: s * dw + sw * (W - 1) + 1: sw] += np.einsum(
                    "nchw,ck->nkhw", x[:, cis], weight[cis, :, r, s])
    y = full[:, :, ph:full.shape[2] - ph, pw:full.shape[3] - pw]
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)[:, None, None]
    return y


def im2col_reference(x, kernel_size, stride=1, padding=0, dilation=1):
    """Compute the reference of :func:`fastconv.im2col` (``torch.nn.functional.unfold``), float64.

    Returns
    -------
    ndarray, shape (N, C * R * S, OH * OW), float64
    """
    x = np.asarray(x, dtype=np.float64)
    (R, S), stride, dilation, pads, (oh, ow) = _padded_geometry(
        x.shape, kernel_size, stride, padding, dilation)
    xp = np.pad(x, ((0, 0), (0, 0)) + pads)
    N, C = x.shape[:2]
    cols = np.empty((N, C, R, S, oh * ow))
    for r in range(R):
        for s in range(S):
            cols[:, :, r, s] = _taps(xp, r, s, oh, ow, stride, dilation).reshape(N, C, -1)
    return cols.reshape(N, C * R * S, oh * ow)


def col2im_reference(cols, output_size, kernel_size, stride=1, padding=0, dilation=1):
    """Compute the reference of :func:`fastconv.col2im` (``torch.nn.functional.fold``), float64.

    Returns
    -------
    ndarray, shape (N, C, H, W), float64
    """
    cols = np.asarray(cols, dtype=np.float64)
    N, rows, _ = cols.shape
    H, W = output_size
    (R, S), stride, dilation, pads, (oh, ow) = _padded_geometry(
        (N, 1, H, W), kernel_size, stride, padding, dilation)
    C = rows // (R * S)
    xp = np.zeros((N, C, H + sum(pads[0]), W + sum(pads[1])))
    blocks = cols.reshape(N, C, R, S, oh, ow)
    for r in range(R):
        for s in range(S):
            _taps(xp, r, s, oh, ow, stride, dilation)[...] += blocks[:, :, r, s]
    (top, bottom), (left, right) = pads
    return xp[:, :, top:xp.shape[2] - bottom, left:xp.shape[3] - right]


def _pool_windows(size, kernel, stride, padding, dilation, ceil_mode):
    """``(start, in-bounds positions)`` of every pooling window along one axis.

    The count follows PyTorch: rounded up in ``ceil_mode``, then a last window that
    would start in the right padding is dropped.
    """
    span = dilation * (kernel - 1) + 1
    extra = stride - 1 if ceil_mode else 0
    count = (size + 2 * padding - span + extra) // stride + 1
    if ceil_mode and (count - 1) * stride >= size + padding:
        count -= 1
    windows = []
    for o in range(count):
        start = o * stride - padding
        taps = (start + t * dilation for t in range(kernel))
        windows.append((start, [i for i in taps if 0 <= i < size]))
    return windows


def _pool_reference(x, kernel_size, stride, padding, dilation, ceil_mode, reduce):
    """``reduce(values, row_window, col_window)`` for every window of every plane of x.

    Returns the float64 results shaped (N, C, OH, OW) and the windows' in-bounds flat
    positions ``i * W + j`` in the same shape, as lists.
    """
    x = np.asarray(x, dtype=np.float64)
    kernel = as_pair("kernel_size", kernel_size, 1)
    stride = kernel if stride is None else as_pair("stride", stride, 1)
    padding = as_pair("padding", padding, 0)
    dilation = as_pair("dilation", dilation, 1)
    N, C, H, W = x.shape
    row_windows = _pool_windows(H, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    col_windows = _pool_windows(W, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    y = np.zeros((N, C, len(row_windows), len(col_windows)))
    for n, c in np.ndindex(N, C):
        for oh, (row_start, rows) in enumerate(row_windows):
            for ow, (col_start, cols) in enumerate(col_windows):
                values = [x[n, c, i, j] for i in rows for j in cols]
                positions = [i * W + j for i in rows for j in cols]
                y[n, c, oh, ow] = reduce(values, positions, (row_start, rows),
                                         (col_start, cols))
    return y


def max_pool2d_reference(x, kernel_size, stride=None, padding=0, dilation=1,
                         ceil_mode=False):
    """Compute the reference of :func:`fastconv.max_pool2d` with its indices.

    Scans each window's in-bounds elements in row-major order; an element replaces
    the maximum so far when it is larger or NaN (PyTorch's rule).

    Returns
    -------
    y : ndarray, shape (N, C, OH, OW), float64
    indices : ndarray of int64, shape (N, C, OH, OW)
    """
    found = []

    def reduce(values, positions, row_window, col_window):
        best, best_at = -np.inf, positions[0]
        for value, at in zip(values, positions, strict=True):
            if value > best or np.isnan(value):
                best, best_at = value, at
        found.append(best_at)
        return best

    y = _pool_reference(x, kernel_size, stride, padding, dilation, ceil_mode, reduce)
    return y, np.array(found, dtype=np.int64).reshape(y.shape)


def avg_pool2d_reference(x, kernel_size, stride=None, padding=0, ceil_mode=False,
                         count_include_pad=True, divisor_override=None):
    """Compute the reference of :func:`fastconv.avg_pool2d`, in float64.

    The divisor is ``divisor_override``; else, with ``count_include_pad``, the window's
    extent clipped to the padded input; else its number of in-bounds elements.
    """
    H, W = np.shape(x)[2:]
    kernel = as_pair("kernel_size", kernel_size, 1)
    pad_h, pad_w = as_pair("padding", padding, 0)

    def reduce(values, positions, row_window, col_window):
        if divisor_override is not None:
            divisor = divisor_override
        elif count_include_pad:
            (row_start, _), (col_start, _) = row_window, col_window
            divisor = ((min(row_start + kernel[0], H + pad_h) - row_start)
                       * (min(col_start + kernel[1], W + pad_w) - col_start))
        else:
            divisor = len(values)
        return sum(values) / divisor

    return _pool_reference(x, kernel_size, stride, padding, 1, ceil_mode, reduce)


def lp_pool2d_reference(x, norm_type, kernel_size, stride=None, ceil_mode=False):
    """Compute the reference of :func:`fastconv.lp_pool2d`, in float64.

    ``(sum of |x| ** p) ** (1 / p)`` over each window's in-bounds elements; the
    largest ``|x|`` for ``p = inf``.
    """
    def reduce(values, positions, row_window, col_window):
        magnitudes = np.abs(values)
        if np.isinf(norm_type):
            return magnitudes.max()
        return np.sum(magnitudes ** norm_type) ** (1 / norm_type)

    return _pool_reference(x, kernel_size, stride, 0, 1, ceil_mode, reduce)


def max_unpool2d_reference(x, indices, output_size):
    """Compute the reference of :func:`fastconv.max_unpool2d`, in float64.

    Writes ``x`` at ``indices`` of zero planes of ``output_size`` (H, W) in row-major
    order, so a repeated index keeps the last value.
    """
    x = np.asarray(x, dtype=np.float64)
    N, C = x.shape[:2]
    y = np.zeros((N, C, output_size[0] * output_size[1]))
    for n, c in np.ndindex(N, C):
        for value, at in zip(x[n, c].ravel(), np.ravel(indices[n, c]), strict=True):
            y[n, c, at] = value
    return y.reshape(N, C, *output_size)


def max_pool2d_backward_reference(grad_output, indices, input_shape):
    """Compute the reference of :func:`fastconv.max_pool2d_backward`, in float64.

    Adds each gradient at its index of a zero plane of ``input_shape``.
    """
    grad_output = np.asarray(grad_output, dtype=np.float64)
    N, C, H, W = input_shape
    grad = np.zeros((N, C, H * W))
    for n, c in np.ndindex(N, C):
        for value, at in zip(grad_output[n, c].ravel(), np.ravel(indices[n, c]), strict=True):
            grad[n, c, at] += value
    return grad.reshape(input_shape)


def pool_skip_reference(x, weight, bias=None, e=2):
    """Compute the reference of :func:`fastconv.pool_skip`, in float64, by composition.

    ``x + conv2d(max_unpool2d(max_pool2d(x, e)), weight, bias, 'same')`` from the
    references above, the unpooled map taking x's size.
    """
    x = np.asarray(x, dtype=np.float64)
    pooled, indices = max_pool2d_reference(x, e)
    unpooled = max_unpool2d_reference(pooled, indices, x.shape[2:])
    R, S = np.shape(weight)[2:]
    return x + conv2d_reference(unpooled, weight, bias, padding=(R // 2, S // 2))


def linear_reference(x, weight, bias=None):
    """Compute the reference of :func:`fastconv.linear`, in float64, as explicit sums."""
    x = np.asarray(x, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    y = np.zeros((x.shape[0], weight.shape[0]))
    for n, o in np.ndindex(*y.shape):
        y[n, o] = sum(x[n, i] * weight[o, i] for i in range(x.shape[1]))
    if bias is not None:
        y += np.asarray(bias, dtype=np.float64)
    return y


def log_softmax_reference(x, axis=1):
    """Compute the reference of :func:`fastconv.log_softmax` in float64: ``log(e^x / sum e^x)``."""
    x = np.asarray(x, dtype=np.float64)
    return np.log(np.exp(x) / np.exp(x).sum(axis=axis, keepdims=True))


def cross_entropy_reference(logits, target):
    """Compute the reference of :func:`fastconv.cross_entropy` (mean), in float64."""
    log_probabilities = log_softmax_reference(logits)
    return -np.mean([log_probabilities[n, t] for n, t in enumerate(target)])


def local_response_norm_reference(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """Compute the reference of :func:`fastconv.local_response_norm`, in float64.

    Channel by channel: the window ``[c - size // 2, c + (size - 1) // 2]`` clipped to
    the channels, ``x_c / (k + alpha / size * sum x_j ** 2) ** beta``.
    """
    x = np.asarray(x, dtype=np.float64)
    C = x.shape[1]
    y = np.empty_like(x)
    for c in range(C):
        window = range(max(0, c - size // 2), min(C, c + (size - 1) // 2 + 1))
        energy = sum(x[:, j] ** 2 for j in window)
        y[:, c] = x[:, c] / (k + alpha / size * energy) ** beta
    return y


def numerical_gradient(func, x, eps=1e-6):
    """Central-difference gradient of a scalar function, in float64.

    Parameters
    ----------
    func : callable
        ``func(x) -> float``. Called ``2 * x.size`` times on perturbed float64 copies.
    x : array_like
        The point of differentiation.
    eps : float
        Step of the central difference.

    Returns
    -------
    ndarray
        ``d func / d x``, shaped like `x`.
    """
    point = np.array(x, dtype=np.float64)
    grad = np.empty_like(point)
    flat, grad_flat = point.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + eps
        upper = func(point)
        flat[i] = saved - eps
        lower = func(point)
        flat[i] = saved
        grad_flat[i] = (upper - lower) / (2 * eps)
    return grad


def check_gradient(func, x, analytic, eps=1e-6, rtol=1e-5, atol=1e-8):
    """Assert that ``analytic`` matches the numerical gradient of ``func`` at ``x``.

    Parameters
    ----------
    func : callable
        ``func(x) -> float``, for example ``lambda x: np.sum(g * layer(x))``.
    x : array_like
        The point of differentiation (use float64 and tie-free values).
    analytic : array_like
        The gradient to check, shaped like `x`.
    eps, rtol, atol : float
        Difference step and tolerances (as in :func:`numpy.testing.assert_allclose`).

    Raises
    ------
    AssertionError
        With the largest discrepancy, when the gradients differ.
    """
    numerical = numerical_gradient(func, x, eps)
    np.testing.assert_allclose(analytic, numerical, rtol=rtol, atol=atol,
                               err_msg="analytic gradient differs from central differences")
