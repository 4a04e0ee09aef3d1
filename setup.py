"""Build the Cython kernels of fastconv.

Environment switches
--------------------
FASTCONV_NO_OPENMP=1
    Build without OpenMP (every kernel then runs on one thread).
FASTCONV_REQUIRE_OPENMP=1
    Fail instead of silently building without OpenMP (wheel builds set it).
FASTCONV_DEBUG=1
    Turn bounds checking, wraparound and initialisation checks back on and build
    without optimisation, for hunting an out-of-bounds access.

Instruction sets
----------------
A wheel must run on every CPU of its platform, so the compiler's baseline (SSE2 on
x86-64, NEON on aarch64) is the default. On x86-64 the hot kernels are also compiled
for AVX2 + FMA and for AVX-512, as modules named ``<kernel>_avx2`` and
``<kernel>_avx512``; ``fastconv._dispatch`` picks one at import by the CPU's features.
"""

import os
import platform
import sys
import sysconfig
import tempfile
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

KERNELS = Path("fastconv", "_kernels")
DEBUG = os.environ.get("FASTCONV_DEBUG", "0") == "1"
BUILD = Path("build", "cython-debug" if DEBUG else "cython")

# The kernels that do the arithmetic, compiled once per instruction set. The others
# (thread control, the BLAS pointers, CPU detection) run at the baseline only.
DISPATCHED = ("_conv_direct", "_conv_gemm", "_im2col", "_pool_avg", "_pool_max", "_pool_skip",
              "_scatter")

# Instruction-set builds beyond the baseline: module suffix -> (gcc/clang, MSVC) flags.
X86_64_BUILDS = {
    "avx2": (["-mavx2", "-mfma"], ["/arch:AVX2"]),
    "avx512": (["-mavx2", "-mfma", "-mavx512f", "-mavx512cd", "-mavx512bw", "-mavx512dq",
                "-mavx512vl"], ["/arch:AVX512"]),
}

# One set of directives for every kernel: the Python wrappers prove every index range,
# so the kernels run without checks; the debug switch turns them back on.
DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": not DEBUG,
    "cpow": True,
    "freethreading_compatible": True,
}


def openmp_flags(compiler):
    """Return (compile, link) flags enabling OpenMP for this compiler, or None."""
    if os.environ.get("FASTCONV_NO_OPENMP", "0") == "1":
        return None
    if compiler.compiler_type == "msvc":
        # vcomp140.dll, part of the Visual C++ runtime, which delvewheel can bundle.
        candidates = [(["/openmp"], [])]
    elif sys.platform == "darwin":
        # Apple clang needs the preprocessor switch and Homebrew's libomp.
        prefix = os.environ.get("LIBOMP_PREFIX", "/opt/homebrew/opt/libomp")
        candidates = [
            (["-Xpreprocessor", "-fopenmp", f"-I{prefix}/include"], [f"-L{prefix}/lib", "-lomp"]),
            (["-fopenmp"], ["-fopenmp"]),
        ]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    test_source = "#include <omp.h>\nint main(void) { return omp_get_max_threads() < 1; }\n"
    for compile_flags, link_flags in candidates:
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp, "check_openmp.c")
            source.write_text(test_source)
            try:
                objects = compiler.compile([str(source)], output_dir=tmp,
                                           extra_postargs=compile_flags)
                compiler.link_executable(objects, "check_openmp", output_dir=tmp,
                                         extra_postargs=link_flags)
            except Exception:  # noqa: BLE001 - any failure means "this flag set does not work"
                continue
        return compile_flags, link_flags
    return None


class BuildExtWithOpenMP(build_ext):
    """build_ext that detects OpenMP once and applies the result to every kernel."""

    def finalize_options(self):
        """Compile the modules in parallel unless told otherwise (``-j``)."""
        super().finalize_options()
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1

    def build_extensions(self):
        """Add the OpenMP, optimisation and instruction-set flags, then build."""
        flags = openmp_flags(self.compiler)
        if flags is None:
            if os.environ.get("FASTCONV_REQUIRE_OPENMP", "0") == "1":
                sys.exit("error: FASTCONV_REQUIRE_OPENMP=1 but the compiler has no OpenMP")
            print("warning: building fastconv without OpenMP: kernels run on one thread")
        msvc = self.compiler.compiler_type == "msvc"
        for ext in self.extensions:
            if flags is not None:
                ext.extra_compile_args += flags[0]
                ext.extra_link_args += flags[1]
            if msvc:
                ext.extra_compile_args += ["/Od" if DEBUG else "/O2"]
            else:
                # Never -ffast-math: it breaks the NaN rules and can set flush-to-zero for
                # the whole process.
                # -g0 overrides the -g of Python's own flags: no debug sections in wheels.
                ext.extra_compile_args += ["-O0", "-g"] if DEBUG else ["-O3", "-g0"]
            isa = instruction_set_of(ext.name)
            if isa is not None:
                ext.extra_compile_args += X86_64_BUILDS[isa][1 if msvc else 0]
        super().build_extensions()


def instruction_set_of(module_name):
    """Return the ISA suffix of a module name, or None for a baseline module."""
    suffix = module_name.rsplit("_", 1)[-1]
    return suffix if suffix in X86_64_BUILDS else None


def targets_x86_64():
    """Tell whether the wheel being built is for x86-64 (cross-builds included)."""
    if sys.platform == "darwin" and "ARCHFLAGS" in os.environ:
        return os.environ["ARCHFLAGS"].split() == ["-arch", "x86_64"]
    target = sysconfig.get_platform() if sys.platform != "darwin" else platform.machine()
    return target.lower().endswith(("x86_64", "amd64"))


def instruction_set_source(kernel, isa):
    """Write (if changed) a one-line source that compiles ``kernel`` as its ISA build.

    The include makes the build a separate module with its own C file, so the
    baseline and every ISA build are compiled from the one kernel source.
    """
    path = Path("build", "isa-sources", f"{kernel}_{isa}.pyx")
    text = f"# The {isa} build of {kernel} (written by setup.py).\ninclude \"{kernel}.pyx\"\n"
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return path


def kernel_extensions():
    """One baseline module per kernel source file, plus the ISA builds on x86-64."""
    # Every module depends on every C header: build_ext then recompiles after a header
    # edit, which cythonize, tracking only .pyx and .pxd files, would not ask for.
    headers = [str(header) for header in sorted(KERNELS.glob("*.h"))]

    def extension(name, source):
        return Extension(f"fastconv._kernels.{name}", [str(source)],
                         include_dirs=[str(KERNELS)], depends=headers)

    extensions = [extension(pyx.stem, pyx) for pyx in sorted(KERNELS.glob("*.pyx"))]
    if targets_x86_64():
        extensions += [extension(f"{kernel}_{isa}", instruction_set_source(kernel, isa))
                       for kernel in DISPATCHED for isa in X86_64_BUILDS]
    return extensions


setup(
    # C sources per mode: cythonize regenerates by timestamp only, so a shared directory
    # would let a release build's C silently serve a debug build.
    ext_modules=cythonize(kernel_extensions(), compiler_directives=DIRECTIVES,
                          include_path=[str(KERNELS)], build_dir=str(BUILD)),
    cmdclass={"build_ext": BuildExtWithOpenMP},
)
