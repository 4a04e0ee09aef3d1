"""Choose the instruction-set build of the hot kernels that this process runs.

On x86-64 every arithmetic kernel is compiled three times: for the baseline (SSE2,
which every x86-64 CPU runs), for AVX2 + FMA and for AVX-512. At import the highest
level that both the CPU and this build support is chosen. The environment variable
``FASTCONV_ISA`` (``baseline``, ``avx2`` or ``avx512``) runs that level instead, for
example to compare paths or to rule one out. Other platforms have the baseline only.

Results agree across levels up to rounding (FMA contracts multiply-adds); pooling,
unpooling and im2col/col2im are the same bit for bit. Each level is bitwise
deterministic across thread counts on its own.
"""

import functools
import importlib
import importlib.util
import os

from fastconv._kernels import _cpu

#: The instruction-set levels, lowest first; a level's index is its rank.
LEVELS = ("baseline", "avx2", "avx512")

#: The dispatched kernel modules, by their attribute name on :data:`KERNELS`.
MODULES = ("conv_direct", "conv_gemm", "im2col", "pool_avg", "pool_max", "pool_skip",
           "scatter")

ENVIRONMENT_VARIABLE = "FASTCONV_ISA"


def _module_name(module, level):
    suffix = "" if level == "baseline" else f"_{level}"
    return f"fastconv._kernels._{module}{suffix}"


@functools.cache
def supported_levels():
    """Return the levels that this build has and this CPU runs, lowest first.

    Computed once: neither the CPU nor the installed build changes in a process, and
    :meth:`Kernels.use` (which benchmarks call before every timed run) checks it.

    Returns
    -------
    tuple of str
    """
    built = [level for level in LEVELS
             if importlib.util.find_spec(_module_name(MODULES[0], level)) is not None]
    return tuple(level for level in built if LEVELS.index(level) <= _cpu.x86_level())


def _chosen_level():
    """Return the level to run: the one asked for, else the highest supported."""
    supported = supported_levels()
    requested = os.environ.get(ENVIRONMENT_VARIABLE, "").strip().lower()
    if not requested:
        return supported[-1]
    if requested not in LEVELS:
        raise ValueError(f"{ENVIRONMENT_VARIABLE}={requested!r}: expected one of "
                         f"{', '.join(LEVELS)}")
    if requested not in supported:
        raise ValueError(f"{ENVIRONMENT_VARIABLE}={requested!r}: this CPU and build "
                         f"support only {', '.join(supported)}")
    return requested


class Kernels:
    """The kernel modules of one instruction-set level, as attributes.

    The Python wrappers look a module up here at every call (``KERNELS.pool_max``), so
    :meth:`use` switches the whole library at once. Switching is meant for benchmarks
    and tests that compare levels in one process, not for calls running concurrently.
    """

    def __init__(self, level):
        self.use(level)

    def use(self, level):
        """Run the kernels of ``level`` from now on.

        Parameters
        ----------
        level : str
            One of :func:`supported_levels`.
        """
        if level not in supported_levels():
            raise ValueError(f"level={level!r}: this CPU and build support only "
                             f"{', '.join(supported_levels())}")
        for module in MODULES:
            setattr(self, module, importlib.import_module(_module_name(module, level)))
        self.level = level


#: The kernels every wrapper calls.
KERNELS = Kernels(_chosen_level())
