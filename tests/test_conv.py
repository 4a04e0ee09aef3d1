"""conv2d and conv2d_backward against the naive float64 references and PyTorch."""

import numpy as np
import pytest
from conftest import DTYPES, assert_close, check_gradients_of, torch_or_skip

import fastconv
from fastconv.testing import conv2d_backward_reference, conv2d_reference

ALGORITHMS = ["direct", "im2col", "auto"]

# (x shape, weight shape, stride, padding, dilation, groups)
CASES = [
    ((2, 3, 9, 8), (4, 3, 3, 3), 1, 1, 1, 1),
    ((2, 4, 11, 9), (6, 4, 3, 2), (2, 1), (1, 0), (1, 2), 1),             # non-square
    ((1, 4, 10, 12), (6, 2, 3, 3), (1, 2), ((1, 0), (2, 1)), 1, 2),       # asymmetric pad
    ((2, 6, 9, 9), (6, 1, 3, 3), 2, 1, 1, 6),                            # depthwise
    ((2, 4, 8, 8), (8, 1, 3, 3), 1, "same", 1, 4),                       # depth multiplier
    ((1, 5, 7, 6), (3, 5, 1, 1), 1, 0, 1, 1),                            # pointwise
    ((3, 5, 7, 6), (3, 5, 1, 1), 1, 0, 1, 1),                            # pointwise, batched
    ((2, 5, 7, 6), (3, 5, 1, 1), 2, 0, 1, 1),                            # strided 1x1
    ((1, 3, 13, 11), (2, 3, 5, 4), 3, ((2, 3), (0, 1)), (2, 1), 1),
    ((1, 2, 6, 6), (3, 2, 4, 4), 1, "same", (1, 3), 1),                  # asymmetric same
    ((2, 3, 5, 5), (2, 3, 3, 3), 1, "valid", 1, 1),
    ((1, 2, 4, 5), (2, 2, 6, 7), 1, 2, 1, 1),                            # kernel > input
    ((1, 2, 11, 13), (3, 2, 2, 3), (4, 3), (1, 2), (3, 2), 1),           # stride > taps
    ((1, 2, 5, 6), (2, 2, 2, 2), 2**20, 1, 1, 1),                        # stride >> image
    ((1, 2, 5, 6), (3, 2, 2, 3), 1, (2, 3), 1, 1),                       # pad > kernel
    ((1, 2, 5, 6), (3, 2, 2, 3), 1, ((0, 3), (1, 4)), 1, 1),             # pad > kernel below, right
    # Planes large enough that the direct forward splits each group's 7 output
    # channels into unequal blocks.
    ((1, 4, 100, 100), (14, 2, 3, 3), 1, 1, 1, 2),
]


def make_case(rng, case, dtype):
    x_shape, w_shape, stride, padding, dilation, groups = case
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    return x, w, b, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_forward_matches_reference(rng, case, dtype, algorithm):
    x, w, b, params = make_case(rng, case, dtype)
    y = fastconv.conv2d(x, w, b, **params, algorithm=algorithm)
    assert_close(y, conv2d_reference(x, w, b, **params), dtype)
    assert_close(fastconv.conv2d(x, w, **params, algorithm=algorithm),
                 conv2d_reference(x, w, **params), dtype)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_backward_matches_reference(rng, case, dtype, algorithm):
    x, w, b, params = make_case(rng, case, dtype)
    gy = rng.standard_normal(conv2d_reference(x, w, **params).shape).astype(dtype)
    grads = fastconv.conv2d_backward(gy, x, w, **params, algorithm=algorithm)
    for got, expected in zip(grads, conv2d_backward_reference(gy, x, w, **params), strict=True):
        assert_close(got, expected, dtype)


def torch_conv2d(torch, x, w, b, params):
    """PyTorch's conv2d of float64 x, w, b, and its three leaf tensors (for gradients).

    A pair of pairs of padding (top, bottom), (left, right) is applied by ``F.pad``,
    which conv2d's own padding cannot express.
    """
    F = torch.nn.functional
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    padded, padding = xt, params["padding"]
    if isinstance(padding, tuple) and isinstance(padding[0], tuple):
        (top, bottom), (left, right) = padding
        padded, padding = F.pad(xt, (left, right, top, bottom)), 0
    yt = F.conv2d(padded, wt, bt, params["stride"], padding, params["dilation"],
                  params["groups"])
    return yt, xt, wt, bt


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("algorithm", ["direct", "im2col"])
# PyTorch warns that asymmetric 'same' padding costs it a padded copy.
@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_forward_and_backward_match_torch(rng, case, algorithm):
    torch = torch_or_skip()
    x, w, b, params = make_case(rng, case, np.float64)
    yt, xt, wt, bt = torch_conv2d(torch, x, w, b, params)
    y = fastconv.conv2d(x, w, b, **params, algorithm=algorithm)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    gy = np.random.default_rng(1).standard_normal(y.shape)
    yt.backward(torch.tensor(gy))
    gx, gw, gb = fastconv.conv2d_backward(gy, x, w, **params, algorithm=algorithm)
    for got, expected in [(gx, xt.grad), (gw, wt.grad), (gb, bt.grad)]:
        np.testing.assert_allclose(got, expected.numpy(), rtol=1e-12, atol=1e-12)


def random_geometry(rng):
    """x, weight, bias and the parameters of a random convolution (float64).

    Strides, dilations, groups, padding on each side and channel counts are drawn
    independently, in ranges that reach partial and narrow register tiles.
    """
    groups = int(rng.choice([1, 1, 2, 3]))
    in_per_group, out_per_group = int(rng.integers(1, 7)), int(rng.integers(1, 20))
    R, S = (int(v) for v in rng.integers(1, 6, 2))
    dilation = tuple(int(v) for v in rng.integers(1, 4, 2))
    H = int(rng.integers((R - 1) * dilation[0] + 1, 30))
    W = int(rng.integers((S - 1) * dilation[1] + 1, 50))
    x = rng.standard_normal((int(rng.integers(1, 4)), in_per_group * groups, H, W))
    w = rng.standard_normal((out_per_group * groups, in_per_group, R, S))
    b = rng.standard_normal(out_per_group * groups)
    top, bottom, left, right = (int(v) for v in rng.integers(0, 5, 4))
    # Stride 1 half the time on each axis: the input gradient then runs as a forward.
    stride = tuple(int(v) for v in rng.choice([1, 1, 2, 3], 2))
    return x, w, b, dict(stride=stride, padding=((top, bottom), (left, right)),
                         dilation=dilation, groups=groups)


@pytest.mark.parametrize("seed", range(6))
def test_random_geometries_match_torch(seed):
    torch = torch_or_skip()
    rng = np.random.default_rng(seed)
    for _ in range(8):
        x, w, b, params = random_geometry(rng)
        yt, xt, wt, bt = torch_conv2d(torch, x, w, b, params)
        gy = rng.standard_normal(tuple(yt.shape))
        yt.backward(torch.tensor(gy))
        for algorithm in ("direct", "im2col"):
            y = fastconv.conv2d(x, w, b, **params, algorithm=algorithm)
            gx, gw, gb = fastconv.conv2d_backward(gy, x, w, **params, algorithm=algorithm)
            for got, expected in [(y, yt), (gx, xt.grad), (gw, wt.grad), (gb, bt.grad)]:
                np.testing.assert_allclose(got, expected.detach().numpy(), rtol=1e-12,
                                           atol=1e-12, err_msg=f"{algorithm}, {params}")


@pytest.mark.parametrize("case", [CASES[1], CASES[2], CASES[3], CASES[7]])
@pytest.mark.parametrize("algorithm", ["direct", "im2col"])
def test_backward_matches_finite_differences(rng, case, algorithm):
    x, w, b, params = make_case(rng, case, np.float64)
    gy = rng.standard_normal(fastconv.conv2d(x, w, **params).shape)
    grads = fastconv.conv2d_backward(gy, x, w, **params, algorithm=algorithm)
    check_gradients_of(lambda *a: fastconv.conv2d(*a, **params, algorithm=algorithm), gy,
                       (x, w, b), grads)


def test_requested_gradients_only(rng):
    x, w, b, params = make_case(rng, CASES[0], np.float64)
    gy = np.ones((2, 4, 9, 8))
    gx, gw, gb = fastconv.conv2d_backward(gy, x, w, **params, needs_input_grad=False,
                                          needs_bias_grad=False)
    assert gx is None and gb is None and gw.shape == w.shape


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_empty_batch(algorithm):
    x = np.zeros((0, 3, 8, 8), np.float32)
    w = np.ones((4, 3, 3, 3), np.float32)
    y = fastconv.conv2d(x, w, algorithm=algorithm)
    assert y.shape == (0, 4, 6, 6)
    gx, gw, gb = fastconv.conv2d_backward(y, x, w, algorithm=algorithm)
    assert gx.shape == x.shape
    np.testing.assert_array_equal(gw, np.zeros_like(w))
    np.testing.assert_array_equal(gb, np.zeros(4, np.float32))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_zero_input_channels_give_the_bias(algorithm):
    x = np.zeros((2, 0, 5, 5))
    w = np.zeros((3, 0, 3, 3))
    b = np.array([1.0, -2.0, 3.0])
    y = fastconv.conv2d(x, w, b, padding=1, algorithm=algorithm)
    np.testing.assert_array_equal(y, np.broadcast_to(b[:, None, None], (2, 3, 5, 5)))
    gy = np.ones_like(y)
    gx, gw, gb = fastconv.conv2d_backward(gy, x, w, padding=1, algorithm=algorithm)
    assert gx.shape == x.shape and gw.shape == w.shape
    np.testing.assert_array_equal(gb, np.full(3, 50.0))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_zero_output_channels(algorithm):
    x = np.ones((2, 3, 5, 5))
    w = np.zeros((0, 3, 3, 3))
    y = fastconv.conv2d(x, w, algorithm=algorithm)
    assert y.shape == (2, 0, 3, 3)
    gx, gw, gb = fastconv.conv2d_backward(y, x, w, algorithm=algorithm)
    np.testing.assert_array_equal(gx, np.zeros_like(x))
    assert gw.shape == w.shape and gb.shape == (0,)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_nan_propagates(algorithm):
    x = np.ones((1, 2, 5, 5))
    w = np.ones((2, 2, 3, 3))
    x[0, 1, 2, 2] = np.nan
    y = fastconv.conv2d(x, w, algorithm=algorithm)
    assert np.isnan(y).all()
    w[1, 0, 0, 0] = np.nan
    y = fastconv.conv2d(np.ones((1, 2, 5, 5)), w, algorithm=algorithm)
    assert np.isnan(y[0, 1]).all() and not np.isnan(y[0, 0]).any()


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_same_padding_keeps_size_and_matches_torch(rng):
    torch = torch_or_skip()
    for kernel, dilation in [(3, 1), (4, 1), (4, 3), (5, 2), ((2, 5), (3, 1))]:
        x = rng.standard_normal((1, 2, 9, 10))
        w = rng.standard_normal((3, 2) + ((kernel, kernel) if isinstance(kernel, int)
                                          else kernel))
        y = fastconv.conv2d(x, w, padding="same", dilation=dilation)
        assert y.shape[2:] == x.shape[2:]
        expected = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w),
                                              padding="same", dilation=dilation)
        np.testing.assert_allclose(y, expected.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_shapes_agree_across_algorithms(rng, dtype):
    # Several column tiles and channel blocks per image.
    x = rng.standard_normal((2, 40, 60, 70)).astype(dtype)
    w = rng.standard_normal((24, 40, 3, 3)).astype(dtype)
    gy = rng.standard_normal((2, 24, 60, 70)).astype(dtype)
    params = dict(padding=1)
    scale = 1e-5 if dtype == np.float64 else 1e-3
    direct = fastconv.conv2d(x, w, **params, algorithm="direct")
    np.testing.assert_allclose(fastconv.conv2d(x, w, **params, algorithm="im2col"), direct,
                               rtol=scale, atol=scale)
    for a, b in zip(fastconv.conv2d_backward(gy, x, w, **params, algorithm="direct"),
                    fastconv.conv2d_backward(gy, x, w, **params, algorithm="im2col"), strict=True):
        np.testing.assert_allclose(a, b, rtol=scale, atol=scale * np.abs(b).max())


# (x shape, weight shape, stride, padding, dilation, groups) of direct weight gradients
# whose planes take several image groups of a thread's 512 KiB workspace (the first,
# in float64), or alone exceed it (the second, in float64: then the columns go one by
# one); their first taps reach left of the planes.
WEIGHT_GROUP_CASES = [
    ((5, 2, 100, 100), (2, 1, 3, 3), 1, 1, 1, 2),
    ((2, 1, 180, 190), (2, 1, 3, 5), 1, (1, 2), (1, 2), 1),
]


@pytest.mark.parametrize("case", WEIGHT_GROUP_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_direct_weight_gradient_over_image_groups(rng, case, dtype):
    x, w, _, params = make_case(rng, case, dtype)
    gy = rng.standard_normal(conv2d_reference(x, w, **params).shape).astype(dtype)
    _, grad_w, _ = fastconv.conv2d_backward(gy, x, w, **params, algorithm="direct",
                                            needs_input_grad=False, needs_bias_grad=False)
    assert_close(grad_w, conv2d_backward_reference(gy, x, w, **params)[1], dtype)


# (x shape, weight shape, stride, padding, dilation, groups): output channels per group
# that fill no whole register tile (11, and 2 for the narrow tile), rows of 10 and 17
# pixels that end inside a vector and lie end to end in the accumulators (their split
# rows, 12 and 19 elements, are shorter than the padded ones), and rows of 16 padded
# to whole vectors.
TILED_CASES = [
    ((2, 7, 9, 10), (11, 7, 3, 3), 1, 1, 1, 1),
    ((1, 7, 9, 19), (11, 7, 3, 2), (2, 1), (1, 0), (1, 2), 1),
    ((2, 6, 9, 10), (6, 2, 3, 3), 1, "same", 2, 3),
    ((1, 3, 7, 16), (9, 3, 3, 3), 1, 1, 1, 1),
]


@pytest.mark.parametrize("case", TILED_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("split_bytes, accumulator_bytes",
                         [(1, 1), (1600, 5120), (2**19, 2**18)])
def test_direct_forward_over_chunks_blocks_and_bands(rng, monkeypatch, case, dtype,
                                                     split_bytes, accumulator_bytes):
    # The smallest budgets give chunks of one input channel and items of one register
    # tile over one output row. In the first case, 5120 bytes give bands of 5 + 4 rows
    # (float32: a row of two tiles takes 16 x 12 x 4 = 768 bytes) or 3 + 3 + 3
    # (float64) over all 11 output channels, and 1600 bytes chunks of 4 + 3 or
    # 3 + 3 + 1 input channels (a band's split channel takes 7 x 12 x 4 or 5 x 12 x 8
    # bytes); the second case gets bands of 2 + 2 + 1 (float64). The defaults take all
    # the channels and rows at once.
    monkeypatch.setattr(fastconv._params, "DIRECT_SPLIT_BYTES", split_bytes)
    monkeypatch.setattr(fastconv._params, "DIRECT_ACCUMULATOR_BYTES", accumulator_bytes)
    x, w, b, params = make_case(rng, case, dtype)
    y = fastconv.conv2d(x, w, b, **params, algorithm="direct", num_threads=1)
    assert_close(y, conv2d_reference(x, w, b, **params), dtype)
    np.testing.assert_array_equal(
        fastconv.conv2d(x, w, b, **params, algorithm="direct", num_threads=2), y)
