"""``env_backend = "device"``: the classic-control envs stepped on the device, and the whole
rollout in one launch per iteration (issue 11; kernels/device_rollout.cl).

:class:`DeviceEnvs` stands where a gymnasium vector env stands in the host path: it holds the
envs' state (and the observation and reward normalisation statistics) in device buffers, resets
them from the run seed, and gives a checkpoint that state as numpy arrays. :class:`DeviceRollout`
is :class:`rlcl.rollout.Rollout` whose ``collect`` is one ``rollout_classic`` launch and one
small readback (the episodes that ended), instead of an upload, a launch, a readback and a
gymnasium step per env step. Storage, GAE and minibatches are the host path's.

Normalisation statistics update at every env step from the batch of envs, as the host
wrappers' do (rlcl/envs.py), in float32 on the device rather than float64 on the host.
"""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np

from rlcl.device import Device
from rlcl.device_envs import DEVICE_ENVS, STATE_DIM
from rlcl.errors import ConfigError
from rlcl.policy import STREAM_ENV_RESET, STREAM_ROLLOUT, ActorCritic
from rlcl.rollout import Rollout


class DeviceEnvs:
    """NUM_ENVS copies of ENV_ID on the device (one work-group of num_envs work-items)."""

    def __init__(self, device: Device, env_id: str, num_envs: int, norm_obs: bool,
                 norm_reward: bool, gamma: float):
        if env_id not in DEVICE_ENVS:
            raise ConfigError(f"env_backend = \"device\" runs {', '.join(DEVICE_ENVS)}; set "
                              f"env_backend = \"gymnasium\" for {env_id}")
        limit = device.max_group
        if num_envs > limit:
            raise ConfigError(f"env_backend = \"device\" runs at most {limit} envs on this "
                              f"device (one work-group); got num_envs = {num_envs}")
        env = gym.make(env_id)  # the spaces, as the host path sees them
        self.single_observation_space, self.single_action_space = (env.observation_space,
                                                                   env.action_space)
        env.close()
        self.device, self.spec, self.num_envs = device, DEVICE_ENVS[env_id], num_envs
        self.norm_obs, self.norm_reward, self.gamma = norm_obs, norm_reward, gamma
        D, N = self.spec.obs_dim, num_envs
        self.buffers = {
            "state": device.zeros(N * STATE_DIM), "ints": device.zeros(2 * N, np.int32),
            "ep_acc": device.zeros(2 * N), "ret_acc": device.zeros(N),
            # gymnasium's RunningMeanStd start: mean 0, var 1, count 1e-4
            "obs_rms": device.upload(np.array([0.0] * D + [1.0] * D + [1e-4], np.float32)),
            "ret_rms": device.upload(np.array([0.0, 1.0, 1e-4], np.float32)),
        }
        self.sizes = {"state": N * STATE_DIM, "ints": 2 * N, "ep_acc": 2 * N, "ret_acc": N,
                      "obs_rms": 2 * D + 1, "ret_rms": 3}

    def reset(self, seed: int):
        """Every env starts episode 0 from the run seed. Returns (None, {}): the observations
        stay on the device."""
        b, D, N = self.buffers, self.spec.obs_dim, self.num_envs
        self.device.launch("rollout_classic_reset", (N,), (N,), b["state"], b["ints"],
                           b["ep_acc"], b["obs_rms"], b["ret_acc"], self.spec.env_id, D, N,
                           seed & 0xFFFFFFFF, STREAM_ENV_RESET, int(self.norm_obs),
                           self.device.local(4 * N * max(D, 1)))
        return None, {}

    def state_dict(self) -> dict:
        """The envs and statistics as numpy arrays (what a checkpoint stores)."""
        return {name: self.device.read(buf, self.sizes[name], np.int32 if name == "ints"
                                       else np.float32)
                for name, buf in self.buffers.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, buf in self.buffers.items():
            self.device.write(buf, np.ascontiguousarray(state[name]))
        self.device.queue.finish()

    def normalization_state(self) -> dict:
        """The running statistics in envs.normalization_state's format (for the checkpoint's
        meta and the evaluation on gymnasium's env)."""
        state, D = {}, self.spec.obs_dim
        if self.norm_obs:
            rms = self.device.read(self.buffers["obs_rms"], 2 * D + 1).astype(np.float64)
            state["obs"] = {"mean": rms[:D].tolist(), "var": rms[D:2 * D].tolist(),
                            "count": float(rms[-1])}
        if self.norm_reward:
            mean, var, count = self.device.read(self.buffers["ret_rms"], 3).astype(np.float64)
            state["return"] = {"mean": float(mean), "var": float(var), "count": float(count)}
        return state

    def close(self) -> None:
        """Nothing to release: the buffers go with the object."""


class DeviceRollout(Rollout):
    """The host path's storage, GAE and minibatches; collection in one launch."""

    def __init__(self, device: Device, policy: ActorCritic, envs: DeviceEnvs, num_steps: int,
                 num_envs: int, minibatch_size: int, num_updates: int):
        super().__init__(device, policy, num_steps, num_envs, minibatch_size, num_updates)
        self.ep_log = device.empty(2 * num_steps * num_envs)
        # the actor's outputs at every stored step: the update's "before" logits for
        # smooth/policy_churn, which the host path computes with a forward pass instead
        self.outputs = device.empty(num_steps * num_envs * policy.n_outputs)
        self.ep_log_host = np.zeros((num_steps, num_envs, 2), np.float32)
        width = max(policy.obs_dim, policy.n_outputs, *policy.actor.sizes)
        self.width = width
        self.per_item, self.items = device.rollout_items(num_envs)
        self.scratch = device.local(4 * num_envs * 2 * width)
        self.batch = device.local(4 * num_envs * max(envs.spec.obs_dim, 1))
        # the rollout_classic launch (Device.prepare) and the (envs, policy, seed) it is for
        self.prepared, self.prepared_for = None, None

    def collect(self, envs: DeviceEnvs, obs, policy: ActorCritic, seed: int, iteration: int,
                global_step: int) -> tuple[None, list[tuple[int, float, int]]]:
        """One rollout_classic launch; returns (None, the (global step, return, length) of
        every episode that ended, in step and env order, as the host path lists them)."""
        dev, N = self.device, self.N
        key = (id(envs), id(policy), seed)
        if self.prepared is None or self.prepared_for != key:  # 40 arguments, set once
            self.prepared, self.prepared_for = self._prepare(envs, policy, seed, iteration), key
        self.prepared.launch((self.items,), (self.items,), iteration=iteration)
        t0 = time.perf_counter()
        dev.read_into(self.ep_log_host, self.ep_log)  # the one readback
        self.readback_seconds += time.perf_counter() - t0
        return None, self.finished(global_step)

    def _prepare(self, envs: DeviceEnvs, policy: ActorCritic, seed: int, iteration: int):
        return self.device.prepare(
            "rollout_classic", *self.buffers(envs, policy), *self.sizes(envs, policy),
            self.T, self.N, seed & 0xFFFFFFFF, STREAM_ROLLOUT, STREAM_ENV_RESET, iteration,
            envs.gamma, int(envs.norm_obs), int(envs.norm_reward), self.width, self.per_item,
            self.scratch, self.batch)

    def buffers(self, envs: DeviceEnvs, policy: ActorCritic) -> list:
        """rollout_classic's buffer arguments, in order (rollout_classic_pop's too)."""
        b = envs.buffers
        return [self.obs, self.actions, self.outputs, self.logp, self.values, self.rewards,
                self.ends, self.trunc_values, self.ep_log, b["state"], b["ints"], b["ep_acc"],
                b["obs_rms"], b["ret_rms"], b["ret_acc"], policy.flat.params, policy.layers_buf]

    @staticmethod
    def sizes(envs: DeviceEnvs, policy: ActorCritic) -> list:
        """rollout_classic's arguments n_actor .. max_steps."""
        return [len(policy.actor.layers), len(policy.critic.layers), policy.act_id,
                policy.log_std_off if policy.continuous else -1, envs.spec.env_id,
                envs.spec.obs_dim, envs.spec.max_episode_steps]

    def finished(self, global_step: int) -> list[tuple[int, float, int]]:
        """The episodes that ended in the rollout whose ep_log is in ep_log_host."""
        return finished_episodes(self.ep_log_host[None], [global_step])[0]


def finished_episodes(logs: np.ndarray, global_steps: list[int]) -> list[list[tuple]]:
    """Per agent a of LOGS (agents x steps x envs x (return, length): rollout episode logs, a
    length > 0 where an episode ended), the (global step, return, length) of its episodes in
    step and env order, the rollout having begun at GLOBAL_STEPS[a]. One pass over all of a
    population's agents: a numpy call per agent cost more than its episodes (issue 13)."""
    N = logs.shape[2]
    agent, t, n = np.nonzero(logs[..., 1])
    ends = (t + 1) * N
    rets, lens = logs[agent, t, n, 0].tolist(), logs[agent, t, n, 1].astype(np.int64).tolist()
    out: list[list[tuple]] = [[] for _ in global_steps]
    for a, end, ret, length in zip(agent.tolist(), ends.tolist(), rets, lens):
        out[a].append((global_steps[a] + end, ret, length))
    return out
