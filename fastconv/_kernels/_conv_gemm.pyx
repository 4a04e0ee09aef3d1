"""2-D convolution as im2col + GEMM, the GEMM from a single-threaded BLAS.

The parallelism is fastconv's own (OpenMP over work items), and each item calls the
BLAS on one thread, so a multi-threaded BLAS never alternates with an OpenMP region.
Work items are fixed by the shape alone (never by the thread count) and each owns its
output elements, so results are bitwise identical for every thread count:

- forward: (image, group, tile of output pixels), or (group, run of whole images) when
  one image has too few output pixels to amortise the GEMM's packing of the filters;
- input gradient: (image, group, block of input channels);
- weight gradient: (run of images, group, block of input channels), summing images and
  tiles in order; the runs' sums are then added in order.

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
from fastconv._kernels._im2col_tiles cimport col2im_tile_add, im2col_tile


cdef inline bint is_pointwise(const Geometry* g) noexcept nogil:
    return (g.R == 1 and g.S == 1 and g.stride_h == 1 and g.stride_w == 1
            and g.pad_top == 0 and g.pad_left == 0 and g.OH == g.H and g.OW == g.W)


def conv2d_forward(const floating[:, :, :, ::1] x,        # IN  (N, C, H, W)
                   const floating[:, :, :, ::1] weight,   # IN  (K, C/groups, R, S)
                   const floating[::1] bias,              # IN  (K,) or None
                   floating[:, :, :, ::1] y,              # OUT (N, K, OH, OW)
                   Geometry g, Py_ssize_t tile, Py_ssize_t images, int num_threads):
    """Forward pass; an item is a tile of one image (images == 1) or several images.

    With several images per item, their columns sit side by side in one GEMM (so the
    filters are packed once for all of them) and the product is copied into y.
    """
    cdef Py_ssize_t Cg = g.C // g.groups, Kg = g.K // g.groups
    cdef Py_ssize_t rows = Cg * g.R * g.S, L = g.OH * g.OW
    cdef Py_ssize_t tiles = (L + tile - 1) // tile if images == 1 else 1
    cdef Py_ssize_t chunks = (g.N + images - 1) // images
    cdef Py_ssize_t item, n, n0, n1, grp, l0, l1, k, col, width
    cdef bint pointwise = is_pointwise(&g) and images == 1, has_bias = bias is not None
    cdef floating shift
    cdef const floating* b
    cdef const floating* src
    cdef floating* out
    cdef floating* cols = NULL
    cdef floating* product = NULL
    cdef int failed = 0
    cdef int* failed_flag = &failed
    with nogil, parallel(num_threads=num_threads):
        if not pointwise:
            cols = <floating*> malloc(rows * tile * sizeof(floating))
        if images > 1:
            product = <floating*> malloc(Kg * tile * sizeof(floating))
        if (not pointwise and cols == NULL) or (images > 1 and product == NULL):
            failed_flag[0] = 1
        for item in prange(chunks * g.groups * tiles, schedule="dynamic"):
            if failed_flag[0]:
                continue
            grp = (item // tiles) % g.groups
            n0 = (item // (g.groups * tiles)) * images
            n1 = n0 + images if n0 + images < g.N else g.N
            l0 = (item % tiles) * tile if images == 1 else 0
            l1 = l0 + tile if l0 + tile < L else L
            width = (n1 - n0) * (l1 - l0)
            if pointwise:
                b = &x[n0, grp * Cg, 0, 0] + l0
            else:
                for n in range(n0, n1):
                    im2col_tile(&x[n, grp * Cg, 0, 0], Cg, &g, l0, l1,
                                cols + (n - n0) * (l1 - l0), width)
                b = cols
            if images == 1:
                out = &y[n0, grp * Kg, 0, 0] + l0
                gemm(False, False, Kg, width, rows, <floating> 1, &weight[grp * Kg, 0, 0, 0],
                     rows, b, L if pointwise else width, <floating> 0, out, L)
                if has_bias:
                    for k in range(Kg):
                        for col in range(width):
                            out[k * L + col] += bias[grp * Kg + k]
            else:
                gemm(False, False, Kg, width, rows, <floating> 1, &weight[grp * Kg, 0, 0, 0],
                     rows, b, width, <floating> 0, product, width)
                for n in range(n0, n1):
                    for k in range(Kg):
                        out = &y[n, grp * Kg + k, 0, 0]
                        src = product + k * width + (n - n0) * L
                        shift = bias[grp * Kg + k] if has_bias else 0
                        for col in range(L):
                            out[col] = src[col] + shift
        free(cols)
        free(product)
    if failed:
        raise MemoryError(f"could not allocate {(rows + Kg) * tile * sizeof(floating)} bytes "
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
                           floating[:, :, :, :, ::1] partial,    # OUT (chunks, K, C/groups, R, S)
                           Geometry g, Py_ssize_t block, Py_ssize_t images, Py_ssize_t tile,
                           int num_threads):
    """Weight gradient of runs of ``images`` images: partial[i] sums run i's images.

    The caller adds the runs up (in order) when there is more than one.
    """
    cdef Py_ssize_t Cg = g.C // g.groups, Kg = g.K // g.groups
    cdef Py_ssize_t RS = g.R * g.S, rows = Cg * RS, L = g.OH * g.OW
    cdef Py_ssize_t blocks = (Cg + block - 1) // block, tiles = (L + tile - 1) // tile
    cdef Py_ssize_t runs = partial.shape[0]
    cdef Py_ssize_t item, n, n0, n1, run, grp, c0, c1, l0, l1, t, k
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
        for item in prange(runs * g.groups * blocks, schedule="dynamic"):
            if not pointwise and cols == NULL:
                continue
            run = item // (g.groups * blocks)
            grp = (item // blocks) % g.groups
            c0 = (item % blocks) * block
            c1 = c0 + block if c0 + block < Cg else Cg
            n0 = run * images
            n1 = n0 + images if n0 + images < g.N else g.N
            # partial[run, group k's, c0..c1] = sum over the run's images and tiles of
            # grad_y @ columns^T
            out = &partial[run, grp * Kg, c0, 0, 0]
            if n0 >= n1:
                for k in range(Kg):
                    memset(out + k * rows, 0, (c1 - c0) * RS * sizeof(floating))
            first = True
            for n in range(n0, n1):
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
