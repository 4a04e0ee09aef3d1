# OpenMP run-time calls, stubbed out when the build has no OpenMP.
cdef extern from "openmp_shim.h" nogil:
    int FASTCONV_HAS_OPENMP
    int omp_get_max_threads()
    int omp_get_num_threads()
    void omp_set_num_threads(int n)
