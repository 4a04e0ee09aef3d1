"""Average and LP pooling, forward and backward: one (n, c) plane per work item.

Average pooling runs in two passes over bands of output rows, like max pooling: the
float64 sum of each window's row along the width, for every input row the band needs,
then the sum of a window's row sums down the height, in order (for windows 2 or 3
columns wide at column stride 2, pool_avg_row.h takes the first pass, with the same
sums). LP pooling sums a window's terms in float64 tap by tap in row-major window
order. The innermost loops run along the output width; the backward passes add into
each input element in a fixed order. So results do not depend on the thread count.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY, fabs, pow
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

cdef extern from "pool_avg_row.h" nogil:
    enum:
        FASTCONV_AVG_ROW_MIN_LANES_F32
        FASTCONV_AVG_ROW_MIN_LANES_F64
    void fastconv_avg_row_sums_f32(const float* x, Py_ssize_t taps, Py_ssize_t j_lo,
                                   Py_ssize_t j_hi, double* sums)
    void fastconv_avg_row_sums_f64(const double* x, Py_ssize_t taps, Py_ssize_t j_lo,
                                   Py_ssize_t j_hi, double* sums)

from fastconv._kernels._geometry cimport (
    Geometry,
    TapSpan,
    band_height,
    band_rows,
    band_top,
    column_spans,
    first_beyond,
    first_inside,
    inner_columns,
    rows_join,
    window_columns,
    window_first_row,
    window_rows,
)
from fastconv._kernels._pool_planes cimport (
    AVERAGE,
    AVERAGE_BACKWARD,
    PLANES_BACKWARD_SCRATCH_BYTES,
    PLANES_SCRATCH_BYTES,
    plane_lanes,
    planes_fit,
    pool_plane_blocks,
)

# What a window accumulates (see window_row).
cdef enum Reduction:
    SUM           # x
    POWER_SUM     # |x| ** p
    ABS_MAX       # max |x| (p = inf); NaN propagates


cdef inline double lp_term(double value, double p) noexcept nogil:
    """``|value| ** p``, with the common p = 1 and p = 2 spared a call to pow."""
    if p == 1:
        return fabs(value)
    if p == 2:
        return value * value
    return pow(fabs(value), p)


ctypedef fused summand:
    # What a sweep adds: input elements, or the first pass's float64 row sums.
    float
    double


cdef inline void add_taps(double* acc, const summand* x, Py_ssize_t base, Py_ssize_t stride,
                          Py_ssize_t step, Py_ssize_t taps, Py_ssize_t j_lo, Py_ssize_t j_hi,
                          bint first) noexcept nogil:
    """``acc[j] += x[base + j * stride + t * step]`` for ``t < taps`` in turn.

    For ``j_lo <= j < j_hi``; ``first`` starts the sums from 0 instead of ``acc``.
    Called with constant ``taps`` and ``stride``, so the taps unroll, the running sum
    stays in a register, and the loads vectorise.
    """
    cdef Py_ssize_t j, t
    cdef double total
    for j in range(j_lo, j_hi):
        # Loaded either way: a conditional load would keep the loop scalar.
        total = acc[j]
        total = 0 if first else total
        for t in range(taps):
            total += x[base + j * stride + t * step]
        acc[j] = total


cdef inline void add_up_to_3_taps(double* acc, const summand* x, Py_ssize_t base,
                                  Py_ssize_t stride, Py_ssize_t step, Py_ssize_t taps,
                                  Py_ssize_t j_lo, Py_ssize_t j_hi, bint first) noexcept nogil:
    """:func:`add_taps` with ``taps`` (1, 2 or 3) made a constant."""
    if taps == 3:
        add_taps(acc, x, base, stride, step, 3, j_lo, j_hi, first)
    elif taps == 2:
        add_taps(acc, x, base, stride, step, 2, j_lo, j_hi, first)
    else:
        add_taps(acc, x, base, stride, step, 1, j_lo, j_hi, first)


cdef inline void add_strided_taps(double* acc, const summand* x, Py_ssize_t base,
                                  Py_ssize_t stride, Py_ssize_t step, Py_ssize_t taps,
                                  Py_ssize_t j_lo, Py_ssize_t j_hi, bint first) noexcept nogil:
    """:func:`add_up_to_3_taps` with the common strides made constants."""
    if stride == 1:
        add_up_to_3_taps(acc, x, base, 1, step, taps, j_lo, j_hi, first)
    elif stride == 2:
        add_up_to_3_taps(acc, x, base, 2, step, taps, j_lo, j_hi, first)
    else:
        add_up_to_3_taps(acc, x, base, stride, step, taps, j_lo, j_hi, first)


cdef inline void average_rows(floating* y_row, const double* acc, const double* sums,
                              Py_ssize_t OW, Py_ssize_t rows, bint first, double row_divisor,
                              const double* col_divisor) noexcept nogil:
    """``y_row[ow] = (acc[ow] + sums[r * OW + ow] for r < rows, in turn) /
    (row_divisor * col_divisor[ow])``; ``first`` starts from 0 instead of ``acc``.

    A window's last rows of row sums and its division in one sweep, so the sums never
    return to memory; called with a constant ``rows`` (1 to 3), like :func:`add_taps`.
    """
    cdef Py_ssize_t ow, r
    cdef double total
    for ow in range(OW):
        # Loaded either way: a conditional load would keep the loop scalar.
        total = acc[ow]
        total = 0 if first else total
        for r in range(rows):
            total += sums[r * OW + ow]
        y_row[ow] = <floating> (total / (row_divisor * col_divisor[ow]))


cdef inline void average_up_to_3_rows(floating* y_row, const double* acc, const double* sums,
                                      Py_ssize_t OW, Py_ssize_t rows, bint first,
                                      double row_divisor,
                                      const double* col_divisor) noexcept nogil:
    """:func:`average_rows` with ``rows`` (1, 2 or 3) made a constant."""
    if rows == 3:
        average_rows(y_row, acc, sums, OW, 3, first, row_divisor, col_divisor)
    elif rows == 2:
        average_rows(y_row, acc, sums, OW, 2, first, row_divisor, col_divisor)
    else:
        average_rows(y_row, acc, sums, OW, 1, first, row_divisor, col_divisor)


cdef inline void add_window_row_taps(double* acc, const floating* x, Py_ssize_t base,
                                     Py_ssize_t stride, Py_ssize_t step, Py_ssize_t taps,
                                     Py_ssize_t j_lo, Py_ssize_t j_hi,
                                     bint first) noexcept nogil:
    """:func:`add_strided_taps` of the input, by pool_avg_row.h where it applies.

    That is: 2 or 3 adjacent taps at stride 2, started from 0, for at least a vector of
    sums. The sums are added in the same order, and the averages are the same.
    """
    cdef Py_ssize_t lanes = (FASTCONV_AVG_ROW_MIN_LANES_F32 if floating is float
                             else FASTCONV_AVG_ROW_MIN_LANES_F64)
    if (lanes > 0 and stride == 2 and step == 1 and first and taps >= 2
            and j_hi - j_lo >= lanes):
        if floating is float:
            fastconv_avg_row_sums_f32(x + base, taps, j_lo, j_hi, acc)
        else:
            fastconv_avg_row_sums_f64(x + base, taps, j_lo, j_hi, acc)
    else:
        add_strided_taps(acc, x, base, stride, step, taps, j_lo, j_hi, first)


cdef void edge_sums(const floating* plane, const Geometry* g, const TapSpan* spans,
                    Py_ssize_t ow, Py_ssize_t ih_lo, Py_ssize_t rows, double* sums) noexcept nogil:
    """The first pass of output ``ow``, whose window crosses the left or right edge.

    ``sums[i * OW + ow]`` = the sum of the window's in-bounds columns of input row
    ``ih_lo + i * dilation_h``, from 0, in kernel-column order.
    """
    cdef Py_ssize_t s_lo, s_hi, i, t, base
    cdef double total
    window_columns(g, spans, ow, &s_lo, &s_hi)
    base = ih_lo * g.W + ow * g.stride_w + spans[s_lo].offset
    for i in range(rows):
        total = 0
        for t in range(s_hi - s_lo):
            total += plane[base + i * g.dilation_h * g.W + t * g.dilation_w]
        sums[i * g.OW + ow] = total


cdef void row_sums(const floating* plane, const Geometry* g, const TapSpan* spans,
                   Py_ssize_t inner_lo, Py_ssize_t inner_hi, Py_ssize_t ih_lo, Py_ssize_t rows,
                   double* sums) noexcept nogil:
    """First pass of average pooling: window-row sums of rows ``ih_lo + i * dilation_h``.

    Into ``rows`` rows of OW. Outputs ``inner_lo .. inner_hi`` have every kernel column
    inside the input; the others add their in-bounds columns one by one.
    """
    cdef Py_ssize_t i, s, taps, base, ow
    # Kernel columns s .. s + taps, 3 at a time, in order.
    for s in range(0, g.S, 3):
        taps = min(3, g.S - s)
        if rows_join(g):
            # Keep the reads inside the plane; what the edge outputs read is redone below.
            base = ih_lo * g.W + spans[s].offset
            add_window_row_taps(sums, plane, base, g.stride_w, g.dilation_w, taps,
                                first_inside(base, g.stride_w),
                                min(rows * g.OW,
                                    first_beyond(base + (taps - 1) * g.dilation_w, g.stride_w,
                                                 g.H * g.W)),
                                s == 0)
            continue
        for i in range(rows):
            add_window_row_taps(sums + i * g.OW, plane,
                                (ih_lo + i * g.dilation_h) * g.W + spans[s].offset,
                                g.stride_w, g.dilation_w, taps, inner_lo, inner_hi, s == 0)
    for ow in range(inner_lo):
        edge_sums(plane, g, spans, ow, ih_lo, rows, sums)
    for ow in range(inner_hi, g.OW):
        edge_sums(plane, g, spans, ow, ih_lo, rows, sums)


cdef int average_planes(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y,
                        const double[::1] row_divisor, const double[::1] col_divisor,
                        const Geometry* g, const TapSpan* spans, int num_threads) noexcept nogil:
    """Average pooling in two passes over bands of output rows (see ``_geometry.pxd``).

    Each sum adds the window's row sums in order, in float64. Returns 1 if scratch
    allocation failed.
    """
    cdef Py_ssize_t plane, n, c, oh, oh0, oh1, ih_lo, i0, rows, r, last, inner_lo, inner_hi
    cdef Py_ssize_t band = band_height(g, sizeof(double))
    cdef Py_ssize_t band_size = ((band - 1) * g.stride_h + g.R) * g.OW
    cdef double* sums = NULL
    cdef double* acc = NULL
    cdef int failed = 0
    cdef int* failed_flag = &failed
    inner_columns(g, spans, &inner_lo, &inner_hi)
    with parallel(num_threads=num_threads):
        sums = <double*> malloc(band_size * sizeof(double))
        acc = <double*> malloc(g.OW * sizeof(double))
        if sums == NULL or acc == NULL:
            failed_flag[0] = 1
        for plane in prange(g.N * g.C, schedule="static"):
            if sums == NULL or acc == NULL:
                continue
            n = plane // g.C
            c = plane - n * g.C
            oh0 = 0
            while oh0 < g.OH:
                oh1 = min(g.OH, oh0 + band)
                ih_lo = band_top(g, oh0)
                row_sums(&x[n, c, 0, 0], g, spans, inner_lo, inner_hi, ih_lo,
                         band_rows(g, ih_lo, oh1), sums)
                for oh in range(oh0, oh1):
                    i0 = window_first_row(g, oh, ih_lo)
                    rows = window_rows(g, oh)
                    # The window's rows r .. r + 3 at a time, in order; the last 1 to 3
                    # of them with the division.
                    last = (rows - 1) // 3 * 3
                    for r in range(0, last, 3):
                        add_strided_taps(acc, sums, (i0 + r) * g.OW, 1, g.OW, 3, 0, g.OW,
                                         r == 0)
                    average_up_to_3_rows(&y[n, c, oh, 0], acc, sums + (i0 + last) * g.OW,
                                         g.OW, rows - last, last == 0, row_divisor[oh],
                                         &col_divisor[0])
                oh0 = oh1
        free(sums)
        free(acc)
    return failed


cdef void window_row(const floating* plane, const Geometry* g, const TapSpan* spans,
                     Py_ssize_t oh, Reduction reduction, double p, double* acc) noexcept nogil:
    """``acc[ow]`` = the p-norm reduction (POWER_SUM or ABS_MAX) over window (oh, ow)."""
    cdef Py_ssize_t first_row = band_top(g, oh), r, s, offset, lo, hi, ow
    cdef const floating* x_row
    cdef double term
    memset(acc, 0, g.OW * sizeof(double))
    for r in range(window_rows(g, oh)):
        x_row = plane + (first_row + r * g.dilation_h) * g.W
        for s in range(g.S):
            offset, lo, hi = spans[s].offset, spans[s].lo, spans[s].hi
            if reduction == POWER_SUM:
                for ow in range(lo, hi):
                    acc[ow] += lp_term(x_row[ow * g.stride_w + offset], p)
            else:
                for ow in range(lo, hi):
                    term = fabs(x_row[ow * g.stride_w + offset])
                    if term > acc[ow] or term != term:
                        acc[ow] = term


cdef void spread_row(floating* grad_plane, const floating* x_plane, const Geometry* g,
                     const TapSpan* spans, Py_ssize_t oh, Reduction reduction, double p,
                     const double* scale) noexcept nogil:
    """Add each window's share of ``scale[ow]`` to its in-bounds input elements.

    SUM adds ``scale``; POWER_SUM adds ``scale * sign(x) * |x| ** (p - 1)`` (zero where
    x is zero); ABS_MAX adds ``scale * sign(x)`` at the window's first largest |x|.
    """
    cdef Py_ssize_t first_row = band_top(g, oh), rows = window_rows(g, oh)
    cdef Py_ssize_t r, s, offset, lo, hi, ow, iw, at
    cdef floating* grad_row
    cdef const floating* x_row
    cdef double value, best
    if reduction == ABS_MAX:
        for ow in range(g.OW):
            best = -1
            at = -1
            for r in range(rows):
                x_row = x_plane + (first_row + r * g.dilation_h) * g.W
                for s in range(g.S):
                    iw = ow * g.stride_w + s * g.dilation_w - g.pad_left
                    if 0 <= iw < g.W and fabs(x_row[iw]) > best:
                        best = fabs(x_row[iw])
                        at = (first_row + r * g.dilation_h) * g.W + iw
            if at >= 0 and x_plane[at] != 0:
                grad_plane[at] += scale[ow] if x_plane[at] > 0 else -scale[ow]
        return
    for r in range(rows):
        grad_row = grad_plane + (first_row + r * g.dilation_h) * g.W
        x_row = x_plane + (first_row + r * g.dilation_h) * g.W
        for s in range(g.S):
            offset, lo, hi = spans[s].offset, spans[s].lo, spans[s].hi
            if reduction == SUM:
                for ow in range(lo, hi):
                    grad_row[ow * g.stride_w + offset] += scale[ow]
            else:
                for ow in range(lo, hi):
                    value = x_row[ow * g.stride_w + offset]
                    if value != 0:
                        grad_row[ow * g.stride_w + offset] += (
                            scale[ow] * lp_term(value, p - 1) * (1 if value > 0 else -1))


cdef int norm_planes(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y,
                     const double[::1] row_divisor, const double[::1] col_divisor,
                     const Geometry* g, const TapSpan* spans, Reduction reduction, double p,
                     int num_threads) noexcept nogil:
    """LP pooling, one output row at a time; return 1 if scratch allocation failed."""
    cdef Py_ssize_t plane, n, c, oh, ow
    cdef double* acc = NULL
    cdef floating* y_row
    cdef int failed = 0
    cdef int* failed_flag = &failed
    with parallel(num_threads=num_threads):
        acc = <double*> malloc(g.OW * sizeof(double))
        if acc == NULL:
            failed_flag[0] = 1
        for plane in prange(g.N * g.C, schedule="static"):
            if acc == NULL:
                continue
            n = plane // g.C
            c = plane - n * g.C
            for oh in range(g.OH):
                window_row(&x[n, c, 0, 0], g, spans, oh, reduction, p, acc)
                y_row = &y[n, c, oh, 0]
                if reduction == POWER_SUM:
                    for ow in range(g.OW):
                        y_row[ow] = <floating> pow(
                            acc[ow] / (row_divisor[oh] * col_divisor[ow]), 1 / p)
                else:
                    for ow in range(g.OW):
                        y_row[ow] = <floating> (acc[ow] / (row_divisor[oh] * col_divisor[ow]))
        free(acc)
    return failed


cdef inline bint row_kernel_serves(const Geometry* g, const TapSpan* spans,
                                   floating kind) noexcept nogil:
    """Whether the first pass of average pooling takes pool_avg_row.h (for ``floating``):
    windows 2 or 3 columns wide at column stride 2, with at least a vector of inner
    outputs per row.
    Where it does, the two passes ran faster than pool_planes.h (1.4x on 28 x 28 planes,
    float32 with AVX-512); elsewhere pool_planes.h takes small planes."""
    cdef Py_ssize_t inner_lo, inner_hi
    cdef Py_ssize_t lanes = (FASTCONV_AVG_ROW_MIN_LANES_F32 if floating is float
                             else FASTCONV_AVG_ROW_MIN_LANES_F64)
    inner_columns(g, spans, &inner_lo, &inner_hi)
    return (lanes > 0 and g.stride_w == 2 and g.dilation_w == 1 and (g.S == 2 or g.S == 3)
            and inner_hi - inner_lo >= lanes)


cdef inline Reduction reduction_of(double p) noexcept nogil:
    """p = 0 selects the plain sum (average pooling), inf the largest |x|."""
    return SUM if p == 0 else (ABS_MAX if p == INFINITY else POWER_SUM)


def pool2d(const floating[:, :, :, ::1] x,     # IN  (N, C, H, W)
           floating[:, :, :, ::1] y,           # OUT (N, C, OH, OW)
           const double[::1] row_divisor,      # IN  (OH,)
           const double[::1] col_divisor,      # IN  (OW,)
           double p, Geometry g, int num_threads):
    """``y[oh, ow]`` = reduction / (row_divisor[oh] * col_divisor[ow]).

    The reduction is the window sum for p = 0 (average pooling), else its p-norm
    ``(sum of |x| ** p) ** (1 / p)``, the largest |x| for p = inf.
    """
    cdef Reduction reduction = reduction_of(p)
    cdef int failed
    cdef int64_t[:, :, :, ::1] no_indices = None
    cdef TapSpan* spans = column_spans(&g)
    with nogil:
        if (reduction == SUM and not row_kernel_serves(&g, spans, <floating> 0)
                and planes_fit(&g, plane_lanes(<floating> 0), sizeof(floating),
                               PLANES_SCRATCH_BYTES)):
            failed = pool_plane_blocks(AVERAGE, x, y, no_indices, row_divisor, col_divisor,
                                       &g, num_threads)
        elif reduction == SUM:
            failed = average_planes(x, y, row_divisor, col_divisor, &g, spans, num_threads)
        else:
            failed = norm_planes(x, y, row_divisor, col_divisor, &g, spans, reduction, p,
                                 num_threads)
    free(spans)
    if failed:
        raise MemoryError("could not allocate the pooling scratch")


def pool2d_backward(const floating[:, :, :, ::1] grad_y,   # IN  (N, C, OH, OW)
                    const floating[:, :, :, ::1] x,        # IN  (N, C, H, W); p = 0: None
                    floating[:, :, :, ::1] grad_x,         # OUT (N, C, H, W)
                    const double[::1] row_divisor,         # IN  (OH,)
                    const double[::1] col_divisor,         # IN  (OW,)
                    double p, Geometry g, int num_threads):
    """Gradient of :func:`pool2d`; with p = 0 it does not read x.

    p-norms: dy/dx = sign(x) * |x| ** (p - 1) * y ** (1 - p), taken as 0 where y is 0;
    for p = inf the gradient goes to the window's first largest |x|, times its sign.
    """
    cdef Py_ssize_t plane, n, c, oh, ow
    cdef Reduction reduction = reduction_of(p)
    cdef double* scale = NULL
    cdef double norm
    cdef int failed = 0
    cdef int* failed_flag = &failed
    cdef int64_t[:, :, :, ::1] no_indices = None
    cdef TapSpan* spans
    if reduction == SUM and planes_fit(&g, plane_lanes(<floating> 0), sizeof(floating),
                                       PLANES_BACKWARD_SCRATCH_BYTES):
        with nogil:
            failed = pool_plane_blocks(AVERAGE_BACKWARD, grad_y, grad_x, no_indices,
                                       row_divisor, col_divisor, &g, num_threads)
        if failed:
            raise MemoryError("could not allocate the pooling scratch")
        return
    spans = column_spans(&g)
    with nogil, parallel(num_threads=num_threads):
        scale = <double*> malloc(g.OW * sizeof(double))
        if scale == NULL:
            failed_flag[0] = 1
        for plane in prange(g.N * g.C, schedule="static"):
            if scale == NULL:
                continue
            n = plane // g.C
            c = plane - n * g.C
            memset(&grad_x[n, c, 0, 0], 0, g.H * g.W * sizeof(floating))
            for oh in range(g.OH):
                if reduction == POWER_SUM:
                    window_row(&x[n, c, 0, 0], &g, spans, oh, reduction, p, scale)
                    for ow in range(g.OW):
                        # grad_y * y ** (1 - p) with y = sum ** (1 / p)
                        norm = scale[ow] / (row_divisor[oh] * col_divisor[ow])
                        scale[ow] = (grad_y[n, c, oh, ow] * pow(norm, 1 / p - 1)
                                     if norm > 0 else 0)
                else:
                    for ow in range(g.OW):
                        scale[ow] = grad_y[n, c, oh, ow] / (row_divisor[oh] * col_divisor[ow])
                spread_row(&grad_x[n, c, 0, 0], &x[n, c, 0, 0] if reduction != SUM else NULL,
                           &g, spans, oh, reduction, p, scale)
        free(scale)
    free(spans)
    if failed:
        raise MemoryError(f"could not allocate {g.OW * 8} bytes of pooling scratch")
