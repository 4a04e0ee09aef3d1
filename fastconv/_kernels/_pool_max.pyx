"""Max pooling forward: one (n, c) plane per work item, so every thread count agrees.

The window maximum is taken in two passes over a band of output rows:

1. along the width: for every input row the band needs, the maximum of each window's
   row (and its position) over the kernel's columns;
2. down the height: for every output row, the maximum of those row maxima over the
   kernel's rows, from contiguous rows of the first pass.

Each pass starts from its first in-bounds tap and takes a later tap when it is larger
or NaN, folding up to three taps per sweep while the running maximum stays in a
register. Taking a window's rows in order, each by its columns in order, is PyTorch's
row-major scan: ties keep the first maximum, a NaN wins with the position of the
window's last NaN, and a window of -inf keeps a real position. Rows shared by
overlapping windows are reduced along the width once.

When the width is ``stride * OW``, input element ``(ih, ow * stride + offset)`` sits
``stride`` elements after ``(ih, (ow - 1) * stride + offset)`` even across rows, so the
first pass runs as one long constant-stride loop per kernel column over the whole
band; the outputs whose windows cross the left or right edge are then redone one by
one. Otherwise it runs row by row over the outputs inside the edges.

A position is kept as a "code" ``ih * W + iw``. A 32-bit code lets the compiler keep
the data-dependent selects branch-free in SIMD registers beside float32 and float64
values; 64-bit codes serve planes of 2**30 elements or more (the sweeps count a code
a few strides past the plane's last element, which must not overflow).

Windows 2 or 3 columns wide at column stride 2 (dilation 1) skip the passes when the
compiler can vectorise them: pool_max_row.h takes each output row in one pass, a
vector of outputs at a time, and the outputs whose windows cross the left or right
edge are taken one by one.

Other windows on planes small enough (see PLANES_SCRATCH_BYTES) skip the passes too:
pool_planes.h puts a plane in each vector lane instead of an output, a block of
planes at a time, so that short rows (a 7 x 7 map, 4 x 4 windows on 14 x 14) still
fill the vectors.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.stdint cimport INT64_MIN, int32_t, int64_t
from libc.stdlib cimport free, malloc

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
    MAX,
    PLANES_SCRATCH_BYTES,
    plane_lanes,
    planes_fit,
    pool_plane_blocks,
)

cdef extern from "prefetch.h" nogil:
    void fastconv_prefetch_read(const char* base, Py_ssize_t size, Py_ssize_t offset,
                                Py_ssize_t bytes)
    void fastconv_prefetch_write(char* base, Py_ssize_t size, Py_ssize_t offset,
                                 Py_ssize_t bytes)

cdef extern from "max_key.h" nogil:
    const int64_t FASTCONV_MAX_KEY_NAN
    int64_t fastconv_max_key_f32(float value)
    int64_t fastconv_max_key_f64(double value)

cdef extern from "pool_max_row.h" nogil:
    enum:
        FASTCONV_POOL_ROW_MIN_LANES_F32
        FASTCONV_POOL_ROW_MIN_LANES_F64
    void fastconv_max_pool_row_f32(const float* plane, Py_ssize_t kernel_w, Py_ssize_t start,
                                   Py_ssize_t row_step, Py_ssize_t rows, Py_ssize_t ow_lo,
                                   Py_ssize_t ow_hi, float* y, int64_t* argmax)
    void fastconv_max_pool_row_f64(const double* plane, Py_ssize_t kernel_w, Py_ssize_t start,
                                   Py_ssize_t row_step, Py_ssize_t rows, Py_ssize_t ow_lo,
                                   Py_ssize_t ow_hi, double* y, int64_t* argmax)

cdef enum:
    # Inputs larger than this come from L3 or memory; there the single pass asks for
    # rows ahead of the ones it reads (prefetch.h), which costs time on data in L2.
    # (Average pooling's two passes ran faster without.)
    PREFETCH_ABOVE_BYTES = 2 * 1024 * 1024
    # The single pass asks for the input rows, output row and index row of the output
    # row this many ahead (crossing into the next plane) when the input exceeds
    # PREFETCH_ABOVE_BYTES (P1 and P2 of bench_pool with the caches flushed before each
    # call, 2 threads: 10-17% and 21-25% faster; on data in L2 the prefetches cost P1
    # 18%).
    PREFETCH_ROWS_AHEAD = 4

ctypedef fused code_t:
    int32_t
    int64_t

cdef inline void fold_taps(const floating* x, Py_ssize_t base, Py_ssize_t stride,
                           Py_ssize_t step, Py_ssize_t taps, Py_ssize_t j_lo, Py_ssize_t j_hi,
                           bint first, floating* best, code_t* code) noexcept nogil:
    """Fold taps ``x[base + j * stride + t * step]``, ``t < taps``, into ``best[j]``.

    For ``j_lo <= j < j_hi``, with their positions into ``code[j]`` unless ``code`` is
    NULL. ``first`` starts from tap 0 instead of from ``best`` (folding tap 0 into
    itself then changes nothing). Called with constant ``taps`` and ``stride``, so the
    taps unroll, the running maximum stays in a register, and the loads vectorise.
    The selects are unconditional: no branch depends on the data.
    """
    cdef Py_ssize_t j, t
    cdef floating running, value
    # Counted in code_t, which keeps the selects in 32-bit lanes where codes are 32-bit.
    cdef code_t found = 0, position = <code_t> (base + j_lo * stride)
    cdef bint take
    if code == NULL:
        for j in range(j_lo, j_hi):
            # Both starting points are loaded: a conditional load keeps a loop scalar.
            value = x[base + j * stride]
            running = best[j]
            running = value if first else running
            for t in range(taps):
                value = x[base + j * stride + t * step]
                take = (value > running) | (value != value)
                running = value if take else running
            best[j] = running
        return
    for j in range(j_lo, j_hi):
        value = x[base + j * stride]
        running = best[j]
        running = value if first else running
        found = code[j]
        found = position if first else found
        for t in range(taps):
            value = x[base + j * stride + t * step]
            take = (value > running) | (value != value)
            running = value if take else running
            found = <code_t> (position + t * step) if take else found
        best[j] = running
        code[j] = found
        position += <code_t> stride


cdef inline void fold_up_to_3_taps(const floating* x, Py_ssize_t base, Py_ssize_t stride,
                                   Py_ssize_t step, Py_ssize_t taps, Py_ssize_t j_lo,
                                   Py_ssize_t j_hi, bint first, floating* best,
                                   code_t* code) noexcept nogil:
    """:func:`fold_taps` with ``taps`` (1, 2 or 3) made a constant."""
    if taps == 3:
        fold_taps(x, base, stride, step, 3, j_lo, j_hi, first, best, code)
    elif taps == 2:
        fold_taps(x, base, stride, step, 2, j_lo, j_hi, first, best, code)
    else:
        fold_taps(x, base, stride, step, 1, j_lo, j_hi, first, best, code)


cdef inline void fold_column_taps(const floating* x, Py_ssize_t base, Py_ssize_t stride,
                                  Py_ssize_t step, Py_ssize_t taps, Py_ssize_t j_lo,
                                  Py_ssize_t j_hi, bint first, floating* best,
                                  code_t* code) noexcept nogil:
    """:func:`fold_up_to_3_taps` with the common strides made constants."""
    if stride == 1:
        fold_up_to_3_taps(x, base, 1, step, taps, j_lo, j_hi, first, best, code)
    elif stride == 2:
        fold_up_to_3_taps(x, base, 2, step, taps, j_lo, j_hi, first, best, code)
    elif stride == 4:
        fold_up_to_3_taps(x, base, 4, step, taps, j_lo, j_hi, first, best, code)
    else:
        fold_up_to_3_taps(x, base, stride, step, taps, j_lo, j_hi, first, best, code)


cdef inline void fold_rows(const floating* row_best, const code_t* row_code,
                           Py_ssize_t pitch, Py_ssize_t rows, Py_ssize_t n, bint first,
                           floating* best, code_t* code) noexcept nogil:
    """Fold first-pass rows ``t < rows``, ``pitch`` apart, into one output row's maxima.

    As :func:`fold_taps`, with the positions read from ``row_code`` (unless ``code``
    is NULL) and ``rows`` a constant after inlining.
    """
    cdef Py_ssize_t j, t
    cdef floating running, value
    cdef code_t found, candidate
    cdef bint take
    if code == NULL:
        for j in range(n):
            value = row_best[j]
            running = best[j]
            running = value if first else running
            for t in range(rows):
                value = row_best[t * pitch + j]
                take = (value > running) | (value != value)
                running = value if take else running
            best[j] = running
        return
    for j in range(n):
        value = row_best[j]
        running = best[j]
        running = value if first else running
        candidate = row_code[j]
        found = code[j]
        found = candidate if first else found
        for t in range(rows):
            value = row_best[t * pitch + j]
            candidate = row_code[t * pitch + j]
            take = (value > running) | (value != value)
            running = value if take else running
            found = candidate if take else found
        best[j] = running
        code[j] = found


cdef inline void fold_up_to_3_rows(const floating* row_best, const code_t* row_code,
                                   Py_ssize_t pitch, Py_ssize_t rows, Py_ssize_t n,
                                   bint first, floating* best, code_t* code) noexcept nogil:
    """:func:`fold_rows` with ``rows`` (1, 2 or 3) made a constant."""
    if rows == 3:
        fold_rows(row_best, row_code, pitch, 3, n, first, best, code)
    elif rows == 2:
        fold_rows(row_best, row_code, pitch, 2, n, first, best, code)
    else:
        fold_rows(row_best, row_code, pitch, 1, n, first, best, code)


cdef inline int64_t max_key(floating value) noexcept nogil:
    """The integer key of ``value`` (see max_key.h)."""
    if floating is float:
        return fastconv_max_key_f32(value)
    else:
        return fastconv_max_key_f64(value)


cdef inline void window_max(const floating* plane, const Geometry* g, const TapSpan* spans,
                            Py_ssize_t ih0, Py_ssize_t rows, Py_ssize_t ow, floating* best,
                            code_t* code) noexcept nogil:
    """Output ``ow`` alone, over window rows ``ih0 + r * dilation_h``, ``r < rows``.

    Its in-bounds taps in row-major order, the position into ``code[0]`` unless NULL.
    The taps are compared by their keys (max_key.h) and selected with a mask, without
    a branch on the data.
    """
    cdef Py_ssize_t r, s, s_lo, s_hi, position, found = 0
    # Below every key: the first tap is taken.
    cdef int64_t best_key = INT64_MIN, key, take
    window_columns(g, spans, ow, &s_lo, &s_hi)
    for r in range(rows):
        for s in range(s_lo, s_hi):
            position = (ih0 + r * g.dilation_h) * g.W + ow * g.stride_w + spans[s].offset
            key = max_key(plane[position])
            take = -<int64_t> (key > best_key)
            found = found ^ ((found ^ position) & take)
            best_key = best_key ^ ((best_key ^ (key - (key == FASTCONV_MAX_KEY_NAN))) & take)
    best[0] = plane[found]
    if code != NULL:
        code[0] = <code_t> found


cdef void along_width(const floating* plane, const Geometry* g, const TapSpan* spans,
                      Py_ssize_t inner_lo, Py_ssize_t inner_hi, Py_ssize_t ih_lo,
                      Py_ssize_t rows, floating* best, code_t* code) noexcept nogil:
    """First pass over input rows ``ih_lo + i * dilation_h``, ``i < rows``, into rows of OW.

    Outputs ``inner_lo .. inner_hi`` have every kernel column inside the input.
    """
    cdef Py_ssize_t i, s, taps, ih, base, ow
    cdef bint contiguous = rows_join(g)
    # Kernel columns s .. s + taps, 3 at a time.
    for s in range(0, g.S, 3):
        taps = min(3, g.S - s)
        if contiguous:
            # Row i's output ow is j = i * OW + ow, at input ih_lo * W + j * stride + offset.
            # Keep the reads inside the plane; what the edge outputs read is redone below.
            base = ih_lo * g.W + spans[s].offset
            fold_column_taps(
                plane, base, g.stride_w, g.dilation_w, taps, first_inside(base, g.stride_w),
                min(rows * g.OW, first_beyond(base + (taps - 1) * g.dilation_w, g.stride_w,
                                              g.H * g.W)),
                s == 0, best, code)
            continue
        for i in range(rows):
            ih = ih_lo + i * g.dilation_h
            fold_column_taps(plane, ih * g.W + spans[s].offset, g.stride_w, g.dilation_w, taps,
                             inner_lo, inner_hi, s == 0, best + i * g.OW,
                             code + i * g.OW if code != NULL else NULL)
    for i in range(rows):
        ih = ih_lo + i * g.dilation_h
        for ow in range(inner_lo):
            window_max(plane, g, spans, ih, 1, ow, best + i * g.OW + ow,
                       code + i * g.OW + ow if code != NULL else NULL)
        for ow in range(inner_hi, g.OW):
            window_max(plane, g, spans, ih, 1, ow, best + i * g.OW + ow,
                       code + i * g.OW + ow if code != NULL else NULL)


cdef void down_height(const Geometry* g, const floating* row_best, const code_t* row_code,
                      Py_ssize_t ih_lo, Py_ssize_t oh, floating* y, code_t* code,
                      int64_t* argmax) noexcept nogil:
    """Second pass: output row ``oh`` from the first-pass rows of input rows from ``ih_lo``."""
    cdef Py_ssize_t i0 = window_first_row(g, oh, ih_lo), rows = window_rows(g, oh)
    cdef Py_ssize_t r, ow
    cdef bint with_code = argmax != NULL
    # The window's rows r .. r + 3 at a time.
    for r in range(0, rows, 3):
        fold_up_to_3_rows(row_best + (i0 + r) * g.OW,
                          row_code + (i0 + r) * g.OW if with_code else NULL, g.OW,
                          min(3, rows - r), g.OW, r == 0, y, code if with_code else NULL)
    if with_code:
        for ow in range(g.OW):
            argmax[ow] = code[ow]


cdef int pool_planes(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y,
                     int64_t[:, :, :, ::1] indices, const Geometry* g, const TapSpan* spans,
                     code_t code_type, int num_threads) noexcept nogil:
    """Pool every plane with codes of ``code_t``; return 1 if scratch allocation failed."""
    cdef Py_ssize_t plane, n, c, oh, oh0, oh1, ih_lo, rows, inner_lo, inner_hi
    cdef Py_ssize_t band = band_height(g, sizeof(floating) + sizeof(code_t))
    cdef Py_ssize_t band_size = ((band - 1) * g.stride_h + g.R) * g.OW
    # Set by each thread; initialised here too, since OpenMP copies it into each thread.
    cdef bint with_indices = indices is not None, ready = False
    cdef floating* row_best = NULL
    cdef code_t* row_code = NULL
    cdef code_t* code = NULL
    cdef int failed = 0
    cdef int* failed_flag = &failed
    inner_columns(g, spans, &inner_lo, &inner_hi)
    with parallel(num_threads=num_threads):
        row_best = <floating*> malloc(band_size * sizeof(floating))
        if with_indices:
            row_code = <code_t*> malloc(band_size * sizeof(code_t))
            code = <code_t*> malloc(g.OW * sizeof(code_t))
        ready = row_best != NULL and not (with_indices and (row_code == NULL or code == NULL))
        if not ready:
            failed_flag[0] = 1
        for plane in prange(g.N * g.C, schedule="static"):
            if not ready:
                continue
            n = plane // g.C
            c = plane - n * g.C
            oh0 = 0
            while oh0 < g.OH:
                oh1 = min(g.OH, oh0 + band)
                ih_lo = band_top(g, oh0)
                rows = band_rows(g, ih_lo, oh1)
                along_width(&x[n, c, 0, 0], g, spans, inner_lo, inner_hi, ih_lo, rows,
                            row_best, row_code)
                for oh in range(oh0, oh1):
                    down_height(g, row_best, row_code, ih_lo, oh, &y[n, c, oh, 0], code,
                                &indices[n, c, oh, 0] if with_indices else NULL)
                oh0 = oh1
        free(row_best)
        free(row_code)
        free(code)
    return failed


cdef inline bint single_pass_fits(const Geometry* g, Py_ssize_t lanes, Py_ssize_t inner_lo,
                                  Py_ssize_t inner_hi) noexcept nogil:
    """Whether pool_max_row.h serves this geometry, its rows holding ``lanes`` inner outputs.

    ``lanes`` is the narrowest vector's (0 where the header is not compiled).
    """
    return (lanes > 0 and g.stride_w == 2 and g.dilation_w == 1 and (g.S == 2 or g.S == 3)
            and inner_hi - inner_lo >= lanes)


cdef inline void max_pool_row(const floating* plane, Py_ssize_t kernel_w, Py_ssize_t start,
                              Py_ssize_t row_step, Py_ssize_t rows, Py_ssize_t ow_lo,
                              Py_ssize_t ow_hi, floating* y, int64_t* argmax) noexcept nogil:
    """Dispatch to pool_max_row.h by type."""
    if floating is float:
        fastconv_max_pool_row_f32(plane, kernel_w, start, row_step, rows, ow_lo, ow_hi, y,
                                  argmax)
    else:
        fastconv_max_pool_row_f64(plane, kernel_w, start, row_step, rows, ow_lo, ow_hi, y,
                                  argmax)


cdef void pool_planes_single_pass(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y,
                                  int64_t[:, :, :, ::1] indices, const Geometry* g,
                                  const TapSpan* spans, Py_ssize_t inner_lo,
                                  Py_ssize_t inner_hi, int num_threads) noexcept nogil:
    """Pool every plane a row at a time with pool_max_row.h (see :func:`single_pass_fits`)."""
    cdef Py_ssize_t plane, n, c, oh, ow, ih0, rows, next_ih, next_oh
    cdef Py_ssize_t outputs = g.N * g.C * g.OH * g.OW
    cdef Py_ssize_t x_bytes = g.N * g.C * g.H * g.W * sizeof(floating)
    cdef bint with_indices = indices is not None
    cdef bint prefetch = x_bytes > PREFETCH_ABOVE_BYTES
    cdef int64_t* argmax = NULL
    for plane in prange(g.N * g.C, schedule="static", num_threads=num_threads):
        n = plane // g.C
        c = plane - n * g.C
        for oh in range(g.OH):
            ih0 = band_top(g, oh)
            rows = window_rows(g, oh)
            argmax = &indices[n, c, oh, 0] if with_indices else NULL
            if prefetch:
                # Rows counted through the whole array, so the last rows of a plane ask
                # for the first rows of the next.
                next_ih = plane * g.H + ih0 + PREFETCH_ROWS_AHEAD * g.stride_h
                next_oh = plane * g.OH + oh + PREFETCH_ROWS_AHEAD
                fastconv_prefetch_read(<const char*> &x[0, 0, 0, 0], x_bytes,
                                       next_ih * g.W * sizeof(floating),
                                       g.stride_h * g.W * sizeof(floating))
                fastconv_prefetch_write(<char*> &y[0, 0, 0, 0], outputs * sizeof(floating),
                                        next_oh * g.OW * sizeof(floating),
                                        g.OW * sizeof(floating))
                if with_indices:
                    fastconv_prefetch_write(<char*> &indices[0, 0, 0, 0],
                                            outputs * sizeof(int64_t),
                                            next_oh * g.OW * sizeof(int64_t),
                                            g.OW * sizeof(int64_t))
            max_pool_row(&x[n, c, 0, 0], g.S, ih0 * g.W - g.pad_left, g.dilation_h * g.W, rows,
                         inner_lo, inner_hi, &y[n, c, oh, 0], argmax)
            for ow in range(inner_lo):
                window_max(&x[n, c, 0, 0], g, spans, ih0, rows, ow, &y[n, c, oh, ow],
                           argmax + ow if with_indices else NULL)
            for ow in range(inner_hi, g.OW):
                window_max(&x[n, c, 0, 0], g, spans, ih0, rows, ow, &y[n, c, oh, ow],
                           argmax + ow if with_indices else NULL)


def max_pool2d(const floating[:, :, :, ::1] x,       # IN  (N, C, H, W)
               floating[:, :, :, ::1] y,             # OUT (N, C, OH, OW)
               int64_t[:, :, :, ::1] indices,        # OUT (N, C, OH, OW), or None
               Geometry g, bint wide_codes, int num_threads):
    """Max-pool ``x`` into ``y`` (and ``indices``); 64-bit codes if ``wide_codes``.

    The wrapper sets ``wide_codes`` when a plane holds 2**30 elements or more.
    """
    cdef int failed = 0
    cdef Py_ssize_t inner_lo, inner_hi
    cdef Py_ssize_t lanes = (FASTCONV_POOL_ROW_MIN_LANES_F32 if floating is float
                             else FASTCONV_POOL_ROW_MIN_LANES_F64)
    cdef const double[::1] no_divisors = None
    cdef TapSpan* spans = column_spans(&g)
    inner_columns(&g, spans, &inner_lo, &inner_hi)
    with nogil:
        if not wide_codes and single_pass_fits(&g, lanes, inner_lo, inner_hi):
            pool_planes_single_pass(x, y, indices, &g, spans, inner_lo, inner_hi, num_threads)
        elif not wide_codes and planes_fit(&g, plane_lanes(<floating> 0), sizeof(floating),
                                           PLANES_SCRATCH_BYTES):
            failed = pool_plane_blocks(MAX, x, y, indices, no_divisors, no_divisors, &g,
                                       num_threads)
        elif wide_codes:
            failed = pool_planes(x, y, indices, &g, spans, <int64_t> 0, num_threads)
        else:
            failed = pool_planes(x, y, indices, &g, spans, <int32_t> 0, num_threads)
    free(spans)
    if failed:
        raise MemoryError("could not allocate the max-pooling scratch")
