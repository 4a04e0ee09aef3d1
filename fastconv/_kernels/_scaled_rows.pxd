# Multiply-adds of many rows into one accumulator row in a single sweep (scaled_rows.h),
# and a queue that gathers the rows for it: Pool Skip's weight gradient (the gradient
# rows that its maxima reach). Its forward sweeps blocks of filters (spread_taps.h).
from cython cimport floating


cdef extern from "scaled_rows.h" nogil:
    void fastconv_add_scaled_rows_f32(float* acc, const float* const* rows, Py_ssize_t shift,
                                      const float* scales, Py_ssize_t count, Py_ssize_t n)
    void fastconv_add_scaled_rows_f64(double* acc, const double* const* rows,
                                      Py_ssize_t shift, const double* scales, Py_ssize_t count,
                                      Py_ssize_t n)


cdef enum:
    # Rows a queue holds: each sweep reads and writes the accumulator once for all of
    # them, so beyond a few dozen rows that traffic no longer counts.
    QUEUE = 64


cdef inline void add_scaled_rows(floating* acc, const floating* const* rows, Py_ssize_t shift,
                                 const floating* scales, Py_ssize_t count,
                                 Py_ssize_t n) noexcept nogil:
    """``acc[k] += scales[t] * rows[t][shift + k]`` for ``t < count`` in turn, ``k < n``."""
    if floating is float:
        fastconv_add_scaled_rows_f32(acc, rows, shift, scales, count, n)
    else:
        fastconv_add_scaled_rows_f64(acc, rows, shift, scales, count, n)


cdef inline void run_queue(floating* acc, const floating** rows, floating* scales,
                           Py_ssize_t* count, Py_ssize_t accs, Py_ssize_t pitch,
                           Py_ssize_t n) noexcept nogil:
    """Add the ``count[0]`` rows and scales waiting in ``rows`` and ``scales`` now, to
    each of ``accs`` accumulator rows ``acc + a * n``: row a takes the rows shifted by
    ``a * pitch`` elements (one sweep each), then the queue is empty."""
    cdef Py_ssize_t a
    if count[0]:
        for a in range(accs):
            add_scaled_rows(acc + a * n, rows, a * pitch, scales, count[0], n)
        count[0] = 0


cdef inline void queue_scaled_row(floating* acc, const floating** rows, floating* scales,
                                  Py_ssize_t* count, const floating* row, floating scale,
                                  Py_ssize_t accs, Py_ssize_t pitch,
                                  Py_ssize_t n) noexcept nogil:
    """Queue ``acc[a * n + k] += scale * row[a * pitch + k]`` (``a < accs``, ``k < n``)
    behind the ``count[0]`` rows waiting; run the queue once QUEUE wait."""
    rows[count[0]] = row
    scales[count[0]] = scale
    count[0] += 1
    if count[0] == QUEUE:
        run_queue(acc, rows, scales, count, accs, pitch, n)
