"""relu, softmax, log_softmax, linear, cross_entropy, local_response_norm and gradients."""

import numpy as np
import pytest
from conftest import DTYPES, TOLERANCE, assert_close, check_gradients_of, tie_free, torch_or_skip

import fastconv
from fastconv.testing import (
    check_gradient,
    cross_entropy_reference,
    linear_reference,
    local_response_norm_reference,
    log_softmax_reference,
)

LRN_CASES = [(5, 1e-4, 0.75, 1.0), (3, 0.5, 0.6, 2.0), (4, 2.0, 1.5, 0.5), (1, 1.0, 0.5, 1.0),
             (9, 0.3, 0.75, 1.0)]  # even size, size 1, size above the channel count


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_and_its_gradient(dtype, rng):
    x = tie_free(rng, (3, 4, 5), dtype)
    assert_close(fastconv.relu(x), np.where(x > 0, x.astype(np.float64), 0), dtype)
    gy = rng.standard_normal(x.shape).astype(dtype)
    assert_close(fastconv.relu_backward(gy, x), np.where(x > 0, gy, 0).astype(np.float64),
                 dtype)
    x64, gy64 = x.astype(np.float64), gy.astype(np.float64)
    check_gradients_of(fastconv.relu, gy64, [x64], [fastconv.relu_backward(gy64, x64)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [1, -1, 0])
def test_softmax_and_log_softmax_match_reference(axis, dtype, rng):
    x = (rng.standard_normal((4, 6, 3)) * 5).astype(dtype)
    assert_close(fastconv.log_softmax(x, axis), log_softmax_reference(x, axis), dtype)
    assert_close(fastconv.softmax(x, axis), np.exp(log_softmax_reference(x, axis)), dtype)


@pytest.mark.parametrize("axis", [1, -1])
def test_softmax_and_log_softmax_backward_by_finite_differences(axis, rng):
    x = rng.standard_normal((3, 5, 2))
    gy = rng.standard_normal(x.shape)
    for forward, backward in ((fastconv.softmax, fastconv.softmax_backward),
                              (fastconv.log_softmax, fastconv.log_softmax_backward)):
        grad = backward(gy, forward(x, axis), axis)
        check_gradients_of(lambda x, f=forward: f(x, axis), gy, [x], [grad])


def test_softmax_is_stable_for_large_logits():
    x = np.array([[1000.0, 0.0, -1000.0]])
    np.testing.assert_allclose(fastconv.softmax(x), [[1.0, 0.0, 0.0]])
    np.testing.assert_allclose(fastconv.log_softmax(x), [[0.0, -1000.0, -2000.0]])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 7, 3), (130, 20, 9), (1, 1, 1)])
def test_linear_matches_reference(shape, dtype, rng):
    N, fan_in, fan_out = shape
    x = rng.standard_normal((N, fan_in)).astype(dtype)
    weight = rng.standard_normal((fan_out, fan_in)).astype(dtype)
    bias = rng.standard_normal(fan_out).astype(dtype)
    assert_close(fastconv.linear(x, weight, bias), linear_reference(x, weight, bias), dtype)
    assert_close(fastconv.linear(x, weight), linear_reference(x, weight), dtype)


def test_linear_backward_by_finite_differences(rng):
    x, weight, bias = (rng.standard_normal(s) for s in ((70, 4), (3, 4), (3,)))
    gy = rng.standard_normal((70, 3))
    check_gradients_of(fastconv.linear, gy, [x, weight, bias],
                       fastconv.linear_backward(gy, x, weight))


def test_linear_handles_empty_sizes_and_is_thread_count_independent(rng):
    assert fastconv.linear(np.zeros((0, 3)), np.zeros((2, 3))).shape == (0, 2)
    np.testing.assert_array_equal(fastconv.linear(np.ones((2, 0)), np.ones((3, 0))), 0)
    grad_x, grad_w, grad_b = fastconv.linear_backward(np.zeros((0, 2)), np.zeros((0, 3)),
                                                      np.zeros((2, 3)))
    assert grad_x.shape == (0, 3) and grad_w.shape == (2, 3) and grad_b.shape == (2,)
    x, weight = rng.standard_normal((300, 50)), rng.standard_normal((40, 50))
    gy = rng.standard_normal((300, 40))
    np.testing.assert_array_equal(fastconv.linear(x, weight, num_threads=1),
                                  fastconv.linear(x, weight, num_threads=2))
    for a, b in zip(fastconv.linear_backward(gy, x, weight, num_threads=1),
                    fastconv.linear_backward(gy, x, weight, num_threads=2), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_matches_reference_and_its_gradient(dtype, rng):
    logits = (rng.standard_normal((6, 4)) * 3).astype(dtype)
    target = rng.integers(0, 4, 6)
    loss = fastconv.cross_entropy(logits, target)
    assert loss.dtype == dtype
    np.testing.assert_allclose(loss, cross_entropy_reference(logits, target), **TOLERANCE[dtype])
    np.testing.assert_allclose(fastconv.cross_entropy(logits, target, "sum"), 6 * loss,
                               **TOLERANCE[dtype])
    logits64 = logits.astype(np.float64)
    for reduction in ("mean", "sum"):
        check_gradient(lambda z, r=reduction: float(fastconv.cross_entropy(z, target, r)),
                       logits64, fastconv.cross_entropy_backward(logits64, target, reduction))
    check_gradient(lambda z: 2.5 * float(fastconv.cross_entropy(z, target)), logits64,
                   fastconv.cross_entropy_backward(logits64, target, grad_output=2.5))


@pytest.mark.parametrize(("target", "bad"),
                         [([0, 3], 3), ([-1, 0], -1), ([0, 2**63 - 1], 2**63 - 1)])
def test_cross_entropy_rejects_targets_outside_the_classes(target, bad):
    with pytest.raises(IndexError, match=rf"class index {bad} at position \d is outside \[0, 3\)"):
        fastconv.cross_entropy(np.zeros((2, 3)), np.array(target))


@pytest.mark.parametrize(("logits", "target", "error", "match"), [
    (np.zeros((2, 3)), np.array([0.0, 1.0]), TypeError, "target: expected an integer array"),
    (np.zeros((2, 3)), [0, 1], TypeError, "target: expected an integer array"),
    (np.zeros((2, 3)), np.array([0, 1, 2]), ValueError, r"target has shape \(3,\)"),
    (np.zeros(3), np.array([0]), ValueError, "logits: expected a 2-D"),
    (np.zeros((2, 3), np.int64), np.array([0, 1]), TypeError, "logits: expected float32"),
])
def test_cross_entropy_rejects_bad_arguments(logits, target, error, match):
    with pytest.raises(error, match=match):
        fastconv.cross_entropy(logits, target)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", LRN_CASES)
def test_local_response_norm_matches_reference(case, dtype, rng):
    size, alpha, beta, k = case
    x = rng.standard_normal((2, 7, 3, 4)).astype(dtype)
    assert_close(fastconv.local_response_norm(x, size, alpha, beta, k),
                 local_response_norm_reference(x, size, alpha, beta, k), dtype)


@pytest.mark.parametrize("case", LRN_CASES)
def test_local_response_norm_backward_by_finite_differences(case, rng):
    size, alpha, beta, k = case
    x = rng.standard_normal((2, 6, 2, 3))
    gy = rng.standard_normal(x.shape)
    check_gradients_of(lambda x: fastconv.local_response_norm(x, size, alpha, beta, k), gy, [x],
                       [fastconv.local_response_norm_backward(gy, x, size, alpha, beta, k)])


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    (dict(size=0), ValueError, "size must be"),
    (dict(alpha="1"), TypeError, "alpha must be a real number"),
    (dict(beta=np.nan), ValueError, "beta must be finite"),
    (dict(x=np.zeros((2, 3))), ValueError, "at least 3 dimensions"),
])
def test_local_response_norm_rejects_bad_arguments(kwargs, error, match):
    args = dict(x=np.zeros((2, 3, 4, 4)), size=3)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        fastconv.local_response_norm(**args)


@pytest.mark.parametrize("dtype", DTYPES)
def test_functional_ops_match_torch(dtype, rng):
    torch = torch_or_skip()
    F = torch.nn.functional
    x = rng.standard_normal((4, 6, 3, 5)).astype(dtype)
    gy = rng.standard_normal(x.shape).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    for ours, ours_backward, theirs in (
            (fastconv.relu, lambda g, x: fastconv.relu_backward(g, x), F.relu),
            (lambda x: fastconv.softmax(x, 1),
             lambda g, x: fastconv.softmax_backward(g, fastconv.softmax(x, 1), 1),
             lambda t: F.softmax(t, 1)),
            (lambda x: fastconv.log_softmax(x, 1),
             lambda g, x: fastconv.log_softmax_backward(g, fastconv.log_softmax(x, 1), 1),
             lambda t: F.log_softmax(t, 1)),
            (lambda x: fastconv.local_response_norm(x, 3, 0.4, 0.7, 1.5),
             lambda g, x: fastconv.local_response_norm_backward(g, x, 3, 0.4, 0.7, 1.5),
             lambda t: F.local_response_norm(t, 3, 0.4, 0.7, 1.5))):
        yt = theirs(xt)
        (grad,) = torch.autograd.grad(yt, xt, torch.from_numpy(gy))
        np.testing.assert_allclose(ours(x), yt.detach().numpy(), **TOLERANCE[dtype])
        np.testing.assert_allclose(ours_backward(gy, x), grad.numpy(), **TOLERANCE[dtype])
    logits, target = x.reshape(8, -1)[:, :10], rng.integers(0, 10, 8)
    lt = torch.tensor(logits, requires_grad=True)
    loss = F.cross_entropy(lt, torch.from_numpy(target))
    loss.backward()
    np.testing.assert_allclose(fastconv.cross_entropy(logits, target), loss.item(),
                               **TOLERANCE[dtype])
    np.testing.assert_allclose(fastconv.cross_entropy_backward(logits, target), lt.grad.numpy(),
                               **TOLERANCE[dtype])
    weight, bias = rng.standard_normal((3, 10)).astype(dtype), rng.standard_normal(3).astype(dtype)
    np.testing.assert_allclose(fastconv.linear(logits, weight, bias),
                               F.linear(lt, torch.from_numpy(weight),
                                        torch.from_numpy(bias)).detach().numpy(),
                               **TOLERANCE[dtype])


def test_relu_propagates_nan_and_passes_its_gradient_as_torch():
    x = np.array([np.nan, -1.0, 0.0, 2.0])
    np.testing.assert_array_equal(fastconv.relu(x), [np.nan, 0.0, 0.0, 2.0])
    np.testing.assert_array_equal(fastconv.relu_backward(np.ones(4), x), [1.0, 0.0, 0.0, 1.0])
