"""Direct 2-D convolution: loops straight over the windows.

The forward pass copies the input channels, zero-padded and split by stride phase, into
a per-thread workspace; then register tiles of output channels x pixels take every tap
in turn (see ``conv2d_forward`` and conv_tile.h). The gradients' innermost loops run
along the output width; the weight gradient's keep the sums of up to 3 taps in
registers (see ``conv2d_backward_weight`` and weight_taps.h).

No sum is reassociated: vectors run along independent outputs only. Work is split so
that every output element has exactly one writer: (image, group, block of output
channels, band of output rows) forward, (image, input channel) planes for the input
gradient, output channels for the weight and bias gradients. Results are therefore
the same for every thread count.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from fastconv._kernels._geometry cimport (
    Geometry, TapSpan, clamp, column_spans, first_beyond, first_inside, tap_span,
)
from fastconv._kernels._im2col_tiles cimport copy_padded_row


cdef inline Py_ssize_t phases_read(Py_ssize_t stride, Py_ssize_t taps,
                                   Py_ssize_t dilation) noexcept nogil:
    """How many stride phases the taps read along one axis: one per tap offset mod stride.

    Phases from the window's extent on are never read (when the stride outruns the
    window), so they are neither copied nor stored.
    """
    cdef Py_ssize_t extent = (taps - 1) * dilation + 1
    return stride if stride < extent else extent


cdef void split_phases(const floating* channel,  # IN  (H, W)
                       const Geometry* g, Py_ssize_t Ph, Py_ssize_t Pw,
                       Py_ssize_t first_row, Py_ssize_t Hq, Py_ssize_t Wq,
                       floating* phases) noexcept nogil:  # OUT (Ph, Pw, Hq, Wq)
    """Copy ``Hq`` rows of one input channel's stride phases, zero-padded.

    Phase (ph, pw) holds the padded rows ph, ph + stride_h, ... and columns pw,
    pw + stride_w, ...: its element (i, j) is ``x[(first_row + i) * stride_h + ph -
    pad_top, j * stride_w + pw - pad_left]``, or 0 in the padding. Every tap of a
    strided convolution then reads one phase with unit stride, and output row
    ``first_row + i`` reads from phase row i on. Only the first ``Ph x Pw`` phases (see
    :func:`phases_read`) are made.
    """
    cdef Py_ssize_t ph, pw, i, ih, off_w, lo, hi
    cdef floating* row_out
    for ph in range(Ph):
        for pw in range(Pw):
            off_w = pw - g.pad_left
            lo = clamp(first_inside(off_w, g.stride_w), 0, Wq)
            hi = clamp(first_beyond(off_w, g.stride_w, g.W), lo, Wq)
            for i in range(Hq):
                row_out = phases + ((ph * Pw + pw) * Hq + i) * Wq
                ih = (first_row + i) * g.stride_h + ph - g.pad_top
                if ih < 0 or ih >= g.H:
                    memset(row_out, 0, Wq * sizeof(floating))
                    continue
                copy_padded_row(row_out, 0, Wq, channel + ih * g.W + off_w, lo, hi,
                                g.stride_w)


cdef extern from "conv_tile.h" nogil:
    enum:
        FASTCONV_TILE_BYTES
        FASTCONV_WIDE_TILE_CHANNELS
    void fastconv_conv_tiles_f32(Py_ssize_t channels, float* acc, Py_ssize_t plane,
                                 Py_ssize_t row_pitch, Py_ssize_t vectors, const float* start,
                                 const float* input, Py_ssize_t input_pitch,
                                 const Py_ssize_t* offsets, Py_ssize_t taps,
                                 const float* weights)
    void fastconv_conv_tiles_f64(Py_ssize_t channels, double* acc, Py_ssize_t plane,
                                 Py_ssize_t row_pitch, Py_ssize_t vectors, const double* start,
                                 const double* input, Py_ssize_t input_pitch,
                                 const Py_ssize_t* offsets, Py_ssize_t taps,
                                 const double* weights)


cdef inline Py_ssize_t tile_lanes(Py_ssize_t itemsize) noexcept nogil:
    return max(1, FASTCONV_TILE_BYTES // itemsize)


cdef inline Py_ssize_t tile_channels(Py_ssize_t out_channels) noexcept nogil:
    # The wide tile would be mostly zero weights: the narrow one does less arithmetic.
    return 1 if 2 * out_channels < FASTCONV_WIDE_TILE_CHANNELS else FASTCONV_WIDE_TILE_CHANNELS


def tile_shape(Py_ssize_t itemsize, Py_ssize_t out_channels):
    """(output channels, pixels) of the forward's register tile (see conv_tile.h).

    ``out_channels`` is the number per group. The forward's accumulator rows are padded
    to a multiple of the pixels, its blocks of output channels to a multiple of the
    channels.
    """
    return tile_channels(out_channels), tile_lanes(itemsize)


cdef inline void conv_tiles(Py_ssize_t channels, floating* acc, Py_ssize_t plane,
                            Py_ssize_t vectors, Py_ssize_t row_pitch, const floating* start,
                            const floating* phases, Py_ssize_t Wq,
                            const Py_ssize_t* offsets, Py_ssize_t taps,
                            const floating* weights) noexcept nogil:
    if floating is float:
        fastconv_conv_tiles_f32(channels, acc, plane, row_pitch, vectors, start, phases, Wq,
                                offsets, taps, weights)
    else:
        fastconv_conv_tiles_f64(channels, acc, plane, row_pitch, vectors, start, phases, Wq,
                                offsets, taps, weights)


cdef void pack_tile(const floating* filters,   # IN  (valid, taps): the tile's filters
                    const floating* bias,      # IN  (valid,) or NULL
                    Py_ssize_t valid, Py_ssize_t channels, Py_ssize_t taps,
                    floating* weights,         # OUT (taps, channels)
                    floating* start) noexcept nogil:  # OUT (channels,)
    """Lay out one tile's weights channel fastest, as conv_tile.h reads them, and its
    starting sums; channels from ``valid`` on do not exist and get zeros."""
    cdef Py_ssize_t k, t
    for k in range(channels):
        start[k] = bias[k] if bias != NULL and k < valid else 0
        for t in range(taps):
            weights[t * channels + k] = filters[k * taps + t] if k < valid else 0


def conv2d_forward(const floating[:, :, :, ::1] x,        # IN  (N, C, H, W)
                   const floating[:, :, :, ::1] weight,   # IN  (K, C/groups, R, S)
                   const floating[::1] bias,              # IN  (K,) or None
                   floating[:, :, :, ::1] y,              # OUT (N, K, OH, OW)
                   Geometry g, Py_ssize_t Hq, Py_ssize_t Wq, Py_ssize_t row_pitch,
                   Py_ssize_t block, Py_ssize_t band, Py_ssize_t chunk, int num_threads):
    """Forward pass over items (image, group, block of output channels, band of rows).

    First the filters are laid out tile by tile (:func:`pack_tile`). ``block`` is a
    multiple of the tile's channels (:func:`tile_shape`), ``band`` a number of output
    rows. An item keeps one accumulator plane per output channel: the band's rows of
    ``row_pitch`` elements, a multiple of the tile's pixels or ``Wq`` (then a tile's
    vector may span two rows, as the split rows lie end to end too). It takes the input
    channels ``chunk`` at a time: splits the rows its band reads into their stride
    phases (``Hq x Wq`` each, see :func:`split_phases`), then adds all their taps to the
    planes tile by tile, each tile's sums held in registers (conv_tile.h). A plane
    starts from the bias, so each output is the bias plus the taps in (c, r, s) order.
    Workspace per thread: ``chunk`` split channels and the block's planes.
    """
    cdef Py_ssize_t Cg = g.C // g.groups, Kg = g.K // g.groups, RS = g.R * g.S
    cdef Py_ssize_t blocks = (Kg + block - 1) // block, bands = (g.OH + band - 1) // band
    cdef Py_ssize_t Ph = phases_read(g.stride_h, g.R, g.dilation_h)
    cdef Py_ssize_t Pw = phases_read(g.stride_w, g.S, g.dilation_w)
    cdef Py_ssize_t phase_size = Ph * Pw * Hq * Wq
    cdef Py_ssize_t lanes = tile_lanes(<Py_ssize_t> sizeof(floating))
    cdef Py_ssize_t channels = tile_channels(Kg), tiles = (Kg + channels - 1) // channels
    cdef Py_ssize_t plane = (band * row_pitch + lanes - 1) // lanes * lanes
    # A tile's last pixels may read past the chunk's last phase, by less than one vector.
    cdef Py_ssize_t split_size = chunk * phase_size + lanes
    cdef Py_ssize_t tile_size = Cg * RS * channels, packed_size = g.groups * tiles * tile_size
    cdef Py_ssize_t item, n, grp, tile, k0, k1, k, c, c0, c1, i, t, oh, oh0, oh1, dy, dx
    cdef bint has_bias = bias is not None
    cdef Py_ssize_t* offsets = <Py_ssize_t*> malloc(chunk * RS * sizeof(Py_ssize_t))
    # Every tile's weights, then every tile's starting sums.
    cdef floating* packed = <floating*> malloc(
        (packed_size + g.groups * tiles * channels + 1) * sizeof(floating))
    cdef floating* starts = packed + packed_size
    cdef floating* phases = NULL
    cdef floating* acc = NULL
    cdef int failed = 0
    cdef int* failed_flag = &failed
    if offsets == NULL or packed == NULL:
        free(offsets)
        free(packed)
        raise MemoryError(f"could not allocate {packed_size * sizeof(floating)} bytes "
                          "for the filters")
    # Where tap (c, r, s) of output pixel (0, 0) lies in the split chunk.
    for c in range(chunk):
        for t in range(RS):
            dy = (t // g.S) * g.dilation_h
            dx = (t % g.S) * g.dilation_w
            offsets[c * RS + t] = (c * phase_size
                                   + ((dy % g.stride_h) * Pw + dx % g.stride_w) * Hq * Wq
                                   + (dy // g.stride_h) * Wq + dx // g.stride_w)
    with nogil, parallel(num_threads=num_threads):
        for tile in prange(g.groups * tiles, schedule="static"):
            grp = tile // tiles
            k0 = grp * Kg + tile % tiles * channels
            k1 = k0 + channels if k0 + channels < (grp + 1) * Kg else (grp + 1) * Kg
            pack_tile(&weight[k0, 0, 0, 0] if Cg else NULL, &bias[k0] if has_bias else NULL,
                      k1 - k0, channels, Cg * RS, packed + tile * tile_size,
                      starts + tile * channels)
        phases = <floating*> malloc((split_size + block * plane) * sizeof(floating))
        if phases == NULL:
            failed_flag[0] = 1
        acc = phases + split_size
        # Dynamic: items are few (16 on C5), and on a shared machine a static split
        # waits for whichever core is slowed.
        for item in prange(g.N * g.groups * blocks * bands, schedule="dynamic"):
            if phases == NULL:
                continue
            n = item // (g.groups * blocks * bands)
            grp = (item // (blocks * bands)) % g.groups
            k0 = item // bands % blocks * block
            k1 = k0 + block if k0 + block < Kg else Kg
            oh0 = item % bands * band
            oh1 = oh0 + band if oh0 + band < g.OH else g.OH
            # With no input channels, one empty chunk still starts the sums from the bias.
            for i in range(max(1, (Cg + chunk - 1) // chunk)):
                c0 = i * chunk
                c1 = c0 + chunk if c0 + chunk < Cg else Cg
                for c in range(c0, c1):
                    split_phases(&x[n, grp * Cg + c, 0, 0], &g, Ph, Pw, oh0, Hq, Wq,
                                 phases + (c - c0) * phase_size)
                # What the last tiles read past the split channels (and never store).
                memset(phases + (c1 - c0) * phase_size, 0, lanes * sizeof(floating))
                for k in range(k0, k1):
                    if (k - k0) % channels == 0:
                        tile = grp * tiles + k // channels
                        conv_tiles(channels, acc + (k - k0) * plane, plane,
                                   ((oh1 - oh0 - 1) * row_pitch + g.OW + lanes - 1) // lanes,
                                   row_pitch,
                                   starts + tile * channels if c0 == 0 else NULL, phases, Wq,
                                   offsets, (c1 - c0) * RS,
                                   packed + tile * tile_size + c0 * RS * channels)
            for k in range(k0, k1):
                for oh in range(oh0, oh1):
                    memcpy(&y[n, grp * Kg + k, oh, 0],
                           acc + (k - k0) * plane + (oh - oh0) * row_pitch,
                           g.OW * sizeof(floating))
        free(phases)
    free(offsets)
    free(packed)
    if failed:
        raise MemoryError(f"could not allocate {(split_size + block * plane) * sizeof(floating)} "
                          "bytes of workspace")


def conv2d_backward_input(const floating[:, :, :, ::1] grad_y,   # IN  (N, K, OH, OW)
                          const floating[:, :, :, ::1] weight,   # IN  (K, C/groups, R, S)
                          floating[:, :, :, ::1] grad_x,         # OUT (N, C, H, W)
                          Geometry g, int num_threads):
    cdef Py_ssize_t Cg = g.C // g.groups, Kg = g.K // g.groups
    cdef Py_ssize_t item, n, c, cl, k, r, s, oh, ow, ih, i
    cdef TapSpan span
    cdef floating wv
    cdef floating* plane
    cdef floating* gx_row
    cdef const floating* gy_row
    with nogil:
        for item in prange(g.N * g.C, schedule="static", num_threads=num_threads):
            n = item // g.C
            c = item - n * g.C
            cl = c % Cg
            plane = &grad_x[n, c, 0, 0]
            for i in range(g.H * g.W):
                plane[i] = 0
            for k in range((c // Cg) * Kg, (c // Cg + 1) * Kg):
                for r in range(g.R):
                    for oh in range(g.OH):
                        ih = oh * g.stride_h - g.pad_top + r * g.dilation_h
                        if ih < 0 or ih >= g.H:
                            continue
                        gx_row = plane + ih * g.W
                        gy_row = &grad_y[n, k, oh, 0]
                        for s in range(g.S):
                            span = tap_span(&g, s)
                            wv = weight[k, cl, r, s]
                            for ow in range(span.lo, span.hi):
                                gx_row[ow * g.stride_w + span.offset] += wv * gy_row[ow]


cdef extern from "weight_taps.h" nogil:
    enum:
        FASTCONV_WEIGHT_TAPS_BYTES
    void fastconv_weight_taps_f32(float* acc, Py_ssize_t pitch, const float* gy,
                                  Py_ssize_t gy_image, Py_ssize_t gy_row, const float* x,
                                  Py_ssize_t x_image, Py_ssize_t x_row, Py_ssize_t tap_step,
                                  Py_ssize_t images, Py_ssize_t rows, Py_ssize_t taps,
                                  Py_ssize_t n)
    void fastconv_weight_taps_f64(double* acc, Py_ssize_t pitch, const double* gy,
                                  Py_ssize_t gy_image, Py_ssize_t gy_row, const double* x,
                                  Py_ssize_t x_image, Py_ssize_t x_row, Py_ssize_t tap_step,
                                  Py_ssize_t images, Py_ssize_t rows, Py_ssize_t taps,
                                  Py_ssize_t n)


cdef enum:
    # Bytes of an image group's planes of grad_y and x (with their margins) in the
    # weight gradient, which stay in the core's L2 cache while each filter row's sweep
    # passes; the most a thread copies.
    WEIGHT_GROUP_BYTES = 512 * 1024


cdef inline void weight_taps(floating* acc, Py_ssize_t pitch, const floating* gy,
                             Py_ssize_t gy_image, Py_ssize_t gy_row, const floating* x,
                             Py_ssize_t x_image, Py_ssize_t x_row, Py_ssize_t tap_step,
                             Py_ssize_t images, Py_ssize_t rows, Py_ssize_t taps,
                             Py_ssize_t n) noexcept nogil:
    """The sweep of weight_taps.h over n columns."""
    if floating is float:
        fastconv_weight_taps_f32(acc, pitch, gy, gy_image, gy_row, x, x_image, x_row,
                                 tap_step, images, rows, taps, n)
    else:
        fastconv_weight_taps_f64(acc, pitch, gy, gy_image, gy_row, x, x_image, x_row,
                                 tap_step, images, rows, taps, n)


cdef void copy_plane(floating* dst, const floating* src, Py_ssize_t size,
                     Py_ssize_t front, Py_ssize_t back) noexcept nogil:
    """Copy ``size`` elements after ``front`` zeros, and ``back`` zeros after them."""
    memset(dst, 0, front * sizeof(floating))
    memcpy(dst + front, src, size * sizeof(floating))
    memset(dst + front + size, 0, back * sizeof(floating))


cdef void column_taps(floating* acc, const floating* gy, const floating* x,
                      const Geometry* g, const TapSpan* spans, Py_ssize_t r,
                      Py_ssize_t images, Py_ssize_t oh_lo, Py_ssize_t oh_hi) noexcept nogil:
    """The weight gradient's sums column by column: ``acc[s * OW + ow] += grad_y[n, k,
    oh, ow] * x[n, c, ih, ow * stride_w + offset_s]`` for the columns in each tap's span,
    over images n < images and output rows oh_lo <= oh < oh_hi in that order (gy and x
    at channel k's and c's first plane)."""
    cdef Py_ssize_t s, n, oh, ow, ih
    cdef const floating* gy_row
    cdef const floating* x_row
    for s in range(g.S):
        for n in range(images):
            for oh in range(oh_lo, oh_hi):
                ih = oh * g.stride_h - g.pad_top + r * g.dilation_h
                gy_row = gy + (n * g.K * g.OH + oh) * g.OW
                x_row = x + (n * g.C * g.H + ih) * g.W
                for ow in range(spans[s].lo, spans[s].hi):
                    acc[s * g.OW + ow] += gy_row[ow] * x_row[ow * g.stride_w + spans[s].offset]


def conv2d_backward_weight(const floating[:, :, :, ::1] grad_y,  # IN  (N, K, OH, OW)
                           const floating[:, :, :, ::1] x,       # IN  (N, C, H, W)
                           floating[:, :, :, ::1] grad_w,        # OUT (K, C/groups, R, S)
                           Geometry g, int num_threads):
    """The weight gradient, in parallel over output channels.

    Each weight w[k, c, r, s] is a sum over the output pixels whose input pixel
    through that tap exists: a row of sums along the output width takes their
    products element by element over the images and output rows, in that order, and
    is then added up in order over the columns where the tap reads inside the input.

    With column stride 1 (and an image's planes within WEIGHT_GROUP_BYTES), the rows
    of sums are whole vectors wide, and weight_taps.h keeps up to 3 taps' rows in
    registers while the rows pass, an image group at a time. Its vectors read a little
    beyond each row: before it, as far as the first tap reaches left, and after it,
    the next row, whose products land in columns that are never added up. Where that
    stays inside grad_y and x it reads their planes in place; at the arrays' ends it
    reads a copy with zero margins in the thread's workspace. Otherwise
    ``column_taps`` takes the columns one by one. Both add each element's terms in the
    same order.
    """
    cdef Py_ssize_t Cg = g.C // g.groups, Kg = g.K // g.groups, OW = g.OW
    cdef Py_ssize_t plane = g.H * g.W, out_plane = g.OH * OW
    # Rows of sums of whole vectors; what the vectors read beyond a plane: before it,
    # as far as the first tap reaches left, and after it, as far as the last tap
    # reaches right on the last row.
    cdef Py_ssize_t lanes = FASTCONV_WEIGHT_TAPS_BYTES // sizeof(floating)
    cdef Py_ssize_t vector_width = (OW + lanes - 1) // lanes * lanes
    cdef Py_ssize_t x_front = g.pad_left
    cdef Py_ssize_t x_back = max(0, vector_width + (g.S - 1) * g.dilation_w - g.pad_left - g.W)
    cdef Py_ssize_t gy_back = vector_width - OW
    cdef Py_ssize_t x_size = x_front + plane + x_back, gy_size = out_plane + gy_back
    cdef Py_ssize_t itemsize = sizeof(floating)
    cdef bint vectors = (g.stride_w == 1
                         and (x_size + gy_size) * itemsize <= WEIGHT_GROUP_BYTES)
    cdef Py_ssize_t pitch = vector_width if vectors else OW
    cdef Py_ssize_t group = (max(1, min(g.N, WEIGHT_GROUP_BYTES // ((x_size + gy_size)
                                                                    * itemsize)))
                             if vectors else max(1, g.N))
    # Image groups; none if there are no outputs, or no inputs (then no tap reads inside).
    cdef Py_ssize_t steps = (g.N + group - 1) // group if out_plane > 0 and plane > 0 else 0
    cdef Py_ssize_t x_image = g.C * plane, gy_image = g.K * out_plane
    cdef Py_ssize_t k, c, r, s, n, n0, step, images, ow, top, oh_lo, oh_hi, ih, channel
    cdef Py_ssize_t x_pitch, gy_pitch
    cdef const floating* x_planes
    cdef const floating* gy_planes
    cdef TapSpan* spans = column_spans(&g)
    cdef floating total
    cdef floating* acc = NULL
    cdef floating* gy_copy = NULL
    cdef floating* x_copy = NULL
    cdef int failed = 0
    cdef int* failed_flag = &failed
    with nogil, parallel(num_threads=num_threads):
        acc = <floating*> malloc(g.R * g.S * pitch * sizeof(floating))
        gy_copy = NULL
        x_copy = NULL
        if vectors:
            gy_copy = <floating*> malloc(group * (x_size + gy_size) * sizeof(floating))
            x_copy = gy_copy + group * gy_size
        if acc == NULL or (vectors and gy_copy == NULL):
            failed_flag[0] = 1
        for k in prange(g.K, schedule="static"):
            if failed_flag[0]:
                continue
            for c in range(Cg):
                channel = (k // Kg) * Cg + c
                memset(acc, 0, g.R * g.S * pitch * sizeof(floating))
                for step in range(steps):
                    n0 = step * group
                    images = min(group, g.N - n0)
                    if vectors and (
                            (n0 * g.C + channel) * plane >= x_front
                            and ((n0 + images - 1) * g.C + channel + 1) * plane + x_back
                            <= g.N * x_image
                            and ((n0 + images - 1) * g.K + k + 1) * out_plane + gy_back
                            <= g.N * gy_image):
                        # In place: the planes' element (ih, col) at x_planes + x_front
                        # + ih * W + col, as in the copies.
                        gy_planes, gy_pitch = &grad_y[n0, k, 0, 0], gy_image
                        x_planes, x_pitch = &x[n0, channel, 0, 0] - x_front, x_image
                    elif vectors:
                        for n in range(n0, n0 + images):
                            copy_plane(gy_copy + (n - n0) * gy_size, &grad_y[n, k, 0, 0],
                                       out_plane, 0, gy_back)
                            copy_plane(x_copy + (n - n0) * x_size, &x[n, channel, 0, 0],
                                       plane, x_front, x_back)
                        gy_planes, gy_pitch = gy_copy, gy_size
                        x_planes, x_pitch = x_copy, x_size
                    for r in range(g.R):
                        # The output rows whose input row through filter row r exists.
                        top = r * g.dilation_h - g.pad_top
                        oh_lo = clamp(first_inside(top, g.stride_h), 0, g.OH)
                        oh_hi = clamp(first_beyond(top, g.stride_h, g.H), oh_lo, g.OH)
                        if oh_hi == oh_lo:
                            continue
                        ih = oh_lo * g.stride_h + top
                        if vectors:
                            # Tap s of output column ow reads x's column ow + s *
                            # dilation_w - pad_left: the copy's x_front + ih * W + ...
                            weight_taps(acc + r * g.S * pitch, pitch,
                                        gy_planes + oh_lo * OW, gy_pitch, OW,
                                        x_planes + ih * g.W, x_pitch, g.stride_h * g.W,
                                        g.dilation_w, images, oh_hi - oh_lo, g.S, pitch)
                        else:
                            column_taps(acc + r * g.S * pitch, &grad_y[n0, k, 0, 0],
                                        &x[n0, channel, 0, 0], &g, spans, r, images, oh_lo,
                                        oh_hi)
                for r in range(g.R):
                    for s in range(g.S):
                        total = 0
                        for ow in range(spans[s].lo, spans[s].hi):
                            total = total + acc[(r * g.S + s) * pitch + ow]
                        grad_w[k, c, r, s] = total
        free(acc)
        free(gy_copy)
    free(spans)
    if failed:
        raise MemoryError("could not allocate the weight gradient's workspace")


cdef enum:
    # Running sums per channel in bias_grad: independent chains of float64 additions
    # (one chain waited an addition's latency per element) that the compiler keeps in
    # vectors.
    PARTIAL_SUMS = 16


cdef double channel_sum(const floating* channel, Py_ssize_t N, Py_ssize_t image_stride,
                        Py_ssize_t plane_size) noexcept nogil:
    """Sum of one channel's N planes in float64: element i of a plane goes to partial
    sum i % PARTIAL_SUMS, and the partial sums are added up in order at the end; a
    fixed order, whatever the threads."""
    cdef double partial[PARTIAL_SUMS]
    cdef double total = 0
    cdef Py_ssize_t n, i, j
    cdef const floating* plane
    for j in range(PARTIAL_SUMS):
        partial[j] = 0
    for n in range(N):
        plane = channel + n * image_stride
        i = 0
        while i + PARTIAL_SUMS <= plane_size:
            for j in range(PARTIAL_SUMS):
                partial[j] += plane[i + j]
            i = i + PARTIAL_SUMS
        for j in range(plane_size - i):
            partial[j] += plane[i + j]
    for j in range(PARTIAL_SUMS):
        total = total + partial[j]
    return total


def bias_grad(const floating[:, :, :, ::1] grad_y,   # IN  (N, K, OH, OW)
              floating[::1] grad_b,                  # OUT (K,)
              int num_threads):
    """Sum of grad_y over (n, oh, ow) per channel, in float64 and a fixed order (see
    ``channel_sum``)."""
    cdef Py_ssize_t N = grad_y.shape[0], K = grad_y.shape[1]
    cdef Py_ssize_t plane_size = grad_y.shape[2] * grad_y.shape[3]
    cdef Py_ssize_t k
    with nogil:
        for k in prange(K, schedule="static", num_threads=num_threads):
            if N > 0:
                grad_b[k] = <floating> channel_sum(&grad_y[0, k, 0, 0], N, K * plane_size,
                                                   plane_size)
            else:
                grad_b[k] = 0
