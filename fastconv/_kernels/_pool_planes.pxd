# Max and average pooling of small planes, a vector of planes at a time
# (pool_planes.h): the choice of the kernel and the loop over blocks of planes, shared
# by _pool_max.pyx and _pool_avg.pyx.
from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc

from fastconv._kernels._geometry cimport Geometry


cdef extern from "pool_planes.h" nogil:
    ctypedef struct fastconv_pool_window:
        Py_ssize_t H, W, OH, OW, R, S
        Py_ssize_t stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w
    enum:
        FASTCONV_POOL_PLANES_LANES_F32
        FASTCONV_POOL_PLANES_LANES_F64
    void fastconv_pool_planes_f32_max(const float* x, Py_ssize_t count,
                                      const fastconv_pool_window* g, float* scratch, float* y,
                                      int64_t* argmax)
    void fastconv_pool_planes_f64_max(const double* x, Py_ssize_t count,
                                      const fastconv_pool_window* g, double* scratch,
                                      double* y, int64_t* argmax)
    void fastconv_pool_planes_f32_average(const float* x, Py_ssize_t count,
                                          const fastconv_pool_window* g,
                                          const double* row_divisor,
                                          const double* col_divisor, float* scratch,
                                          float* y)
    void fastconv_pool_planes_f64_average(const double* x, Py_ssize_t count,
                                          const fastconv_pool_window* g,
                                          const double* row_divisor,
                                          const double* col_divisor, double* scratch,
                                          double* y)
    void fastconv_pool_planes_f32_average_backward(const float* grad_y, Py_ssize_t count,
                                                   const fastconv_pool_window* g,
                                                   const double* row_divisor,
                                                   const double* col_divisor,
                                                   float* scratch, float* grad_x)
    void fastconv_pool_planes_f64_average_backward(const double* grad_y, Py_ssize_t count,
                                                   const fastconv_pool_window* g,
                                                   const double* row_divisor,
                                                   const double* col_divisor,
                                                   double* scratch, double* grad_x)


cdef enum PlanesOp:
    # What pool_plane_blocks runs.
    MAX                 # x -> y (and indices)
    AVERAGE             # x -> y
    AVERAGE_BACKWARD    # grad_y (in x's place) -> grad_x (in y's)


cdef enum:
    # The most bytes of a block's scratch (its planes, results and positions), about a
    # quarter of a core's L2 cache. Max pooling against the two passes (float32,
    # AVX-512, 2 threads): 6-10x faster on 7 x 7 and 14 x 14 planes, 3-4x on 15 x 15 to
    # 28 x 28, 2.2x and 1.3x on 56 x 56 with 4 x 4 and 7 x 7 windows (225 KiB); past the
    # budget, 0.9x on 64 x 64 with 4 x 4 windows (295 KiB).
    PLANES_SCRATCH_BYTES = 256 * 1024
    # The same for the average's gradient, whose every element goes through the scratch
    # twice: 1.1-2.1x faster than spread_row on 7 x 7 to 14 x 14 planes (up to 15 KiB),
    # 0.97x and 1.2x on 28 x 28 (77 KiB), 0.74x on 56 x 56 with 4 x 4 windows (227 KiB).
    PLANES_BACKWARD_SCRATCH_BYTES = 64 * 1024


cdef inline Py_ssize_t plane_lanes(floating kind) noexcept nogil:
    """Planes per block for ``floating`` (0 where pool_planes.h is not compiled)."""
    return (FASTCONV_POOL_PLANES_LANES_F32 if floating is float
            else FASTCONV_POOL_PLANES_LANES_F64)


cdef inline Py_ssize_t scratch_size(const Geometry* g, Py_ssize_t lanes) noexcept nogil:
    """Elements of a block's scratch (see pool_planes.h)."""
    return (g.H * g.W + 2 * (g.OH + 1) * g.OW) * lanes


cdef inline bint planes_fit(const Geometry* g, Py_ssize_t lanes, Py_ssize_t itemsize,
                            Py_ssize_t budget) noexcept nogil:
    """Whether pool_planes.h serves this geometry, a block holding ``lanes`` planes:
    where a block's scratch fits ``budget`` bytes."""
    return lanes > 0 and scratch_size(g, lanes) * itemsize <= budget


cdef inline int pool_plane_blocks(PlanesOp op, const floating[:, :, :, ::1] source,
                                  floating[:, :, :, ::1] result,
                                  int64_t[:, :, :, ::1] indices,
                                  const double[::1] row_divisor,
                                  const double[::1] col_divisor, const Geometry* g,
                                  int num_threads) noexcept nogil:
    """Run ``op`` on every plane, a block of :func:`plane_lanes` planes at a time with
    pool_planes.h (see :func:`planes_fit`): from ``source`` into ``result`` (and, for
    MAX, the positions into ``indices`` unless it is None; the averages take the
    divisors). Return 1 if scratch allocation failed."""
    cdef fastconv_pool_window window
    cdef Py_ssize_t lanes = plane_lanes(<floating> 0)
    cdef Py_ssize_t planes = g.N * g.C, block, first, n, c, count
    cdef bint with_indices = indices is not None
    cdef floating* scratch = NULL
    cdef int failed = 0
    cdef int* failed_flag = &failed
    window.H, window.W, window.OH, window.OW, window.R, window.S = g.H, g.W, g.OH, g.OW, g.R, g.S
    window.stride_h, window.stride_w = g.stride_h, g.stride_w
    window.pad_top, window.pad_left = g.pad_top, g.pad_left
    window.dilation_h, window.dilation_w = g.dilation_h, g.dilation_w
    with parallel(num_threads=num_threads):
        scratch = <floating*> malloc(scratch_size(g, lanes) * sizeof(floating))
        if scratch == NULL:
            failed_flag[0] = 1
        for block in prange((planes + lanes - 1) // lanes, schedule="static"):
            if scratch == NULL:
                continue
            first = block * lanes
            n = first // g.C
            c = first - n * g.C
            count = min(lanes, planes - first)
            if floating is float:
                if op == AVERAGE:
                    fastconv_pool_planes_f32_average(&source[n, c, 0, 0], count, &window,
                                                     &row_divisor[0], &col_divisor[0],
                                                     scratch, &result[n, c, 0, 0])
                elif op == AVERAGE_BACKWARD:
                    fastconv_pool_planes_f32_average_backward(
                        &source[n, c, 0, 0], count, &window, &row_divisor[0],
                        &col_divisor[0], scratch, &result[n, c, 0, 0])
                else:
                    fastconv_pool_planes_f32_max(
                        &source[n, c, 0, 0], count, &window, scratch, &result[n, c, 0, 0],
                        &indices[n, c, 0, 0] if with_indices else NULL)
            else:
                if op == AVERAGE:
                    fastconv_pool_planes_f64_average(&source[n, c, 0, 0], count, &window,
                                                     &row_divisor[0], &col_divisor[0],
                                                     scratch, &result[n, c, 0, 0])
                elif op == AVERAGE_BACKWARD:
                    fastconv_pool_planes_f64_average_backward(
                        &source[n, c, 0, 0], count, &window, &row_divisor[0],
                        &col_divisor[0], scratch, &result[n, c, 0, 0])
                else:
                    fastconv_pool_planes_f64_max(
                        &source[n, c, 0, 0], count, &window, scratch, &result[n, c, 0, 0],
                        &indices[n, c, 0, 0] if with_indices else NULL)
        free(scratch)
    return failed
