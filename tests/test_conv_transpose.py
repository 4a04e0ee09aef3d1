"""conv_transpose2d and its backward against the reference, PyTorch and differences."""

import numpy as np
import pytest
from conftest import DTYPES, assert_close, check_gradients_of, torch_or_skip

import fastconv
from fastconv.testing import conv2d_reference, conv_transpose2d_reference

# (x shape, weight shape (C_in, C_out // groups, R, S), stride, padding, output_padding,
#  groups, dilation)
CASES = [
    ((2, 3, 5, 4), (3, 4, 3, 3), 1, 0, 0, 1, 1),
    ((2, 4, 5, 6), (4, 3, 3, 2), (2, 3), (1, 0), (1, 2), 1, 1),
    ((1, 4, 4, 4), (4, 2, 3, 3), 2, 1, 1, 2, (1, 2)),
    ((1, 2, 4, 5), (2, 1, 2, 3), 1, 0, (1, 0), 1, 2),     # output_padding < dilation
    ((2, 6, 3, 3), (6, 1, 3, 3), 2, 1, 0, 6, 1),          # depthwise
]


def make_case(rng, case, dtype):
    x_shape, w_shape, stride, padding, output_padding, groups, dilation = case
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[1] * groups).astype(dtype)
    return x, w, b, dict(stride=stride, padding=padding, output_padding=output_padding,
                         groups=groups, dilation=dilation)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("algorithm", ["direct", "im2col"])
def test_forward_matches_reference(rng, case, dtype, algorithm):
    x, w, b, params = make_case(rng, case, dtype)
    y = fastconv.conv_transpose2d(x, w, b, **params, algorithm=algorithm)
    assert_close(y, conv_transpose2d_reference(x, w, b, **params), dtype)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("algorithm", ["direct", "im2col"])
def test_matches_torch(rng, case, algorithm):
    torch = torch_or_skip()
    x, w, b, params = make_case(rng, case, np.float64)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.conv_transpose2d(xt, wt, bt, **params)
    y = fastconv.conv_transpose2d(x, w, b, **params, algorithm=algorithm)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    gy = np.random.default_rng(3).standard_normal(y.shape)
    yt.backward(torch.tensor(gy))
    grads = fastconv.conv_transpose2d_backward(gy, x, w, **params, algorithm=algorithm)
    for got, expected in zip(grads, (xt.grad, wt.grad, bt.grad), strict=True):
        np.testing.assert_allclose(got, expected.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_is_the_adjoint_of_conv2d(rng, case):
    # <conv2d(y, w), x> == <y, conv_transpose2d(x, w)> for every y of the output's shape.
    x, w, _, params = make_case(rng, case, np.float64)
    y = fastconv.conv_transpose2d(x, w, **params)
    probe = rng.standard_normal(y.shape)
    conv = conv2d_reference(probe, w, stride=params["stride"], padding=params["padding"],
                            dilation=params["dilation"], groups=params["groups"])
    conv = conv[:, :, :x.shape[2], :x.shape[3]]
    np.testing.assert_allclose(np.sum(conv * x), np.sum(probe * y), rtol=1e-12)


@pytest.mark.parametrize("case", CASES[1:4])
@pytest.mark.parametrize("algorithm", ["direct", "im2col"])
def test_backward_matches_finite_differences(rng, case, algorithm):
    x, w, b, params = make_case(rng, case, np.float64)
    gy = rng.standard_normal(fastconv.conv_transpose2d(x, w, **params).shape)
    grads = fastconv.conv_transpose2d_backward(gy, x, w, **params, algorithm=algorithm)
    check_gradients_of(lambda *a: fastconv.conv_transpose2d(*a, **params, algorithm=algorithm),
                       gy, (x, w, b), grads)


def test_empty_batch():
    x = np.zeros((0, 2, 4, 4))
    w = np.ones((2, 3, 3, 3))
    y = fastconv.conv_transpose2d(x, w, stride=2)
    assert y.shape == (0, 3, 9, 9)
    gx, gw, gb = fastconv.conv_transpose2d_backward(y, x, w, stride=2)
    assert gx.shape == x.shape
    np.testing.assert_array_equal(gw, np.zeros_like(w))
    np.testing.assert_array_equal(gb, np.zeros(3))
