"""Convolution layers."""

import numpy as np

from fastconv._params import as_pair
from fastconv.conv import conv2d, conv2d_backward, conv_transpose2d, conv_transpose2d_backward
from fastconv.nn.module import Module, uniform_fan_in


class Conv2d(Module):
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

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, *, algorithm="auto", dtype=np.float32,
                 rng=None):
        rng = np.random.default_rng(rng)
        R, S = as_pair("kernel_size", kernel_size, 1)
        fan_in = in_channels // groups * R * S
        self.weight = uniform_fan_in((out_channels, in_channels // groups, R, S), fan_in,
                                     dtype, rng)
        self.bias = uniform_fan_in((out_channels,), fan_in, dtype, rng) if bias else None
        self.options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                            algorithm=algorithm)

    def forward(self, x):
        """Convolve x (N, C, H, W); remember it for backward."""
        self.x = x
        bias = None if self.bias is None else self.bias.data
        return conv2d(x, self.weight.data, bias, **self.options)

    def backward(self, grad_output):
        """Return grad_input; accumulate the weight and bias gradients."""
        x = self._saved("x")
        grad_x, grad_w, grad_b = conv2d_backward(grad_output, x, self.weight.data,
                                                 needs_bias_grad=self.bias is not None,
                                                 **self.options)
        self.weight.accumulate(grad_w)
        if self.bias is not None:
            self.bias.accumulate(grad_b)
        return grad_x


class ConvTranspose2d(Module):
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

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, *, dtype=np.float32,
                 rng=None):
        rng = np.random.default_rng(rng)
        R, S = as_pair("kernel_size", kernel_size, 1)
        fan_in = out_channels // groups * R * S
        self.weight = uniform_fan_in((in_channels, out_channels // groups, R, S), fan_in,
                                     dtype, rng)
        self.bias = uniform_fan_in((out_channels,), fan_in, dtype, rng) if bias else None
        self.options = dict(stride=stride, padding=padding, output_padding=output_padding,
                            groups=groups, dilation=dilation)

    def forward(self, x):
        """Transposed-convolve x (N, C_in, H, W); remember it for backward."""
        self.x = x
        bias = None if self.bias is None else self.bias.data
        return conv_transpose2d(x, self.weight.data, bias, **self.options)

    def backward(self, grad_output):
        """Return grad_input; accumulate the weight and bias gradients."""
        x = self._saved("x")
        grad_x, grad_w, grad_b = conv_transpose2d_backward(
            grad_output, x, self.weight.data, needs_bias_grad=self.bias is not None,
            **self.options)
        self.weight.accumulate(grad_w)
        if self.bias is not None:
            self.bias.accumulate(grad_b)
        return grad_x
