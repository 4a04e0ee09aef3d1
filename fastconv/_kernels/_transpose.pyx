"""Batched matrix transposition, tile by tile: the layout changes of Pool Skip's filters
and gradient (channels first <-> channels last), which NumPy copies element by element.
"""
from cython cimport floating
from cython.parallel cimport prange


cdef enum:
    # Tile side: a TILE x TILE tile of the source and of the destination together stay
    # in L1, so the strided reads hit the cache; the writes run along destination rows
    # (faster than the other way round, and than tiles of 16 or 64).
    TILE = 32


def transpose(const floating[:, :, ::1] src,   # IN  (B, M, P)
              floating[:, :, ::1] dst,         # OUT (B, P, M)
              int num_threads):
    """``dst[b] = src[b].T``; a work item is one row of tiles of one matrix."""
    cdef Py_ssize_t B = src.shape[0], M = src.shape[1], P = src.shape[2]
    cdef Py_ssize_t tile_rows = (M + TILE - 1) // TILE, item, b, i0, i1, t, j0, j1, i, j
    with nogil:
        for item in prange(B * tile_rows, schedule="static", num_threads=num_threads):
            b = item // tile_rows
            i0 = (item % tile_rows) * TILE
            i1 = i0 + TILE if i0 + TILE < M else M
            for t in range((P + TILE - 1) // TILE):
                j0 = t * TILE
                j1 = j0 + TILE if j0 + TILE < P else P
                for j in range(j0, j1):
                    for i in range(i0, i1):
                        dst[b, j, i] = src[b, i, j]
