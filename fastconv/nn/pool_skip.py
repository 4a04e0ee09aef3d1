"""The Pool Skip block as a layer."""

import importlib

import numpy as np

from fastconv._params import num_threads_value
from fastconv._scratch import Scratch
from fastconv.nn.module import WeightedModule

# The module, not the function of the same name that fastconv re-exports.
_fused = importlib.import_module("fastconv.pool_skip")


class PoolSkip(WeightedModule):
    """Pool Skip: ``x + conv(max_unpool_e(max_pool_e(x)))``, fused (:func:`fastconv.pool_skip`).

    Placed after a convolution and before the normalisation and activation, as in
    Sun et al. (AAAI 2025). The convolution maps ``channels`` to ``channels`` with
    "same" padding and is initialised as ``torch.nn.Conv2d``.

    Parameters
    ----------
    channels : int
    e : int or (int, int)
        Window and stride of the max pooling (2 or 4 in the paper).
    kernel_size : int or (int, int)
        Odd; 3 in the paper.
    bias : bool
    dtype : dtype
    rng : numpy.random.Generator, int or None
    """

    def __init__(self, channels, e=2, kernel_size=3, bias=True, *, dtype=np.float32,
                 rng=None):
        R, S = (kernel_size, kernel_size) if np.ndim(kernel_size) == 0 else kernel_size
        super().__init__((channels, channels, R, S), channels, channels * R * S, bias, dtype,
                         rng)
        self.e = e

    def forward(self, x):
        """Apply the block to x (N, channels, H, W); keep its maxima for backward."""
        threads = num_threads_value(None)
        x, bias, self.maxima = _fused.find_maxima(x, self.weight.data, self.bias_data(),
                                                  self.e, threads)
        with Scratch() as scratch:
            return _fused.forward(x, bias, self.maxima, threads, scratch)

    def backward(self, grad_output):
        """Return grad_input; accumulate the weight and bias gradients."""
        with Scratch() as scratch:
            grad_x, grad_w, grad_b = _fused.backward(grad_output, self._saved("maxima"),
                                                     self.bias is not None,
                                                     num_threads_value(None), scratch)
        self.accumulate(grad_w, grad_b)
        return grad_x
