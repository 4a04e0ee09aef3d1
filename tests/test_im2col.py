"""im2col / col2im against the references, torch's unfold/fold and each other."""

import numpy as np
import pytest
from conftest import DTYPES, assert_close, torch_or_skip

import fastconv
from fastconv.testing import col2im_reference, im2col_reference

# (x shape, kernel_size, stride, padding, dilation)
CASES = [
    ((2, 3, 7, 6), 3, 1, 1, 1),
    ((1, 2, 9, 8), (2, 3), (2, 1), (1, 2), (2, 1)),
    ((2, 1, 5, 5), 5, 1, 0, 1),
    ((1, 4, 6, 7), (1, 2), 3, 0, 1),
    ((1, 2, 6, 6), 3, 2, ((0, 1), (2, 0)), 1),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_im2col_and_col2im_match_reference(rng, case, dtype):
    shape, kernel, stride, padding, dilation = case
    x = rng.standard_normal(shape).astype(dtype)
    cols = fastconv.im2col(x, kernel, stride, padding, dilation)
    assert_close(cols, im2col_reference(x, kernel, stride, padding, dilation), dtype)
    back = fastconv.col2im(cols, shape[2:], kernel, stride, padding, dilation)
    assert_close(back, col2im_reference(cols, shape[2:], kernel, stride, padding, dilation),
                 dtype)


@pytest.mark.parametrize("case", CASES)
def test_col2im_is_the_adjoint_of_im2col(rng, case):
    shape, kernel, stride, padding, dilation = case
    x = rng.standard_normal(shape)
    cols = fastconv.im2col(x, kernel, stride, padding, dilation)
    probe = rng.standard_normal(cols.shape)
    folded = fastconv.col2im(probe, shape[2:], kernel, stride, padding, dilation)
    np.testing.assert_allclose(np.sum(cols * probe), np.sum(x * folded), rtol=1e-12)


@pytest.mark.parametrize("case", CASES[:4])
def test_matches_torch_unfold_and_fold(rng, case):
    torch = torch_or_skip()
    shape, kernel, stride, padding, dilation = case
    x = rng.standard_normal(shape)
    cols = fastconv.im2col(x, kernel, stride, padding, dilation)
    expected = torch.nn.functional.unfold(torch.tensor(x), kernel, dilation, padding, stride)
    np.testing.assert_array_equal(cols, expected.numpy())
    folded = torch.nn.functional.fold(torch.tensor(cols), shape[2:], kernel, dilation,
                                      padding, stride)
    np.testing.assert_allclose(fastconv.col2im(cols, shape[2:], kernel, stride, padding,
                                               dilation), folded.numpy(), rtol=1e-14)


def test_empty_batch():
    cols = fastconv.im2col(np.zeros((0, 2, 5, 5)), 3)
    assert cols.shape == (0, 18, 9)
    assert fastconv.col2im(cols, (5, 5), 3).shape == (0, 2, 5, 5)


def test_col2im_rejects_mismatched_columns():
    with pytest.raises(ValueError, match=r"cols: dimension 2 \(8\) must equal .* 9"):
        fastconv.col2im(np.zeros((1, 9, 8)), (5, 5), 3)
    with pytest.raises(ValueError, match=r"cols: dimension 1 \(10\) must be divisible by .* 9"):
        fastconv.col2im(np.zeros((1, 10, 9)), (5, 5), 3)
    with pytest.raises(ValueError, match=r"output_size must be a pair"):
        fastconv.col2im(np.zeros((1, 9, 9)), 5, 3)
