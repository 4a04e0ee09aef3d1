"""Kernels driven by max-pooling indices, one (n, c) plane per work item.

Arrays arrive flattened to (planes, elements per plane). Within a plane the indices
are visited in row-major order of the pooled plane, so where two share a target the
later one decides (unpooling) or the sums run in a fixed order (the pooling gradient):
results are the same for every thread count.

Only ``first_invalid`` trusts nothing: the wrappers call it first, and the other
kernels run only on indices it has proved to lie in ``[0, plane_size)``.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.string cimport memset


def first_invalid(const int64_t[:, ::1] indices,   # IN  (planes, M)
                  int64_t[::1] position,          # OUT (planes,)
                  int64_t plane_size, int num_threads):
    """Set ``position[p]`` to the first j with indices[p, j] outside [0, plane_size), else -1."""
    cdef Py_ssize_t p, j
    cdef uint64_t bad
    with nogil:
        for p in prange(indices.shape[0], schedule="static", num_threads=num_threads):
            # One unsigned comparison rejects negatives too; OR-ing the verdicts
            # keeps the scan branch-free until a plane is known to hold a bad index.
            bad = 0
            for j in range(indices.shape[1]):
                bad = bad | (<uint64_t> indices[p, j] >= <uint64_t> plane_size)
            position[p] = -1
            if bad:
                for j in range(indices.shape[1]):
                    if <uint64_t> indices[p, j] >= <uint64_t> plane_size:
                        position[p] = j
                        break


def scatter(const floating[:, ::1] values,   # IN  (planes, M)
            const int64_t[:, ::1] indices,   # IN  (planes, M), checked
            floating[:, ::1] out,            # OUT (planes, plane_size)
            bint accumulate, int num_threads):
    """Zero ``out[p]``, then put ``values[p, j]`` at ``indices[p, j]`` for j in order.

    Assigned, the last j wins (unpooling); with ``accumulate`` they add up (the
    max-pooling gradient). Each plane is zeroed just before its scatter, so the
    scatter finds it in the cache.
    """
    cdef Py_ssize_t p, j
    cdef floating* plane
    with nogil:
        for p in prange(values.shape[0], schedule="static", num_threads=num_threads):
            plane = &out[p, 0]
            memset(plane, 0, out.shape[1] * sizeof(floating))
            if accumulate:
                for j in range(values.shape[1]):
                    plane[indices[p, j]] += values[p, j]
            else:
                for j in range(values.shape[1]):
                    plane[indices[p, j]] = values[p, j]


def gather(const floating[:, ::1] source,    # IN  (planes, plane_size)
           const int64_t[:, ::1] indices,    # IN  (planes, M), checked
           floating[:, ::1] out,             # OUT (planes, M)
           int num_threads):
    """``out[p, j] = source[p, indices[p, j]]``."""
    cdef Py_ssize_t p, j
    with nogil:
        for p in prange(out.shape[0], schedule="static", num_threads=num_threads):
            for j in range(out.shape[1]):
                out[p, j] = source[p, indices[p, j]]


def mark(const int64_t[:, ::1] indices,   # IN  (planes, M), checked
         uint8_t[:, ::1] mask,            # OUT (planes, plane_size)
         int num_threads):
    """``mask[p] = 0``, then ``mask[p, indices[p, j]] = 1``."""
    cdef Py_ssize_t p, j
    with nogil:
        for p in prange(mask.shape[0], schedule="static", num_threads=num_threads):
            memset(&mask[p, 0], 0, mask.shape[1])
            for j in range(indices.shape[1]):
                mask[p, indices[p, j]] = 1
