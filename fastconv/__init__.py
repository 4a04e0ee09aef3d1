"""fastconv: OpenMP-parallel Cython kernels for CNN primitives on NumPy arrays.

Arrays are NCHW, float32 or float64. See :func:`show_config` for the build in use.
"""

from fastconv._config import get_num_threads, set_num_threads, show_config
from fastconv._version import __version__
from fastconv.conv import (
    col2im,
    conv2d,
    conv2d_backward,
    conv_transpose2d,
    conv_transpose2d_backward,
    im2col,
)
from fastconv.pool import (
    argmax_mask,
    avg_pool2d,
    avg_pool2d_backward,
    lp_pool2d,
    lp_pool2d_backward,
    max_pool2d,
    max_pool2d_backward,
)
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
    "get_num_threads",
    "im2col",
    "lp_pool2d",
    "lp_pool2d_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "max_unpool2d",
    "max_unpool2d_backward",
    "set_num_threads",
    "show_config",
]
