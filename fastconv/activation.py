"""Activations and their gradients: ReLU, softmax and log-softmax.

Element-wise NumPy: these ops move memory rather than compute, and NumPy's loops run
them at memory speed without threads of their own.
"""

import numpy as np

from fastconv._params import as_float_array, check_same_dtype


def _axis(axis, ndim):
    """Check ``axis`` against an array of ``ndim`` dimensions; return it as an int."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for an array of {ndim} dimensions")
    return int(axis)


def _grad(grad_output, like, name="output"):
    grad = as_float_array("grad_output", grad_output)
    check_same_dtype(**{name: like, "grad_output": grad})
    if grad.shape != like.shape:
        raise ValueError(f"grad_output has shape {grad.shape}, expected {like.shape}")
    return grad


def _backward_operands(grad_output, output, axis):
    """Check a softmax-style backward's arguments; return (output, grad_output, axis)."""
    y = as_float_array("output", output)
    return y, _grad(grad_output, y), _axis(axis, y.ndim)


def relu(x):
    """Rectified linear unit, ``max(x, 0)``; NaN stays NaN, as in PyTorch.

    Parameters
    ----------
    x : ndarray
        float32 or float64, any shape.

    Returns
    -------
    y : ndarray, shaped like x
    """
    x = as_float_array("x", x)
    return np.maximum(x, 0)


def relu_backward(grad_output, x):
    """Gradient of ``sum(grad_output * relu(x))``: 0 where ``x <= 0``, else ``grad_output``.

    Where x is NaN the gradient passes, as in PyTorch.

    Parameters
    ----------
    grad_output, x : ndarray, same shape and dtype

    Returns
    -------
    grad_input : ndarray, shaped like x
    """
    x = as_float_array("x", x)
    grad = _grad(grad_output, x, "x")
    return np.where(x <= 0, np.zeros((), dtype=x.dtype), grad)


def softmax(x, axis=1):
    """``exp(x) / sum(exp(x))`` along ``axis`` (PyTorch's ``dim``), computed stably.

    Parameters
    ----------
    x : ndarray
        float32 or float64.
    axis : int
        The axis of the classes; 1 for (N, classes) logits.

    Returns
    -------
    y : ndarray, shaped like x
        Non-negative, summing to 1 along ``axis``.
    """
    x = as_float_array("x", x)
    axis = _axis(axis, x.ndim)
    exponentials = np.exp(x - x.max(axis=axis, keepdims=True))
    return exponentials / exponentials.sum(axis=axis, keepdims=True)


def softmax_backward(grad_output, output, axis=1):
    """Gradient of ``sum(grad_output * softmax(x))`` from the forward ``output``.

    ``grad_x = y * (g - sum(g * y))``, the sum along ``axis``.

    Parameters
    ----------
    grad_output : ndarray
    output : ndarray
        ``softmax(x, axis)``.
    axis : int

    Returns
    -------
    grad_input : ndarray
    """
    y, grad, axis = _backward_operands(grad_output, output, axis)
    return y * (grad - (grad * y).sum(axis=axis, keepdims=True))


def log_softmax(x, axis=1):
    """``x - log(sum(exp(x)))`` along ``axis``, computed stably.

    Parameters
    ----------
    x : ndarray
    axis : int

    Returns
    -------
    y : ndarray, shaped like x
    """
    x = as_float_array("x", x)
    axis = _axis(axis, x.ndim)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def log_softmax_backward(grad_output, output, axis=1):
    """Gradient of ``sum(grad_output * log_softmax(x))`` from the forward ``output``.

    ``grad_x = g - exp(y) * sum(g)``, the sum along ``axis``.

    Parameters
    ----------
    grad_output : ndarray
    output : ndarray
        ``log_softmax(x, axis)``.
    axis : int

    Returns
    -------
    grad_input : ndarray
    """
    y, grad, axis = _backward_operands(grad_output, output, axis)
    return grad - np.exp(y) * grad.sum(axis=axis, keepdims=True)
