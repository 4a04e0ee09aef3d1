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
"""

import os
import sys
import tempfile
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

KERNELS = Path("fastconv", "_kernels")
DEBUG = os.environ.get("FASTCONV_DEBUG", "0") == "1"

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
        candidates = [(["/openmp:llvm"], []), (["/openmp"], [])]
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

    def build_extensions(self):
        """Add the OpenMP and optimisation flags to every kernel, then build."""
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
                ext.extra_compile_args += ["-O0", "-g"] if DEBUG else ["-O3"]
        super().build_extensions()


def kernel_extensions():
    """One extension module per kernel source file."""
    return [
        Extension(f"fastconv._kernels.{pyx.stem}", [str(pyx)], include_dirs=[str(KERNELS)])
        for pyx in sorted(KERNELS.glob("*.pyx"))
    ]


setup(
    # C sources per mode: cythonize regenerates by timestamp only, so a shared directory
    # would let a release build's C silently serve a debug build.
    ext_modules=cythonize(kernel_extensions(), compiler_directives=DIRECTIVES,
                          build_dir=str(Path("build", "cython-debug" if DEBUG else "cython"))),
    cmdclass={"build_ext": BuildExtWithOpenMP},
)
