import numpy as np
import pytest

from fastconv.testing import check_gradient

DTYPES = [np.float32, np.float64]
# Agreement with the float64 references: float32 sums of a few hundred terms.
TOLERANCE = {np.float32: dict(rtol=2e-4, atol=2e-4), np.float64: dict(rtol=1e-11, atol=1e-11)}


@pytest.fixture
def rng():
    return np.random.default_rng(20261121)


def tie_free(rng, shape, dtype=np.float64):
    """Distinct values (a shuffled linspace) in [-1, 1], so no window has ties."""
    size = int(np.prod(shape))
    values = np.linspace(-1.0, 1.0, size) if size > 1 else np.zeros(size)
    return rng.permutation(values).reshape(shape).astype(dtype)


def assert_close(actual, expected, dtype):
    assert actual.dtype == dtype
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, **TOLERANCE[dtype])


def torch_or_skip():
    return pytest.importorskip("torch")


def check_gradients_of(forward, grad_output, inputs, grads):
    """Check each of grads against central differences of sum(grad_output * forward(*inputs))."""
    for i, (point, grad) in enumerate(zip(inputs, grads, strict=True)):

        def loss(value, i=i):
            args = list(inputs)
            args[i] = value
            return float(np.sum(grad_output * forward(*args)))

        check_gradient(loss, point, grad)
