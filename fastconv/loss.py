"""Cross-entropy loss (log-loss on softmax) and its gradient."""

import numpy as np

from fastconv._params import as_float_array
from fastconv.activation import log_softmax, softmax

REDUCTIONS = ("mean", "sum")


def _check(logits, target, reduction):
    logits = as_float_array("logits", logits)
    if logits.ndim != 2:
        raise ValueError(f"logits: expected a 2-D (N, classes) array, got shape {logits.shape}")
    if not isinstance(target, np.ndarray) or target.dtype.kind not in "iu":
        raise TypeError(f"target: expected an integer array of class indices, got "
                        f"{getattr(target, 'dtype', type(target).__name__)}")
    if target.shape != logits.shape[:1]:
        raise ValueError(f"target has shape {target.shape}, expected {logits.shape[:1]}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    classes = logits.shape[1]
    bad = (target < 0) | (target >= classes)
    if bad.any():
        where = int(np.flatnonzero(bad)[0])
        raise IndexError(f"target: class index {int(target[where])} at position {where} is "
                         f"outside [0, {classes})")
    return logits, target.astype(np.intp)


def cross_entropy(logits, target, reduction="mean"):
    """Log-loss of the softmax of ``logits`` at the ``target`` classes.

    ``loss_n = -log(softmax(logits)[n, target[n]])``, then the mean over the batch
    (``reduction="mean"``, PyTorch's default) or the sum.

    Parameters
    ----------
    logits : ndarray, shape (N, classes)
        float32 or float64 scores.
    target : ndarray of int, shape (N,)
        Class indices in ``[0, classes)``.
    reduction : {'mean', 'sum'}

    Returns
    -------
    loss : float
        As a NumPy scalar of the logits' dtype (NaN for an empty batch with 'mean',
        as in PyTorch).

    Raises
    ------
    IndexError
        If a target lies outside ``[0, classes)``.
    """
    logits, target = _check(logits, target, reduction)
    picked = log_softmax(logits)[np.arange(logits.shape[0]), target]
    total = -picked.sum(dtype=logits.dtype)
    if reduction == "sum":
        return total
    with np.errstate(invalid="ignore"):
        return total / logits.dtype.type(logits.shape[0])


def cross_entropy_backward(logits, target, reduction="mean", grad_output=1.0):
    """Gradient of ``grad_output * cross_entropy(logits, target, reduction)``.

    ``(softmax(logits) - onehot(target)) * grad_output``, divided by N for 'mean'.

    Parameters
    ----------
    logits : ndarray, shape (N, classes)
    target : ndarray of int, shape (N,)
    reduction : {'mean', 'sum'}
    grad_output : float
        The gradient flowing into the loss (1 for the loss itself).

    Returns
    -------
    grad_logits : ndarray, shape (N, classes)
    """
    logits, target = _check(logits, target, reduction)
    grad = softmax(logits)
    grad[np.arange(logits.shape[0]), target] -= 1
    scale = float(grad_output) / (logits.shape[0] if reduction == "mean" else 1)
    grad *= logits.dtype.type(scale)
    return grad
