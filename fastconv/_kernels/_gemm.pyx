"""GEMM entry point: function pointers into a private OpenBLAS, set once at import."""
from cython cimport floating
from libc.stdlib cimport calloc, free

cdef extern from *:
    """
    #if defined(_MSC_VER)
    #define FASTCONV_THREAD_LOCAL __declspec(thread)
    #else
    #define FASTCONV_THREAD_LOCAL _Thread_local
    #endif
    static FASTCONV_THREAD_LOCAL int fastconv_blas_primed = 0;
    """
    # Whether the calling thread has run prime_buffers (one flag per thread).
    int fastconv_blas_primed

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


# The shape of the GEMM that prime_buffers runs (rows of C, columns of C, inner size).
cdef enum:
    PRIME_M = 64
    PRIME_N = 512
    PRIME_K = 512


cdef void prime_buffers() noexcept nogil:
    # OpenBLAS packs its operands into a buffer of its own per calling thread, whose
    # pages are touched only as far as the largest packing so far. Its Haswell sgemm
    # kernel (also chosen on AMD Zen) prefetches past the end of the packed block, and
    # until the thread first multiplied with more than about 320 columns of C it ran
    # at a third of its speed, the time on that prefetch (measured on a Zen 1: 11
    # against 35 GFLOP/s for 256 x 256 x 2304); presumably each prefetch into pages
    # never touched walks the page tables in vain. One modest GEMM per thread and
    # type, on zeros, touches those pages for good.
    global fastconv_blas_primed
    fastconv_blas_primed = 1
    cdef double* scratch = <double*> calloc(
        PRIME_M * PRIME_K + PRIME_K * PRIME_N + PRIME_M * PRIME_N, sizeof(double))
    if scratch == NULL:
        return  # only a matter of speed
    cdef double* b = scratch + PRIME_M * PRIME_K
    cdef double* c = b + PRIME_K * PRIME_N
    _sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, PRIME_M, PRIME_N, PRIME_K, 1, <float*> scratch,
           PRIME_K, <float*> b, PRIME_N, 0, <float*> c, PRIME_N)
    _dgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, PRIME_M, PRIME_N, PRIME_K, 1, scratch,
           PRIME_K, b, PRIME_N, 0, c, PRIME_N)
    free(scratch)


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
    if not fastconv_blas_primed:
        prime_buffers()
    if floating is float:
        _sgemm(ROW_MAJOR, ta, tb, <int> m, <int> n, <int> k, alpha, a, leading(lda),
               b, leading(ldb), beta, c, leading(ldc))
    else:
        _dgemm(ROW_MAJOR, ta, tb, <int> m, <int> n, <int> k, alpha, a, leading(lda),
               b, leading(ldb), beta, c, leading(ldc))
