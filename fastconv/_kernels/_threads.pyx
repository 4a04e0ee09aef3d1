"""OpenMP thread control shared by every kernel."""
from fastconv._kernels._openmp cimport (
    FASTCONV_HAS_OPENMP, omp_get_max_threads, omp_set_num_threads)


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(FASTCONV_HAS_OPENMP)


def get_max_threads():
    """OpenMP's current default team size for this Python thread."""
    return omp_get_max_threads()


def set_max_threads(int n):
    """Set OpenMP's default team size for this Python thread."""
    omp_set_num_threads(n)
