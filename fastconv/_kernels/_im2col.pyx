"""im2col / col2im of a whole batch, the operations of the public API.

The column layout and the per-image tiles are in ``_im2col_tiles.pxd``.
"""
from cython cimport floating
from cython.parallel cimport prange

from fastconv._kernels._geometry cimport Geometry
from fastconv._kernels._im2col_tiles cimport col2im_tile_add, im2col_tile


def im2col(const floating[:, :, :, ::1] x,     # IN  (N, C, H, W)
           floating[:, :, ::1] cols,           # OUT (N, C * R * S, OH * OW)
           Geometry g, int num_threads):
    """Unfold every (image, channel) plane; one writer per plane's rows."""
    cdef Py_ssize_t item, n, c, L = g.OH * g.OW, RS = g.R * g.S
    with nogil:
        for item in prange(g.N * g.C, schedule="static", num_threads=num_threads):
            n = item // g.C
            c = item - n * g.C
            im2col_tile(&x[n, c, 0, 0], 1, &g, 0, L, &cols[n, c * RS, 0], L)


def col2im(const floating[:, :, ::1] cols,     # IN  (N, C * R * S, OH * OW)
           floating[:, :, :, ::1] x,           # OUT (N, C, H, W), zero on entry
           Geometry g, int num_threads):
    """Fold columns back, summing overlaps; one writer per (image, channel) plane."""
    cdef Py_ssize_t item, n, c, L = g.OH * g.OW, RS = g.R * g.S
    with nogil:
        for item in prange(g.N * g.C, schedule="static", num_threads=num_threads):
            n = item // g.C
            c = item - n * g.C
            col2im_tile_add(&cols[n, c * RS, 0], L, 1, &g, 0, L, &x[n, c, 0, 0])
