"""Sequential: layers applied one after another."""

from fastconv.nn.module import Module


class Sequential(Module):
    """Apply layers in order; backward runs them in reverse.

    Parameters
    ----------
    *layers : Module
        Each takes one array and returns one array.
    """

    def __init__(self, *layers):
        for layer in layers:
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential takes Module instances, got {layer!r}")
        self.layers = list(layers)

    def __getitem__(self, index):
        return self.layers[index]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def forward(self, x):
        """Return the last layer's output."""
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_output):
        """Return the gradient with respect to the first layer's input."""
        for layer in reversed(self.layers):
            grad_output = layer.backward(grad_output)
        return grad_output

    def parameters(self):
        """Every layer's parameters, in layer order."""
        return [p for layer in self.layers for p in layer.parameters()]
