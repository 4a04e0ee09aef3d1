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
