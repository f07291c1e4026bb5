"""Adam (Kingma & Ba 2015) with torch.optim.Adam's semantics and coupled weight decay."""

from __future__ import annotations

import math

from rlcl.errors import ConfigError
from rlcl.optim.optimizer import Optimizer


class Adam(Optimizer):
    _buffer_keys = ("exp_avg", "exp_avg_sq", "prev_update")  # prev_update: smoothness only

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1) or eps < 0 or weight_decay < 0:
            raise ConfigError("Adam needs betas in [0, 1), eps >= 0 and weight_decay >= 0")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay))

    def step(self) -> None:
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                state = self.state[p]
                if "step" not in state:
                    state.update(step=0, exp_avg=p.device.zeros(p.n),
                                 exp_avg_sq=p.device.zeros(p.n), prev_update=p.device.zeros(p.n))
                state["step"] += 1
                t = state["step"]
                step_size = group["lr"] / (1 - beta1**t)  # bias corrections in float64
                self._launch_step(
                    "adam_step", p, p.params, p.grads, state["exp_avg"], state["exp_avg_sq"],
                    state["prev_update"], *self._clip_and_skip(p), p.n, step_size, beta1,
                    beta2, group["eps"], math.sqrt(1 - beta2**t), group["weight_decay"])
