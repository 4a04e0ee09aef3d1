"""Pooling and unpooling layers."""

from fastconv.nn.module import Module
from fastconv.pool import (
    avg_pool2d,
    avg_pool2d_backward,
    lp_pool2d,
    lp_pool2d_backward,
    max_pool2d,
    max_pool2d_backward,
)
from fastconv.unpool import max_unpool2d, max_unpool2d_backward


class MaxPool2d(Module):
    """Max pooling layer, as ``torch.nn.MaxPool2d``; it keeps the indices for backward.

    Parameters
    ----------
    kernel_size, stride, padding, dilation, ceil_mode
        As in :func:`fastconv.max_pool2d`.
    return_indices : bool
        ``forward`` also returns the indices (for a :class:`MaxUnpool2d`).
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                 return_indices=False):
        self.options = dict(kernel_size=kernel_size, stride=stride, padding=padding,
                            dilation=dilation, ceil_mode=ceil_mode)
        self.return_indices = return_indices

    def forward(self, x):
        """Pool x (N, C, H, W): y, or (y, indices) with ``return_indices``."""
        y, self.indices = max_pool2d(x, return_indices=True, **self.options)
        self.input_shape = x.shape
        return (y, self.indices) if self.return_indices else y

    def backward(self, grad_output):
        """Route each output gradient to the input element that was the maximum."""
        indices, shape = self._saved("indices", "input_shape")
        return max_pool2d_backward(grad_output, indices, shape)


class MaxUnpool2d(Module):
    """Max-unpooling layer, as ``torch.nn.MaxUnpool2d``: ``forward(x, indices, output_size)``.

    Parameters
    ----------
    kernel_size, stride, padding
        Those of the max pooling that produced the indices.
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        self.options = dict(kernel_size=kernel_size, stride=stride, padding=padding)

    def forward(self, x, indices, output_size=None):
        """Place x's values at ``indices`` in a zero map (see :func:`fastconv.max_unpool2d`)."""
        y = max_unpool2d(x, indices, output_size=output_size, **self.options)
        self.indices = indices
        return y

    def backward(self, grad_output):
        """Gather the output gradient at the indices (the gradient with respect to x)."""
        return max_unpool2d_backward(grad_output, self._saved("indices"))


class AvgPool2d(Module):
    """Average pooling layer, as ``torch.nn.AvgPool2d``.

    Parameters
    ----------
    kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
        As in :func:`fastconv.avg_pool2d`.
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        self.options = dict(kernel_size=kernel_size, stride=stride, padding=padding,
                            ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                            divisor_override=divisor_override)

    def forward(self, x):
        """Average-pool x (N, C, H, W)."""
        self.input_shape = x.shape
        return avg_pool2d(x, **self.options)

    def backward(self, grad_output):
        """Spread each output gradient evenly over its window."""
        return avg_pool2d_backward(grad_output, self._saved("input_shape"), **self.options)


class LPPool2d(Module):
    """Power-average pooling layer, as ``torch.nn.LPPool2d`` (see :func:`fastconv.lp_pool2d`).

    Parameters
    ----------
    norm_type : float
        p > 0, or inf.
    kernel_size, stride, ceil_mode
    """

    def __init__(self, norm_type, kernel_size, stride=None, ceil_mode=False):
        self.norm_type = norm_type
        self.options = dict(kernel_size=kernel_size, stride=stride, ceil_mode=ceil_mode)

    def forward(self, x):
        """LP-pool x (N, C, H, W); remember it for backward."""
        self.x = x
        return lp_pool2d(x, self.norm_type, **self.options)

    def backward(self, grad_output):
        """Return the gradient of each window's p-norm with respect to the input."""
        return lp_pool2d_backward(grad_output, self._saved("x"), self.norm_type, **self.options)
