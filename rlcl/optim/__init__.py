"""Optimizers with torch's API over flat parameter buffers; one fused kernel per update."""

from rlcl.optim.adam import Adam
from rlcl.optim.momentum import Momentum
from rlcl.optim.optimizer import Optimizer, clip_grad_norm_
from rlcl.optim.sgd import SGD

__all__ = ["SGD", "Momentum", "Adam", "Optimizer", "clip_grad_norm_"]
