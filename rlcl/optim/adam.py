"""Adam (Kingma & Ba 2015) with torch.optim.Adam's semantics and coupled weight decay."""

from __future__ import annotations

import math

import numpy as np

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
        self._bias = {}  # per param: the device table of bias corrections (adam_step)

    def step(self) -> None:
        """One fused adam_step per flat buffer. ``state["step"]`` counts the steps taken as of
        the last settle() (the guard may refuse a step on the device); the kernel picks its
        bias corrections from a table for each possible count (optim.cl)."""
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                state = self.state[p]
                if "step" not in state:
                    state.update(step=0, exp_avg=p.device.zeros(p.n),
                                 exp_avg_sq=p.device.zeros(p.n), prev_update=p.device.zeros(p.n))
                clip_skip = self._clip_and_skip(p)
                run = self.unsettled_slots(p)  # this step's slot is the last
                t = state["step"] + 1 + np.arange(len(run))  # t if 0, 1, ... earlier were taken
                table = np.empty((len(run), 2), np.float32)  # bias corrections in float64
                table[:, 0] = [group["lr"] / (1 - beta1 ** int(k)) for k in t]
                table[:, 1] = [math.sqrt(1 - beta2 ** int(k)) for k in t]
                if p not in self._bias:
                    self._bias[p] = p.device.empty(2 * p.norm_slots)
                p.device.write(self._bias[p], table)
                self._launch_step(
                    "adam_step", p, p.params, p.grads, state["exp_avg"], state["exp_avg_sq"],
                    state["prev_update"], *clip_skip, p.n, self._bias[p], run[0], beta1, beta2,
                    group["eps"], group["weight_decay"])
                if clip_skip[3] < 0:  # it cannot have been refused: count it now, as torch
                    self.settle()

    def _count_taken(self, launched: list, refused) -> None:
        for (p, _, _), no in zip(launched, refused):
            self.state[p]["step"] += 0 if no else 1
