from cython cimport floating

# Row-major C = alpha * op(A) @ op(B) + beta * C through the private single-threaded
# OpenBLAS that fastconv._blas loads; callable from inside OpenMP regions.
cdef void gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
               floating alpha, const floating* a, Py_ssize_t lda,
               const floating* b, Py_ssize_t ldb,
               floating beta, floating* c, Py_ssize_t ldc) noexcept nogil
