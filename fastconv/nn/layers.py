"""Element-wise, fully connected, reshaping and normalisation layers."""

import numpy as np

from fastconv.activation import relu, relu_backward, softmax, softmax_backward
from fastconv.linear import linear, linear_backward
from fastconv.nn.module import Module, WeightedModule
from fastconv.normalization import local_response_norm, local_response_norm_backward


class ReLU(Module):
    """Rectified linear unit, as ``torch.nn.ReLU``."""

    def forward(self, x):
        """``max(x, 0)``."""
        self.x = x
        return relu(x)

    def backward(self, grad_output):
        """Pass the gradient where the input was positive."""
        return relu_backward(grad_output, self._saved("x"))


class Softmax(Module):
    """Softmax along ``axis``, as ``torch.nn.Softmax(dim=axis)``.

    Parameters
    ----------
    axis : int
    """

    def __init__(self, axis=1):
        self.axis = axis

    def forward(self, x):
        """Normalised exponentials along the axis."""
        self.y = softmax(x, self.axis)
        return self.y

    def backward(self, grad_output):
        """Apply the transposed softmax Jacobian to the gradient."""
        return softmax_backward(grad_output, self._saved("y"), self.axis)


class Linear(WeightedModule):
    """Fully connected layer, as ``torch.nn.Linear`` (weight (out, in), PyTorch's init).

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
    dtype : dtype
    rng : numpy.random.Generator, int or None
    """

    def __init__(self, in_features, out_features, bias=True, *, dtype=np.float32, rng=None):
        super().__init__((out_features, in_features), out_features, in_features, bias, dtype,
                         rng)

    def forward(self, x):
        """``x @ weight.T + bias`` for x (N, in_features)."""
        self.x = x
        return linear(x, self.weight.data, self.bias_data())

    def backward(self, grad_output):
        """Return grad_input; accumulate the weight and bias gradients."""
        grad_x, grad_w, grad_b = linear_backward(grad_output, self._saved("x"),
                                                 self.weight.data)
        self.accumulate(grad_w, grad_b)
        return grad_x


class Flatten(Module):
    """Flatten every axis after the batch axis, as ``torch.nn.Flatten()``."""

    def forward(self, x):
        """Reshape x (N, ...) to (N, features)."""
        self.input_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_output):
        """Reshape the gradient back to the input's shape."""
        return np.reshape(grad_output, self._saved("input_shape"))


class LocalResponseNorm(Module):
    """Local response normalisation across channels, as ``torch.nn.LocalResponseNorm``.

    Parameters
    ----------
    size : int
    alpha, beta, k : float
    """

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        self.options = dict(size=size, alpha=alpha, beta=beta, k=k)

    def forward(self, x):
        """Normalise x (N, C, ...) by its neighbouring channels."""
        self.x = x
        return local_response_norm(x, **self.options)

    def backward(self, grad_output):
        """Return the gradient with respect to the input of the normalisation."""
        return local_response_norm_backward(grad_output, self._saved("x"), **self.options)
