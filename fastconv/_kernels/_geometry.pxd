from libc.stdlib cimport malloc


# The shape of one 2-D convolution, computed and checked by fastconv._params.
# x is (N, C, H, W), weight (K, C // groups, R, S), y (N, K, OH, OW); every kernel
# trusts these numbers: the Python wrapper proved them consistent with the arrays.
cdef struct Geometry:
    Py_ssize_t N, C, H, W
    Py_ssize_t K, OH, OW
    Py_ssize_t R, S
    Py_ssize_t stride_h, stride_w
    Py_ssize_t pad_top, pad_left
    Py_ssize_t dilation_h, dilation_w
    Py_ssize_t groups


cdef inline Py_ssize_t first_inside(Py_ssize_t offset, Py_ssize_t step) noexcept nogil:
    """Smallest o >= 0 with o * step + offset >= 0."""
    if offset >= 0:
        return 0
    return (step - 1 - offset) // step


cdef inline Py_ssize_t first_beyond(Py_ssize_t offset, Py_ssize_t step,
                                    Py_ssize_t limit) noexcept nogil:
    """Smallest o >= 0 with o * step + offset >= limit."""
    if offset >= limit:
        return 0
    return (limit - offset + step - 1) // step


cdef inline Py_ssize_t clamp(Py_ssize_t v, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    return lo if v < lo else (hi if v > hi else v)


# Where kernel column s lands: input column ow * stride_w + offset, in bounds for the
# outputs lo <= ow < hi. The same for every row and plane, so computed once per call.
cdef struct TapSpan:
    Py_ssize_t offset, lo, hi


cdef inline TapSpan tap_span(const Geometry* g, Py_ssize_t s) noexcept nogil:
    cdef TapSpan span
    span.offset = s * g.dilation_w - g.pad_left
    span.lo = clamp(first_inside(span.offset, g.stride_w), 0, g.OW)
    span.hi = clamp(first_beyond(span.offset, g.stride_w, g.W), span.lo, g.OW)
    return span


cdef inline TapSpan* column_spans(const Geometry* g) except NULL:
    """Every kernel column's span, in a new array the caller frees.

    Raises MemoryError if the array cannot be allocated.
    """
    cdef Py_ssize_t s
    cdef TapSpan* spans = <TapSpan*> malloc(g.S * sizeof(TapSpan))
    if spans == NULL:
        raise MemoryError(f"could not allocate {g.S * sizeof(TapSpan)} bytes of tap spans")
    for s in range(g.S):
        spans[s] = tap_span(g, s)
    return spans


# Two-pass pooling (max and average): a band of output rows is reduced first along the
# width, for every input row its windows touch, then down the height.
cdef enum:
    # Bytes of first-pass results per band: with about as many bytes of input rows they
    # come from and the band's outputs, well within a 32 KiB L1 cache, where the second
    # pass finds them. Average pooling 3x3 stride 2 on 8x64x112x112 (float32, 2 threads)
    # ran 1.24-1.37x faster than with 16 KiB, and 0.90-0.96x as fast with 4 KiB or
    # 2 KiB (2x2 stride 2: 1.42-1.46x, and 0.98-1.03x).
    BAND_BYTES = 8192


cdef inline Py_ssize_t band_height(const Geometry* g, Py_ssize_t bytes_per_output) noexcept nogil:
    """Output rows per band.

    Bands share first-pass rows when windows overlap and are contiguous (dilation 1,
    stride at most the kernel); otherwise a band is one output row, whose first pass
    covers its own window rows only.
    """
    if g.dilation_h == 1 and g.stride_h <= g.R:
        return max(1, BAND_BYTES // (bytes_per_output * g.OW * g.stride_h))
    return 1


cdef inline Py_ssize_t band_top(const Geometry* g, Py_ssize_t oh0) noexcept nogil:
    """The first input row that the windows of output rows from ``oh0`` read."""
    cdef Py_ssize_t top = oh0 * g.stride_h - g.pad_top
    return top + first_inside(top, g.dilation_h) * g.dilation_h


cdef inline Py_ssize_t band_rows(const Geometry* g, Py_ssize_t ih_lo,
                                 Py_ssize_t oh1) noexcept nogil:
    """How many input rows ``ih_lo + i * dilation_h`` output rows up to ``oh1`` read.

    From the band's :func:`band_top`; :func:`band_height` bounds the count by
    ``(band - 1) * stride_h + R``.
    """
    cdef Py_ssize_t ih_hi = min(g.H, (oh1 - 1) * g.stride_h - g.pad_top
                                + (g.R - 1) * g.dilation_h + 1)
    return (ih_hi - ih_lo + g.dilation_h - 1) // g.dilation_h


cdef inline Py_ssize_t window_rows(const Geometry* g, Py_ssize_t oh) noexcept nogil:
    """How many kernel rows of output row ``oh`` lie inside the input."""
    cdef Py_ssize_t top = oh * g.stride_h - g.pad_top
    cdef Py_ssize_t r0 = first_inside(top, g.dilation_h)
    return clamp(first_beyond(top, g.dilation_h, g.H), r0, g.R) - r0


cdef inline Py_ssize_t window_first_row(const Geometry* g, Py_ssize_t oh,
                                        Py_ssize_t ih_lo) noexcept nogil:
    """The first in-bounds kernel row of output row ``oh``, among a band's rows.

    Counted in the band's rows from its :func:`band_top` ``ih_lo``; the window's other
    rows follow one band row apart.
    """
    return (band_top(g, oh) - ih_lo) // g.dilation_h


cdef inline bint rows_join(const Geometry* g) noexcept nogil:
    """Whether a band's first pass can sweep all its rows as one run.

    When the width is ``stride_w * OW`` and the rows are consecutive, input element
    ``(ih, ow * stride_w + offset)`` sits ``stride_w`` elements after the previous
    output's, even from the end of one row to the start of the next.
    """
    return g.dilation_h == 1 and g.W == g.stride_w * g.OW


cdef inline void inner_columns(const Geometry* g, const TapSpan* spans, Py_ssize_t* lo,
                               Py_ssize_t* hi) noexcept nogil:
    """The outputs ``lo[0] .. hi[0]`` whose every kernel column lies inside the input."""
    cdef Py_ssize_t s
    lo[0], hi[0] = 0, g.OW
    for s in range(g.S):
        lo[0] = max(lo[0], spans[s].lo)
        hi[0] = min(hi[0], spans[s].hi)
    hi[0] = max(lo[0], hi[0])


cdef inline void window_columns(const Geometry* g, const TapSpan* spans, Py_ssize_t ow,
                                Py_ssize_t* s_lo, Py_ssize_t* s_hi) noexcept nogil:
    """The kernel columns ``s_lo[0] .. s_hi[0]`` of output ``ow`` inside the input.

    They are consecutive, as the input column grows with s; none gives ``0 .. 0``.
    """
    cdef Py_ssize_t s
    s_lo[0], s_hi[0] = 0, 0
    for s in range(g.S - 1, -1, -1):
        if spans[s].lo <= ow < spans[s].hi:
            s_lo[0] = s
            s_hi[0] = max(s_hi[0], s + 1)
