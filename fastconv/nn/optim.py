"""Stochastic gradient descent with momentum and weight decay, as ``torch.optim.SGD``."""

import numpy as np


class SGD:
    """Update parameters in place from their accumulated gradients.

    With g the gradient plus ``weight_decay * p``, the momentum buffer b starts as g
    and then becomes ``momentum * b + (1 - dampening) * g``; the step is
    ``p -= lr * (g + momentum * b if nesterov else b)`` (plain ``p -= lr * g``
    without momentum). These are PyTorch's formulas.

    Parameters
    ----------
    parameters : iterable of Parameter
    lr : float
        Learning rate, > 0.
    momentum, dampening, weight_decay : float
        Each >= 0.
    nesterov : bool
        Nesterov momentum (needs momentum > 0 and dampening 0).
    """

    def __init__(self, parameters, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        for name, value in (("lr", lr), ("momentum", momentum), ("dampening", dampening),
                            ("weight_decay", weight_decay)):
            if not np.isfinite(value) or value < 0 or (name == "lr" and value == 0):
                raise ValueError(f"{name} must be a finite number "
                                 f"{'> 0' if name == 'lr' else '>= 0'}, got {value!r}")
        if nesterov and (momentum == 0 or dampening != 0):
            raise ValueError("nesterov momentum needs momentum > 0 and dampening 0")
        self.parameters = list(parameters)
        self.lr, self.momentum, self.dampening = lr, momentum, dampening
        self.weight_decay, self.nesterov = weight_decay, nesterov
        self.buffers = [None] * len(self.parameters)

    def zero_grad(self):
        """Forget the gradients of every parameter."""
        for parameter in self.parameters:
            parameter.grad = None

    def step(self):
        """Apply one update to every parameter that has a gradient."""
        for i, parameter in enumerate(self.parameters):
            if parameter.grad is None:
                continue
            p = parameter.data
            grad = parameter.grad.astype(p.dtype, copy=False)
            if self.weight_decay:
                grad = grad + p.dtype.type(self.weight_decay) * p
            if self.momentum:
                if self.buffers[i] is None:
                    self.buffers[i] = grad.copy()
                else:
                    buffer = self.buffers[i]
                    buffer *= p.dtype.type(self.momentum)
                    buffer += p.dtype.type(1 - self.dampening) * grad
                grad = (grad + p.dtype.type(self.momentum) * self.buffers[i] if self.nesterov
                        else self.buffers[i])
            p -= p.dtype.type(self.lr) * grad
