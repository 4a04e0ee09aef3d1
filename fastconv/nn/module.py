"""The base of every layer: parameters with their gradients, forward and backward."""

import numpy as np


class Parameter:
    """A trainable array and the gradient that backward passes accumulate into it.

    Attributes
    ----------
    data : ndarray
        The values; optimisers update it in place.
    grad : ndarray or None
        The sum of the gradients of the backward passes since the last ``zero_grad``.
    """

    def __init__(self, data):
        self.data = data
        self.grad = None

    def accumulate(self, grad):
        """Add ``grad`` to ``self.grad`` (which starts as None, as in PyTorch)."""
        self.grad = grad if self.grad is None else self.grad + grad

    def __repr__(self):
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """A layer: ``forward`` computes and remembers what ``backward`` needs.

    ``backward(grad_output)`` returns the gradient with respect to the input of the
    latest ``forward`` call and accumulates the gradients of the parameters. Do not
    modify an input in place between the two calls: the layer keeps a reference.
    """

    def __call__(self, *args, **kwargs):
        """Call ``forward``."""
        return self.forward(*args, **kwargs)

    def forward(self, x):
        """Compute the layer's output for ``x`` and keep what ``backward`` needs."""
        raise NotImplementedError

    def backward(self, grad_output):
        """Return the gradient with respect to the latest input; accumulate parameter grads."""
        raise NotImplementedError

    def parameters(self):
        """Return the layer's parameters (and its sub-layers'), in definition order.

        Returns
        -------
        list of Parameter
        """
        found = []
        for value in vars(self).values():
            if isinstance(value, Parameter):
                found.append(value)
            elif isinstance(value, Module):
                found.extend(value.parameters())
        return found

    def zero_grad(self):
        """Forget the accumulated gradients of every parameter."""
        for parameter in self.parameters():
            parameter.grad = None

    def _saved(self, *names):
        """Return the attributes a forward call stored, or raise if there was none."""
        values = tuple(getattr(self, name, None) for name in names)
        if values[0] is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return values if len(values) > 1 else values[0]


def uniform_fan_in(shape, fan_in, dtype, rng):
    """PyTorch's default initialisation of weights and biases.

    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``: what ``kaiming_uniform_(a=sqrt(5))`` gives
    for weights, and what PyTorch draws for biases.

    Parameters
    ----------
    shape : tuple of int
    fan_in : int
        Inputs feeding each output (in_channels / groups * R * S for convolutions).
    dtype : dtype
    rng : numpy.random.Generator, int or None
        The random source or its seed.

    Returns
    -------
    Parameter
    """
    bound = 1.0 / np.sqrt(fan_in) if fan_in > 0 else 0.0
    values = np.random.default_rng(rng).uniform(-bound, bound, size=shape)
    return Parameter(values.astype(dtype))


class WeightedModule(Module):
    """A layer with a ``weight`` and an optional ``bias`` Parameter (None when absent).

    Both are drawn from PyTorch's default distribution (:func:`uniform_fan_in`),
    the weight first, from one generator.

    Parameters
    ----------
    weight_shape : tuple of int
    bias_size : int
        Length of the bias.
    fan_in : int
    bias : bool
        Whether the layer has a bias.
    dtype : dtype
    rng : numpy.random.Generator, int or None
    """

    def __init__(self, weight_shape, bias_size, fan_in, bias, dtype, rng):
        rng = np.random.default_rng(rng)
        self.weight = uniform_fan_in(weight_shape, fan_in, dtype, rng)
        self.bias = uniform_fan_in((bias_size,), fan_in, dtype, rng) if bias else None

    def bias_data(self):
        """Return the bias values, or None for a layer without bias."""
        return None if self.bias is None else self.bias.data

    def accumulate(self, grad_weight, grad_bias):
        """Add one backward pass's gradients to the weight and (if any) the bias."""
        self.weight.accumulate(grad_weight)
        if self.bias is not None:
            self.bias.accumulate(grad_bias)
