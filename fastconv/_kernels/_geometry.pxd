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


cdef inline void column_spans(const Geometry* g, TapSpan* spans) noexcept nogil:
    cdef Py_ssize_t s
    for s in range(g.S):
        spans[s] = tap_span(g, s)
