"""What the divergence guard does after an iteration (issue 4): z-scores of the gradient norm
and the loss against their own exponential moving history, and the rules that turn an
iteration's statistics into a verdict. rlcl/guard.py carries the verdict out on the device;
docs/architecture.md ("Diagnostics and the divergence guard") explains the thresholds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


class Ema:
    """Exponential moving mean and variance, for z-scores against a run's own history.

    With ``log=True`` it tracks log(x): gradient norms drift and jump multiplicatively (they
    follow the scale of the returns), so a spike is a ratio, and the std floor is 0.5 in log
    units: at z = 6 a gradient norm must be about 20x its running level to count.
    """

    def __init__(self, beta: float = 0.9, log: bool = False):
        self.beta, self.mean, self.var, self.count, self.log = beta, 0.0, 0.0, 0, log

    WARMUP = 10  # observations before z-scores count: early training moves fast

    def _scale(self) -> float:
        # RL statistics are heavy-tailed: a std floor keeps ordinary jumps (a value loss that
        # doubles as episodes lengthen) from reading as spikes
        floor = 0.5 if self.log else 0.25 * abs(self.mean)
        return math.sqrt(self.var + 1e-12 + floor**2)

    def _x(self, x: float) -> float:
        return math.log(max(x, 1e-30)) if self.log else x

    def z(self, x: float) -> float:
        if not math.isfinite(x):
            return math.inf
        return 0.0 if self.count < self.WARMUP else (self._x(x) - self.mean) / self._scale()

    def update(self, x: float) -> None:
        if not math.isfinite(x):
            return
        x = self._x(x)
        if self.count == 0:
            self.mean = x
        delta = x - self.mean
        self.mean += (1 - self.beta) * delta
        self.var = self.beta * (self.var + (1 - self.beta) * delta * delta)
        self.count += 1

    def upper(self, z: float) -> float:
        """The value whose z-score is Z (+inf until there is a history)."""
        if self.count < self.WARMUP:
            return math.inf
        level = self.mean + z * self._scale()
        return math.exp(min(level, 700.0)) if self.log else level


@dataclass
class Verdict:
    """What the guard should do after an iteration, and why."""

    action: str  # "ok", "skipped" (bad steps were refused) or "rollback"
    reason: str = ""
    value: float = 0.0


@dataclass
class DivergenceMonitor:
    """z-scores of the gradient norm and the loss against their EMA, and the guard's rules.

    Per step (on the device): a gradient norm past ``skip_threshold()`` or NaN is refused.
    Per iteration (here): non-finite parameters or loss, ``max_skips`` or more refused steps,
    or an update larger than ``max_update_ratio`` times the parameters call for a rollback.
    The loss z-score is reported, not acted on: a loss may jump for good reasons.
    """

    z: float = 6.0
    max_skips: int = 3
    max_update_ratio: float = 0.5
    grad_ema: Ema = field(default_factory=lambda: Ema(log=True))
    loss_ema: Ema = field(default_factory=Ema)

    def skip_threshold(self) -> float:
        return self.grad_ema.upper(self.z)

    def observe(self, stats: dict) -> tuple[dict, Verdict]:
        """Divergence figures for STATS (agents/ppo.py summarise) and the verdict."""
        figures = {"grad_norm_z": self.grad_ema.z(stats["grad_norm_preclip_max"]),
                   "loss_z": self.loss_ema.z(stats["loss"])}
        verdict = Verdict("ok")
        if stats["nonfinite_params"] > 0:
            verdict = Verdict("rollback", "nonfinite_params", stats["nonfinite_params"])
        elif stats["skipped_steps"] >= self.max_skips:
            verdict = Verdict("rollback", "skipped_steps", stats["skipped_steps"])
        elif not math.isfinite(stats["loss"]):
            verdict = Verdict("rollback", "loss", stats["loss"])
        elif stats.get("update_ratio", 0.0) > self.max_update_ratio:  # none: nothing moved
            verdict = Verdict("rollback", "update_ratio", stats["update_ratio"])
        elif stats["skipped_steps"] > 0:
            verdict = Verdict("skipped", "grad_norm", stats["grad_norm_preclip_max"])
        if verdict.action == "ok":  # only healthy iterations shape the baseline
            self.grad_ema.update(stats["grad_norm_preclip_max"])
            self.loss_ema.update(stats["loss"])
        return figures, verdict
