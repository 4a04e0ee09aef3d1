"""2-D convolution as im2col + GEMM, the GEMM from a single-threaded BLAS.

The parallelism is fastconv's own (OpenMP over work items), and each item calls the
BLAS on one thread, so a multi-threaded BLAS never alternates with an OpenMP region.
Work items are fixed by the shape alone (never by the thread count) and each owns its
output elements, so results are bitwise identical for every thread count:

- forward: (image, group, tile of output pixels);
- input gradient: (image, group, block of input channels);
- weight gradient: (group, block of input channels), summing images and tiles in order.

Each thread holds one column workspace of at most ``rows * tile`` elements, where
``fastconv._params.gemm_plan`` chose ``tile`` to keep it within its byte budget. A 1x1
convolution with stride 1 and no padding needs no im2col: its columns are the image.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from fastconv._kernels._gemm cimport gemm
from fastconv._kernels._geometry cimport Geometry
from fastconv._kernels._im2col cimport col2im_tile_add, im2col_tile


cdef inline bint is_pointwise(const Geometry* g) noexcept nogil:
    return (g.R == 1 and g.S == 1 and g.stride_h == 1 and g.stride_w == 1
            and g.pad_top == 0 and g.pad_left == 0 and g.OH == g.H and g.OW == g.W)


def conv2d_forward(const floating[:, :, :, ::1] x,        # IN  (N, C, H, W)
                   const floating[:, :, :, ::1] weight,   # IN  (K, C/groups, R, S)
                   const floating[::1] bias,              # IN  (K,) or None
                   floating[:, :, :, ::1] y,              # OUT (N, K, OH, OW)
                   Geometry g, Py_ssize_t tile, int num_threads):
    cdef Py_ssize_t Cg = g.C // g.groups, Kg = g.K // g.groups
    cdef Py_ssize_t rows = Cg * g.R * g.S, L = g.OH * g.OW
    cdef Py_ssize_t tiles = (L + tile - 1) // tile
    cdef Py_ssize_t item, n, grp, l0, l1, k, l, ldb
    cdef bint pointwise = is_pointwise(&g), has_bias = bias is not None
    cdef const floating* b
    cdef floating* out
    cdef floating* cols = NULL
    cdef int failed = 0
    cdef int* failed_flag = &failed
    with nogil, parallel(num_threads=num_threads):
        if not pointwise:
            cols = <floating*> malloc(rows * tile * sizeof(floating))
            if cols == NULL:
                failed_flag[0] = 1
        for item in prange(g.N * g.groups * tiles, schedule="dynamic"):
            if not pointwise and cols == NULL:
                continue
            n = item // (g.groups * tiles)
            grp = (item // tiles) % g.groups
            l0 = (item % tiles) * tile
            l1 = l0 + tile if l0 + tile < L else L
            if pointwise:
                b = &x[n, grp * Cg, 0, 0] + l0 if Cg > 0 else NULL
                ldb = L
            else:
                im2col_tile(&x[n, grp * Cg, 0, 0] if Cg > 0 else NULL, Cg, &g, l0, l1,
                            cols, l1 - l0)
                b = cols
                ldb = l1 - l0
            out = &y[n, grp * Kg, 0, 0] + l0
            gemm(False, False, Kg, l1 - l0, rows, <floating> 1,
                 &weight[grp * Kg, 0, 0, 0], rows, b, ldb, <floating> 0, out, L)
            if has_bias:
                for k in range(Kg):
                    for l in range(l1 - l0):
                        out[k * L + l] += bias[grp * Kg + k]
        free(cols)
    if failed:
        raise MemoryError(f"could not allocate {rows * tile * sizeof(floating)} bytes "
                          "of im2col workspace")


def conv2d_backward_input(const floating[:, :, :, ::1] grad_y,   # IN  (N, K, OH, OW)
                          const floating[:, :, :, ::1] weight,   # IN  (K, C/groups, R, S)
                          floating[:, :, :, ::1] grad_x,         # OUT (N, C, H, W)
                          Geometry g, Py_ssize_t block, Py_ssize_t tile, int num_threads):
    cdef Py_ssize_t Cg = g.C // g.groups, Kg = g.K // g.groups
    cdef Py_ssize_t RS = g.R * g.S, rows = Cg * RS, L = g.OH * g.OW
    cdef Py_ssize_t blocks = (Cg + block - 1) // block, tiles = (L + tile - 1) // tile
    cdef Py_ssize_t item, n, grp, c0, c1, l0, l1, t
    cdef bint pointwise = is_pointwise(&g)
    cdef floating* image
    cdef floating* cols = NULL
    cdef int failed = 0
    cdef int* failed_flag = &failed
    with nogil, parallel(num_threads=num_threads):
        if not pointwise:
            cols = <floating*> malloc(block * RS * tile * sizeof(floating))
            if cols == NULL:
                failed_flag[0] = 1
        for item in prange(g.N * g.groups * blocks, schedule="dynamic"):
            if not pointwise and cols == NULL:
                continue
            n = item // (g.groups * blocks)
            grp = (item // blocks) % g.groups
            c0 = (item % blocks) * block
            c1 = c0 + block if c0 + block < Cg else Cg
            image = &grad_x[n, grp * Cg + c0, 0, 0]
            if not pointwise:
                memset(image, 0, (c1 - c0) * g.H * g.W * sizeof(floating))
            for t in range(tiles):
                l0 = t * tile
                l1 = l0 + tile if l0 + tile < L else L
                # columns of channels c0..c1 = (weight rows of those channels)^T @ grad_y
                gemm(True, False, (c1 - c0) * RS, l1 - l0, Kg, <floating> 1,
                     &weight[grp * Kg, c0, 0, 0], rows, &grad_y[n, grp * Kg, 0, 0] + l0, L,
                     <floating> 0, image + l0 if pointwise else cols,
                     L if pointwise else l1 - l0)
                if not pointwise:
                    col2im_tile_add(cols, l1 - l0, c1 - c0, &g, l0, l1, image)
        free(cols)
    if failed:
        raise MemoryError(f"could not allocate {block * RS * tile * sizeof(floating)} "
                          "bytes of col2im workspace")


def conv2d_backward_weight(const floating[:, :, :, ::1] grad_y,  # IN  (N, K, OH, OW)
                           const floating[:, :, :, ::1] x,       # IN  (N, C, H, W)
                           floating[:, :, :, ::1] grad_w,        # OUT (K, C/groups, R, S)
                           Geometry g, Py_ssize_t block, Py_ssize_t tile, int num_threads):
    cdef Py_ssize_t Cg = g.C // g.groups, Kg = g.K // g.groups
    cdef Py_ssize_t RS = g.R * g.S, rows = Cg * RS, L = g.OH * g.OW
    cdef Py_ssize_t blocks = (Cg + block - 1) // block, tiles = (L + tile - 1) // tile
    cdef Py_ssize_t item, n, grp, c0, c1, l0, l1, t, k
    cdef bint pointwise = is_pointwise(&g), first
    cdef const floating* b
    cdef floating* out
    cdef floating* cols = NULL
    cdef int failed = 0
    cdef int* failed_flag = &failed
    with nogil, parallel(num_threads=num_threads):
        if not pointwise:
            cols = <floating*> malloc(block * RS * tile * sizeof(floating))
            if cols == NULL:
                failed_flag[0] = 1
        for item in prange(g.groups * blocks, schedule="dynamic"):
            if not pointwise and cols == NULL:
                continue
            grp = item // blocks
            c0 = (item % blocks) * block
            c1 = c0 + block if c0 + block < Cg else Cg
            # grad_w[group k's, c0..c1] = sum over images and tiles of grad_y @ columns^T
            out = &grad_w[grp * Kg, c0, 0, 0]
            if g.N == 0:
                for k in range(Kg):
                    memset(out + k * rows, 0, (c1 - c0) * RS * sizeof(floating))
            first = True
            for n in range(g.N):
                for t in range(tiles):
                    l0 = t * tile
                    l1 = l0 + tile if l0 + tile < L else L
                    if pointwise:
                        b = &x[n, grp * Cg + c0, 0, 0] + l0
                    else:
                        im2col_tile(&x[n, grp * Cg + c0, 0, 0], c1 - c0, &g, l0, l1,
                                    cols, l1 - l0)
                        b = cols
                    gemm(False, True, Kg, (c1 - c0) * RS, l1 - l0, <floating> 1,
                         &grad_y[n, grp * Kg, 0, 0] + l0, L, b, L if pointwise else l1 - l0,
                         <floating> (0 if first else 1), out, rows)
                    first = False
        free(cols)
    if failed:
        raise MemoryError(f"could not allocate {block * RS * tile * sizeof(floating)} "
                          "bytes of im2col workspace")
