"""Choose the instruction-set build of the hot kernels that this process runs.

On x86-64 every arithmetic kernel is compiled three times: for the baseline (SSE2,
which every x86-64 CPU runs), for AVX2 + FMA and for AVX-512. At import the highest
level that both the CPU and this build support is chosen, except that a module whose
AVX-512 build measured slower than its AVX2 build stays at AVX2. The environment
variable ``FASTCONV_ISA`` (``baseline``, ``avx2`` or ``avx512``) runs every module at
that level instead, for example to compare paths or to rule one out. Other platforms
have the baseline only.

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

#: Modules whose AVX-512 build ran slower than their AVX2 build: max pooling, whose
#: AVX-512 build was 1.2x faster on bench_pool's P1 (3x3 windows) but 0.75-0.9x as fast
#: on P2 and on the 2x2 and 4x4 pools of Pool Skip (benchmarks/bench_isa.py).
AVX2_IS_FASTEST = ("pool_max",)

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
    """Return the level to run, and whether it was asked for (then every module runs it)."""
    supported = supported_levels()
    requested = os.environ.get(ENVIRONMENT_VARIABLE, "").strip().lower()
    if not requested:
        return supported[-1], False
    if requested not in LEVELS:
        raise ValueError(f"{ENVIRONMENT_VARIABLE}={requested!r}: expected one of "
                         f"{', '.join(LEVELS)}")
    if requested not in supported:
        raise ValueError(f"{ENVIRONMENT_VARIABLE}={requested!r}: this CPU and build "
                         f"support only {', '.join(supported)}")
    return requested, True


class Kernels:
    """The kernel modules of one instruction-set level, as attributes.

    The Python wrappers look a module up here at every call (``KERNELS.pool_max``), so
    :meth:`use` switches the whole library at once. Switching is meant for benchmarks
    and tests that compare levels in one process, not for calls running concurrently.
    """

    def __init__(self, level, exact):
        self.use(level, exact)

    def use(self, level, exact=True):
        """Run the kernels of ``level`` from now on.

        Parameters
        ----------
        level : str
            One of :func:`supported_levels`.
        exact : bool
            Run every module at ``level``; if False, the modules of
            :data:`AVX2_IS_FASTEST` stop at AVX2.
        """
        if level not in supported_levels():
            raise ValueError(f"level={level!r}: this CPU and build support only "
                             f"{', '.join(supported_levels())}")
        #: The level each module runs at, where it differs from ``level``.
        self.exceptions = {}
        for module in MODULES:
            module_level = level
            if not exact and level == "avx512" and module in AVX2_IS_FASTEST:
                module_level = self.exceptions[module] = "avx2"
            setattr(self, module, importlib.import_module(_module_name(module, module_level)))
        self.level = level

    def describe(self):
        """One line naming the level in use and the modules that run another.

        Returns
        -------
        str
        """
        others = "".join(f", {module} at {level}" for module, level in self.exceptions.items())
        return f"{self.level}{others}"


#: The kernels every wrapper calls.
KERNELS = Kernels(*_chosen_level())
