"""A2C (Mnih et al. 2016, synchronous as in SB3): PPO's machinery with one epoch, one
minibatch holding the whole rollout in order, and the plain policy gradient -adv * log pi(a|s)
instead of the clipped surrogate (loss.cl pg_mode 1).

Coming from SB3: its value loss is F.mse_loss, rlcl's (like CleanRL's) is 0.5 * MSE, so SB3's
vf_coef 0.5 is rlcl's vf_coef 1.0.
"""

from __future__ import annotations

import numpy as np

from rlcl.agents.ppo import PPO


class A2C(PPO):
    PG_MODE = 1  # loss.cl: -adv * log pi

    def minibatch_order(self, rng: np.random.Generator) -> np.ndarray:
        """The rollout in storage order: one pass, nothing to shuffle (the host RNG is left
        untouched)."""
        return np.arange(self.cfg.batch_size)
