"""Average and LP pooling, forward and backward: one (n, c) plane per work item.

A window's terms are summed in float64, tap by tap in row-major window order, with the
innermost loop along the output width; the backward passes add into each input element
in the same fixed order. So results do not depend on the thread count.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY, fabs, pow
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from fastconv._kernels._geometry cimport (
    Geometry,
    TapSpan,
    clamp,
    first_beyond,
    first_inside,
    tap_span,
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


cdef inline void add_tap(double* acc, const floating* x_row, Py_ssize_t lo, Py_ssize_t hi,
                         Py_ssize_t stride, Py_ssize_t offset) noexcept nogil:
    cdef Py_ssize_t ow
    for ow in range(lo, hi):
        acc[ow] += x_row[ow * stride + offset]


cdef inline void row_taps(const Geometry* g, Py_ssize_t oh, Py_ssize_t* top,
                          Py_ssize_t* r0, Py_ssize_t* r1) noexcept nogil:
    """First input row of output row ``oh``'s windows and its in-bounds taps ``r0..r1``."""
    top[0] = oh * g.stride_h - g.pad_top
    r0[0] = first_inside(top[0], g.dilation_h)
    r1[0] = clamp(first_beyond(top[0], g.dilation_h, g.H), r0[0], g.R)


cdef void window_row(const floating* plane, const Geometry* g, Py_ssize_t oh,
                     Reduction reduction, double p, double* acc) noexcept nogil:
    """``acc[ow]`` = the reduction over the in-bounds elements of window (oh, ow)."""
    cdef Py_ssize_t top, r0, r1, r, s, offset, lo, hi, ow
    cdef TapSpan span
    cdef const floating* x_row
    cdef double term
    row_taps(g, oh, &top, &r0, &r1)
    memset(acc, 0, g.OW * sizeof(double))
    for r in range(r0, r1):
        x_row = plane + (top + r * g.dilation_h) * g.W
        for s in range(g.S):
            span = tap_span(g, s)
            offset, lo, hi = span.offset, span.lo, span.hi
            # Constant strides let the compiler vectorise the strided loads.
            if reduction == SUM and g.stride_w == 1:
                add_tap(acc, x_row, lo, hi, 1, offset)
            elif reduction == SUM and g.stride_w == 2:
                add_tap(acc, x_row, lo, hi, 2, offset)
            elif reduction == SUM:
                add_tap(acc, x_row, lo, hi, g.stride_w, offset)
            elif reduction == POWER_SUM:
                for ow in range(lo, hi):
                    acc[ow] += lp_term(x_row[ow * g.stride_w + offset], p)
            else:
                for ow in range(lo, hi):
                    term = fabs(x_row[ow * g.stride_w + offset])
                    if term > acc[ow] or term != term:
                        acc[ow] = term


cdef void spread_row(floating* grad_plane, const floating* x_plane, const Geometry* g,
                     Py_ssize_t oh, Reduction reduction, double p,
                     const double* scale) noexcept nogil:
    """Add each window's share of ``scale[ow]`` to its in-bounds input elements.

    SUM adds ``scale``; POWER_SUM adds ``scale * sign(x) * |x| ** (p - 1)`` (zero where
    x is zero); ABS_MAX adds ``scale * sign(x)`` at the window's first largest |x|.
    """
    cdef Py_ssize_t top, r0, r1, r, s, offset, lo, hi, ow, iw, at
    cdef TapSpan span
    cdef floating* grad_row
    cdef const floating* x_row
    cdef double value, best
    row_taps(g, oh, &top, &r0, &r1)
    if reduction == ABS_MAX:
        for ow in range(g.OW):
            best = -1
            at = -1
            for r in range(r0, r1):
                x_row = x_plane + (top + r * g.dilation_h) * g.W
                for s in range(g.S):
                    iw = ow * g.stride_w + s * g.dilation_w - g.pad_left
                    if 0 <= iw < g.W and fabs(x_row[iw]) > best:
                        best = fabs(x_row[iw])
                        at = (top + r * g.dilation_h) * g.W + iw
            if at >= 0 and x_plane[at] != 0:
                grad_plane[at] += scale[ow] if x_plane[at] > 0 else -scale[ow]
        return
    for r in range(r0, r1):
        grad_row = grad_plane + (top + r * g.dilation_h) * g.W
        x_row = x_plane + (top + r * g.dilation_h) * g.W
        for s in range(g.S):
            span = tap_span(g, s)
            offset, lo, hi = span.offset, span.lo, span.hi
            if reduction == SUM:
                for ow in range(lo, hi):
                    grad_row[ow * g.stride_w + offset] += scale[ow]
            else:
                for ow in range(lo, hi):
                    value = x_row[ow * g.stride_w + offset]
                    if value != 0:
                        grad_row[ow * g.stride_w + offset] += (
                            scale[ow] * lp_term(value, p - 1) * (1 if value > 0 else -1))


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
    cdef Py_ssize_t plane, n, c, oh, ow
    cdef Reduction reduction = reduction_of(p)
    cdef double* acc = NULL
    cdef double value
    cdef int failed = 0
    cdef int* failed_flag = &failed
    with nogil, parallel(num_threads=num_threads):
        acc = <double*> malloc(g.OW * sizeof(double))
        if acc == NULL:
            failed_flag[0] = 1
        for plane in prange(g.N * g.C, schedule="static"):
            if acc == NULL:
                continue
            n = plane // g.C
            c = plane - n * g.C
            for oh in range(g.OH):
                window_row(&x[n, c, 0, 0], &g, oh, reduction, p, acc)
                for ow in range(g.OW):
                    value = acc[ow] / (row_divisor[oh] * col_divisor[ow])
                    y[n, c, oh, ow] = <floating> (
                        pow(value, 1 / p) if reduction == POWER_SUM else value)
        free(acc)
    if failed:
        raise MemoryError(f"could not allocate {g.OW * 8} bytes of pooling scratch")


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
                    window_row(&x[n, c, 0, 0], &g, oh, reduction, p, scale)
                    for ow in range(g.OW):
                        # grad_y * y ** (1 - p) with y = sum ** (1 / p)
                        norm = scale[ow] / (row_divisor[oh] * col_divisor[ow])
                        scale[ow] = (grad_y[n, c, oh, ow] * pow(norm, 1 / p - 1)
                                     if norm > 0 else 0)
                else:
                    for ow in range(g.OW):
                        scale[ow] = grad_y[n, c, oh, ow] / (row_divisor[oh] * col_divisor[ow])
                spread_row(&grad_x[n, c, 0, 0], &x[n, c, 0, 0] if reduction != SUM else NULL,
                           &g, oh, reduction, p, scale)
        free(scale)
    if failed:
        raise MemoryError(f"could not allocate {g.OW * 8} bytes of pooling scratch")
