"""Pooling and unpooling gradients: finite differences (float64), references, PyTorch."""

import numpy as np
import pytest
from conftest import DTYPES, assert_close, check_gradients_of, tie_free, torch_or_skip
from test_pool import AVG_CASES, MAX_CASES, NORMS, PLANE_BLOCK_CASES, random_pool_cases

import fastconv
from fastconv.testing import max_pool2d_backward_reference


def distinct_away_from_zero(rng, shape):
    """Distinct magnitudes in [0.2, 1.2] with random signs: LP gradients are smooth there."""
    magnitudes = 0.2 + tie_free(rng, shape) / 2 + 0.5
    return magnitudes * rng.choice([-1.0, 1.0], shape)


@pytest.mark.parametrize("case", MAX_CASES)
def test_max_pool2d_backward_by_finite_differences(case, rng):
    shape, kernel, stride, padding, dilation, ceil_mode = case
    x = tie_free(rng, shape)
    y, indices = fastconv.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode,
                                     return_indices=True)
    gy = rng.standard_normal(y.shape)
    check_gradients_of(lambda x: fastconv.max_pool2d(x, kernel, stride, padding, dilation,
                                                     ceil_mode),
                       gy, [x], [fastconv.max_pool2d_backward(gy, indices, x.shape)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", MAX_CASES)
def test_max_pool2d_backward_matches_reference_and_torch(case, dtype, rng):
    shape, kernel, stride, padding, dilation, ceil_mode = case
    x = rng.integers(-2, 2, shape).astype(dtype)  # ties: several windows pick one element
    y, indices = fastconv.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode,
                                     return_indices=True)
    gy = rng.standard_normal(y.shape).astype(dtype)
    grad = fastconv.max_pool2d_backward(gy, indices, x.shape)
    assert_close(grad, max_pool2d_backward_reference(gy, indices, x.shape), dtype)
    try:
        import torch
    except ImportError:
        return
    x_t = torch.from_numpy(x).requires_grad_()
    torch.nn.functional.max_pool2d(x_t, kernel, stride, padding, dilation,
                                   ceil_mode).backward(torch.from_numpy(gy))
    assert_close(grad, x_t.grad.numpy().astype(np.float64), dtype)


@pytest.mark.parametrize("case", AVG_CASES + [
    (shape, k, s, p, c, c, None) for shape, k, s, p, _, c in random_pool_cases(8, 7, False)])
def test_avg_pool2d_backward_by_finite_differences(case, rng):
    shape, *params = case
    x = rng.standard_normal(shape)
    gy = rng.standard_normal(fastconv.avg_pool2d(x, *params).shape)
    check_gradients_of(lambda x: fastconv.avg_pool2d(x, *params), gy, [x],
                       [fastconv.avg_pool2d_backward(gy, shape, *params)])


@pytest.mark.parametrize(("count_include_pad", "divisor_override"),
                         [(True, None), (False, None), (False, -3)])
def test_avg_pool2d_backward_of_plane_blocks_of_every_size(count_include_pad,
                                                           divisor_override, rng):
    # Average pooling is linear: its gradient is the adjoint, <A x, g> = <x, A^T g>, on
    # blocks of 1 to 17 planes; float32 agrees with float64.
    for shape, kernel, stride, padding, _, ceil_mode in PLANE_BLOCK_CASES:
        params = (kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
        x = rng.standard_normal(shape)
        gy = rng.standard_normal(fastconv.avg_pool2d(x, *params).shape)
        grad = fastconv.avg_pool2d_backward(gy, shape, *params)
        np.testing.assert_allclose(np.vdot(x, grad), np.vdot(fastconv.avg_pool2d(x, *params), gy),
                                   rtol=1e-12, err_msg=str(shape))
        assert_close(fastconv.avg_pool2d_backward(gy.astype(np.float32), shape, *params), grad,
                     np.float32)


@pytest.mark.parametrize("case", AVG_CASES)
def test_avg_pool2d_backward_matches_torch(case, rng):
    torch = torch_or_skip()
    shape, *params = case
    x = torch.from_numpy(rng.standard_normal(shape)).requires_grad_()
    y = torch.nn.functional.avg_pool2d(x, *params)
    gy = rng.standard_normal(tuple(y.shape))
    y.backward(torch.from_numpy(gy))
    np.testing.assert_allclose(fastconv.avg_pool2d_backward(gy, shape, *params),
                               x.grad.numpy(), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("norm_type", NORMS)
@pytest.mark.parametrize("case", random_pool_cases(4, 8, dilate=False, pad=False))
def test_lp_pool2d_backward_by_finite_differences(case, norm_type, rng):
    shape, kernel, stride, _, _, ceil_mode = case
    x = distinct_away_from_zero(rng, shape)
    y = fastconv.lp_pool2d(x, norm_type, kernel, stride, ceil_mode)
    gy = rng.standard_normal(y.shape)
    check_gradients_of(lambda x: fastconv.lp_pool2d(x, norm_type, kernel, stride, ceil_mode),
                       gy, [x], [fastconv.lp_pool2d_backward(gy, x, norm_type, kernel, stride,
                                                             ceil_mode)])


@pytest.mark.parametrize("norm_type", [2, 3, 1.5])
def test_lp_pool2d_backward_matches_torch(norm_type, rng):
    torch = torch_or_skip()
    x = rng.uniform(0.1, 2.0, (2, 3, 8, 9))
    x_t = torch.from_numpy(x).requires_grad_()
    y = torch.nn.functional.lp_pool2d(x_t, norm_type, (2, 3), (2, 2))
    gy = rng.standard_normal(tuple(y.shape))
    y.backward(torch.from_numpy(gy))
    np.testing.assert_allclose(fastconv.lp_pool2d_backward(gy, x, norm_type, (2, 3), (2, 2)),
                               x_t.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("norm_type", NORMS)
def test_lp_pool2d_backward_is_zero_where_a_window_sums_to_zero(norm_type):
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 2:, 2:] = [[1.0, -2.0], [0.5, 3.0]]
    grad = fastconv.lp_pool2d_backward(np.ones((1, 1, 2, 2)), x, norm_type, 2)
    assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad[0, 0, :2], 0)
    np.testing.assert_array_equal(grad[0, 0, :, :2], 0)


def unique_indices(rng, shape, plane_size):
    """Distinct positions in each plane: then unpooling is linear with a gather adjoint."""
    N, C, H, W = shape
    return np.stack([rng.permutation(plane_size)[:H * W] for _ in range(N * C)]).reshape(shape)


@pytest.mark.parametrize("shape, kernel, stride, padding, output_size", [
    ((2, 3, 4, 5), 2, 2, 0, None), ((1, 2, 6, 7), 3, 2, 1, (11, 13)),
    ((2, 1, 5, 4), (2, 3), (2, 3), (1, 1), (2, 1, 8, 11))])
def test_max_unpool2d_backward_by_finite_differences(shape, kernel, stride, padding,
                                                     output_size, rng):
    x = rng.standard_normal(shape)
    H_out, W_out = fastconv.max_unpool2d(x, np.zeros(shape, np.int64), kernel, stride, padding,
                                         output_size).shape[2:]
    indices = unique_indices(rng, shape, H_out * W_out)
    y = fastconv.max_unpool2d(x, indices, kernel, stride, padding, output_size)
    gy = rng.standard_normal(y.shape)
    check_gradients_of(lambda x: fastconv.max_unpool2d(x, indices, kernel, stride, padding,
                                                       output_size),
                       gy, [x], [fastconv.max_unpool2d_backward(gy, indices)])
