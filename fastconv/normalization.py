"""Local response normalisation across channels, and its gradient.

With PyTorch's convention: for channel c the window is ``[c - size // 2,
c + (size - 1) // 2]`` (clipped to the channels), and

    y_c = x_c / (k + alpha / size * sum over the window of x_j ** 2) ** beta
"""

import numpy as np

from fastconv._params import as_float_array, as_int, check_same_dtype


def _check(x, size, alpha, beta, k):
    x = as_float_array("x", x)
    if x.ndim < 3:
        raise ValueError(f"x: expected (N, C, ...) with at least 3 dimensions, "
                         f"got shape {x.shape}")
    size = as_int("size", size, 1)
    for name, value in (("alpha", alpha), ("beta", beta), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise TypeError(f"{name} must be a real number, got {value!r}")
        if not np.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
    return x, size


def _window_sums(values, before, after):
    """``out[:, c] = sum of values[:, c - before : c + after + 1]`` (clipped), channels in order."""
    padded = np.pad(values, [(0, 0), (before, after)] + [(0, 0)] * (values.ndim - 2))
    out = np.zeros_like(values)
    channels = values.shape[1]
    for offset in range(before + after + 1):
        out += padded[:, offset:offset + channels]
    return out


def _denominator_base(x, size, alpha, k):
    """``k + alpha / size * window sum of x**2``, PyTorch's D before the power beta."""
    dtype = x.dtype.type
    return dtype(k) + dtype(alpha / size) * _window_sums(x * x, size // 2, (size - 1) // 2)


def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """Normalise each element by the energy of its neighbouring channels.

    Parameters
    ----------
    x : ndarray, shape (N, C, ...)
        float32 or float64, at least 3-D (as in PyTorch).
    size : int
        Number of channels in the window.
    alpha, beta, k : float
        ``y = x / (k + alpha / size * sum x_j**2) ** beta``.

    Returns
    -------
    y : ndarray, shaped like x
    """
    x, size = _check(x, size, alpha, beta, k)
    return x * _denominator_base(x, size, alpha, k) ** x.dtype.type(-beta)


def local_response_norm_backward(grad_output, x, size, alpha=1e-4, beta=0.75, k=1.0):
    """Gradient of ``sum(grad_output * local_response_norm(x, ...))``.

    With ``D_c`` the denominator base of channel c,
    ``grad_x_j = g_j D_j**-beta - 2 alpha beta / size * x_j *
    sum over the c whose window holds j of g_c x_c D_c**(-beta - 1)``.

    Parameters
    ----------
    grad_output : ndarray, shaped like x
    x : ndarray, shape (N, C, ...)
    size : int
    alpha, beta, k : float

    Returns
    -------
    grad_input : ndarray, shaped like x
    """
    x, size = _check(x, size, alpha, beta, k)
    grad = as_float_array("grad_output", grad_output)
    check_same_dtype(x=x, grad_output=grad)
    if grad.shape != x.shape:
        raise ValueError(f"grad_output has shape {grad.shape}, expected {x.shape}")
    dtype = x.dtype.type
    base = _denominator_base(x, size, alpha, k)
    scaled = base ** dtype(-beta)
    # Channel c's window holds j when c lies in [j - (size - 1) // 2, j + size // 2].
    spread = _window_sums(grad * x * scaled / base, (size - 1) // 2, size // 2)
    return grad * scaled - dtype(2 * alpha * beta / size) * x * spread
