"""Rollout storage on the device, collection, GAE and minibatch gathering (shared by PPO/A2C).

Storage is (num_steps, num_envs) row-major, flattened to ``t * N + n``. ``obs``, ``actions``,
``logp`` and ``values`` have one extra row T for the observation after the last step, whose
value GAE bootstraps from. Non-blocking uploads of temporaries are safe: pyopencl keeps the
host array alive until the copy has finished. Per env step the host uploads the observations, launches one fused
``policy_act`` and reads back only the actions; rewards and end flags go up once per rollout.
"""

from __future__ import annotations

import time

import numpy as np

from rlcl.device import Device
from rlcl.envs import finished_episodes
from rlcl.kernel_constants import RUNNING, TERMINATED, TRUNCATED
from rlcl.policy import STREAM_BOOTSTRAP, STREAM_ROLLOUT, ActorCritic


class Rollout:
    def __init__(self, device: Device, policy: ActorCritic, num_steps: int, num_envs: int,
                 minibatch_size: int, num_updates: int):
        T, N = num_steps, num_envs
        obs_dim, act_dim = policy.obs_dim, policy.act_dim
        self.device, self.T, self.N, self.obs_dim, self.act_dim = device, T, N, obs_dim, act_dim
        rows = (T + 1) * N
        self.obs = device.empty(rows * obs_dim)
        self.actions = device.zeros(rows * act_dim, np.int32)  # 32-bit words: int or floats
        self.logp = device.empty(rows)
        self.values = device.empty(rows)
        self.rewards = device.empty(T * N)
        self.ends = device.empty(T * N, np.int32)
        self.trunc_values = device.zeros(T * N)
        self.advantages = device.empty(T * N)
        self.returns = device.empty(T * N)
        self.rewards_host = np.zeros((T, N), np.float32)
        self.ends_host = np.zeros((T, N), np.int32)
        self.actions_host = np.zeros(N * act_dim, policy.action_dtype)
        self.env_seconds = 0.0  # host time in envs.step, for --profile
        self.readback_seconds = 0.0  # waiting for the actions (policy_act + the copy)
        # truncation bootstrap scratch: N rows of final observations and their outputs
        self.boot_obs = device.empty(N * obs_dim)
        self.boot_actions = device.empty(N * act_dim, np.int32)
        self.boot_logp = device.empty(N)
        self.boot_values = device.empty(N)
        # minibatch buffers; observations go straight into the policy's input buffer
        self.indices = device.empty(num_updates * minibatch_size, np.int32)
        self.mb_actions = device.empty(minibatch_size * act_dim, np.int32)
        self.mb_logp = device.empty(minibatch_size)
        self.mb_adv = device.empty(minibatch_size)
        self.mb_ret = device.empty(minibatch_size)
        self.mb_val = device.empty(minibatch_size)
        self.outputs = None  # the actor's outputs per stored step, where collect writes them

    def collect(self, envs, obs: np.ndarray, policy: ActorCritic, seed: int, iteration: int,
                global_step: int) -> tuple[np.ndarray, list[tuple[int, float, int]]]:
        """Run T vector steps from OBS; return the observation to start the next rollout from
        and the (global step, return, length) of every episode that ended, in order."""
        finished = []
        dev, N, D = self.device, self.N, self.obs_dim
        for t in range(self.T):
            obs = np.ascontiguousarray(obs, np.float32)
            dev.write(self.obs, obs, offset=t * N * D)
            policy.act(self.obs, N, self.actions, self.logp, self.values, t * N, seed,
                       STREAM_ROLLOUT, t, iteration)
            t0 = time.perf_counter()
            dev.read_into(self.actions_host, self.actions,
                          offset=t * N * self.act_dim)  # the one readback per step
            t1 = time.perf_counter()
            obs, rewards, terminated, truncated, infos = envs.step(
                policy.env_actions(self.actions_host))
            self.readback_seconds += t1 - t0
            self.env_seconds += time.perf_counter() - t1
            global_step += N
            self.rewards_host[t] = rewards
            self.ends_host[t] = np.where(terminated, TERMINATED,
                                         np.where(truncated, TRUNCATED, RUNNING))
            if np.any(truncated & ~terminated):
                self._bootstrap_truncated(policy, obs, infos, t, seed, iteration)
            for ret, length in finished_episodes(infos):
                finished.append((global_step, ret, length))
        obs = np.ascontiguousarray(obs, np.float32)
        dev.write(self.obs, obs, offset=self.T * N * D)
        policy.act(self.obs, N, self.actions, self.logp, self.values, self.T * N, seed,
                   STREAM_ROLLOUT, self.T, iteration)
        dev.write(self.rewards, self.rewards_host)
        dev.write(self.ends, self.ends_host)
        return obs, finished

    def _bootstrap_truncated(self, policy, obs, infos, t, seed, iteration) -> None:
        """trunc_values[t] = V(final_obs) (SB3 issue 633): a time limit is not a failure.
        Rows of envs that did not truncate hold V(obs) but gae ignores them (ends != 2)."""
        dev, N = self.device, self.N
        final = np.array(obs, np.float32)
        for i in np.flatnonzero(infos["_final_obs"]):
            final[i] = infos["final_obs"][i]
        dev.write(self.boot_obs, final)
        policy.act(self.boot_obs, N, self.boot_actions, self.boot_logp, self.boot_values, 0,
                   seed, STREAM_BOOTSTRAP, t, iteration)
        dev.copy(self.trunc_values, self.boot_values, N, dst_offset=t * N)

    def compute_gae(self, gamma: float, gae_lambda: float) -> None:
        self.device.launch("gae", (self.N,), None, self.advantages, self.returns, self.rewards,
                           self.values, self.ends, self.trunc_values, self.T, self.N, gamma,
                           gae_lambda)

    def upload_indices(self, indices: np.ndarray) -> None:
        """All minibatch indices of one iteration, uploaded once."""
        self.device.write(self.indices, np.ascontiguousarray(indices, np.int32))

    def gather(self, policy: ActorCritic, offset: int, m: int) -> None:
        """Minibatch rows indices[offset : offset + m] into the policy input and mb_* buffers."""
        self.device.launch("gather_minibatch", (m,), None, policy.obs_buffer, self.mb_actions,
                           self.mb_logp, self.mb_adv, self.mb_ret, self.mb_val, self.indices,
                           offset, self.obs, self.actions, self.logp, self.advantages,
                           self.returns, self.values, m, self.obs_dim, self.act_dim)
