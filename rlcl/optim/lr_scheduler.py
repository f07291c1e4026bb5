"""Learning-rate schedules with torch's interface: ``step()``, ``get_last_lr()``, state dicts.

Both compute the lr in closed form from the step count, so a resumed run gets the same lr to
the bit, and both multiply it by ``lr_scale`` (1.0), which only the divergence guard changes.
"""

from __future__ import annotations

import math


class _Schedule:
    """The shared bookkeeping: base lrs, the step count and lr_scale."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.last_epoch = 0
        self._lr_scale = 1.0
        self._apply()

    def lr_at(self, t: int, base_lr: float) -> float:
        raise NotImplementedError

    @property
    def lr_scale(self) -> float:
        return self._lr_scale

    @lr_scale.setter
    def lr_scale(self, value: float) -> None:
        """Takes effect at once, so a state saved right after a change resumes identically."""
        self._lr_scale = float(value)
        self._apply()

    def _apply(self) -> None:
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(self.last_epoch, base) * self._lr_scale

    def step(self) -> None:
        self.last_epoch += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"base_lrs": list(self.base_lrs), "last_epoch": self.last_epoch,
                "lr_scale": self._lr_scale}

    def load_state_dict(self, state: dict) -> None:
        self.base_lrs, self.last_epoch = list(state["base_lrs"]), state["last_epoch"]
        self.lr_scale = state["lr_scale"]  # applies the lr


class CosineAnnealingLR(_Schedule):
    """lr_t = eta_min + (lr_0 - eta_min) * (1 + cos(pi * t / T_max)) / 2, times ``lr_scale``.

    Loshchilov & Hutter 2017, without restarts. Unlike torch's recursive form it does not rise
    again past T_max: it stays at eta_min.
    """

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0):
        if T_max <= 0:
            raise ValueError("T_max must be a positive number of steps")
        self.T_max, self.eta_min = int(T_max), float(eta_min)
        super().__init__(optimizer)

    def lr_at(self, t: int, base_lr: float) -> float:
        cosine = (1 + math.cos(math.pi * min(t, self.T_max) / self.T_max)) / 2
        return self.eta_min + (base_lr - self.eta_min) * cosine

    def state_dict(self) -> dict:
        return {**super().state_dict(), "T_max": self.T_max, "eta_min": self.eta_min}

    def load_state_dict(self, state: dict) -> None:
        self.T_max, self.eta_min = state["T_max"], state["eta_min"]
        super().load_state_dict(state)


class ConstantLR(_Schedule):
    """A constant lr (times ``lr_scale``)."""

    def lr_at(self, t: int, base_lr: float) -> float:
        return base_lr
