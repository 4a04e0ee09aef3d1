"""Instruction-set dispatch: the level in use, the override, and agreement across levels.

The whole suite also runs with FASTCONV_ISA=baseline in CI; here every level this CPU
supports is compared with the baseline in one process.
"""

import io
import os
import subprocess
import sys

import numpy as np
import pytest

import fastconv
from fastconv._dispatch import (
    ENVIRONMENT_VARIABLE,
    KERNELS,
    LEVELS,
    MODULES,
    supported_levels,
)

HIGHER_LEVELS = supported_levels()[1:]


def run_python(code, isa, directory):
    """Run ``code`` in a new interpreter with FASTCONV_ISA set to ``isa``.

    It starts in ``directory``, away from the source tree, so that it imports the
    installed fastconv as the tests do.
    """
    environment = {**os.environ, ENVIRONMENT_VARIABLE: isa}
    return subprocess.run([sys.executable, "-c", code], env=environment, cwd=directory,
                          capture_output=True, text=True, check=False)


@pytest.fixture
def on_level():
    """Switch the kernels to a level for one test, then back."""
    chosen = KERNELS.level
    yield KERNELS.use
    KERNELS.use(chosen)


def test_import_chooses_the_highest_supported_level():
    requested = os.environ.get(ENVIRONMENT_VARIABLE, "").strip().lower()
    assert KERNELS.level == (requested or supported_levels()[-1])
    assert supported_levels()[0] == "baseline"
    assert set(supported_levels()) <= set(LEVELS)
    suffix = "" if KERNELS.level == "baseline" else f"_{KERNELS.level}"
    for module in MODULES:
        assert getattr(KERNELS, module).__name__ == f"fastconv._kernels._{module}{suffix}"


def test_show_config_names_the_level_in_use():
    out = io.StringIO()
    fastconv.show_config(file=out)
    assert f"instruction set: {KERNELS.level} (" in out.getvalue()


@pytest.mark.parametrize("level", supported_levels())
def test_environment_variable_forces_a_level(level, tmp_path):
    code = "from fastconv._dispatch import KERNELS; print(KERNELS.level, KERNELS.pool_max.__name__)"
    result = run_python(code, f" {level.upper()} ", tmp_path)
    assert result.returncode == 0, result.stderr
    suffix = "" if level == "baseline" else f"_{level}"
    assert result.stdout.split() == [level, f"fastconv._kernels._pool_max{suffix}"]


@pytest.mark.parametrize("value", ["sse4", "avx", "0"])
def test_environment_variable_rejects_unknown_levels(value, tmp_path):
    result = run_python("import fastconv", value, tmp_path)
    assert result.returncode != 0
    assert f"{ENVIRONMENT_VARIABLE}={value!r}" in result.stderr


def test_use_rejects_unsupported_levels(on_level):
    with pytest.raises(ValueError, match="level='neon'"):
        on_level("neon")
    for level in set(LEVELS) - set(supported_levels()):
        with pytest.raises(ValueError, match=f"level='{level}'"):
            on_level(level)


def results_of_every_op(dtype):
    """Each dispatched op's outputs on inputs that exercise padding, stride and ties."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 6, 19, 23)).astype(dtype)
    x[0, 0, :4, :4] = 1.0  # ties
    w = rng.standard_normal((4, 3, 3, 5)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    results = {}
    for algorithm in ("direct", "im2col"):
        conv = dict(stride=(2, 1), padding=((1, 2), (0, 3)), dilation=(1, 2), groups=2,
                    algorithm=algorithm)
        y = fastconv.conv2d(x, w, b, **conv)
        gy = rng.standard_normal(y.shape).astype(dtype)
        results[f"conv2d {algorithm}"] = (y, *fastconv.conv2d_backward(gy, x, w, **conv))
    depthwise = np.ascontiguousarray(w[:, :1].repeat(2, axis=0)[:6])
    results["depthwise"] = (fastconv.conv2d(x, depthwise, padding="same", groups=6),)
    results["im2col"] = (fastconv.im2col(x, (3, 2), stride=2, padding=1),)
    y, indices = fastconv.max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True)
    results["max_pool2d"] = (y, indices, fastconv.argmax_mask(indices, x.shape),
                             fastconv.max_pool2d_backward(y, indices, x.shape),
                             fastconv.max_unpool2d(y, indices, 3, 2, 1, output_size=x.shape[2:]))
    results["avg_pool2d"] = (fastconv.avg_pool2d(x, (2, 3), 2, 1, ceil_mode=True),
                             fastconv.lp_pool2d(x, 3, (3, 2), 2))
    skip_weight = rng.standard_normal((6, 6, 3, 3)).astype(dtype)
    results["pool_skip"] = (fastconv.pool_skip(x, skip_weight, x[0, :, 0, 0], 2),
                            *fastconv.pool_skip_backward(x, x, skip_weight, 3))
    return results


@pytest.mark.skipif(not HIGHER_LEVELS, reason="this CPU or build has the baseline only")
@pytest.mark.parametrize("level", HIGHER_LEVELS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_levels_agree_with_the_baseline(on_level, level, dtype):
    on_level("baseline")
    expected = results_of_every_op(dtype)
    on_level(level)
    actual = results_of_every_op(dtype)
    for name, arrays in expected.items():
        for want, got in zip(arrays, actual[name], strict=True):
            if name.startswith(("conv2d", "depthwise", "pool_skip")):
                # FMA contraction rounds once where the baseline rounds twice.
                tolerance = 1e-5 if dtype == np.float32 else 1e-12
                np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance,
                                           err_msg=name)
            else:
                np.testing.assert_array_equal(got, want, err_msg=name)
