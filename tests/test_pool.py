"""Max, average and LP pooling against the naive references and PyTorch."""

import numpy as np
import pytest
from conftest import DTYPES, assert_close, tie_free, torch_or_skip

import fastconv
from fastconv.testing import (
    avg_pool2d_reference,
    lp_pool2d_reference,
    max_pool2d_reference,
)

# (x shape, kernel, stride, padding, dilation, ceil_mode)
MAX_CASES = [
    ((2, 3, 9, 11), 3, 2, 1, 1, False),
    ((2, 3, 9, 11), 3, 2, 1, 1, True),
    ((1, 2, 8, 8), 2, None, 0, 1, False),
    ((1, 2, 7, 10), (2, 3), (1, 2), (1, 0), (2, 1), True),
    ((2, 1, 5, 5), 2, 2, 1, 1, True),     # ceil mode drops the window starting in padding
    ((1, 1, 12, 9), (3, 1), (3, 1), 0, (1, 1), False),
    ((1, 2, 11, 13), (3, 2), (2, 3), (1, 1), (2, 3), True),
    ((3, 2, 6, 6), 1, 1, 0, 1, False),
]


# Planes large enough for several bands of output rows, with widths that are and are
# not a multiple of the stride (the kernel's two ways through a row). The last but two
# exceeds the planes kernel's scratch budget in every build, so the two passes take it.
LARGE_MAX_CASES = [
    ((1, 2, 150, 64), 3, 2, 1, 1, False),
    ((1, 2, 150, 63), 3, 2, 1, 1, True),
    ((1, 1, 97, 120), 2, 2, 0, 1, False),
    ((1, 1, 90, 121), (4, 4), (4, 4), 0, 1, True),
    ((1, 1, 80, 96), (3, 5), (1, 3), (1, 2), 1, False),
    ((1, 1, 70, 90), 3, (3, 1), 1, (2, 3), True),
    ((1, 1, 64, 80), (2, 3), (5, 2), 0, (1, 2), False),
    ((1, 1, 130, 140), (4, 3), (3, 2), (1, 1), (1, 2), True),
    # Over 2 MiB even in float32: the single pass asks for rows ahead of time.
    ((2, 4, 260, 256), 3, 2, 1, 1, True),
    ((2, 4, 260, 256), 2, 2, 0, 1, False),
]


def random_pool_cases(count, seed, dilate=True, pad=True):
    """Random valid pooling geometries: (shape, kernel, stride, padding, dilation, ceil)."""
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        kernel = tuple(int(k) for k in rng.integers(1, 5, 2))
        stride = tuple(int(s) for s in rng.integers(1, 4, 2))
        padding = tuple(int(rng.integers(0, k // 2 + 1)) if pad else 0 for k in kernel)
        dilation = tuple(int(d) for d in rng.integers(1, 3, 2)) if dilate else (1, 1)
        shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4)),
                 int(rng.integers(1, 14)), int(rng.integers(1, 14)))
        span = [d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True)]
        if all(size + 2 * p >= s for size, p, s in zip(shape[2:], padding, span, strict=True)):
            cases.append((shape, kernel, stride, padding, dilation, bool(rng.integers(2))))
    return cases


def windows_hold_input(case):
    """False when a dilated window covers padding only (fastconv refuses those)."""
    try:
        shape, kernel, stride, padding, dilation, ceil_mode = case
        fastconv.max_pool2d(np.zeros(shape), kernel, stride, padding, dilation, ceil_mode)
    except ValueError as error:
        assert "covers only padding" in str(error)
        return False
    return True


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", MAX_CASES + random_pool_cases(20, seed=3))
def test_max_pool2d_matches_reference(case, dtype, rng):
    if not windows_hold_input(case):
        pytest.skip("geometry refused: a window covers padding only")
    shape, kernel, stride, padding, dilation, ceil_mode = case
    x = tie_free(rng, shape, dtype)
    y, indices = fastconv.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode,
                                     return_indices=True)
    y_ref, indices_ref = max_pool2d_reference(x, kernel, stride, padding, dilation, ceil_mode)
    assert_close(y, y_ref, dtype)
    assert indices.dtype == np.int64
    np.testing.assert_array_equal(indices, indices_ref)
    np.testing.assert_array_equal(
        fastconv.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode), y)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", MAX_CASES + random_pool_cases(30, seed=4) + LARGE_MAX_CASES)
def test_max_pool2d_matches_torch_bit_for_bit(case, dtype, rng):
    torch = torch_or_skip()
    if not windows_hold_input(case):
        pytest.skip("geometry refused: a window covers padding only")
    shape, kernel, stride, padding, dilation, ceil_mode = case
    # Few distinct values and some NaN, so the tie and NaN rules are exercised.
    x = rng.integers(-3, 3, shape).astype(dtype)
    x[rng.random(shape) < 0.02] = np.nan
    y, indices = fastconv.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode,
                                     return_indices=True)
    y_t, indices_t = torch.nn.functional.max_pool2d(
        torch.from_numpy(x), kernel, stride, padding, dilation, ceil_mode, return_indices=True)
    np.testing.assert_array_equal(y, y_t.numpy())
    np.testing.assert_array_equal(indices, indices_t.numpy())


def check_ties_nans_and_infs_against_reference(case, dtype, rng, fraction):
    """Max-pool few distinct values with ``fraction`` NaN, -inf and -0.0 each; compare exactly.

    Half the NaNs have the sign bit set; -0.0 ties with 0.0.
    """
    shape, kernel, stride, padding, dilation, ceil_mode = case
    x = rng.integers(-3, 3, shape).astype(dtype)
    x[rng.random(shape) < fraction] = np.nan
    x[rng.random(shape) < fraction / 2] = np.copysign(np.nan, -1)
    x[rng.random(shape) < fraction] = -np.inf
    x[rng.random(shape) < fraction] = -0.0
    y, indices = fastconv.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode,
                                     return_indices=True)
    y_ref, indices_ref = max_pool2d_reference(x, kernel, stride, padding, dilation, ceil_mode)
    np.testing.assert_array_equal(y, y_ref.astype(dtype), err_msg=str(case))
    np.testing.assert_array_equal(indices, indices_ref, err_msg=str(case))
    np.testing.assert_array_equal(
        fastconv.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode), y,
        err_msg=str(case))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", LARGE_MAX_CASES)
def test_max_pool2d_on_large_planes_with_ties_and_nans(case, dtype, rng):
    check_ties_nans_and_infs_against_reference(case, dtype, rng, 0.02)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", MAX_CASES + LARGE_MAX_CASES[:3])
def test_max_pool2d_with_64_bit_codes_agrees(case, dtype, rng):
    # Planes of 2**30 elements or more keep positions in 64 bits in the two-pass kernel;
    # it runs here on small planes, which must give the same result as with 32-bit codes
    # (or as the single pass, for the windows that take it).
    from fastconv._dispatch import KERNELS
    from fastconv._params import pool_geometry

    shape, kernel, stride, padding, dilation, ceil_mode = case
    x = rng.integers(-3, 3, shape).astype(dtype)
    y, indices = fastconv.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode,
                                     return_indices=True)
    g = pool_geometry(shape, kernel, stride, padding, dilation, ceil_mode)
    y_wide, indices_wide = np.empty_like(y), np.empty_like(indices)
    KERNELS.pool_max.max_pool2d(x, y_wide, indices_wide, g, True, 2)
    np.testing.assert_array_equal(y_wide, y)
    np.testing.assert_array_equal(indices_wide, indices)


# Small planes whose windows the row kernels do not take go through the planes kernel
# a block of 2 to 16 planes at a time (the build's vector lanes): 1 to 17 planes leave
# every count of planes in a block's last, partly filled vector, with padding, dilation
# (max pooling only) and ceil_mode in the windows.
PLANE_BLOCK_CASES = [
    ((1, planes, 9, 11), (3, 4), (2, 3), (1, 2), (2, 1), True) for planes in range(1, 18)
] + [((planes, 1, 14, 14), 4, 4, 0, 1, False) for planes in (3, 16, 17)]


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool2d_plane_blocks_of_every_size(dtype, rng):
    for case in PLANE_BLOCK_CASES:
        check_ties_nans_and_infs_against_reference(case, dtype, rng, 0.05)


# Windows 2 or 3 columns wide at column stride 2 take each row in vectors of 2 to 16
# outputs, the widest the row's inner outputs fill, the last vector moved back to end
# at the row's end. Widths 4 to 44 give every count of inner outputs from 1 to 22
# (one vector, several, several plus an overlapping last one, at each vector width);
# padding and ceil_mode put the edge outputs on one side, the other or both.
VECTOR_ROW_CASES = [
    ((1, 2, 7, width), kernel, (stride_h, 2), padding, 1, ceil_mode)
    for width in range(4, 45)
    for kernel, stride_h, padding, ceil_mode in [
        ((2, 2), 2, (0, 0), width % 3 == 0), ((3, 3), 2, (1, 1), width % 2 == 0),
        ((1, 3), 1, (0, width % 2), True), ((3, 2), 1, (1, 1), False)]
]


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool2d_vector_rows_of_every_width(dtype, rng):
    for case in VECTOR_ROW_CASES:
        check_ties_nans_and_infs_against_reference(case, dtype, rng, 0.05)


def test_ties_keep_the_first_maximum():
    x = np.array([[[[5, 5], [5, 5]]]], np.float32)
    _, indices = fastconv.max_pool2d(x, 2, return_indices=True)
    assert indices.item() == 0


def test_nan_propagates_with_the_index_of_the_last_nan():
    x = np.array([[[[1, np.nan], [3, np.nan]]]], np.float64)
    y, indices = fastconv.max_pool2d(x, 2, return_indices=True)
    assert np.isnan(y.item()) and indices.item() == 3
    x = np.array([[[[np.nan, 7], [2, 1]]]], np.float32)
    y, indices = fastconv.max_pool2d(x, 2, return_indices=True)
    assert np.isnan(y.item()) and indices.item() == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_all_minus_inf_window_returns_its_first_in_bounds_element(dtype):
    x = np.full((1, 1, 4, 4), -np.inf, dtype)
    y, indices = fastconv.max_pool2d(x, 3, stride=2, padding=1, return_indices=True)
    assert np.all(y == -np.inf)
    # Windows start at -1 and 1 along each axis: first in-bounds rows/cols 0 and 1.
    np.testing.assert_array_equal(indices[0, 0], [[0, 1], [4, 5]])


def test_padding_is_never_selected():
    x = -np.arange(1.0, 17.0).reshape(1, 1, 4, 4)  # all negative: padding at 0 would win
    y, indices = fastconv.max_pool2d(x, 3, stride=1, padding=1, return_indices=True)
    assert np.all(y < 0)
    np.testing.assert_array_equal(np.take(x.ravel(), indices), y)


def test_ceil_mode_drops_a_window_starting_in_the_padding():
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    # Without the drop rule there would be a fourth window starting at 6 = H + padding.
    assert fastconv.max_pool2d(x, 2, 2, 1, ceil_mode=True).shape == (1, 1, 3, 3)
    assert fastconv.max_pool2d(x, 2, 2, 0, ceil_mode=True).shape == (1, 1, 3, 3)
    assert fastconv.max_pool2d(x, 2, 2, 0, ceil_mode=False).shape == (1, 1, 2, 2)


def test_empty_batch():
    y, indices = fastconv.max_pool2d(np.zeros((0, 3, 8, 8), np.float32), 2,
                                     return_indices=True)
    assert y.shape == indices.shape == (0, 3, 4, 4)
    assert fastconv.avg_pool2d(np.zeros((0, 3, 8, 8)), 2).shape == (0, 3, 4, 4)


def test_empty_batch_of_planes_too_tall_for_their_divisors():
    # 2**30 rows of output: their divisors alone would take gigabytes, and no plane
    # reads them.
    x = np.zeros((0, 1, 2**31 - 1, 3), np.float32)
    assert fastconv.avg_pool2d(x, 2).shape == (0, 1, 2**30 - 1, 1)
    assert fastconv.avg_pool2d(x, 2, divisor_override=3).shape == (0, 1, 2**30 - 1, 1)
    assert fastconv.lp_pool2d(x, 2, 2).shape == (0, 1, 2**30 - 1, 1)
    grad = np.zeros((0, 1, 2**30 - 1, 1), np.float32)
    assert fastconv.avg_pool2d_backward(grad, x.shape, 2).shape == x.shape
    assert fastconv.lp_pool2d_backward(grad, x, 2, 2).shape == x.shape


# (x shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
AVG_CASES = [
    ((2, 3, 9, 11), 3, 2, 1, False, True, None),
    ((2, 3, 9, 11), 3, 2, 1, True, True, None),
    ((2, 3, 9, 11), 3, 2, 1, True, False, None),
    ((1, 2, 7, 10), (2, 3), (1, 2), (1, 0), True, True, None),
    ((1, 2, 7, 10), (2, 3), (1, 2), (1, 1), False, False, 4),
    ((1, 1, 5, 5), 3, 2, 1, True, True, None),
    ((1, 2, 8, 8), 2, None, 0, False, True, -3),
]


# Planes spanning several bands of output rows, widths a multiple of the stride or not:
# (x shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override).
LARGE_AVG_CASES = [
    ((1, 2, 150, 64), 3, 2, 1, False, True, None),
    ((1, 2, 151, 63), 3, 2, 1, True, False, None),
    ((1, 1, 97, 120), 2, 2, 0, False, True, None),
    ((1, 1, 90, 121), (4, 5), (4, 2), (2, 1), True, False, None),
    ((1, 1, 80, 96), (3, 5), (1, 3), (1, 2), False, True, 7),
    # Past the planes kernel's scratch budget in every build: the two passes take it.
    ((1, 1, 130, 140), (4, 3), (3, 2), (1, 1), True, False, None),
    # Over 2 MiB even in float32: the next band's rows are asked for ahead of time.
    ((2, 4, 260, 256), 3, 2, 1, True, False, None),
]


def avg_cases():
    cases = AVG_CASES + LARGE_AVG_CASES
    for shape, kernel, stride, padding, _, ceil_mode in random_pool_cases(20, 5, dilate=False):
        cases.append((shape, kernel, stride, padding, ceil_mode, ceil_mode, None))
    return cases


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", avg_cases())
def test_avg_pool2d_matches_reference(case, dtype, rng):
    shape, *params = case
    x = rng.standard_normal(shape).astype(dtype)
    assert_close(fastconv.avg_pool2d(x, *params), avg_pool2d_reference(x, *params), dtype)


# Blocks of 1 to 17 planes through the planes kernel (see PLANE_BLOCK_CASES), with each
# divisor rule.
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("count_include_pad", "divisor_override"),
                         [(True, None), (False, None), (False, -3)])
def test_avg_pool2d_plane_blocks_of_every_size(count_include_pad, divisor_override, dtype,
                                               rng):
    for shape, kernel, stride, padding, _, ceil_mode in PLANE_BLOCK_CASES:
        x = rng.standard_normal(shape).astype(dtype)
        params = (kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
        assert_close(fastconv.avg_pool2d(x, *params), avg_pool2d_reference(x, *params), dtype)


# The first pass of average pooling sums the window rows in the same vectors of 2 to 16
# outputs.
@pytest.mark.parametrize("dtype", DTYPES)
def test_avg_pool2d_vector_rows_of_every_width(dtype, rng):
    for shape, kernel, stride, padding, _, ceil_mode in VECTOR_ROW_CASES:
        x = rng.standard_normal(shape).astype(dtype)
        for count_include_pad in (True, False):
            params = (kernel, stride, padding, ceil_mode, count_include_pad)
            assert_close(fastconv.avg_pool2d(x, *params), avg_pool2d_reference(x, *params),
                         dtype)


@pytest.mark.parametrize("case", avg_cases())
def test_avg_pool2d_matches_torch(case, rng):
    torch = torch_or_skip()
    shape, *params = case
    x = rng.standard_normal(shape)
    expected = torch.nn.functional.avg_pool2d(torch.from_numpy(x), *params).numpy()
    np.testing.assert_allclose(fastconv.avg_pool2d(x, *params), expected, rtol=1e-13,
                               atol=1e-15)


def test_avg_pool2d_divisor_counts_padding_but_not_the_ceil_overhang():
    y = fastconv.avg_pool2d(np.ones((1, 1, 5, 5)), 3, stride=2, padding=1, ceil_mode=True)
    np.testing.assert_allclose(y[0, 0, 0, 0], 4 / 9)
    np.testing.assert_allclose(y[0, 0, 0, 1], 6 / 9)
    np.testing.assert_allclose(y[0, 0, 2, 2], 4 / 9)  # last window: ends at H + padding


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel", [2, 3])
def test_avg_pool2d_of_negative_zeros_is_positive_zero(kernel, dtype):
    # The window sums start from +0.0, as PyTorch's do, so a window of -0.0 averages to
    # +0.0 (on rows wide enough for the vector first pass, too).
    y = fastconv.avg_pool2d(np.full((1, 2, 6, 40), -0.0, dtype), kernel, 2, kernel // 2)
    assert not np.signbit(y).any()


@pytest.mark.parametrize(("kernel", "divisor_override", "divisor"),
                         [(3, None, 9), (7, None, 49), ((7, 11), None, 77), (3, 99, 99),
                          ((3, 1), -75, -75)])
def test_avg_pool2d_float32_rounds_each_quotient_once(kernel, divisor_override, divisor, rng):
    # Each window sums exactly to divisor * m, m halfway between two float32 values,
    # so the float64 quotient m is exact and its float32 rounding is a tie to even. A
    # quotient one float64 unit off, as the product with 1 / divisor is for some of
    # these sums, rounds the tie the wrong way.
    rows, cols = (kernel, kernel) if isinstance(kernel, int) else kernel
    n, c, out_h, out_w = 2, 3, 5, 6
    windows = n * c * out_h * out_w
    # 25 significant bits, the last one set: halfway between two float32 values.
    halfway = (2 * rng.integers(2**23, 2**24, windows) + 1) * 2.0 ** rng.integers(-60, 10,
                                                                                    windows)
    total = halfway * divisor
    # Each sum as two float32 values in the window, the second holding the low bits.
    high = total.astype(np.float32).astype(np.float64)
    parts = np.zeros((windows, rows * cols))
    parts[:, 0], parts[:, 1] = high, total - high
    np.testing.assert_array_equal(parts.astype(np.float32), parts)
    x = (parts.astype(np.float32).reshape(n, c, out_h, out_w, rows, cols)
         .transpose(0, 1, 2, 4, 3, 5).reshape(n, c, out_h * rows, out_w * cols))
    expected = (total / divisor).astype(np.float32).reshape(n, c, out_h, out_w)
    np.testing.assert_array_equal(
        fastconv.avg_pool2d(x, kernel, divisor_override=divisor_override), expected)


NORMS = [1, 2, 3, 1.5, 0.5, np.inf]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm_type", NORMS)
@pytest.mark.parametrize("case", random_pool_cases(6, 6, dilate=False, pad=False))
def test_lp_pool2d_matches_reference(case, norm_type, dtype, rng):
    shape, kernel, stride, _, _, ceil_mode = case
    x = rng.standard_normal(shape).astype(dtype)
    assert_close(fastconv.lp_pool2d(x, norm_type, kernel, stride, ceil_mode),
                 lp_pool2d_reference(x, norm_type, kernel, stride, ceil_mode), dtype)


@pytest.mark.parametrize("norm_type", NORMS)
def test_lp_pool2d_matches_torch_on_full_windows(norm_type, rng):
    torch = torch_or_skip()
    x = rng.uniform(0.1, 2.0, (2, 3, 9, 8))  # x >= 0: x ** p == |x| ** p for every p
    expected = torch.nn.functional.lp_pool2d(torch.from_numpy(x), norm_type, (3, 2),
                                             (2, 2)).numpy()
    np.testing.assert_allclose(fastconv.lp_pool2d(x, norm_type, (3, 2), (2, 2)), expected,
                               rtol=1e-12)


def test_lp_pool2d_uses_magnitudes():
    x = -np.ones((1, 1, 2, 2))
    np.testing.assert_allclose(fastconv.lp_pool2d(x, 1, 2), 4.0)
    np.testing.assert_allclose(fastconv.lp_pool2d(x, 3, 2), 4.0 ** (1 / 3))
    np.testing.assert_allclose(fastconv.lp_pool2d(x, 0.5, 2), 16.0)
