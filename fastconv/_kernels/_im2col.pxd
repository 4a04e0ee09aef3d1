from cython cimport floating

from fastconv._kernels._geometry cimport Geometry

cdef void im2col_tile(const floating* image, Py_ssize_t channels, const Geometry* g,
                      Py_ssize_t l0, Py_ssize_t l1,
                      floating* cols, Py_ssize_t ld) noexcept nogil

cdef void col2im_tile_add(const floating* cols, Py_ssize_t ld, Py_ssize_t channels,
                          const Geometry* g, Py_ssize_t l0, Py_ssize_t l1,
                          floating* image) noexcept nogil
