"""Actor-critic on one flat parameter buffer, for Discrete and Box action spaces.

The actor maps an observation to action logits (Discrete) or to the mean of a diagonal
Gaussian (Box, with a state-independent log-std parameter after the critic in the same flat
buffer); the critic maps it to a value. Both are MLPs with the same hidden sizes.

* :meth:`act`: the fused rollout step (``policy_act`` / ``policy_act_gaussian``): forward of
  both networks plus sampling, one launch for a whole batch of observations.
* :meth:`evaluate`: forward of both networks on a minibatch, keeping activations.
* :meth:`loss`: the PPO/A2C loss kernel of this head, writing d(loss)/d(outputs).
* :meth:`backward`: gradients of all parameters from those.

Actions are stored as ``act_dim`` 32-bit words each: one int (Discrete) or A floats (Box).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from rlcl.device import Device
from rlcl.kernel_constants import AC_COLUMNS, LAYER_COLUMNS, NUM_LOSS_STATS
from rlcl.nn import MLP, FlatParams, backward_param_tiles

# Philox streams: one key half per use, so the same counters never collide across uses.
STREAM_ROLLOUT, STREAM_EVAL, STREAM_BOOTSTRAP, STREAM_ENV_RESET = 1, 2, 3, 4


class ActorCritic:
    def __init__(self, device: Device, obs_dim: int, action_space: gym.Space,
                 hidden_sizes: list[int], activation: str, seed: int, max_batch: int,
                 norm_slots: int = 1):
        self.device = device
        self.obs_dim = obs_dim
        self.continuous = isinstance(action_space, gym.spaces.Box)
        if self.continuous:
            self.n_outputs = self.act_dim = int(np.prod(action_space.shape))
            self.low, self.high = action_space.low.ravel(), action_space.high.ravel()
            self.action_dtype = np.float32
        else:
            self.n_outputs, self.act_dim, self.action_dtype = int(action_space.n), 1, np.int32
            self.action_start = int(action_space.start)  # Discrete(n, start): start .. start+n-1
        self.actor = MLP([obs_dim, *hidden_sizes, self.n_outputs], activation, first=0)
        self.critic = MLP([obs_dim, *hidden_sizes, 1], activation, first=self.actor.end)
        self.log_std_off = self.critic.end
        n_params = self.critic.end + (self.act_dim if self.continuous else 0)
        host = np.zeros(n_params, np.float64)  # log_std starts at 0: std 1 (SB3, CleanRL)
        # CleanRL ppo.py: hidden gain sqrt(2), a near-uniform initial policy (0.01) and a unit
        # value head (Andrychowicz et al. 2021, "What matters in on-policy RL", sec. 3.2).
        rng = np.random.default_rng([seed, 0x1A17])
        self.actor.init(host, rng, np.sqrt(2.0), 0.01)
        self.critic.init(host, rng, np.sqrt(2.0), 1.0)
        self.flat = FlatParams(device, host, norm_slots)
        table = [[getattr(layer, col) for col in LAYER_COLUMNS]
                 for layer in self.actor.layers + self.critic.layers]
        self.layer_table = np.array(table, np.int32)
        self.layers_buf = device.upload(self.layer_table)
        self.act_id = self.actor.act
        self.local_size = device.group_size(min(64, max(hidden_sizes + [self.n_outputs])))
        # policy_act's two local buffers (ha, hb), each this many bytes (eval.py's too)
        self.act_local_bytes = 4 * max(obs_dim, self.n_outputs, *hidden_sizes)
        self.max_batch = max_batch
        self._alloc(device, max_batch)

    def _alloc(self, device: Device, rows: int) -> None:
        """Buffers for up to ROWS rows: the observations, outputs, values and their gradients,
        which other kernels read and write too, each on its own; the hidden activations and
        deltas of both networks, which only actor_critic.cl touches, as regions of one buffer
        (``hidden``); and the table that tells actor_critic.cl where each layer's regions are
        (-1: the layer's input is ``obs_buffer`` / its output is the network's own buffer)."""
        actor, critic = self.actor, self.critic
        self.obs_buffer = device.empty(rows * self.obs_dim)
        self.outputs = device.empty(rows * self.n_outputs)  # logits or Gaussian means
        self.values = device.empty(rows)
        self.d_outputs = device.empty(rows * self.n_outputs)  # d(loss)/d(outputs)
        self.d_values = device.empty(rows)
        self.d_log_std = device.empty(rows * self.act_dim) if self.continuous else None
        table, tiles, end = [], 0, 0
        self.hidden_offsets = []  # per network: [(activation, delta) offset per hidden layer]
        for mlp in (actor, critic):
            regions = []
            for width in mlp.sizes[1:-1]:
                regions.append((end, end + rows * width))
                end += 2 * rows * width
            self.hidden_offsets.append(regions)
            last = len(mlp.layers) - 1
            for k, layer in enumerate(mlp.layers):
                act_in, delta_in = regions[k - 1] if k else (-1, -1)
                act_out, delta_out = regions[k] if k < last else (-1, -1)
                row = {"w_off": layer.w_off, "b_off": layer.b_off, "n_in": layer.n_in,
                       "n_out": layer.n_out, "in_off": act_in, "out_off": act_out,
                       "dout_off": delta_out, "din_off": delta_in, "tile_start": tiles,
                       "act": mlp.act if k < last else 0}
                table.append([row[col] for col in AC_COLUMNS])
                tiles += backward_param_tiles(layer.n_in, layer.n_out, device.tile_cols)
        self.hidden = device.empty(end)
        self.weights_t = device.empty(self.flat.n)  # W transposed, for the backward deltas
        self.ac_table = np.array(table, np.int32)
        self.ac_table_buf = device.upload(self.ac_table)
        self.n_param_tiles = tiles

    def act(self, obs_buf, n: int, actions, logp, values, out_off: int, seed: int, stream: int,
            step: int, iteration: int, greedy: bool = False) -> None:
        """Sample actions for observation rows out_off .. out_off + n - 1 of OBS_BUF into the
        same rows of ACTIONS, LOGP and VALUES. The counter (env, step, iteration) under key
        (seed, stream) drives the sampling."""
        L = self.local_size
        head = ((self.log_std_off,) if self.continuous else ())
        self.device.launch(
            "policy_act_gaussian" if self.continuous else "policy_act", (n * L,), (L,), actions,
            logp, values, out_off, obs_buf, self.flat.params, self.layers_buf,
            len(self.actor.layers), len(self.critic.layers), self.act_id, *head, n,
            seed & 0xFFFFFFFF, stream, step, iteration, int(greedy),
            self.device.local(self.act_local_bytes), self.device.local(self.act_local_bytes))

    def env_actions(self, actions: np.ndarray) -> np.ndarray:
        """What the env receives: Discrete action indices 0 .. n-1 shifted by the space's
        ``start``; Box actions clipped to the space's bounds (the stored log-probs stay those
        of the unclipped sample, as in SB3 and CleanRL)."""
        if not self.continuous:
            return actions + self.action_start if self.action_start else actions
        return np.clip(actions.reshape(-1, self.act_dim), self.low, self.high)

    def evaluate(self, batch: int, critic: bool = True) -> None:
        """Forward both networks (without CRITIC: the actor alone, network 0) on the BATCH
        rows of :attr:`obs_buffer`; results land in :attr:`outputs` and :attr:`values` with
        activations kept for :meth:`backward`. One launch (actor_critic.cl); MLP.forward is
        the per-layer equivalent."""
        self.device.launch("ac_forward", (-(-batch // 4), 1 + int(critic)), None, self.hidden, self.outputs,
                           self.values, self.obs_buffer, self.flat.params, self.ac_table_buf,
                           len(self.actor.layers), batch)

    def loss(self, stats, row: int, actions, old_logp, advantages, returns, old_values,
             batch: int, clip_coef: float, clip_vloss: bool, ent_coef: float, vf_coef: float,
             norm_adv: bool, pg_mode: int, scratch_size: int) -> None:
        """The head's loss kernel on the last :meth:`evaluate`: statistics into stats[row],
        d(loss)/d(outputs, values) into this object's buffers."""
        L = scratch_size
        common = (actions, old_logp, advantages, returns, old_values, batch, self.n_outputs,
                  clip_coef, int(clip_vloss), ent_coef, vf_coef, int(norm_adv), pg_mode,
                  self.device.local(4 * NUM_LOSS_STATS * L))
        if self.continuous:
            self.device.launch("ppo_loss_gaussian", (L,), (L,), self.d_outputs, self.d_values,
                               self.d_log_std, stats, row, self.outputs, self.values,
                               self.flat.params, self.log_std_off, *common)
        else:
            self.device.launch("ppo_loss", (L,), (L,), self.d_outputs, self.d_values, stats,
                               row, self.outputs, self.values, *common)

    def backward(self, batch: int) -> None:
        """Write the full gradient into ``flat.grads`` (overwriting, not accumulating): the
        deltas of every layer, then every parameter tile (actor_critic.cl); MLP.backward is
        the per-layer equivalent."""
        flat, dev = self.flat, self.device
        dev.launch("ac_transpose", (64, 2), None, self.weights_t, flat.params, self.ac_table_buf,
                   len(self.actor.layers))
        dev.launch("ac_backward_deltas", (-(-batch // 4), 2), None, self.hidden, self.d_outputs,
                   self.d_values, self.weights_t, self.ac_table_buf, len(self.actor.layers),
                   batch)
        dev.launch("ac_backward_params", (self.n_param_tiles,), None, flat.grads, self.hidden,
                   self.obs_buffer, self.d_outputs, self.d_values, self.ac_table_buf,
                   len(self.actor.layers), self.n_param_tiles, batch)
        if self.continuous:
            self.device.launch("column_sum", (self.act_dim,), None, flat.grads,
                               self.log_std_off, self.d_log_std, batch, self.act_dim)

    def std(self) -> np.ndarray | None:
        """exp(log_std) of a Gaussian head (a small readback), None for Discrete."""
        if not self.continuous:
            return None
        return np.exp(self.device.read(self.flat.params, self.act_dim, offset=self.log_std_off))
