"""Max pooling forward: one (n, c) plane per work item, so every thread count agrees.

Each output row is built by sweeping the window taps (row-major, as PyTorch scans
them) across the whole row, with the innermost loop along the output width. The row
starts at -inf with the position of each window's first in-bounds element; a tap
replaces the running maximum when it is larger or NaN. So ties keep the first maximum,
a NaN wins with the position of the window's last NaN, and a window of -inf keeps a
real position.

While sweeping, a position is kept as a "code": its offset from the start of the
window's first input row. A 32-bit code lets the compiler keep the data-dependent
selects branch-free in SIMD registers beside float32 and float64 values (with a
64-bit code beside float64 it does not vectorise at the SSE2 baseline); 64-bit codes
serve windows spanning 2**31 elements or more.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY
from libc.stdint cimport INT32_MAX, int32_t, int64_t
from libc.stdlib cimport free, malloc

from fastconv._kernels._geometry cimport (
    Geometry,
    TapSpan,
    clamp,
    column_spans,
    first_beyond,
    first_inside,
)

ctypedef fused code_t:
    int32_t
    int64_t


cdef inline void update_row(const floating* x_row, code_t row_code, Py_ssize_t lo,
                            Py_ssize_t hi, Py_ssize_t stride, Py_ssize_t offset,
                            floating* best, code_t* code) noexcept nogil:
    """Fold the tap at column ``ow * stride + offset`` into outputs ``lo..hi``.

    The stores are unconditional selects, so no branch depends on the data (random
    data would mispredict one about a third of the time). ``code`` may be NULL.
    """
    cdef Py_ssize_t ow
    cdef floating value
    cdef bint take
    cdef code_t position = <code_t> (row_code + lo * stride + offset)
    if code == NULL:
        for ow in range(lo, hi):
            value = x_row[ow * stride + offset]
            take = (value > best[ow]) | (value != value)
            best[ow] = value if take else best[ow]
        return
    for ow in range(lo, hi):
        value = x_row[ow * stride + offset]
        take = (value > best[ow]) | (value != value)
        best[ow] = value if take else best[ow]
        code[ow] = position if take else code[ow]
        position += <code_t> stride


cdef inline void pool_row(const floating* plane, const Geometry* g, const TapSpan* spans,
                          Py_ssize_t oh, floating* best, code_t* code,
                          int64_t* argmax) noexcept nogil:
    """Max (and, unless ``argmax`` is NULL, its position) over output row ``oh``."""
    cdef Py_ssize_t top = oh * g.stride_h - g.pad_top
    cdef Py_ssize_t r0 = first_inside(top, g.dilation_h)
    cdef Py_ssize_t r1 = clamp(first_beyond(top, g.dilation_h, g.H), r0, g.R)
    cdef Py_ssize_t first_row = top + r0 * g.dilation_h
    cdef Py_ssize_t r, s, ih, ow, left, offset, lo, hi
    cdef code_t row_code
    if argmax == NULL:
        code = NULL
    for ow in range(g.OW):
        best[ow] = -INFINITY
        if code != NULL:
            left = ow * g.stride_w - g.pad_left
            code[ow] = <code_t> (left + first_inside(left, g.dilation_w) * g.dilation_w)
    for r in range(r0, r1):
        ih = top + r * g.dilation_h
        row_code = <code_t> ((ih - first_row) * g.W)
        for s in range(g.S):
            offset, lo, hi = spans[s].offset, spans[s].lo, spans[s].hi
            # Constant strides let the compiler vectorise the strided loads.
            if g.stride_w == 1:
                update_row(plane + ih * g.W, row_code, lo, hi, 1, offset, best, code)
            elif g.stride_w == 2:
                update_row(plane + ih * g.W, row_code, lo, hi, 2, offset, best, code)
            else:
                update_row(plane + ih * g.W, row_code, lo, hi, g.stride_w, offset, best, code)
    if code != NULL:
        for ow in range(g.OW):
            argmax[ow] = first_row * g.W + code[ow]


cdef int pool_planes(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y,
                     int64_t[:, :, :, ::1] indices, const Geometry* g, const TapSpan* spans,
                     code_t code_type, int num_threads) noexcept nogil:
    """Pool every plane with codes of ``code_t``; return 1 if scratch allocation failed."""
    cdef Py_ssize_t plane, n, c, oh
    cdef bint with_indices = indices is not None
    cdef code_t* code = NULL
    cdef int failed = 0
    cdef int* failed_flag = &failed
    with parallel(num_threads=num_threads):
        if with_indices:
            code = <code_t*> malloc(g.OW * sizeof(code_t))
            if code == NULL:
                failed_flag[0] = 1
        for plane in prange(g.N * g.C, schedule="static"):
            if with_indices and code == NULL:
                continue
            n = plane // g.C
            c = plane - n * g.C
            for oh in range(g.OH):
                pool_row(&x[n, c, 0, 0], g, spans, oh, &y[n, c, oh, 0], code,
                         &indices[n, c, oh, 0] if with_indices else NULL)
        free(code)
    return failed


def max_pool2d(const floating[:, :, :, ::1] x,       # IN  (N, C, H, W)
               floating[:, :, :, ::1] y,             # OUT (N, C, OH, OW)
               int64_t[:, :, :, ::1] indices,        # OUT (N, C, OH, OW), or None
               Geometry g, int num_threads):
    cdef int failed
    # The largest code is the last column of the window's last row.
    cdef bint narrow = (g.R - 1) * g.dilation_h * g.W + g.W <= INT32_MAX
    cdef TapSpan* spans = <TapSpan*> malloc(g.S * sizeof(TapSpan))
    if spans == NULL:
        raise MemoryError(f"could not allocate {g.S * sizeof(TapSpan)} bytes of tap spans")
    column_spans(&g, spans)
    with nogil:
        if narrow:
            failed = pool_planes(x, y, indices, &g, spans, <int32_t> 0, num_threads)
        else:
            failed = pool_planes(x, y, indices, &g, spans, <int64_t> 0, num_threads)
    free(spans)
    if failed:
        raise MemoryError(f"could not allocate {g.OW * 8} bytes of max-pooling scratch")
