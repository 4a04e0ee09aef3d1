"""Direct 2-D convolution: loops straight over the windows, no workspace.

Every loop nest runs its innermost loop along the output width, an independent axis,
so the compiler vectorises it without reassociating any sum. Work is split so that
every output element has exactly one writer: (image, output channel) planes forward,
(image, input channel) planes for the input gradient, output channels for the weight
and bias gradients. Results are therefore the same for every thread count.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.stdlib cimport free, malloc

from fastconv._kernels._geometry cimport Geometry, clamp, first_beyond, first_inside


def conv2d_forward(const floating[:, :, :, ::1] x,        # IN  (N, C, H, W)
                   const floating[:, :, :, ::1] weight,   # IN  (K, C/groups, R, S)
                   const floating[::1] bias,              # IN  (K,) or None
                   floating[:, :, :, ::1] y,              # OUT (N, K, OH, OW)
                   Geometry g, int num_threads):
    cdef Py_ssize_t Cg = g.C // g.groups, Kg = g.K // g.groups
    cdef Py_ssize_t item, n, k, c, r, s, oh, ow, ih, off_w, lo, hi, i
    cdef bint has_bias = bias is not None
    cdef floating wv
    cdef floating* plane
    cdef floating* y_row
    cdef const floating* x_row
    with nogil:
        for item in prange(g.N * g.K, schedule="static", num_threads=num_threads):
            n = item // g.K
            k = item - n * g.K
            plane = &y[n, k, 0, 0]
            for i in range(g.OH * g.OW):
                plane[i] = bias[k] if has_bias else 0
            for c in range(Cg):
                for r in range(g.R):
                    for oh in range(g.OH):
                        ih = oh * g.stride_h - g.pad_top + r * g.dilation_h
                        if ih < 0 or ih >= g.H:
                            continue
                        x_row = &x[n, (k // Kg) * Cg + c, ih, 0]
                        y_row = plane + oh * g.OW
                        for s in range(g.S):
                            off_w = s * g.dilation_w - g.pad_left
                            lo = clamp(first_inside(off_w, g.stride_w), 0, g.OW)
                            hi = clamp(first_beyond(off_w, g.stride_w, g.W), lo, g.OW)
                            wv = weight[k, c, r, s]
                            for ow in range(lo, hi):
                                y_row[ow] += wv * x_row[ow * g.stride_w + off_w]


def conv2d_backward_input(const floating[:, :, :, ::1] grad_y,   # IN  (N, K, OH, OW)
                          const floating[:, :, :, ::1] weight,   # IN  (K, C/groups, R, S)
                          floating[:, :, :, ::1] grad_x,         # OUT (N, C, H, W)
                          Geometry g, int num_threads):
    cdef Py_ssize_t Cg = g.C // g.groups, Kg = g.K // g.groups
    cdef Py_ssize_t item, n, c, cl, k, r, s, oh, ow, ih, off_w, lo, hi, i
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
                            off_w = s * g.dilation_w - g.pad_left
                            lo = clamp(first_inside(off_w, g.stride_w), 0, g.OW)
                            hi = clamp(first_beyond(off_w, g.stride_w, g.W), lo, g.OW)
                            wv = weight[k, cl, r, s]
                            for ow in range(lo, hi):
                                gx_row[ow * g.stride_w + off_w] += wv * gy_row[ow]


def conv2d_backward_weight(const floating[:, :, :, ::1] grad_y,  # IN  (N, K, OH, OW)
                           const floating[:, :, :, ::1] x,       # IN  (N, C, H, W)
                           floating[:, :, :, ::1] grad_w,        # OUT (K, C/groups, R, S)
                           Geometry g, int num_threads):
    cdef Py_ssize_t Cg = g.C // g.groups, Kg = g.K // g.groups
    cdef Py_ssize_t k, c, r, s, n, oh, ow, ih, off_w, lo, hi
    cdef floating total
    cdef floating* acc
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
                        off_w = s * g.dilation_w - g.pad_left
                        lo = clamp(first_inside(off_w, g.stride_w), 0, g.OW)
                        hi = clamp(first_beyond(off_w, g.stride_w, g.W), lo, g.OW)
                        for ow in range(g.OW):
                            acc[ow] = 0
                        for n in range(g.N):
                            for oh in range(g.OH):
                                ih = oh * g.stride_h - g.pad_top + r * g.dilation_h
                                if ih < 0 or ih >= g.H:
                                    continue
                                x_row = &x[n, (k // Kg) * Cg + c, ih, 0]
                                gy_row = &grad_y[n, k, oh, 0]
                                for ow in range(lo, hi):
                                    acc[ow] += gy_row[ow] * x_row[ow * g.stride_w + off_w]
                        total = 0
                        for ow in range(lo, hi):
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
