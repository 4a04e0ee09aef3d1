"""Convolution layers."""

import numpy as np

from fastconv._params import as_pair
from fastconv.conv import conv2d, conv2d_backward, conv_transpose2d, conv_transpose2d_backward
from fastconv.nn.module import WeightedModule


class _Convolution(WeightedModule):
    """Forward and backward of a convolution layer: ``function`` and its ``gradient``."""

    def forward(self, x):
        """Convolve x (N, C, H, W); remember it for backward."""
        self.x = x
        return self.function(x, self.weight.data, self.bias_data(), **self.options)

    def backward(self, grad_output):
        """Return grad_input; accumulate the weight and bias gradients."""
        grad_x, grad_w, grad_b = self.gradient(grad_output, self._saved("x"), self.weight.data,
                                               needs_bias_grad=self.bias is not None,
                                               **self.options)
        self.accumulate(grad_w, grad_b)
        return grad_x


class Conv2d(_Convolution):
    """2-D convolution layer, as ``torch.nn.Conv2d`` (weight (K, C // groups, R, S)).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, padding, dilation, groups
        As in :func:`fastconv.conv2d`.
    bias : bool
        Learn an additive bias per output channel.
    algorithm : {'auto', 'direct', 'im2col'}
    dtype : dtype
        float32 or float64.
    rng : numpy.random.Generator, int or None
        Source of the initial weights (PyTorch's default distribution).
    """

    function = staticmethod(conv2d)
    gradient = staticmethod(conv2d_backward)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, *, algorithm="auto", dtype=np.float32,
                 rng=None):
        R, S = as_pair("kernel_size", kernel_size, 1)
        super().__init__((out_channels, in_channels // groups, R, S), out_channels,
                         in_channels // groups * R * S, bias, dtype, rng)
        self.options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                            algorithm=algorithm)


class ConvTranspose2d(_Convolution):
    """Transposed convolution layer, as ``torch.nn.ConvTranspose2d``.

    The weight is (C_in, C_out // groups, R, S), initialised as PyTorch does (fan-in
    ``C_out // groups * R * S``).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, padding, output_padding, groups, dilation
        As in :func:`fastconv.conv_transpose2d`.
    bias : bool
    dtype : dtype
    rng : numpy.random.Generator, int or None
    """

    function = staticmethod(conv_transpose2d)
    gradient = staticmethod(conv_transpose2d_backward)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, *, dtype=np.float32,
                 rng=None):
        R, S = as_pair("kernel_size", kernel_size, 1)
        super().__init__((in_channels, out_channels // groups, R, S), out_channels,
                         out_channels // groups * R * S, bias, dtype, rng)
        self.options = dict(stride=stride, padding=padding, output_padding=output_padding,
                            groups=groups, dilation=dilation)
