"""Max-unpooling and the index-driven ops: references, PyTorch, hostile indices."""

import re

import numpy as np
import pytest
from conftest import DTYPES, assert_close, tie_free

import fastconv
from fastconv.testing import max_unpool2d_reference

BAD_INDICES = [-1, 16, 2**31, 2**32 + 3, 2**63 - 1, -2**63]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel, stride, padding, output_size", [
    (2, None, 0, None), (3, 2, 1, (12, 12)), (3, 2, 1, (1, 3, 12, 12)),
    ((2, 3), (2, 1), (1, 1), (12, 12))])
def test_max_unpool2d_matches_reference_and_torch(kernel, stride, padding, output_size,
                                                   dtype, rng):
    x = tie_free(rng, (1, 3, 12, 12), dtype)
    pooled, indices = fastconv.max_pool2d(x, kernel, stride, padding, return_indices=True)
    y = fastconv.max_unpool2d(pooled, indices, kernel, stride, padding, output_size)
    np.testing.assert_array_equal(y, max_unpool2d_reference(pooled, indices, y.shape[2:]))
    try:
        import torch
    except ImportError:
        return
    expected = torch.nn.functional.max_unpool2d(
        torch.from_numpy(pooled), torch.from_numpy(indices), kernel, stride, padding,
        output_size)
    np.testing.assert_array_equal(y, expected.numpy())


# Outputs larger than the caches, and a plane over 1 MiB, with overlapping windows that
# pick one element several times.
@pytest.mark.parametrize("dtype, shape", [
    (np.float32, (3, 8, 240, 240)), (np.float64, (2, 8, 200, 200)),
    (np.float64, (1, 5, 400, 400))])
def test_scatters_of_outputs_larger_than_the_caches(dtype, shape, rng):
    from fastconv.testing import max_pool2d_backward_reference

    x = rng.integers(-2, 2, shape).astype(dtype)
    pooled, indices = fastconv.max_pool2d(x, 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(fastconv.max_unpool2d(pooled, indices, 3, 2, 1, shape),
                                  max_unpool2d_reference(pooled, indices, shape[2:]))
    grad_output = rng.standard_normal(pooled.shape).astype(dtype)
    assert_close(fastconv.max_pool2d_backward(grad_output, indices, shape),
                 max_pool2d_backward_reference(grad_output, indices, shape), dtype)


def test_default_and_requested_output_sizes():
    x, indices = np.ones((1, 2, 3, 4)), np.zeros((1, 2, 3, 4), np.int64)
    # (H - 1) * stride - 2 * padding + kernel
    assert fastconv.max_unpool2d(x, indices, 3, 2, 1).shape == (1, 2, 5, 7)
    assert fastconv.max_unpool2d(x, indices, 3, 2, 1, (6, 8)).shape == (1, 2, 6, 8)
    assert fastconv.max_unpool2d(x, indices, 3, 2, 1, (1, 2, 4, 6)).shape == (1, 2, 4, 6)
    for bad in [(3, 7), (5, 9), (7, 7)]:
        with pytest.raises(ValueError, match=re.escape(f"invalid output_size {bad}")):
            fastconv.max_unpool2d(x, indices, 3, 2, 1, bad)


@pytest.mark.parametrize("num_threads", [1, 2, 3])
def test_duplicate_indices_last_in_row_major_order_wins(num_threads):
    x = np.arange(1.0, 9.0).reshape(1, 2, 2, 2)
    indices = np.array([[[[3, 3], [0, 3]], [[1, 2], [2, 1]]]])
    y = fastconv.max_unpool2d(x, indices, 2, num_threads=num_threads)
    np.testing.assert_array_equal(y[0, 0].ravel(), [3, 0, 0, 4] + [0] * 12)
    np.testing.assert_array_equal(y[0, 1].ravel(), [0, 8, 7] + [0] * 13)


def test_duplicate_indices_backward_is_the_gather():
    indices = np.array([[[[3, 3]]]])
    grad_output = np.arange(4.0).reshape(1, 1, 2, 2)
    np.testing.assert_array_equal(fastconv.max_unpool2d_backward(grad_output, indices),
                                  [[[[3.0, 3.0]]]])


def index_ops(bad_value):
    """Each op that consumes indices, with a (1, 2, 2, 2) index array on 4x4 planes."""
    indices = np.zeros((1, 2, 2, 2), np.int64)
    indices[0, 1, 1, 0] = bad_value
    values = np.ones((1, 2, 2, 2), np.float32)
    return indices, [
        ("max_unpool2d", lambda: fastconv.max_unpool2d(values, indices, 2)),
        ("max_unpool2d_backward", lambda: fastconv.max_unpool2d_backward(
            np.ones((1, 2, 4, 4), np.float32), indices)),
        ("max_pool2d_backward", lambda: fastconv.max_pool2d_backward(
            values, indices, (1, 2, 4, 4))),
        ("argmax_mask", lambda: fastconv.argmax_mask(indices, (1, 2, 4, 4))),
    ]


@pytest.mark.parametrize("bad_value", BAD_INDICES)
def test_invalid_indices_raise_index_error_naming_value_and_plane_size(bad_value):
    indices, ops = index_ops(bad_value)
    before = indices.copy()
    for _, op in ops:
        with pytest.raises(IndexError, match=re.escape(
                f"invalid max index {bad_value} at (0, 1, 1, 0) (plane size 16)")):
            op()
        np.testing.assert_array_equal(indices, before)


def test_first_invalid_index_in_row_major_order_is_reported():
    indices = np.zeros((2, 2, 2, 2), np.int64)
    indices[1, 0, 0, 1] = 99
    indices[0, 1, 1, 1] = -5
    with pytest.raises(IndexError, match=re.escape("invalid max index -5 at (0, 1, 1, 1)")):
        fastconv.max_unpool2d(np.ones((2, 2, 2, 2)), indices, 2)


def test_indices_of_any_integer_width_are_accepted():
    x = np.arange(4.0).reshape(1, 1, 2, 2)
    expected = fastconv.max_unpool2d(x, np.array([[[[0, 3], [8, 15]]]]), 2)
    for dtype in [np.int8, np.int16, np.int32, np.uint8, np.uint32]:
        indices = np.array([[[[0, 3], [8, 15]]]], dtype)
        np.testing.assert_array_equal(fastconv.max_unpool2d(x, indices, 2), expected)


def test_argmax_mask_marks_every_selected_element(rng):
    x = tie_free(rng, (2, 3, 9, 8))
    _, indices = fastconv.max_pool2d(x, 3, 2, 1, return_indices=True)
    mask = fastconv.argmax_mask(indices, x.shape)
    assert mask.dtype == np.bool_ and mask.shape == x.shape
    expected = np.zeros((6, 72), bool)
    for plane, positions in enumerate(indices.reshape(6, -1)):
        expected[plane, positions] = True
    np.testing.assert_array_equal(mask, expected.reshape(x.shape))
