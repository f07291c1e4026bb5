"""Heavy-ball momentum (Polyak 1964): rlcl's default optimizer for PPO and A2C.

It is :class:`SGD` with ``momentum=0.9`` and no dampening by default: the same fused kernel,
other defaults. See rlcl/optim/sgd.py for the update rule and how it relates to the
``v = mu*v - lr*g`` form.
"""

from __future__ import annotations

from rlcl.optim.sgd import SGD


class Momentum(SGD):
    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 nesterov: bool = False):
        super().__init__(params, lr=lr, momentum=momentum, dampening=0.0,
                         weight_decay=weight_decay, nesterov=nesterov)
