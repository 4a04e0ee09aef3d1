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

__all__ = [
    "__version__",
    "col2im",
    "conv2d",
    "conv2d_backward",
    "conv_transpose2d",
    "conv_transpose2d_backward",
    "get_num_threads",
    "im2col",
    "set_num_threads",
    "show_config",
]
