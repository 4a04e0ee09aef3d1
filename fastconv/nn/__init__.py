"""Layers with forward and backward passes, and an SGD optimiser.

Each layer's ``forward`` keeps what its ``backward`` needs; ``backward(grad_output)``
returns the gradient with respect to the input and accumulates the gradients of the
layer's :class:`Parameter` objects, which :class:`SGD` then applies. Layers,
arguments and initialisations follow ``torch.nn``.
"""

from fastconv.nn.container import Sequential
from fastconv.nn.conv import Conv2d, ConvTranspose2d
from fastconv.nn.layers import Flatten, Linear, LocalResponseNorm, ReLU, Softmax
from fastconv.nn.loss import CrossEntropyLoss
from fastconv.nn.module import Module, Parameter
from fastconv.nn.optim import SGD
from fastconv.nn.pool_skip import PoolSkip
from fastconv.nn.pooling import AvgPool2d, LPPool2d, MaxPool2d, MaxUnpool2d

__all__ = [
    "SGD",
    "AvgPool2d",
    "Conv2d",
    "ConvTranspose2d",
    "CrossEntropyLoss",
    "Flatten",
    "LPPool2d",
    "Linear",
    "LocalResponseNorm",
    "MaxPool2d",
    "MaxUnpool2d",
    "Module",
    "Parameter",
    "PoolSkip",
    "ReLU",
    "Sequential",
    "Softmax",
]
