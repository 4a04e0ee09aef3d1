"""Load the private OpenBLAS that the im2col algorithm calls, pinned to one thread.

fastconv runs its GEMMs from inside its own OpenMP regions, one call per work item. A
BLAS that started threads of its own there would fight OpenMP for the cores, so the
library is loaded from the ``scipy-openblas32`` package (a copy separate from the
BLAS inside NumPy and SciPy, whose thread settings stay untouched) and told to use one
thread.
"""

import ctypes
import os

import scipy_openblas32

from fastconv._kernels import _gemm


def _load_library():
    library = getattr(scipy_openblas32, "dll", None)
    if library is None:
        path = os.path.join(scipy_openblas32.get_lib_dir(),
                            scipy_openblas32.get_library(fullname=True))
        library = ctypes.CDLL(path)
    return library


def _address(library, name):
    return ctypes.cast(getattr(library, name), ctypes.c_void_p).value


_library = _load_library()
_library.scipy_openblas_set_num_threads(1)
_library.scipy_openblas_get_config.restype = ctypes.c_char_p
_gemm.set_gemm(_address(_library, "scipy_cblas_sgemm"),
               _address(_library, "scipy_cblas_dgemm"))

#: The build string of the BLAS in use, for :func:`fastconv.show_config`.
BLAS_CONFIG = _library.scipy_openblas_get_config().decode()
