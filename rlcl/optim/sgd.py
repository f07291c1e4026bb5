"""SGD with optional heavy-ball or Nesterov momentum: torch.optim.SGD's semantics.

    g = grad + weight_decay * theta          (coupled weight decay)
    v = g on the first step, then momentum * v + (1 - dampening) * g
    theta -= lr * (g + momentum * v)  if nesterov  else  lr * v

Why this form and not ``v = mu*v - lr*g; theta += v`` (Sutskever et al. 2013, CS231n)? At a
constant lr the two give the same parameters step for step: scale this v by -lr. Under a
decaying lr they differ: here the WHOLE velocity is applied at today's lr, so a cosine decay
slows old momentum at once, while in the other form old steps keep the larger lr they were
taken with and the decay lags by about 1/(1 - mu) steps. tests/test_optim.py checks both facts.
"""

from __future__ import annotations

from rlcl.errors import ConfigError
from rlcl.nn import FlatParams
from rlcl.optim.optimizer import Optimizer


class SGD(Optimizer):
    # prev_update is not torch state: the last update, kept for the smoothness figures
    _buffer_keys = ("momentum_buffer", "prev_update")

    def __init__(self, params, lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        if momentum < 0 or weight_decay < 0 or not 0 <= dampening <= 1:
            raise ConfigError("momentum and weight_decay must be >= 0, dampening in [0, 1]")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ConfigError("nesterov needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def step(self) -> None:
        """One fused sgd_step launch per flat buffer (clipping included, see clip_grad_norm_)."""
        for group in self.param_groups:
            for p in group["params"]:
                self._launch_step("sgd_step", p, p.params, p.grads, *self._step_args(group, p))

    def fused_step(self, p: FlatParams, max_norm: float, slot: int) -> tuple:
        """Book one step of P at norm SLOT that a fused update kernel takes itself
        (kernels/ppo_update.cl), exactly as clip_grad_norm_ and step() would, and return its
        step arguments: (velocity, prev_update, max_norm, skip_above, lr, momentum,
        dampening, weight_decay, nesterov, first)."""
        (group,) = [g for g in self.param_groups if p in g["params"]]
        p.pending_clip = (float(max_norm), slot)
        velocity, prev_update, _, _, max_norm, skip_above, _, *hyper = self._step_args(group, p)
        return (velocity, prev_update, max_norm, skip_above, *hyper)

    def fused_steps(self, p: FlatParams, max_norm: float, slots: range) -> tuple:
        """``fused_step`` for each of SLOTS (consecutive norm slots) at once, booked exactly
        as those calls would book them (a population books every agent's iteration so:
        rlcl/batched.py): their common arguments, with ``first`` a list, one per step."""
        args = self.fused_step(p, max_norm, slots[0])
        skip_above = self._launched[-1][2]
        self._launched.extend((p, slot, skip_above) for slot in slots[1:])
        later = int("momentum_buffer" not in self.state[p])  # the first step allocated it
        return (*args[:-1], [args[-1]] + [later] * (len(slots) - 1))

    def _step_args(self, group: dict, p: FlatParams) -> tuple:
        """Book one step of P (state allocated lazily, as torch does; the clip and guard
        scalars) and return sgd_step's arguments after the gradient buffer."""
        state = self.state[p]
        if "prev_update" not in state:
            state["prev_update"] = p.device.zeros(p.n)
        first = "momentum_buffer" not in state
        if first and group["momentum"] != 0:  # zeros in case a skipped step comes first
            state["momentum_buffer"] = p.device.zeros(p.n)
        velocity = state.get("momentum_buffer", p.grads)  # unused without momentum
        return (velocity, state["prev_update"], *self._clip_and_skip(p), p.n, group["lr"],
                group["momentum"], group["dampening"], group["weight_decay"],
                int(group["nesterov"]), int(first))
