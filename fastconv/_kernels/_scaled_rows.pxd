# Multiply-adds of several rows into one accumulator row in a single sweep, and a queue
# that gathers the rows GROUP at a time: shared by Pool Skip's forward (its maxima
# through the filter taps) and backward (their gradient rows).
from cython cimport floating


cdef enum:
    # Rows per sweep: the most whose scales and pointers stay in registers.
    GROUP = 8


cdef inline void add_scaled_rows(floating* acc, const floating* const* rows,
                                 const floating* scales, Py_ssize_t count,
                                 Py_ssize_t n) noexcept nogil:
    """``acc[k] += scales[t] * rows[t][k]`` for ``t < count`` in turn, ``k < n``.

    With ``count`` a constant after inlining, the rows unroll and the running sum stays
    in a register: ``acc`` is read and written once for all of them, and the sums are
    the same, in the same order, as row by row.
    """
    cdef const floating* row[GROUP]
    cdef floating scale[GROUP]
    cdef Py_ssize_t k, t
    cdef floating total
    # Local copies, which the compiler keeps in registers through the sweep.
    for t in range(count):
        row[t] = rows[t]
        scale[t] = scales[t]
    for k in range(n):
        total = acc[k]
        for t in range(count):
            total += scale[t] * row[t][k]
        acc[k] = total


cdef inline void add_scaled_group(floating* acc, const floating* const* rows,
                                  const floating* scales, Py_ssize_t count,
                                  Py_ssize_t n) noexcept nogil:
    """:func:`add_scaled_rows` with ``count`` (1 to GROUP) made a constant."""
    if count == 8:
        add_scaled_rows(acc, rows, scales, 8, n)
    elif count == 7:
        add_scaled_rows(acc, rows, scales, 7, n)
    elif count == 6:
        add_scaled_rows(acc, rows, scales, 6, n)
    elif count == 5:
        add_scaled_rows(acc, rows, scales, 5, n)
    elif count == 4:
        add_scaled_rows(acc, rows, scales, 4, n)
    elif count == 3:
        add_scaled_rows(acc, rows, scales, 3, n)
    elif count == 2:
        add_scaled_rows(acc, rows, scales, 2, n)
    else:
        add_scaled_rows(acc, rows, scales, 1, n)


cdef inline void queue_scaled_row(floating* acc, const floating** rows, floating* scales,
                                  Py_ssize_t* count, const floating* row, floating scale,
                                  Py_ssize_t n) noexcept nogil:
    """Queue ``acc[k] += scale * row[k]`` (``k < n``) behind the ``count[0]`` rows and
    scales waiting in ``rows`` and ``scales``; add them all in one sweep once GROUP wait."""
    rows[count[0]] = row
    scales[count[0]] = scale
    count[0] += 1
    if count[0] == GROUP:
        add_scaled_group(acc, rows, scales, GROUP, n)
        count[0] = 0


cdef inline void run_queue(floating* acc, const floating** rows, floating* scales,
                           Py_ssize_t* count, Py_ssize_t n) noexcept nogil:
    """Add the rows waiting in the queue of :func:`queue_scaled_row` now."""
    if count[0]:
        add_scaled_group(acc, rows, scales, count[0], n)
        count[0] = 0
