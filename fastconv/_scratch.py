"""Workspace memory that a thread's calls reuse: arrays that live for one call only.

Memory fresh from ``malloc`` is often fresh from the operating system: glibc hands
freed blocks of megabytes, and the freed top of its heap, back to the system, and the
next call's workspace then pays a page fault for each 4 KiB page it touches (several
microseconds each under a hypervisor). A fused Pool Skip call on 8 x 64 x 56 x 56
with e = 2 faulted about 2,600 times and spent more time in the kernel than in its
own loops. So each thread keeps one buffer, grown to what its largest call asked for
(up to :data:`LIMIT_BYTES`), and carves a call's workspaces from it.
"""

import math
import threading

import numpy as np

from fastconv._params import check_size

#: The most scratch a thread keeps between calls; a call asking for more gets fresh
#: memory beyond it, as if there were no scratch.
LIMIT_BYTES = 512 * 2**20

#: Workspaces start on cache-line boundaries: the kernels' vectors run along their rows.
ALIGNMENT = 64


class _Kept(threading.local):
    """One thread's buffer, and whether a call is carving from it now."""

    def __init__(self):
        self.buffer = np.empty(0, np.uint8)
        self.in_use = False


_kept = _Kept()


class Scratch:
    """The workspaces of one call, as a context manager: ``with Scratch() as scratch``.

    Arrays from :meth:`empty` must not outlive the ``with`` block: the thread's next
    call reuses their memory. A call made inside another's block (a kernel calling
    another on the same thread) gets fresh memory, so the two never share.
    """

    def __enter__(self):
        self._owner = not _kept.in_use
        _kept.in_use = True
        self._used = 0
        return self

    def __exit__(self, *exc_info):
        if self._owner:
            _kept.in_use = False
            if _kept.buffer.size < self._used <= LIMIT_BYTES:
                # Grown once to what this call asked for, so the next one like it fits.
                _kept.buffer = np.empty(self._used + ALIGNMENT, np.uint8)
        return False

    def empty(self, name, shape, dtype):
        """Return what :func:`aligned_empty` would, carved from the thread's scratch.

        The array is valid until the ``with`` block ends; a call needing more than the
        kept buffer holds gets fresh memory.
        """
        dtype = np.dtype(dtype)
        check_size(name, shape, dtype.itemsize)
        nbytes = math.prod(shape) * dtype.itemsize
        buffer = _kept.buffer
        skip = -buffer.ctypes.data % ALIGNMENT
        start = self._used + -self._used % ALIGNMENT
        self._used = start + nbytes
        if not self._owner or skip + self._used > buffer.size:
            return aligned_empty(name, shape, dtype)
        return buffer[skip + start:skip + self._used].view(dtype).reshape(shape)


def aligned_empty(name, shape, dtype):
    """Return a fresh uninitialised C-contiguous array aligned to :data:`ALIGNMENT` bytes.

    NumPy guarantees 16 bytes only; aligned, no AVX-512 vector along a row straddles
    two cache lines.

    Parameters
    ----------
    name : str
        Names the array in the error if it could not be addressed.
    shape : tuple of int
    dtype : numpy dtype

    Returns
    -------
    ndarray
    """
    dtype = np.dtype(dtype)
    check_size(name, shape, dtype.itemsize)
    nbytes = math.prod(shape) * dtype.itemsize
    fresh = np.empty(nbytes + ALIGNMENT, np.uint8)
    offset = -fresh.ctypes.data % ALIGNMENT
    return fresh[offset:offset + nbytes].view(dtype).reshape(shape)
