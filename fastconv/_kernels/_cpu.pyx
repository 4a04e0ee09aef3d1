"""The CPU's instruction-set level, read once by fastconv._dispatch."""

cdef extern from "cpu_features.h" nogil:
    int fastconv_x86_level()


def x86_level():
    """0 for the baseline, 1 for AVX2 + FMA, 2 for AVX-512 (see cpu_features.h)."""
    return fastconv_x86_level()
