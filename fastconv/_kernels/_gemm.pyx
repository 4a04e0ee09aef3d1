"""GEMM entry point: function pointers into a private OpenBLAS, set once at import."""
from cython cimport floating

ctypedef void (*sgemm_t)(int, int, int, int, int, int, float, const float*, int,
                         const float*, int, float, float*, int) noexcept nogil
ctypedef void (*dgemm_t)(int, int, int, int, int, int, double, const double*, int,
                         const double*, int, double, double*, int) noexcept nogil

# CBLAS enumerations.
cdef enum:
    ROW_MAJOR = 101
    NO_TRANS = 111
    TRANS = 112

cdef sgemm_t _sgemm = NULL
cdef dgemm_t _dgemm = NULL


def set_gemm(size_t sgemm_address, size_t dgemm_address):
    """Install the addresses of ``cblas_sgemm`` and ``cblas_dgemm``."""
    global _sgemm, _dgemm
    _sgemm = <sgemm_t> sgemm_address
    _dgemm = <dgemm_t> dgemm_address


cdef inline int leading(Py_ssize_t ld) noexcept nogil:
    # BLAS rejects a leading dimension of 0 even when the matrix is empty.
    return <int> (ld if ld > 1 else 1)


cdef void gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
               floating alpha, const floating* a, Py_ssize_t lda,
               const floating* b, Py_ssize_t ldb,
               floating beta, floating* c, Py_ssize_t ldc) noexcept nogil:
    # Sizes were checked against the 32-bit BLAS interface by the Python wrapper.
    cdef int ta = TRANS if trans_a else NO_TRANS
    cdef int tb = TRANS if trans_b else NO_TRANS
    if m == 0 or n == 0:
        return
    if floating is float:
        _sgemm(ROW_MAJOR, ta, tb, <int> m, <int> n, <int> k, alpha, a, leading(lda),
               b, leading(ldb), beta, c, leading(ldc))
    else:
        _dgemm(ROW_MAJOR, ta, tb, <int> m, <int> n, <int> k, alpha, a, leading(lda),
               b, leading(ldb), beta, c, leading(ldc))
