"""Fully connected layer: ``linear`` and its gradients, as ``torch.nn.functional.linear``.

The products run on fastconv's single-threaded BLAS inside its own OpenMP region
(``_dense``), never on NumPy's threaded BLAS, so they can alternate with the other
kernels without two thread pools fighting for the cores.
"""


from fastconv._kernels import _dense
from fastconv._params import allocate, as_float_array, check_same_dtype, num_threads_value

#: Output rows per GEMM call: fixed, so results do not depend on the thread count.
ROW_BLOCK = 64

#: The BLAS interface takes 32-bit sizes.
MAX_BLAS_SIZE = 2**31 - 1


def _matmul(a, b, trans_a, trans_b, name, num_threads):
    """``op(a) @ op(b)`` through the ``_dense`` kernel."""
    m = a.shape[1] if trans_a else a.shape[0]
    inner = a.shape[0] if trans_a else a.shape[1]
    p = b.shape[0] if trans_b else b.shape[1]
    out = allocate(name, (m, p), a.dtype)
    if max(m, p, inner, *a.shape, *b.shape) > MAX_BLAS_SIZE:
        raise ValueError(f"{name}: shape {(m, p)} with inner size {inner} is too large for "
                         f"the 32-bit BLAS interface")
    if out.size == 0 or inner == 0:
        out[...] = 0
        return out
    _dense.matmul(a, b, out, trans_a, trans_b, ROW_BLOCK, num_threads)
    return out


def _check_operands(x, weight):
    x = as_float_array("x", x)
    weight = as_float_array("weight", weight)
    check_same_dtype(x=x, weight=weight)
    if x.ndim != 2:
        raise ValueError(f"x: expected a 2-D (N, in_features) array, got shape {x.shape}")
    if weight.ndim != 2 or weight.shape[1] != x.shape[1]:
        raise ValueError(f"weight: expected shape (out_features, {x.shape[1]}), "
                         f"got shape {weight.shape}")
    return x, weight


def linear(x, weight, bias=None, *, num_threads=None):
    """Fully connected layer: ``y = x @ weight.T + bias``.

    Parameters
    ----------
    x : ndarray, shape (N, in_features)
        float32 or float64.
    weight : ndarray, shape (out_features, in_features)
    bias : ndarray, shape (out_features,), optional
    num_threads : int, optional
        Upper bound on OpenMP threads; None uses OpenMP's current default.

    Returns
    -------
    y : ndarray, shape (N, out_features)
    """
    x, weight = _check_operands(x, weight)
    y = _matmul(x, weight, False, True, "output", num_threads_value(num_threads))
    if bias is not None:
        bias = as_float_array("bias", bias)
        check_same_dtype(x=x, bias=bias)
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"bias: expected shape ({weight.shape[0]},), "
                             f"got shape {bias.shape}")
        y += bias
    return y


def linear_backward(grad_output, x, weight, *, num_threads=None):
    """Gradients of ``sum(grad_output * linear(x, weight, bias))``.

    Parameters
    ----------
    grad_output : ndarray, shape (N, out_features)
    x : ndarray, shape (N, in_features)
    weight : ndarray, shape (out_features, in_features)
    num_threads : int, optional

    Returns
    -------
    grad_input : ndarray, shape (N, in_features)
        ``grad_output @ weight``.
    grad_weight : ndarray, shape (out_features, in_features)
        ``grad_output.T @ x``.
    grad_bias : ndarray, shape (out_features,)
        ``grad_output.sum(axis=0)``.
    """
    x, weight = _check_operands(x, weight)
    grad_y = as_float_array("grad_output", grad_output)
    check_same_dtype(x=x, grad_output=grad_y)
    if grad_y.shape != (x.shape[0], weight.shape[0]):
        raise ValueError(f"grad_output has shape {grad_y.shape}, "
                         f"expected {(x.shape[0], weight.shape[0])}")
    threads = num_threads_value(num_threads)
    grad_x = _matmul(grad_y, weight, False, False, "grad_input", threads)
    grad_w = _matmul(grad_y, x, True, False, "grad_weight", threads)
    return grad_x, grad_w, grad_y.sum(axis=0)
