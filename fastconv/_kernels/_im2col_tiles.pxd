# The im2col and col2im tiles, and the zero-padded row copy that im2col shares with the
# direct convolution's split of its input, inline so that every instruction-set build of
# the modules that call them (the whole-batch im2col/col2im, the im2col + GEMM and the
# direct convolution) compiles them with its own instruction set.
#
# Column matrix of one image: row ``(c * R + r) * S + s``, column ``oh * OW + ow``,
# holding ``x[c, oh * stride_h - pad_top + r * dilation_h,
# ow * stride_w - pad_left + s * dilation_w]`` or 0 in the padding (PyTorch's unfold
# order). A tile covers columns ``[l0, l1)``, so that callers can bound their workspace.
from cython cimport floating
from libc.string cimport memcpy, memset

from fastconv._kernels._geometry cimport Geometry, TapSpan, tap_span


cdef inline void copy_padded_row(floating* out,           # OUT [start, end)
                                 Py_ssize_t start, Py_ssize_t end,
                                 const floating* row_in,  # IN  row_in[j * stride]
                                 Py_ssize_t lo, Py_ssize_t hi,
                                 Py_ssize_t stride) noexcept nogil:
    """``out[j] = row_in[j * stride]`` for ``lo <= j < hi``, 0 for the rest of ``[start, end)``.

    ``[lo, hi)`` is clipped to ``[start, end)``. Rows are short (a few dozen pixels on
    small images): with unit stride one memcpy costs less than a vectorised loop's
    set-up.
    """
    cdef Py_ssize_t a = lo if lo > start else start, b, j
    a = a if a < end else end
    b = hi if hi < end else end
    b = b if b > a else a
    memset(out + start, 0, (a - start) * sizeof(floating))
    if stride == 1:
        memcpy(out + a, row_in + a, (b - a) * sizeof(floating))
    else:
        for j in range(a, b):
            out[j] = row_in[j * stride]
    memset(out + b, 0, (end - b) * sizeof(floating))


cdef inline void im2col_tile(const floating* image,  # IN  (channels, H, W)
                             Py_ssize_t channels, const Geometry* g,
                             Py_ssize_t l0, Py_ssize_t l1,
                             floating* cols,         # OUT (channels * R * S, ld)
                             Py_ssize_t ld) noexcept nogil:
    # The tile's first output pixel; later rows of the tile start at column 0.
    cdef Py_ssize_t oh0 = l0 // g.OW, first_ow = l0 - oh0 * g.OW
    cdef Py_ssize_t c, r, s, col, oh, ow0, ow1, ih
    cdef TapSpan span
    cdef floating* out
    for c in range(channels):
        for r in range(g.R):
            for s in range(g.S):
                span = tap_span(g, s)
                col, oh, ow0 = l0, oh0, first_ow
                while col < l1:
                    ow1 = ow0 + l1 - col if ow0 + l1 - col < g.OW else g.OW
                    # out[ow] is the column of output pixel (oh, ow).
                    out = cols + ((c * g.R + r) * g.S + s) * ld + (col - l0) - ow0
                    ih = oh * g.stride_h - g.pad_top + r * g.dilation_h
                    if ih < 0 or ih >= g.H:
                        memset(out + ow0, 0, (ow1 - ow0) * sizeof(floating))
                    else:
                        copy_padded_row(out, ow0, ow1,
                                        image + (c * g.H + ih) * g.W + span.offset,
                                        span.lo, span.hi, g.stride_w)
                    col += ow1 - ow0
                    oh, ow0 = oh + 1, 0


cdef inline void col2im_tile_add(const floating* cols,  # IN  (channels * R * S, ld)
                                 Py_ssize_t ld, Py_ssize_t channels, const Geometry* g,
                                 Py_ssize_t l0, Py_ssize_t l1,
                                 floating* image) noexcept nogil:  # INOUT (channels, H, W)
    cdef Py_ssize_t oh0 = l0 // g.OW, first_ow = l0 - oh0 * g.OW
    cdef Py_ssize_t c, r, s, col, oh, ow, ow0, ow1, ih
    cdef TapSpan span
    cdef floating* row_out
    cdef const floating* src
    for c in range(channels):
        for r in range(g.R):
            for s in range(g.S):
                span = tap_span(g, s)
                col, oh, ow0 = l0, oh0, first_ow
                while col < l1:
                    ow1 = ow0 + l1 - col if ow0 + l1 - col < g.OW else g.OW
                    ih = oh * g.stride_h - g.pad_top + r * g.dilation_h
                    if 0 <= ih < g.H:
                        src = cols + ((c * g.R + r) * g.S + s) * ld + (col - l0) - ow0
                        row_out = image + (c * g.H + ih) * g.W + span.offset
                        for ow in range(ow0 if ow0 > span.lo else span.lo,
                                        ow1 if ow1 < span.hi else span.hi):
                            row_out[ow * g.stride_w] += src[ow]
                    col += ow1 - ow0
                    oh, ow0 = oh + 1, 0
