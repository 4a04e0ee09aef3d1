"""The fused Pool Skip block: references, the composed ops, PyTorch, gradients, threads."""

import importlib
import types

import numpy as np
import pytest
from conftest import DTYPES, TOLERANCE, assert_close, check_gradients_of, tie_free, torch_or_skip

import fastconv
from fastconv._dispatch import KERNELS
from fastconv.testing import conv2d_backward_reference, pool_skip_reference

# (N, C, H, W), e, (R, S): e dividing H and W or not, non-square windows and kernels.
CASES = [
    ((2, 3, 8, 8), 2, (3, 3)),
    ((2, 4, 7, 9), 2, (3, 3)),      # e divides neither H nor W
    ((1, 5, 11, 6), 4, (3, 3)),
    ((2, 3, 9, 10), (2, 3), (3, 3)),
    ((1, 2, 6, 5), 2, (5, 1)),
    ((1, 3, 3, 2), 2, (5, 5)),      # the kernel is larger than the map
    ((2, 2, 5, 5), 1, (3, 3)),      # e = 1: the dense convolution
    ((1, 4, 12, 13), 3, (7, 5)),    # the forward's groups of 3 + 3 + 1 rows, 3 + 2 taps
]


def operands(rng, shape, kernel, dtype):
    C = shape[1]
    x = tie_free(rng, shape, dtype)
    weight = rng.standard_normal((C, C, *kernel)).astype(dtype)
    bias = rng.standard_normal(C).astype(dtype)
    return x, weight, bias


def composed(x, weight, bias, e):
    """fastconv's own ops, unfused."""
    pooled, indices = fastconv.max_pool2d(x, e, return_indices=True)
    unpooled = fastconv.max_unpool2d(pooled, indices, e, output_size=x.shape[2:])
    R, S = weight.shape[2:]
    return x + fastconv.conv2d(unpooled, weight, bias, padding=(R // 2, S // 2))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("shape", "e", "kernel"), CASES)
def test_pool_skip_matches_reference_and_composed_ops(shape, e, kernel, dtype, rng):
    x, weight, bias = operands(rng, shape, kernel, dtype)
    y = fastconv.pool_skip(x, weight, bias, e)
    assert_close(y, pool_skip_reference(x, weight, bias, e), dtype)
    np.testing.assert_allclose(y, composed(x, weight, bias, e), **TOLERANCE[dtype])
    assert_close(fastconv.pool_skip(x, weight, None, e), pool_skip_reference(x, weight, None, e),
                 dtype)


@pytest.mark.parametrize(("shape", "e", "kernel"), CASES)
def test_pool_skip_backward_by_finite_differences(shape, e, kernel, rng):
    x, weight, bias = operands(rng, shape, kernel, np.float64)
    gy = rng.standard_normal(shape)
    grads = fastconv.pool_skip_backward(gy, x, weight, e)
    check_gradients_of(lambda x, w, b: fastconv.pool_skip(x, w, b, e), gy,
                       [x, weight, bias], grads)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("shape", "e", "kernel"), CASES)
def test_pool_skip_backward_matches_reference(shape, e, kernel, dtype, rng):
    """Weight and bias gradients are those of the convolution of the unpooled map."""
    x, weight, _ = operands(rng, shape, kernel, dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    _, grad_w, grad_b = fastconv.pool_skip_backward(gy, x, weight, e)
    pooled, indices = fastconv.max_pool2d(x.astype(np.float64), e, return_indices=True)
    unpooled = fastconv.max_unpool2d(pooled, indices, e, output_size=shape[2:])
    R, S = kernel
    _, ref_w, ref_b = conv2d_backward_reference(gy, unpooled, weight, padding=(R // 2, S // 2))
    assert_close(grad_w, ref_w, dtype)
    assert_close(grad_b, ref_b, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("shape", "e", "kernel"), CASES)
def test_pool_skip_matches_torch_composed_modules(shape, e, kernel, dtype, rng):
    torch = torch_or_skip()
    F = torch.nn.functional
    x, weight, bias = operands(rng, shape, kernel, dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, weight, bias))
    pooled, indices = F.max_pool2d(xt, e, return_indices=True)
    unpooled = F.max_unpool2d(pooled, indices, e, output_size=shape[2:])
    yt = xt + F.conv2d(unpooled, wt, bt, padding=(kernel[0] // 2, kernel[1] // 2))
    yt.backward(torch.from_numpy(gy))
    np.testing.assert_allclose(fastconv.pool_skip(x, weight, bias, e), yt.detach().numpy(),
                               **TOLERANCE[dtype])
    for ours, theirs in zip(fastconv.pool_skip_backward(gy, x, weight, e),
                            (xt.grad, wt.grad, bt.grad), strict=True):
        np.testing.assert_allclose(ours, theirs.numpy(), **TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_pool_skip_is_bitwise_equal_for_one_and_two_threads(dtype, rng):
    x, weight, bias = operands(rng, (3, 8, 13, 11), (3, 3), dtype)
    gy = rng.standard_normal(x.shape).astype(dtype)
    for e in (2, 3):
        one = fastconv.pool_skip(x, weight, bias, e, num_threads=1)
        two = fastconv.pool_skip(x, weight, bias, e, num_threads=2)
        np.testing.assert_array_equal(one, two)
        for a, b in zip(fastconv.pool_skip_backward(gy, x, weight, e, num_threads=1),
                        fastconv.pool_skip_backward(gy, x, weight, e, num_threads=2),
                        strict=True):
            np.testing.assert_array_equal(a, b)


def backward_reference(gy, x, weight, e):
    """The three gradients in float64: the input gradient is gy, plus at each maximum
    the convolution's input gradient with respect to the unpooled map there."""
    N, C, H, W = x.shape
    R, S = weight.shape[2:]
    pooled, indices = fastconv.max_pool2d(x.astype(np.float64), e, return_indices=True)
    unpooled = fastconv.max_unpool2d(pooled, indices, e, output_size=(H, W))
    grad_unpooled, ref_w, ref_b = conv2d_backward_reference(gy, unpooled, weight,
                                                            padding=(R // 2, S // 2))
    flat_indices = indices.reshape(N, C, -1)
    ref_x = gy.astype(np.float64).reshape(N, C, H * W)
    at_maxima = np.take_along_axis(grad_unpooled.reshape(N, C, H * W), flat_indices, 2)
    np.put_along_axis(ref_x, flat_indices,
                      np.take_along_axis(ref_x, flat_indices, 2) + at_maxima, 2)
    return ref_x.reshape(x.shape), ref_w, ref_b


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("C", "chunk", "kernel"), [(7, 3, (3, 3)), (130, 30, (3, 3)),
                                                     (7, 3, (5, 3))])
def test_pool_skip_over_several_bands_and_channel_chunks(C, chunk, kernel, dtype, rng,
                                                         monkeypatch):
    """The forward's budgets shrunk to bands of 1 or 2 rows (2+2+2+2+1) and chunks of
    ``chunk`` input channels (3+3+1; five of 26, two of them across the 64-channel words
    of the maxima's masks): every band meets maxima of its neighbours' rows (with 5
    filter rows, of rows two away too, through one or two filter rows), and each
    chunk's maxima add to what the previous chunks left. With 130 channels the filters
    end in a partial block of output channels, the output leaves through whole tiles of
    pixels and channels and through the partial ones beside them, and the backward's
    sweeps take S * K = 390 elements through whole tiles and a tail."""
    module = importlib.import_module("fastconv.pool_skip")
    N, H, W = 2, 9, 10
    R, S = kernel
    x, weight, bias = operands(rng, (N, C, H, W), kernel, dtype)
    gy = rng.standard_normal(x.shape).astype(dtype)
    itemsize = np.dtype(dtype).itemsize
    lanes = KERNELS.pool_skip.filter_lanes(itemsize)
    pixel = -(-C // lanes) * lanes  # the accumulator's channels: whole blocks
    monkeypatch.setattr(module, "BAND_BYTES", 2 * (W + S - 1) * pixel * itemsize)
    monkeypatch.setattr(module, "SLAB_BYTES", chunk * R * S * lanes * itemsize)
    monkeypatch.setattr(module, "LIST_LENGTH", 0)
    for e in (2, 3):
        assert_close(fastconv.pool_skip(x, weight, bias, e),
                     pool_skip_reference(x, weight, bias, e), dtype)
        assert_close(fastconv.pool_skip(x, weight, None, e),
                     pool_skip_reference(x, weight, None, e), dtype)
        for ours, reference in zip(fastconv.pool_skip_backward(gy, x, weight, e),
                                   backward_reference(gy, x, weight, e), strict=True):
            assert_close(ours, reference, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pool_skip_backward_through_full_queues_and_every_tile_width(dtype, rng):
    """110 maxima per channel and image, 90 of them with all their taps inside: each
    channel's queue in the backward runs full (64 maxima), then again at an edge or
    at the end. With 30 channels its sweeps take S * K = 90 elements: in float32 on a
    64-byte vector build through a tile of 4 vectors, one of 1 and a tail of 10, in
    float64 through one of 8, three of 1 and a tail of 2."""
    x, weight, _ = operands(rng, (2, 30, 20, 22), (3, 3), dtype)
    gy = rng.standard_normal(x.shape).astype(dtype)
    for ours, reference in zip(fastconv.pool_skip_backward(gy, x, weight, 2),
                               backward_reference(gy, x, weight, 2), strict=True):
        assert_close(ours, reference, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 70, 45), (1, 32, 64), (2, 1, 33), (0, 5, 5),
                                   (2, 130, 37), (1, 16, 0)])
def test_tile_transposition_of_the_layouts(shape, dtype, rng):
    """The kernel behind the filters' and gradient's layouts, on partial tiles too."""
    src = rng.standard_normal(shape).astype(dtype)
    for threads in (1, 2):
        dst = np.full((shape[0], shape[2], shape[1]), np.nan, dtype=dtype)
        KERNELS.pool_skip.transpose(src, dst, threads)
        np.testing.assert_array_equal(dst, src.transpose(0, 2, 1))


def test_pool_skip_empty_batch_and_read_only_inputs(rng):
    x, weight, bias = operands(rng, (0, 3, 6, 6), (3, 3), np.float32)
    assert fastconv.pool_skip(x, weight, bias).shape == (0, 3, 6, 6)
    grad_x, grad_w, grad_b = fastconv.pool_skip_backward(x, x, weight)
    assert grad_x.shape == (0, 3, 6, 6)
    np.testing.assert_array_equal(grad_w, 0)
    np.testing.assert_array_equal(grad_b, 0)
    # Planes of 2**30 rows: the positions' workspace alone would take gigabytes.
    tall = np.zeros((0, 3, 2**30, 2), np.float32)
    assert fastconv.pool_skip(tall, weight, bias).shape == tall.shape
    assert fastconv.pool_skip_backward(tall, tall, weight)[0].shape == tall.shape
    x, weight, bias = operands(rng, (2, 3, 6, 7), (3, 3), np.float64)
    expected = fastconv.pool_skip(x, weight, bias)
    saved = [a.copy() for a in (x, weight, bias)]
    for a in (x, weight, bias):
        a.flags.writeable = False
    np.testing.assert_array_equal(fastconv.pool_skip(np.asfortranarray(x), weight[..., ::1],
                                                     bias), expected)
    fastconv.pool_skip_backward(x, x, weight)
    for a, b in zip((x, weight, bias), saved, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    (dict(weight=np.zeros((3, 2, 3, 3))), ValueError, r"weight: expected shape \(3, 3, R, S\)"),
    (dict(weight=np.zeros((3, 3, 2, 3))), ValueError, "kernel size must be odd"),
    (dict(bias=np.zeros(4)), ValueError, r"bias: expected shape \(3,\)"),
    (dict(bias=np.zeros(3, np.float32)), TypeError, "bias has dtype float32"),
    (dict(weight=np.zeros((3, 3, 3, 3), np.float32)), TypeError, "weight has dtype float32"),
    (dict(e=0), ValueError, "e must be"),
    (dict(e=7), ValueError, "output size"),
    (dict(x=np.zeros((2, 3, 6))), ValueError, "x: expected 4-D"),
])
def test_pool_skip_rejects_bad_arguments(kwargs, error, match):
    args = dict(x=np.zeros((2, 3, 6, 6)), weight=np.zeros((3, 3, 3, 3)), bias=np.zeros(3), e=2)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        fastconv.pool_skip(**args)


def test_pool_skip_rejects_filters_beyond_the_kernels_int32_offsets(monkeypatch):
    """The forward's lists give where a maximum's filters lie in a block of them as
    int32: filters too large for that are refused before the kernel runs. (Real ones
    would take several GiB; vectors of 2**28 lanes stand in for them.)"""
    module = importlib.import_module("fastconv.pool_skip")
    huge_lanes = types.SimpleNamespace(filter_lanes=lambda itemsize: 2**28)
    monkeypatch.setattr(module, "KERNELS", types.SimpleNamespace(pool_skip=huge_lanes))
    x, weight = np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 3))
    with pytest.raises(ValueError, match=r"weight: shape \(1, 1, 3, 3\) is too large"):
        fastconv.pool_skip(x, weight)


def test_pool_skip_backward_rejects_a_mismatched_gradient():
    x, weight = np.zeros((2, 3, 6, 6)), np.zeros((3, 3, 3, 3))
    with pytest.raises(ValueError, match="grad_output has shape"):
        fastconv.pool_skip_backward(np.zeros((1, 3, 6, 6)), x, weight)
    with pytest.raises(TypeError, match="grad_output has dtype float32"):
        fastconv.pool_skip_backward(np.zeros(x.shape, np.float32), x, weight)
