"""fastconv.nn: every layer's backward by finite differences, whole networks, torch.nn parity."""

import numpy as np
import pytest
from conftest import tie_free, torch_or_skip

from fastconv import nn
from fastconv.testing import check_gradient


def check_layer(layer, x, rng):
    """Check a layer's input and parameter gradients against central differences (float64)."""
    y = layer.forward(x)
    gy = rng.standard_normal(y.shape)
    layer.zero_grad()
    grad_x = layer.backward(gy)
    analytic = [p.grad.copy() for p in layer.parameters()]

    def loss_at_input(value):
        return float(np.sum(gy * layer.forward(value)))

    check_gradient(loss_at_input, x, grad_x)
    for parameter, grad in zip(layer.parameters(), analytic, strict=True):
        saved = parameter.data

        def loss_at_parameter(value, parameter=parameter):
            parameter.data = value
            return float(np.sum(gy * layer.forward(x)))

        check_gradient(loss_at_parameter, saved, grad)
        parameter.data = saved


LAYERS = {
    "Conv2d": (lambda: nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=1, dtype=np.float64,
                                 rng=1), (2, 3, 6, 5)),
    "Conv2d groups": (lambda: nn.Conv2d(4, 6, 3, padding="same", groups=2, dtype=np.float64,
                                        rng=2), (2, 4, 5, 5)),
    "ConvTranspose2d": (lambda: nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1,
                                                   output_padding=1, dtype=np.float64, rng=3),
                        (2, 3, 4, 3)),
    "MaxPool2d": (lambda: nn.MaxPool2d(3, 2, padding=1, ceil_mode=True), (2, 3, 7, 6)),
    "AvgPool2d": (lambda: nn.AvgPool2d(3, 2, padding=1, count_include_pad=False),
                  (2, 3, 7, 6)),
    "LPPool2d": (lambda: nn.LPPool2d(2.5, 2), (2, 3, 6, 6)),
    "LocalResponseNorm": (lambda: nn.LocalResponseNorm(3, 0.5, 0.75, 1.0), (2, 5, 3, 3)),
    "ReLU": (nn.ReLU, (2, 3, 4, 4)),
    "Softmax": (lambda: nn.Softmax(1), (4, 5)),
    "Linear": (lambda: nn.Linear(6, 4, dtype=np.float64, rng=4), (5, 6)),
    "Linear no bias": (lambda: nn.Linear(6, 4, bias=False, dtype=np.float64, rng=4), (5, 6)),
    "Flatten": (nn.Flatten, (2, 3, 2, 2)),
    "PoolSkip e=2": (lambda: nn.PoolSkip(3, 2, dtype=np.float64, rng=5), (2, 3, 7, 8)),
    "PoolSkip e=4": (lambda: nn.PoolSkip(2, 4, dtype=np.float64, rng=6), (1, 2, 9, 10)),
}


@pytest.mark.parametrize("name", LAYERS)
def test_layer_backward_by_finite_differences(name, rng):
    make, shape = LAYERS[name]
    layer = make()
    x = tie_free(rng, shape)
    if name == "LPPool2d":
        x = np.sign(x) * (np.abs(x) + 0.2)  # away from 0, where |x|**p is not smooth
    check_layer(layer, x, rng)


def test_max_unpool2d_layer_backward_by_finite_differences(rng):
    pool, unpool = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)
    pooled, indices = pool.forward(tie_free(rng, (2, 3, 6, 5)))
    y = unpool.forward(pooled, indices, output_size=(6, 5))
    gy = rng.standard_normal(y.shape)
    check_gradient(lambda v: float(np.sum(gy * unpool.forward(v, indices, (6, 5)))), pooled,
                   unpool.backward(gy))


def small_network(rng_seed, dtype=np.float64, pool_skip=True):
    """conv -> PoolSkip -> ReLU -> max pool -> conv -> LRN -> ReLU -> avg pool -> Linear."""
    rng = np.random.default_rng(rng_seed)
    layers = [nn.Conv2d(2, 4, 3, padding=1, dtype=dtype, rng=rng)]
    if pool_skip:
        layers.append(nn.PoolSkip(4, 2, dtype=dtype, rng=rng))
    layers += [nn.ReLU(), nn.MaxPool2d(2),
               nn.Conv2d(4, 5, 3, padding=1, dtype=dtype, rng=rng),
               nn.LocalResponseNorm(3, 0.3, 0.75, 1.0), nn.ReLU(), nn.AvgPool2d(2),
               nn.Flatten(), nn.Linear(5 * 2 * 2, 3, dtype=dtype, rng=rng)]
    return nn.Sequential(*layers)


def test_whole_network_gradients_by_finite_differences(rng):
    model, criterion = small_network(7), nn.CrossEntropyLoss()
    x = tie_free(rng, (3, 2, 8, 8))
    target = np.array([0, 2, 1])
    criterion.forward(model.forward(x), target)
    model.zero_grad()
    grad_x = model.backward(criterion.backward())
    analytic = [p.grad.copy() for p in model.parameters()]
    assert len(analytic) == 8  # weight and bias of 2 convs, PoolSkip and Linear

    def loss(value):
        return float(criterion.forward(model.forward(value), target))

    check_gradient(loss, x, grad_x, rtol=1e-4, atol=1e-7)
    for parameter, grad in zip(model.parameters(), analytic, strict=True):
        saved = parameter.data

        def loss_at(value, parameter=parameter):
            parameter.data = value
            return float(criterion.forward(model.forward(x), target))

        check_gradient(loss_at, saved, grad, rtol=1e-4, atol=1e-7)
        parameter.data = saved


def torch_network(model, torch):
    """The torch.nn twin of ``small_network``, weights copied; PoolSkip composed of modules."""
    tnn = torch.nn

    class TorchPoolSkip(tnn.Module):
        def __init__(self, layer):
            super().__init__()
            C = layer.weight.data.shape[0]
            self.pool = tnn.MaxPool2d(layer.e, return_indices=True)
            self.unpool = tnn.MaxUnpool2d(layer.e)
            self.conv = tnn.Conv2d(C, C, 3, padding=1)

        def forward(self, x):
            pooled, indices = self.pool(x)
            return x + self.conv(self.unpool(pooled, indices, output_size=x.shape[2:]))

    twins = []
    for layer in model:
        if isinstance(layer, nn.PoolSkip):
            twin = TorchPoolSkip(layer)
            twin.conv.weight.data = torch.tensor(layer.weight.data)
            twin.conv.bias.data = torch.tensor(layer.bias.data)
        elif isinstance(layer, (nn.Conv2d, nn.Linear)):
            shape = layer.weight.data.shape
            twin = (tnn.Conv2d(shape[1], shape[0], shape[2], padding=1)
                    if isinstance(layer, nn.Conv2d) else tnn.Linear(shape[1], shape[0]))
            twin.weight.data = torch.tensor(layer.weight.data)
            twin.bias.data = torch.tensor(layer.bias.data)
        elif isinstance(layer, nn.LocalResponseNorm):
            twin = tnn.LocalResponseNorm(**layer.options)
        else:
            twin = {nn.ReLU: tnn.ReLU(), nn.MaxPool2d: tnn.MaxPool2d(2),
                    nn.AvgPool2d: tnn.AvgPool2d(2), nn.Flatten: tnn.Flatten()}[type(layer)]
        twins.append(twin.double())
    return tnn.Sequential(*twins)


@pytest.mark.parametrize("pool_skip", [True, False])
def test_network_and_sgd_match_torch(pool_skip, rng):
    torch = torch_or_skip()
    model = small_network(8, pool_skip=pool_skip)
    twin = torch_network(model, torch)
    optimiser = nn.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    twin_optimiser = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9,
                                     weight_decay=1e-3)
    criterion = nn.CrossEntropyLoss()
    x, target = tie_free(rng, (4, 2, 8, 8)), np.array([0, 1, 2, 1])
    xt = torch.tensor(x, requires_grad=True)
    for _ in range(3):
        loss = criterion.forward(model.forward(x), target)
        optimiser.zero_grad()
        grad_x = model.backward(criterion.backward())
        twin_optimiser.zero_grad()
        xt.grad = None
        twin_loss = torch.nn.functional.cross_entropy(twin(xt), torch.from_numpy(target))
        twin_loss.backward()
        np.testing.assert_allclose(loss, twin_loss.item(), rtol=1e-12)
        np.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=1e-9, atol=1e-12)
        for ours, theirs in zip(model.parameters(), twin.parameters(), strict=True):
            np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-9, atol=1e-12)
        optimiser.step()
        twin_optimiser.step()
        for ours, theirs in zip(model.parameters(), twin.parameters(), strict=True):
            np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-12,
                                       atol=1e-14)


@pytest.mark.parametrize("options", [dict(momentum=0.0), dict(momentum=0.8, dampening=0.3),
                                     dict(momentum=0.9, nesterov=True, weight_decay=0.01)])
def test_sgd_matches_torch_formulas(options, rng):
    torch = torch_or_skip()
    start = rng.standard_normal(5)
    parameter = nn.Parameter(start.copy())
    twin = torch.tensor(start.copy(), requires_grad=True)
    optimiser = nn.SGD([parameter], lr=0.05, **options)
    twin_optimiser = torch.optim.SGD([twin], lr=0.05, **options)
    for _ in range(4):
        grad = rng.standard_normal(5)
        parameter.grad, twin.grad = grad, torch.tensor(grad)
        optimiser.step()
        twin_optimiser.step()
        np.testing.assert_allclose(parameter.data, twin.detach().numpy(), rtol=1e-13)


@pytest.mark.parametrize(("make", "fan_in"), [
    (lambda: nn.Conv2d(6, 8, (3, 5), groups=2, rng=0), 3 * 3 * 5),
    (lambda: nn.ConvTranspose2d(4, 6, 3, groups=2, rng=0), 3 * 3 * 3),
    (lambda: nn.Linear(50, 40, rng=0), 50),
    (lambda: nn.PoolSkip(8, rng=0), 8 * 9),
])
def test_initialisation_is_pytorchs_uniform_fan_in(make, fan_in):
    layer = make()
    bound = 1 / np.sqrt(fan_in)
    weight, bias = layer.weight.data, layer.bias.data
    assert weight.dtype == np.float32
    assert np.abs(weight).max() <= bound and np.abs(weight).max() > 0.9 * bound
    assert abs(weight.mean()) < 4 * bound / np.sqrt(3 * weight.size)  # 4 standard errors
    assert np.abs(bias).max() <= bound
    np.testing.assert_array_equal(make().weight.data, weight)  # seeded: reproducible


def test_layers_report_misuse():
    with pytest.raises(RuntimeError, match="ReLU.backward called before forward"):
        nn.ReLU().backward(np.zeros(3))
    with pytest.raises(TypeError, match="Sequential takes Module instances"):
        nn.Sequential(nn.ReLU(), np.zeros(3))
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        nn.SGD([], lr=0)
    with pytest.raises(ValueError, match="nesterov"):
        nn.SGD([], lr=0.1, nesterov=True)
    layer = nn.PoolSkip(3)
    layer.forward(np.zeros((1, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="grad_output has shape"):
        layer.backward(np.zeros((1, 3, 4, 5), np.float32))
