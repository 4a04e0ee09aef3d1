"""Matrix products for fully connected layers: OpenMP over fixed blocks of output rows.

Each block is one call of the single-threaded BLAS (``_gemm``), so no BLAS thread
pool ever alternates with an OpenMP region; the blocks depend on the shape alone, so
results are bitwise identical for every thread count.
"""
from cython cimport floating
from cython.parallel cimport prange

from fastconv._kernels._gemm cimport gemm


def matmul(const floating[:, ::1] a,   # IN  (M, K), or (K, M) with trans_a
           const floating[:, ::1] b,   # IN  (K, P), or (P, K) with trans_b
           floating[:, ::1] out,       # OUT (M, P)
           bint trans_a, bint trans_b, Py_ssize_t block, int num_threads):
    """``out = op(a) @ op(b)``, rows of out in blocks of ``block``; every size >= 1."""
    cdef Py_ssize_t M = out.shape[0], P = out.shape[1]
    cdef Py_ssize_t inner = a.shape[0] if trans_a else a.shape[1]
    cdef Py_ssize_t item, r0, r1
    cdef const floating* a_rows
    with nogil:
        for item in prange((M + block - 1) // block, schedule="static",
                           num_threads=num_threads):
            r0 = item * block
            r1 = r0 + block if r0 + block < M else M
            a_rows = &a[0, r0] if trans_a else &a[r0, 0]
            gemm(trans_a, trans_b, r1 - r0, P, inner, 1, a_rows, a.shape[1],
                 &b[0, 0], b.shape[1], 0, &out[r0, 0], P)
