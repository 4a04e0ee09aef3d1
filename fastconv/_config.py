"""Thread control and the build/run-time configuration report."""

import platform
import sys

import numpy as np

from fastconv._blas import BLAS_CONFIG
from fastconv._dispatch import ENVIRONMENT_VARIABLE, KERNELS, supported_levels
from fastconv._kernels import _threads
from fastconv._params import as_int
from fastconv._version import __version__


def get_num_threads():
    """Return the number of threads a kernel call uses when ``num_threads`` is None.

    This is OpenMP's current default for the calling thread, so ``OMP_NUM_THREADS``,
    :func:`set_num_threads` and ``threadpoolctl`` all change it.

    Returns
    -------
    int
    """
    return _threads.get_max_threads()


def set_num_threads(n):
    """Set the default number of threads of later kernel calls.

    Parameters
    ----------
    n : int
        Number of OpenMP threads, >= 1. Affects the calling Python thread (OpenMP's
        default is per thread); a call's ``num_threads=`` still overrides it.
    """
    _threads.set_max_threads(as_int("n", n, 1))


def show_config(file=None):
    """Print the version, compiler, OpenMP, instruction-set path and BLAS in use.

    Parameters
    ----------
    file : file-like, optional
        Where to print; standard output by default.
    """
    lines = [
        f"fastconv {__version__}",
        f"python: {sys.version.split()[0]} ({platform.python_implementation()})",
        f"platform: {platform.platform()} ({platform.machine()})",
        f"compiler: {platform.python_compiler()}",
        f"OpenMP: {'on' if _threads.openmp_enabled() else 'off (one thread)'}, "
        f"default threads {get_num_threads()}",
        f"instruction set: {KERNELS.level} (this CPU and build support "
        f"{', '.join(supported_levels())}; {ENVIRONMENT_VARIABLE} chooses)",
        f"numpy: {np.__version__}",
        f"BLAS (im2col GEMM, single-threaded per call): {BLAS_CONFIG}",
    ]
    print("\n".join(lines), file=file)
