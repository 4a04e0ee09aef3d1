"""Pool Skip's convolution of the unpooled map, visiting only the pooled maxima.

``max_unpool(max_pool_e(x))`` is zero except at one position per e x e block in each
channel, so its "same" convolution needs 1/e^2 of a dense convolution's work: each
maximum is spread through the R x S taps instead of convolving a map of zeros.
The backward takes the filters as ``weight_t[c, r, s, k] = weight[k, c, r, s]`` and
the gradient channels last and mirrored (its pixels in reverse order): a maximum
reaches output column iw + S // 2 - s through filter column s, so in the mirrored
image the S taps' gradient rows lie end to end in the order of s. A maximum thus
meets S * K contiguous weights and S * K contiguous gradient elements per filter row:
one long sweep, which vectorises and serves both gradients, the weight gradient's
multiply-add and the input gradient's dot product.
The maxima of one channel go QUEUE at a time into one sweep per filter row (see
gradient_rows.h). The forward takes the filters in blocks of one vector of output
channels instead, so that the filters of a block and a chunk of input channels stay
in a core's cache while the maxima of a band of rows pass (see ``forward``); it
finds the maxima at a position in a list built once per image (see
``list_maxima``), rather than by reading each channel's indices again.

Results are bitwise the same for every thread count: every output element has one
writer, and each sum runs in an order fixed by the shape and the indices alone.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset

from fastconv._kernels._openmp cimport omp_get_num_threads


cdef enum:
    # Maxima a queue of the backward holds: each sweep reads the filter rows and reads
    # and writes the weight gradient's rows once for all of them, so beyond a few dozen
    # maxima that traffic no longer counts.
    QUEUE = 64
    # The backward's queues: one per way a maximum's taps can be cut by the image's
    # edges (none, or at the top, bottom or both, times the same at the sides).
    QUEUES = 16


cdef extern from "gradient_rows.h" nogil:
    void fastconv_gradient_rows_f32(float* acc, const float* weights, const float* const* rows,
                                    Py_ssize_t shift, const float* scales, Py_ssize_t count,
                                    Py_ssize_t n, float* parts)
    void fastconv_gradient_rows_f64(double* acc, const double* weights,
                                    const double* const* rows, Py_ssize_t shift,
                                    const double* scales, Py_ssize_t count, Py_ssize_t n,
                                    double* parts)
    float fastconv_lanes_total_float(float* part)
    double fastconv_lanes_total_double(double* part)


cdef extern from "bits.h" nogil:
    int fastconv_lowest_bit(uint64_t word)


cdef extern from "spread_taps.h" nogil:
    const int FASTCONV_VECTOR_BYTES
    void fastconv_spread_rows_f32(float* acc, Py_ssize_t pitch, Py_ssize_t row_step,
                                  const float* slab, Py_ssize_t slab_row,
                                  const Py_ssize_t* starts, const int32_t* offsets,
                                  const float* scales, Py_ssize_t pixels, int rows, int taps)
    void fastconv_spread_rows_f64(double* acc, Py_ssize_t pitch, Py_ssize_t row_step,
                                  const double* slab, Py_ssize_t slab_row,
                                  const Py_ssize_t* starts, const int32_t* offsets,
                                  const double* scales, Py_ssize_t pixels, int rows, int taps)


cdef extern from "transpose_tile.h" nogil:
    void fastconv_transpose_f32(float* dst, Py_ssize_t dst_pitch, const float* src,
                                Py_ssize_t src_pitch, Py_ssize_t M, Py_ssize_t P)
    void fastconv_transpose_f64(double* dst, Py_ssize_t dst_pitch, const double* src,
                                Py_ssize_t src_pitch, Py_ssize_t M, Py_ssize_t P)
    void fastconv_add_pixels_f32(float* y, const float* x, Py_ssize_t pitch,
                                 const float* const* pixels, Py_ssize_t P, const float* bias,
                                 Py_ssize_t K)
    void fastconv_add_pixels_f64(double* y, const double* x, Py_ssize_t pitch,
                                 const double* const* pixels, Py_ssize_t P,
                                 const double* bias, Py_ssize_t K)


cdef enum:
    # Rows of a matrix that one work item of ``transpose`` takes.
    STRIP = 64


cdef inline void transpose_rows(floating* dst, Py_ssize_t dst_pitch, const floating* src,
                                Py_ssize_t src_pitch, Py_ssize_t M,
                                Py_ssize_t P) noexcept nogil:
    """``dst[j * dst_pitch + i] = src[i * src_pitch + j]`` for i < M, j < P, through
    tiles transposed in registers (transpose_tile.h); dst_pitch may be negative."""
    if floating is float:
        fastconv_transpose_f32(dst, dst_pitch, src, src_pitch, M, P)
    else:
        fastconv_transpose_f64(dst, dst_pitch, src, src_pitch, M, P)


def transpose(const floating[:, :, ::1] src,   # IN  (B, M, P)
              floating[:, :, ::1] dst,         # OUT (B, P, M)
              int num_threads):
    """``dst[b] = src[b].T``, through tiles transposed in registers (transpose_tile.h);
    a work item is a strip of STRIP rows of one matrix: the forward's filters laid
    out in blocks of output channels (see ``forward``)."""
    cdef Py_ssize_t B = src.shape[0], M = src.shape[1], P = src.shape[2]
    cdef Py_ssize_t strips = (M + STRIP - 1) // STRIP, item, b, i0, i1
    if B == 0 or M == 0 or P == 0:
        return
    with nogil:
        for item in prange(B * strips, schedule="static", num_threads=num_threads):
            b = item // strips
            i0 = (item % strips) * STRIP
            i1 = i0 + STRIP if i0 + STRIP < M else M
            transpose_rows(&dst[b, 0, i0], M, &src[b, i0, 0], P, i1 - i0, P)


cdef inline void spread_rows(floating* acc, Py_ssize_t pitch, Py_ssize_t row_step,
                             const floating* slab, Py_ssize_t slab_row,
                             const Py_ssize_t* starts, const int32_t* offsets,
                             const floating* scales, Py_ssize_t pixels, int rows,
                             int taps) noexcept nogil:
    """Pixel p < pixels of a row of input gains, at its taps j < taps of filter rows i <
    rows (at ``acc + i * row_step + (p + j) * pitch``), the vectors ``offsets[t] + i *
    slab_row - j * LANES`` of the slab times ``scales[t]``, for t from ``starts[p]`` to
    ``starts[p + 1] - 1`` (spread_taps.h)."""
    if floating is float:
        fastconv_spread_rows_f32(acc, pitch, row_step, slab, slab_row, starts, offsets, scales,
                                 pixels, rows, taps)
    else:
        fastconv_spread_rows_f64(acc, pitch, row_step, slab, slab_row, starts, offsets, scales,
                                 pixels, rows, taps)


cdef inline void add_pixels(floating* y, const floating* x, Py_ssize_t pitch,
                            const floating* const* pixels, Py_ssize_t P, const floating* bias,
                            Py_ssize_t K) noexcept nogil:
    """``y[k * pitch + p] = x[k * pitch + p] + (pixels[p][k] + bias[k])`` for k < K,
    p < P (bias NULL adds 0), through tiles transposed in registers (transpose_tile.h)."""
    if floating is float:
        fastconv_add_pixels_f32(y, x, pitch, pixels, P, bias, K)
    else:
        fastconv_add_pixels_f64(y, x, pitch, pixels, P, bias, K)


cdef void mark_maxima(const int64_t* indices, Py_ssize_t C, Py_ssize_t L, Py_ssize_t plane,
                      uint64_t* masks) noexcept nogil:
    """Set bit ``c % 64`` of ``masks[c // 64, q]`` for each maximum of channel c, at q.

    One image's maxima, channel by channel as they lie in memory; the words of one
    group of 64 channels (one word per input position) stay in cache meanwhile.
    """
    cdef Py_ssize_t c, p
    cdef uint64_t bit
    cdef uint64_t* words
    memset(masks, 0, (C + 63) // 64 * plane * sizeof(uint64_t))
    for c in range(C):
        words = masks + c // 64 * plane
        bit = (<uint64_t> 1) << (c % 64)
        for p in range(L):
            words[indices[c * L + p]] |= bit


cdef inline uint64_t channel_bits(Py_ssize_t word, Py_ssize_t c0, Py_ssize_t c1) noexcept nogil:
    """The bits of channels ``c0 .. c1 - 1`` in mask word ``word`` (channels from 64 * word),
    which holds at least one of them."""
    cdef Py_ssize_t lo = c0 - 64 * word, hi = c1 - 64 * word
    cdef uint64_t bits = ~(<uint64_t> 0)
    if lo > 0:
        bits = bits << lo
    if hi < 64:
        bits = bits & (((<uint64_t> 1) << hi) - 1)
    return bits


cdef int list_maxima(const int64_t* indices, const floating* pooled, Py_ssize_t C,
                     Py_ssize_t L, Py_ssize_t OW, const Py_ssize_t* block_row,
                     const Py_ssize_t* block_col, Py_ssize_t H, Py_ssize_t W, Py_ssize_t chunk,
                     int32_t channel_step, Py_ssize_t* bounds, int32_t* offsets,
                     floating* values) noexcept nogil:
    """List one image's maxima by chunk of ``chunk`` channels and position, in channel order.

    The maxima of chunk k at position q are entries ``bounds[k * H*W + q]`` to
    ``bounds[k * H*W + q + 1] - 1`` of ``offsets`` (each one's channel times
    ``channel_step``: where its filters start in a block of the forward's) and of
    ``values`` (each one's pooled value: its channel's maximum of the block
    ``(block_row[ih], block_col[iw])`` holding q). The maxima are marked first (see
    ``mark_maxima``), then read off position by position, so both passes run through
    memory in order. Return 1 if the marks' scratch could not be allocated.
    """
    cdef Py_ssize_t plane = H * W, chunks = (C + chunk - 1) // chunk
    cdef Py_ssize_t k, c0, c1, ih, iw, q, p, word, c, slot = 0
    cdef uint64_t bits
    cdef uint64_t* masks = <uint64_t*> malloc((C + 63) // 64 * plane * sizeof(uint64_t))
    if masks == NULL:
        return 1
    mark_maxima(indices, C, L, plane, masks)
    for k in range(chunks):
        c0 = k * chunk
        c1 = c0 + chunk if c0 + chunk < C else C
        for ih in range(H):
            for iw in range(W):
                q = ih * W + iw
                bounds[k * plane + q] = slot
                # Past the last whole block no bit is set, and p is not read.
                p = block_row[ih] * OW + block_col[iw]
                for word in range(c0 // 64, (c1 - 1) // 64 + 1):
                    bits = masks[word * plane + q] & channel_bits(word, c0, c1)
                    while bits:
                        c = 64 * word + fastconv_lowest_bit(bits)
                        bits = bits & (bits - 1)
                        offsets[slot] = <int32_t> c * channel_step
                        values[slot] = pooled[c * L + p]
                        slot = slot + 1
    bounds[chunks * plane] = slot
    free(masks)
    return 0


def filter_lanes(Py_ssize_t itemsize):
    """The output channels of one block of the forward's filters: one vector of the build."""
    return FASTCONV_VECTOR_BYTES // itemsize


def forward(const floating[:, :, ::1] x,                # IN  (N, K, H*W), K == C
            const int64_t[:, :, ::1] indices,           # IN  (N, C, L), in [0, H*W)
            const floating[:, :, ::1] pooled,           # IN  (N, C, L)
            const floating[:, :, :, :, ::1] filters,    # IN  (K_blocks, C, R, S, LANES)
            const floating[::1] bias,                   # IN  (K,) or None
            const Py_ssize_t[::1] block_row,            # IN  (H,): ih // e_h
            const Py_ssize_t[::1] block_col,            # IN  (W,): iw // e_w
            Py_ssize_t[:, ::1] bounds,                  # WORK (N, ceil(C / chunk) * H*W + 1)
            int32_t[:, ::1] offsets,                    # WORK (N, C * L)
            floating[:, ::1] values,                    # WORK (N, C * L)
            floating[:, ::1] acc,                       # WORK (workers, band * row_len)
            floating[:, :, ::1] y,                      # OUT (N, K, H*W)
            Py_ssize_t OW, Py_ssize_t chunk, Py_ssize_t band):
    """``y = x + bias + conv(unpooled)``; a work item is a band of output rows of one image.

    The lists of maxima, then the bands, take as many threads as ``acc`` has rows:
    their workers' scratch. C * R * S * LANES must fit in an int32.

    ``filters[b, c, r, s, l] = weight[b * LANES + l, c, r, s]``, zero past K: blocks of
    LANES output channels (see ``filter_lanes``). A maximum at column iw reaches pixel
    iw + s of the accumulator's row (pad pixels on) through filter column S - 1 - s: the
    taps' vectors run backwards.

    First each image's maxima are listed by position (see ``list_maxima``), each with
    where its channel's filters start in a block. A band then accumulates channels
    last in its worker's rows of ``acc``, K_blocks * LANES channels per pixel, with
    pad = S // 2 spare pixels on each side of a row, so a maximum at column iw adds its
    S taps to pixels iw .. iw + S - 1 of a row without bounds checks. Chunk after
    chunk of ``chunk`` input channels, block after block of output channels, whose
    slab of the filters for the chunk stays in cache for the whole band, the maxima of
    each input row that reaches the band sweep the band's rows they reach through all
    their filter rows at once (see ``spread_rows``). The interior is then transposed
    into y beside x and the bias (see ``add_pixels``). The sum at each output element
    runs chunk after chunk, input row by input row, column by column, and over each
    column's list in channel order: an order fixed whatever the bands and threads.
    """
    cdef Py_ssize_t N = x.shape[0], C = indices.shape[1], L = indices.shape[2]
    cdef Py_ssize_t K = x.shape[1], K_blocks = filters.shape[0], LANES = filters.shape[4]
    cdef Py_ssize_t R = filters.shape[2], S = filters.shape[3]
    cdef Py_ssize_t H = block_row.shape[0], W = block_col.shape[0], plane = H * W
    cdef Py_ssize_t pad_w = S // 2, pixel = K_blocks * LANES, row_len = (W + 2 * pad_w) * pixel
    cdef Py_ssize_t bands = (H + band - 1) // band, chunks = (C + chunk - 1) // chunk
    cdef int workers = <int> acc.shape[0]
    cdef Py_ssize_t slab_row = S * LANES, item, n, oh0, oh1, q, b, oh, ow, ih, r_lo, r_hi
    cdef const floating* bias_or_null = NULL
    cdef floating* band_acc
    cdef floating* row
    cdef const floating** pixels = NULL
    cdef int failed = 0
    cdef int* failed_flag = &failed
    if bias is not None and bias.shape[0] > 0:
        bias_or_null = &bias[0]
    # At most one worker per scratch row of acc: threadid() picks the row.
    with nogil, parallel(num_threads=workers):
        # Where each output pixel of a band lies in acc, row after row.
        pixels = <const floating**> malloc(band * W * sizeof(floating*))
        if pixels == NULL:
            failed_flag[0] = 1
        for n in prange(N, schedule="static"):
            if list_maxima(&indices[n, 0, 0], &pooled[n, 0, 0], C, L, OW, &block_row[0],
                           &block_col[0], H, W, chunk, <int32_t> (R * slab_row),
                           &bounds[n, 0], &offsets[n, 0], &values[n, 0]):
                failed_flag[0] = 1
        for item in prange(N * bands, schedule="static"):
            if failed_flag[0]:
                continue
            band_acc = &acc[threadid(), 0]
            n = item // bands
            oh0 = (item % bands) * band
            oh1 = oh0 + band if oh0 + band < H else H
            memset(band_acc, 0, (oh1 - oh0) * row_len * sizeof(floating))
            for q in range(chunks):
                for b in range(K_blocks):
                    # Input row ih reaches output row ih + R // 2 - r through filter row
                    # r: rows r_lo .. r_hi - 1 land in the band.
                    for ih in range(max(oh0 - R // 2, 0), min(oh1 + R // 2, H)):
                        r_lo = max(ih + R // 2 - oh1 + 1, 0)
                        r_hi = min(ih + R // 2 - oh0 + 1, R)
                        row = band_acc + (ih + R // 2 - r_lo - oh0) * row_len
                        spread_rows(row + b * LANES, pixel, -row_len,
                                    &filters[b, 0, r_lo, S - 1, 0], slab_row,
                                    &bounds[n, q * plane + ih * W], &offsets[n, 0],
                                    &values[n, 0], W, <int> (r_hi - r_lo), <int> S)
            for oh in range(oh0, oh1):
                for ow in range(W):
                    pixels[(oh - oh0) * W + ow] = (band_acc + (oh - oh0) * row_len
                                                   + (pad_w + ow) * pixel)
            add_pixels(&y[n, 0, oh0 * W], &x[n, 0, oh0 * W], plane, pixels,
                       (oh1 - oh0) * W, bias_or_null, K)
        free(pixels)
    if failed:
        raise MemoryError("pool_skip: no memory for its scratch buffers")


cdef inline void taps_inside(Py_ssize_t ih, Py_ssize_t iw, Py_ssize_t H, Py_ssize_t W,
                             Py_ssize_t R, Py_ssize_t S, Py_ssize_t* r0, Py_ssize_t* r1,
                             Py_ssize_t* s_lo, Py_ssize_t* s_hi) noexcept nogil:
    """The taps through which a maximum at (ih, iw) reaches output pixels in the image.

    Filter row r reaches output row ih + R // 2 - r and filter column s output column
    iw + S // 2 - s: rows ``r0 .. r1 - 1`` and columns ``s_lo .. s_hi - 1`` land
    inside the image.
    """
    cdef Py_ssize_t pad_h = R // 2, pad_w = S // 2
    r0[0] = ih + pad_h - H + 1 if ih + pad_h - H + 1 > 0 else 0
    r1[0] = ih + pad_h + 1 if ih + pad_h + 1 < R else R
    s_lo[0] = iw + pad_w - W + 1 if iw + pad_w - W + 1 > 0 else 0
    s_hi[0] = iw + pad_w + 1 if iw + pad_w + 1 < S else S


cdef void map_taps(Py_ssize_t H, Py_ssize_t W, Py_ssize_t K, Py_ssize_t R, Py_ssize_t S,
                   Py_ssize_t* reach, uint8_t* queue_of, int32_t* taps) noexcept nogil:
    """For each position q = (ih, iw) of a plane, what a maximum there reaches.

    ``taps[4 * q:]``: its filter rows and columns inside the image (see
    ``taps_inside``). ``queue_of[q]``: its queue in ``channel_gradients``, by the way
    the image's edges cut those taps (0: none). ``reach[q]``: where its gradient row
    through the first of those taps starts in the mirrored gradient image, where the
    maximum lies at (H - 1 - ih, W - 1 - iw). The same for every image and channel:
    built once.
    """
    cdef Py_ssize_t pad_h = R // 2, pad_w = S // 2, ih, iw, q, r0, r1, s_lo, s_hi
    for ih in range(H):
        for iw in range(W):
            q = ih * W + iw
            taps_inside(ih, iw, H, W, R, S, &r0, &r1, &s_lo, &s_hi)
            taps[4 * q] = <int32_t> r0
            taps[4 * q + 1] = <int32_t> r1
            taps[4 * q + 2] = <int32_t> s_lo
            taps[4 * q + 3] = <int32_t> s_hi
            queue_of[q] = <uint8_t> (((r0 > 0) + 2 * (r1 < R)) * 4 + (s_lo > 0)
                                     + 2 * (s_hi < S))
            reach[q] = ((H - 1 - ih - pad_h + r0) * W + W - 1 - iw - pad_w + s_lo) * K


cdef inline void gradient_rows(floating* acc, const floating* weights,
                               const floating* const* rows, Py_ssize_t shift,
                               const floating* scales, Py_ssize_t count, Py_ssize_t n,
                               floating* parts) noexcept nogil:
    """For t < count in turn, k < n, with ``g = rows[t][shift + k]``: ``acc[k] +=
    scales[t] * g``, and ``weights[k] * g`` into lane ``k % lanes`` of row t's
    partial dot product ``parts[t * lanes:]`` (see gradient_rows.h)."""
    if floating is float:
        fastconv_gradient_rows_f32(acc, weights, rows, shift, scales, count, n, parts)
    else:
        fastconv_gradient_rows_f64(acc, weights, rows, shift, scales, count, n, parts)


cdef inline floating lanes_total(floating* part) noexcept nogil:
    """The sum of a partial dot product's lanes, pairwise in a fixed order."""
    if floating is float:
        return fastconv_lanes_total_float(part)
    else:
        return fastconv_lanes_total_double(part)


cdef void run_queue(Py_ssize_t k, floating* gw, const floating* weight, floating* grad_x,
                    const floating** rows, floating* scales, Py_ssize_t* queued,
                    floating* parts, Py_ssize_t* counts, const Py_ssize_t* taps,
                    Py_ssize_t pitch, Py_ssize_t K, Py_ssize_t span) noexcept nogil:
    """Both gradients through the maxima waiting in queue k (``counts[k]`` of them,
    from ``k * QUEUE`` in the queues' arrays), which then empties.

    Their taps inside the image are filter rows ``taps[4k] .. taps[4k + 1] - 1`` and
    columns ``taps[4k + 2] .. taps[4k + 3] - 1``. Maximum t reached through the first
    of those rows the gradient row ``rows[t]``, through the next ones rows ``pitch``
    elements further each: ``gw[r]``'s columns gain them times ``scales[t]``, and
    ``grad_x[queued[t]]`` their dot product with ``weight[r]``'s. ``parts`` holds zeros
    on entry and on return.
    """
    cdef Py_ssize_t lanes = FASTCONV_VECTOR_BYTES // sizeof(floating), r, t
    cdef Py_ssize_t count = counts[k], r0 = taps[4 * k], r1 = taps[4 * k + 1]
    cdef Py_ssize_t first = taps[4 * k + 2] * K, n = (taps[4 * k + 3] - taps[4 * k + 2]) * K
    cdef floating* queue_parts = parts + k * QUEUE * lanes
    if count == 0:
        return
    for r in range(r0, r1):
        gradient_rows(gw + r * span + first, weight + r * span + first, rows + k * QUEUE,
                      (r - r0) * pitch, scales + k * QUEUE, count, n, queue_parts)
    for t in range(count):
        grad_x[queued[k * QUEUE + t]] += lanes_total(queue_parts + t * lanes)
    memset(queue_parts, 0, count * lanes * sizeof(floating))
    counts[k] = 0


cdef inline void enqueue(Py_ssize_t t, const floating* row, floating value, Py_ssize_t q,
                         const floating** rows, floating* scales,
                         Py_ssize_t* queued) noexcept nogil:
    """Put a maximum (its first gradient row, value and position) in slot t."""
    rows[t] = row
    scales[t] = value
    queued[t] = q


cdef void channel_gradients(floating* gw, floating* grad_x, const floating* weight,
                            const floating* grad_image, const int64_t* positions,
                            const floating* values, Py_ssize_t L, const Py_ssize_t* reach,
                            const uint8_t* queue_of, const int32_t* taps_at,
                            const floating** rows, floating* scales, Py_ssize_t* queued,
                            floating* parts, Py_ssize_t* counts, Py_ssize_t* taps,
                            Py_ssize_t W, Py_ssize_t K, Py_ssize_t S) noexcept nogil:
    """Both gradients through one input channel's L maxima.

    A maximum with value v at q = (ih, iw) reached through filter row r the output
    pixels (ih + R // 2 - r, iw + S // 2 - s) for the columns s that exist. In the
    mirrored gradient image (channels last, pixels in reverse order) their gradient
    rows g lie end to end, in the order of s, filter row r's W * K elements after row
    r - 1's: ``gw[r, s] += v * g``, and ``grad_x[q]`` gains the dot product of g with
    ``weight[r, s]`` (the channel's filters in weight_t's layout). Which taps those
    are, and where their rows start, ``taps_at``, ``queue_of`` and ``reach`` give (see
    ``map_taps``). The maxima queue up by the way the image's edges cut their taps
    (QUEUES queues of QUEUE, each with its taps in ``taps``, its count in ``counts``,
    and per maximum its first gradient row, value and position in ``rows``,
    ``scales``, ``queued``, and its partial dot product in ``parts``), to go QUEUE at
    a time into one sweep per filter row while their rows are still in cache (see
    ``run_queue``). A queue whose maxima had other taps (kernels over 3 x 3 have more
    ways than queues) runs before it takes the maximum. The order of each sum is fixed
    by the indices.
    """
    cdef Py_ssize_t span = S * K
    cdef Py_ssize_t p, q, k, t, j
    # Queue 0 takes the maxima with all their taps inside, most of them, and its taps
    # never change: its count stays in a register, not in ``counts``.
    cdef Py_ssize_t inside = counts[0]
    cdef Py_ssize_t* key
    cdef const int32_t* at
    for p in range(L):
        q = positions[p]
        k = queue_of[q]
        if k == 0:
            enqueue(inside, grad_image + reach[q], values[p], q, rows, scales, queued)
            inside = inside + 1
            if inside == QUEUE:
                counts[0] = inside
                run_queue(0, gw, weight, grad_x, rows, scales, queued, parts, counts, taps,
                          W * K, K, span)
                inside = 0
            continue
        at = taps_at + 4 * q
        key = taps + 4 * k
        if key[0] != at[0] or key[1] != at[1] or key[2] != at[2] or key[3] != at[3]:
            run_queue(k, gw, weight, grad_x, rows, scales, queued, parts, counts, taps,
                      W * K, K, span)
            for j in range(4):
                key[j] = at[j]
        t = k * QUEUE + counts[k]
        enqueue(t, grad_image + reach[q], values[p], q, rows, scales, queued)
        counts[k] += 1
        if counts[k] == QUEUE:
            run_queue(k, gw, weight, grad_x, rows, scales, queued, parts, counts, taps,
                      W * K, K, span)
    counts[0] = inside
    for k in range(QUEUES):
        run_queue(k, gw, weight, grad_x, rows, scales, queued, parts, counts, taps, W * K,
                  K, span)


def backward(const floating[:, :, ::1] grad_y,         # IN  (N, K, H*W), K == C
             const int64_t[:, :, ::1] indices,         # IN  (N, C, L), in [0, H*W)
             const floating[:, :, ::1] pooled,         # IN  (N, C, L)
             const floating[:, :, :, ::1] weight,      # IN  (K, C, R, S)
             floating[:, :, :, ::1] weight_t,          # WORK (C, R, S, K)
             floating[:, :, :, ::1] grad_weight_t,     # WORK (C, R, S, K)
             floating[:, :, :, ::1] grad_images,       # WORK (workers, H, W, K)
             floating[:, :, ::1] grad_x,               # OUT (N, C, H*W)
             floating[:, :, :, ::1] grad_weight):      # OUT (K, C, R, S)
    """The input gradient and the weight gradient; N and C at least 1.

    On as many threads as ``grad_images`` has rows, each with its own channels
    ``c0 .. c1 - 1`` for the whole batch, so no thread waits for another. A thread
    first lays its channels' filters out as ``weight_t[c, r, s, k] = weight[k, c, r,
    s]`` and zeroes their rows of ``grad_weight_t``, the weight gradient in that
    layout. Then, image after image, it lays the image's gradient out channels last
    and mirrored (pixel p of the plane at H*W - 1 - p) in its own row of
    ``grad_images``, where it stays in the thread's cache for all its channels: the
    threads each transpose the whole image, but none reads what another wrote. For
    each of its channels c, ``grad_x[n, c]`` starts as grad_y's (the identity path),
    then both gradients gain the products of c's maxima, in order, with the gradient
    rows they reach, which each maximum reads once for both (see
    ``channel_gradients``). Last, the thread lays its channels' weight gradient out
    in ``grad_weight``. Each element has one writer, and its sum runs in an order
    fixed by the shape and the indices.
    """
    cdef Py_ssize_t N = grad_y.shape[0], H = grad_images.shape[1], W = grad_images.shape[2]
    cdef Py_ssize_t K = grad_y.shape[1], C = indices.shape[1], L = indices.shape[2]
    cdef Py_ssize_t R = weight.shape[2], S = weight.shape[3]
    cdef Py_ssize_t plane = H * W, taps_per_filter = R * S
    cdef int workers = <int> grad_images.shape[0]
    # Set before the parallel block, which copies them into each thread.
    cdef Py_ssize_t n = 0, c = 0, c0 = 0, c1 = 0
    cdef const floating** rows = NULL
    cdef floating* scales = NULL
    cdef Py_ssize_t* queued = NULL
    cdef floating* parts = NULL
    cdef Py_ssize_t* counts = NULL
    cdef Py_ssize_t* taps = NULL
    cdef floating* grad_image = NULL
    cdef Py_ssize_t* reach = NULL
    cdef uint8_t* queue_of = NULL
    cdef int32_t* taps_at = NULL
    cdef int failed = 0
    cdef int* failed_flag = &failed
    reach = <Py_ssize_t*> malloc(plane * sizeof(Py_ssize_t))
    queue_of = <uint8_t*> malloc(plane * sizeof(uint8_t))
    taps_at = <int32_t*> malloc(plane * 4 * sizeof(int32_t))
    if reach == NULL or queue_of == NULL or taps_at == NULL:
        free(reach)
        free(queue_of)
        free(taps_at)
        raise MemoryError("pool_skip_backward: no memory for its scratch buffers")
    map_taps(H, W, K, R, S, reach, queue_of, taps_at)
    with nogil, parallel(num_threads=workers):
        # Each thread's queues of maxima, with their partial dot products.
        rows = <const floating**> malloc(QUEUES * QUEUE * sizeof(floating*))
        scales = <floating*> malloc(QUEUES * QUEUE * sizeof(floating))
        queued = <Py_ssize_t*> malloc(QUEUES * QUEUE * sizeof(Py_ssize_t))
        parts = <floating*> calloc(QUEUES * QUEUE, FASTCONV_VECTOR_BYTES)
        counts = <Py_ssize_t*> calloc(QUEUES, sizeof(Py_ssize_t))
        taps = <Py_ssize_t*> calloc(QUEUES * 4, sizeof(Py_ssize_t))
        if (rows == NULL or scales == NULL or queued == NULL or parts == NULL
                or counts == NULL or taps == NULL):
            failed_flag[0] = 1
        else:
            # Queue 0's taps: all of them, for good.
            taps[0], taps[1], taps[2], taps[3] = 0, R, 0, S
        grad_image = &grad_images[threadid(), 0, 0, 0]
        c0 = C * threadid() // omp_get_num_threads()
        c1 = C * (threadid() + 1) // omp_get_num_threads()
        if c0 < c1 and not failed_flag[0]:
            transpose_rows(&weight_t[c0, 0, 0, 0], K, &weight[0, c0, 0, 0],
                           C * taps_per_filter, K, (c1 - c0) * taps_per_filter)
            memset(&grad_weight_t[c0, 0, 0, 0], 0,
                   (c1 - c0) * taps_per_filter * K * sizeof(floating))
            for n in range(N):
                # Pixel p lands at plane - 1 - p: the image mirrored.
                transpose_rows(grad_image + (plane - 1) * K, -K, &grad_y[n, 0, 0], plane, K,
                               plane)
                for c in range(c0, c1):
                    memcpy(&grad_x[n, c, 0], &grad_y[n, c, 0], plane * sizeof(floating))
                    channel_gradients(&grad_weight_t[c, 0, 0, 0], &grad_x[n, c, 0],
                                      &weight_t[c, 0, 0, 0], grad_image, &indices[n, c, 0],
                                      &pooled[n, c, 0], L, reach, queue_of, taps_at, rows,
                                      scales, queued, parts, counts, taps, W, K, S)
            transpose_rows(&grad_weight[0, c0, 0, 0], C * taps_per_filter,
                           &grad_weight_t[c0, 0, 0, 0], K, (c1 - c0) * taps_per_filter, K)
        free(rows)
        free(scales)
        free(queued)
        free(parts)
        free(counts)
        free(taps)
    free(reach)
    free(queue_of)
    free(taps_at)
    if failed:
        raise MemoryError("pool_skip_backward: no memory for its scratch buffers")
