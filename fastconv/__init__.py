"""fastconv: OpenMP-parallel Cython kernels for CNN primitives on NumPy arrays.

Arrays are NCHW, float32 or float64. See :func:`show_config` for the build in use.
Layers built on these functions, and an optimiser, are in :mod:`fastconv.nn`.
"""

from fastconv._config import get_num_threads, set_num_threads, show_config
from fastconv._version import __version__
from fastconv.activation import (
    log_softmax,
    log_softmax_backward,
    relu,
    relu_backward,
    softmax,
    softmax_backward,
)
from fastconv.conv import (
    col2im,
    conv2d,
    conv2d_backward,
    conv_transpose2d,
    conv_transpose2d_backward,
    im2col,
)
from fastconv.linear import linear, linear_backward
from fastconv.loss import cross_entropy, cross_entropy_backward
from fastconv.normalization import local_response_norm, local_response_norm_backward
from fastconv.pool import (
    argmax_mask,
    avg_pool2d,
    avg_pool2d_backward,
    lp_pool2d,
    lp_pool2d_backward,
    max_pool2d,
    max_pool2d_backward,
)
from fastconv.pool_skip import pool_skip, pool_skip_backward
from fastconv.unpool import max_unpool2d, max_unpool2d_backward

__all__ = [
    "__version__",
    "argmax_mask",
    "avg_pool2d",
    "avg_pool2d_backward",
    "col2im",
    "conv2d",
    "conv2d_backward",
    "conv_transpose2d",
    "conv_transpose2d_backward",
    "cross_entropy",
    "cross_entropy_backward",
    "get_num_threads",
    "im2col",
    "linear",
    "linear_backward",
    "local_response_norm",
    "local_response_norm_backward",
    "log_softmax",
    "log_softmax_backward",
    "lp_pool2d",
    "lp_pool2d_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "max_unpool2d",
    "max_unpool2d_backward",
    "pool_skip",
    "pool_skip_backward",
    "relu",
    "relu_backward",
    "set_num_threads",
    "show_config",
    "softmax",
    "softmax_backward",
]
