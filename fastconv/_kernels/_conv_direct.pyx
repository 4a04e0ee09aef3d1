"""Direct 2-D convolution: loops straight over the windows.

The forward pass copies each input channel, zero-padded and split by stride phase, into
a per-thread workspace; then every filter tap is one long multiply-add over a whole
output plane, several taps per sweep (see ``conv2d_forward``). The gradients need no
workspace: their innermost loops run along the output width.

No sum is reassociated, so the compiler vectorises along independent outputs only.
Work is split so that every output element has exactly one writer: (image, group,
block of output channels) forward, (image, input channel) planes for the input
gradient, output channels for the weight and bias gradients. Results are therefore
the same for every thread count.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from fastconv._kernels._geometry cimport (
    Geometry, TapSpan, clamp, first_beyond, first_inside, tap_span,
)
from fastconv._kernels._scaled_rows cimport GROUP, queue_scaled_row, run_queue


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
                       Py_ssize_t Hq, Py_ssize_t Wq,
                       floating* phases) noexcept nogil:  # OUT (Ph, Pw, Hq, Wq)
    """Copy one input channel, zero-padded, split by stride phase.

    Phase (ph, pw) holds the padded rows ph, ph + stride_h, ... and columns pw,
    pw + stride_w, ...: its element (i, j) is ``x[i * stride_h + ph - pad_top,
    j * stride_w + pw - pad_left]``, or 0 in the padding. Every tap of a strided
    convolution then reads one phase with unit stride. Only the first ``Ph x Pw``
    phases (see :func:`phases_read`) are made.
    """
    cdef Py_ssize_t ph, pw, i, j, ih, off_w, lo, hi
    cdef const floating* row_in
    cdef floating* row_out
    for ph in range(Ph):
        for pw in range(Pw):
            off_w = pw - g.pad_left
            lo = clamp(first_inside(off_w, g.stride_w), 0, Wq)
            hi = clamp(first_beyond(off_w, g.stride_w, g.W), lo, Wq)
            for i in range(Hq):
                row_out = phases + ((ph * Pw + pw) * Hq + i) * Wq
                ih = i * g.stride_h + ph - g.pad_top
                if ih < 0 or ih >= g.H:
                    memset(row_out, 0, Wq * sizeof(floating))
                    continue
                row_in = channel + ih * g.W + off_w
                memset(row_out, 0, lo * sizeof(floating))
                for j in range(lo, hi):
                    row_out[j] = row_in[j * g.stride_w]
                memset(row_out + hi, 0, (Wq - hi) * sizeof(floating))


cdef void add_channel_taps(floating* acc, Py_ssize_t length, const floating* phases,
                           const floating* taps,  # IN  (R, S)
                           const Geometry* g, Py_ssize_t Pw, Py_ssize_t Hq,
                           Py_ssize_t Wq) noexcept nogil:
    """``acc[j] += taps[r, s] * x_pad[...]`` over the taps in (r, s) order, ``j < length``.

    ``acc[oh * Wq + ow]`` accumulates output pixel (oh, ow), whose tap (r, s) is element
    ``(oh + qr) * Wq + ow + qs`` of one phase: every tap is one contiguous row of
    ``length`` elements, and GROUP of them go in one sweep.
    """
    cdef const floating* rows[GROUP]
    cdef floating scales[GROUP]
    cdef Py_ssize_t r, s, dy, dx, count = 0
    for r in range(g.R):
        dy = r * g.dilation_h
        for s in range(g.S):
            dx = s * g.dilation_w
            queue_scaled_row(acc, rows, scales, &count,
                             phases + ((dy % g.stride_h) * Pw + dx % g.stride_w) * Hq * Wq
                             + (dy // g.stride_h) * Wq + dx // g.stride_w,
                             taps[r * g.S + s], length)
    run_queue(acc, rows, scales, &count, length)


def conv2d_forward(const floating[:, :, :, ::1] x,        # IN  (N, C, H, W)
                   const floating[:, :, :, ::1] weight,   # IN  (K, C/groups, R, S)
                   const floating[::1] bias,              # IN  (K,) or None
                   floating[:, :, :, ::1] y,              # OUT (N, K, OH, OW)
                   Geometry g, Py_ssize_t Hq, Py_ssize_t Wq, Py_ssize_t block,
                   int num_threads):
    """Forward pass over items (image, group, block of ``block`` output channels).

    An item keeps one accumulator plane per output channel on a grid of pitch ``Wq``
    (``OH * Wq`` elements; the columns past OW are computed and dropped). For each
    input channel in turn it splits that channel into its stride phases (``Hq x Wq``
    each, see :func:`split_phases`) and adds its taps to every plane. A plane starts
    from the bias, so each output is the bias plus the taps in (c, r, s) order.
    Workspace per thread: one split channel and ``block`` planes.
    """
    cdef Py_ssize_t Cg = g.C // g.groups, Kg = g.K // g.groups
    cdef Py_ssize_t blocks = (Kg + block - 1) // block
    cdef Py_ssize_t Ph = phases_read(g.stride_h, g.R, g.dilation_h)
    cdef Py_ssize_t Pw = phases_read(g.stride_w, g.S, g.dilation_w)
    cdef Py_ssize_t phase_size = Ph * Pw * Hq * Wq, plane = g.OH * Wq
    cdef Py_ssize_t length = (g.OH - 1) * Wq + g.OW
    cdef Py_ssize_t item, n, grp, k0, k1, k, c, oh, ow, j
    cdef bint has_bias = bias is not None
    cdef floating start
    cdef floating* phases = NULL
    cdef floating* acc = NULL
    cdef floating* y_row
    cdef int failed = 0
    cdef int* failed_flag = &failed
    with nogil, parallel(num_threads=num_threads):
        phases = <floating*> malloc((phase_size + block * plane) * sizeof(floating))
        if phases == NULL:
            failed_flag[0] = 1
        acc = phases + phase_size
        for item in prange(g.N * g.groups * blocks, schedule="static"):
            if phases == NULL:
                continue
            n = item // (g.groups * blocks)
            grp = (item // blocks) % g.groups
            k0 = grp * Kg + (item % blocks) * block
            k1 = k0 + block if k0 + block < (grp + 1) * Kg else (grp + 1) * Kg
            for k in range(k0, k1):
                start = bias[k] if has_bias else 0
                for j in range(length):
                    acc[(k - k0) * plane + j] = start
            for c in range(Cg):
                split_phases(&x[n, grp * Cg + c, 0, 0], &g, Ph, Pw, Hq, Wq, phases)
                for k in range(k0, k1):
                    add_channel_taps(acc + (k - k0) * plane, length, phases,
                                     &weight[k, c, 0, 0], &g, Pw, Hq, Wq)
            for k in range(k0, k1):
                for oh in range(g.OH):
                    y_row = &y[n, k, oh, 0]
                    for ow in range(g.OW):
                        y_row[ow] = acc[(k - k0) * plane + oh * Wq + ow]
        free(phases)
    if failed:
        raise MemoryError(f"could not allocate {(phase_size + block * plane) * sizeof(floating)} "
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


def conv2d_backward_weight(const floating[:, :, :, ::1] grad_y,  # IN  (N, K, OH, OW)
                           const floating[:, :, :, ::1] x,       # IN  (N, C, H, W)
                           floating[:, :, :, ::1] grad_w,        # OUT (K, C/groups, R, S)
                           Geometry g, int num_threads):
    cdef Py_ssize_t Cg = g.C // g.groups, Kg = g.K // g.groups
    cdef Py_ssize_t k, c, r, s, n, oh, ow, ih
    cdef TapSpan span
    cdef floating total
    cdef floating* acc = NULL
    cdef const floating* x_row
    cdef const floating* gy_row
    cdef int failed = 0
    cdef int* failed_flag = &failed
    with nogil, parallel(num_threads=num_threads):
        # Per-thread row of partial sums along the output width: the sum over
        # (n, oh) is vectorised element-wise, then the row is added up in a fixed order.
        acc = <floating*> malloc(g.OW * sizeof(floating))
        if acc == NULL:
            failed_flag[0] = 1
        for k in prange(g.K, schedule="static"):
            if acc == NULL:
                continue
            for c in range(Cg):
                for r in range(g.R):
                    for s in range(g.S):
                        span = tap_span(&g, s)
                        for ow in range(g.OW):
                            acc[ow] = 0
                        for n in range(g.N):
                            for oh in range(g.OH):
                                ih = oh * g.stride_h - g.pad_top + r * g.dilation_h
                                if ih < 0 or ih >= g.H:
                                    continue
                                x_row = &x[n, (k // Kg) * Cg + c, ih, 0]
                                gy_row = &grad_y[n, k, oh, 0]
                                for ow in range(span.lo, span.hi):
                                    acc[ow] += gy_row[ow] * x_row[ow * g.stride_w + span.offset]
                        total = 0
                        for ow in range(span.lo, span.hi):
                            total = total + acc[ow]
                        grad_w[k, c, r, s] = total
        free(acc)
    if failed:
        raise MemoryError(f"could not allocate {g.OW * sizeof(floating)} bytes of workspace")


def bias_grad(const floating[:, :, :, ::1] grad_y,   # IN  (N, K, OH, OW)
              floating[::1] grad_b,                  # OUT (K,)
              int num_threads):
    """Sum of grad_y over (n, oh, ow) per channel, in float64 and a fixed order."""
    cdef Py_ssize_t N = grad_y.shape[0], K = grad_y.shape[1]
    cdef Py_ssize_t plane_size = grad_y.shape[2] * grad_y.shape[3]
    cdef Py_ssize_t k, n, i
    cdef double total
    cdef const floating* plane
    with nogil:
        for k in prange(K, schedule="static", num_threads=num_threads):
            total = 0
            for n in range(N):
                plane = &grad_y[n, k, 0, 0]
                for i in range(plane_size):
                    total = total + plane[i]
            grad_b[k] = <floating> total
