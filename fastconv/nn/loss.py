"""Loss layers."""

from fastconv.loss import cross_entropy, cross_entropy_backward
from fastconv.nn.module import Module


class CrossEntropyLoss(Module):
    """Log-loss on the softmax of logits, as ``torch.nn.CrossEntropyLoss``.

    Parameters
    ----------
    reduction : {'mean', 'sum'}
    """

    def __init__(self, reduction="mean"):
        self.reduction = reduction

    def forward(self, logits, target):
        """Return the loss of logits (N, classes) at the integer targets (N,)."""
        self.logits, self.target = logits, target
        return cross_entropy(logits, target, self.reduction)

    def backward(self, grad_output=1.0):
        """Return the gradient with respect to the logits."""
        logits, target = self._saved("logits", "target")
        return cross_entropy_backward(logits, target, self.reduction, grad_output)
