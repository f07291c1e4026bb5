"""Learning-rate schedules with torch's interface: ``step()``, ``get_last_lr()``, state dicts."""

from __future__ import annotations

import math


class CosineAnnealingLR:
    """lr_t = eta_min + (lr_0 - eta_min) * (1 + cos(pi * t / T_max)) / 2, times ``lr_scale``.

    Computed in closed form from the step count t (Loshchilov & Hutter 2017, without restarts),
    so resuming from a saved t gives the same lr to the bit. Unlike torch's recursive form it
    does not rise again past T_max: it stays at eta_min. ``lr_scale`` (1.0) is changed only by
    the divergence guard.
    """

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0):
        if T_max <= 0:
            raise ValueError("T_max must be a positive number of steps")
        self.optimizer, self.T_max, self.eta_min = optimizer, int(T_max), float(eta_min)
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.last_epoch = 0
        self._lr_scale = 1.0
        self._apply()

    @property
    def lr_scale(self) -> float:
        return self._lr_scale

    @lr_scale.setter
    def lr_scale(self, value: float) -> None:
        """Takes effect at once, so a state saved right after a change resumes identically."""
        self._lr_scale = float(value)
        self._apply()

    def lr_at(self, t: int, base_lr: float) -> float:
        t = min(t, self.T_max)
        cosine = (1 + math.cos(math.pi * t / self.T_max)) / 2
        return (self.eta_min + (base_lr - self.eta_min) * cosine) * self._lr_scale

    def _apply(self) -> None:
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(self.last_epoch, base)

    def step(self) -> None:
        self.last_epoch += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"T_max": self.T_max, "eta_min": self.eta_min, "base_lrs": list(self.base_lrs),
                "last_epoch": self.last_epoch, "lr_scale": self.lr_scale}

    def load_state_dict(self, state: dict) -> None:
        for key in ("T_max", "eta_min", "base_lrs", "last_epoch"):
            setattr(self, key, state[key])
        self.lr_scale = state["lr_scale"]  # applies the lr


class ConstantLR:
    """A constant lr (times ``lr_scale``), with the same interface as CosineAnnealingLR."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.last_epoch, self._lr_scale = 0, 1.0

    @property
    def lr_scale(self) -> float:
        return self._lr_scale

    @lr_scale.setter
    def lr_scale(self, value: float) -> None:
        self._lr_scale = float(value)
        self._apply()

    def _apply(self) -> None:
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * self._lr_scale

    def step(self) -> None:
        self.last_epoch += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"base_lrs": list(self.base_lrs), "last_epoch": self.last_epoch,
                "lr_scale": self.lr_scale}

    def load_state_dict(self, state: dict) -> None:
        self.base_lrs, self.last_epoch = state["base_lrs"], state["last_epoch"]
        self.lr_scale = state["lr_scale"]
