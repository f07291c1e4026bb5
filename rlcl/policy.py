"""Actor-critic for Discrete action spaces on one flat parameter buffer.

The actor maps an observation to action logits, the critic to a value; both are MLPs with
the same hidden sizes and activation, laid out actor first in one :class:`FlatParams`.

* :meth:`act`: the fused rollout step (policy.cl ``policy_act``): forward of both networks plus
  sampling, one launch for a whole batch of observations.
* :meth:`evaluate`: forward of both networks on a minibatch, keeping activations.
* :meth:`backward`: gradients from d(loss)/d(logits) and d(loss)/d(values).
"""

from __future__ import annotations

import numpy as np
import pyopencl as cl

from rlcl.device import Device
from rlcl.nn import MLP, FlatParams

# Philox streams: one key half per use, so the same counters never collide across uses.
STREAM_ROLLOUT, STREAM_EVAL, STREAM_BOOTSTRAP = 1, 2, 3


def _pow2_at_most(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)


class ActorCritic:
    def __init__(self, device: Device, obs_dim: int, n_actions: int, hidden_sizes: list[int],
                 activation: str, seed: int, max_batch: int, norm_slots: int = 1):
        self.device = device
        self.obs_dim, self.n_actions = obs_dim, n_actions
        self.actor = MLP([obs_dim, *hidden_sizes, n_actions], activation, first=0)
        self.critic = MLP([obs_dim, *hidden_sizes, 1], activation, first=self.actor.end)
        host = np.zeros(self.critic.end, np.float64)
        # CleanRL ppo.py: hidden gain sqrt(2), a near-uniform initial policy (0.01) and a unit
        # value head (Andrychowicz et al. 2021, "What matters in on-policy RL", sec. 3.2).
        rng = np.random.default_rng([seed, 0x1A17])
        self.actor.init(host, rng, np.sqrt(2.0), 0.01)
        self.critic.init(host, rng, np.sqrt(2.0), 1.0)
        self.flat = FlatParams(device, host, norm_slots)
        table = [(l.w_off, l.b_off, l.n_in, l.n_out) for l in self.actor.layers + self.critic.layers]
        self.layer_table = np.array(table, np.int32)
        self.layers_buf = device.upload(self.layer_table)
        self.act_id = self.actor.act
        width = max(obs_dim, n_actions, *hidden_sizes)
        self.local_size = min(_pow2_at_most(max(hidden_sizes + [n_actions])), 64,
                              _pow2_at_most(device.device.max_work_group_size))
        self._local_bytes = width * 4
        self.max_batch = max_batch
        self.actor_acts = self.actor.alloc(device, max_batch)
        self.critic_acts = self.critic.alloc(device, max_batch)
        self.critic_acts[0] = self.actor_acts[0]  # both networks read the same observations
        self.actor_scratch = self.actor.alloc_grads(device, max_batch)
        self.critic_scratch = self.critic.alloc_grads(device, max_batch)

    @property
    def obs_buffer(self):
        """Where :meth:`evaluate` reads its observations (max_batch x obs_dim)."""
        return self.actor_acts[0]

    @property
    def logits(self):
        return self.actor_acts[-1]

    @property
    def values(self):
        return self.critic_acts[-1]

    def act(self, obs_buf, n: int, actions, logp, values, out_off: int, seed: int, stream: int,
            step: int, iteration: int, greedy: bool = False) -> None:
        """Sample actions for the N observations in OBS_BUF into the given buffers at OUT_OFF.
        The counter (env, step, iteration) under key (seed, stream) drives the sampling."""
        L = self.local_size
        self.device.launch(
            "policy_act", (n * L,), (L,), actions, logp, values, out_off, obs_buf,
            self.flat.params, self.layers_buf, len(self.actor.layers), len(self.critic.layers),
            self.act_id, n, seed & 0xFFFFFFFF, stream, step, iteration, int(greedy),
            cl.LocalMemory(self._local_bytes), cl.LocalMemory(self._local_bytes))

    def evaluate(self, batch: int) -> None:
        """Forward both networks on the BATCH rows of :attr:`obs_buffer`; results land in
        :attr:`logits` and :attr:`values` with activations kept for :meth:`backward`."""
        self.actor.forward(self.device, self.flat.params, self.actor_acts, batch)
        self.critic.forward(self.device, self.flat.params, self.critic_acts, batch)

    def backward(self, dlogits, dvalues, batch: int) -> None:
        """Write the full gradient into ``flat.grads`` (overwriting, not accumulating)."""
        flat = self.flat
        self.actor.backward(self.device, flat.params, flat.grads, self.actor_acts, dlogits,
                            self.actor_scratch, batch)
        self.critic.backward(self.device, flat.params, flat.grads, self.critic_acts, dvalues,
                             self.critic_scratch, batch)
