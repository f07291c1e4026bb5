"""Environments: aliases, vector-env creation and seeding, episode statistics.

Vector envs use gymnasium 1.x ``SyncVectorEnv`` with ``AutoresetMode.SAME_STEP``: when a
sub-env ends, ``step`` returns the first observation of the next episode and puts the last
one in ``info["final_obs"]``, which the rollout needs to bootstrap time-limit truncations.
"""

from __future__ import annotations

import difflib
from functools import partial

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorWrapper
from gymnasium.wrappers.utils import RunningMeanStd
from gymnasium.wrappers.vector import RecordEpisodeStatistics

from rlcl.errors import ConfigError

ALIASES = {
    "CartPole": "CartPole-v1",
    "Acrobot": "Acrobot-v1",
    "MountainCar": "MountainCar-v0",
    "MountainCarContinuous": "MountainCarContinuous-v0",
    "Pendulum": "Pendulum-v1",
    "LunarLander": "LunarLander-v3",
}
# Seeds of the evaluation envs are offset so they never replay a training episode's start.
EVAL_SEED_OFFSET = 1_000_003


def resolve_env(name: str) -> tuple[str, str]:
    """(gymnasium id, alias used for config lookup) for an alias or a registered id."""
    if name in ALIASES:
        return ALIASES[name], name
    for alias, env_id in ALIASES.items():
        if name == env_id:
            return env_id, alias
    if name in gym.registry:
        return name, name.split("-v")[0]
    close = difflib.get_close_matches(name, [*ALIASES, *gym.registry], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"unknown environment {name!r}{hint}; use an alias "
                      f"({', '.join(ALIASES)}) or a registered gymnasium id")


def normalize_obs(obs, mean, var, epsilon: float = 1e-8, clip: float = 10.0) -> np.ndarray:
    """SB3 VecNormalize's observation transform: clip((obs - mean) / sqrt(var + eps), +-clip)."""
    scaled = (np.asarray(obs) - np.asarray(mean)) / np.sqrt(np.asarray(var) + epsilon)
    return np.clip(scaled, -clip, clip).astype(np.float32)


class NormalizeObservation(VectorWrapper):
    """Running normalisation of observations, as SB3's VecNormalize does it:
    clip((obs - mean) / sqrt(var + 1e-8), -10, 10), statistics updated on every step.

    gymnasium's own vector NormalizeObservation refuses SAME_STEP autoreset, because it would
    leave ``info["final_obs"]`` raw; this one normalises the final observations too (with the
    same statistics), so a truncation bootstraps from V(normalised final obs).
    ``update_running_mean = False`` freezes the statistics (evaluation).
    """

    def __init__(self, env, epsilon: float = 1e-8, clip: float = 10.0):
        super().__init__(env)
        self.obs_rms = RunningMeanStd(shape=env.single_observation_space.shape)
        self.epsilon, self.clip = epsilon, clip
        self.update_running_mean = True

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        return normalize_obs(obs, self.obs_rms.mean, self.obs_rms.var, self.epsilon, self.clip)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        if self.update_running_mean:
            self.obs_rms.update(obs)
        return self.normalize(obs), info

    def step(self, actions):
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        if self.update_running_mean:
            self.obs_rms.update(obs)
        if "final_obs" in info:
            final = info["final_obs"].copy()
            for i in np.flatnonzero(info["_final_obs"]):
                final[i] = self.normalize(final[i])
            info = {**info, "final_obs": final}
        return self.normalize(obs), rewards, terminated, truncated, info


class NormalizeReward(VectorWrapper):
    """Reward scaling as SB3's VecNormalize does it, under rlcl's SAME_STEP autoreset: per env
    a running discounted return ``ret = gamma * ret + r`` (updated first, its variance tracked
    over all envs), the reward divided by sqrt(Var(ret) + 1e-8) and clipped to +-10, and
    ``ret`` reset to 0 after every end, termination or truncation.

    gymnasium's own vector NormalizeReward (1.4) assumes NEXT_STEP autoreset: under SAME_STEP
    it skips the first reward of each episode, keeps the return across a truncation and
    carries a terminal reward into the next episode (issue 10). The mean is not subtracted:
    that would change the sign of rewards, and with it what the agent is asked to do.
    ``update_running_mean = False`` freezes the statistics and the returns.
    """

    def __init__(self, env, gamma: float = 0.99, epsilon: float = 1e-8, clip: float = 10.0):
        super().__init__(env)
        self.return_rms = RunningMeanStd(shape=())
        self.returns = np.zeros(self.num_envs)
        self.gamma, self.epsilon, self.clip = gamma, epsilon, clip
        self.update_running_mean = True

    def reset(self, **kwargs):
        self.returns[:] = 0.0
        return self.env.reset(**kwargs)

    def step(self, actions):
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        if self.update_running_mean:
            self.returns = self.returns * self.gamma + rewards
            self.return_rms.update(self.returns)
        scaled = np.clip(rewards / np.sqrt(self.return_rms.var + self.epsilon), -self.clip,
                         self.clip)
        self.returns[terminated | truncated] = 0.0
        return obs, scaled, terminated, truncated, info


def make_vec_env(env_id: str, num_envs: int, norm_obs: bool = False, norm_reward: bool = False,
                 gamma: float = 0.99) -> gym.vector.VectorEnv:
    """SAME_STEP-autoreset vector env that records episode returns and lengths (of the raw
    rewards), optionally normalising observations and rewards (SB3's VecNormalize semantics:
    NormalizeObservation and NormalizeReward above).
    Spaces rlcl cannot handle are a ConfigError here (check_spaces)."""
    envs = SyncVectorEnv([partial(make_env, env_id) for _ in range(num_envs)],  # picklable
                         autoreset_mode=AutoresetMode.SAME_STEP)
    return _wrap(envs, env_id, norm_obs, norm_reward, gamma)


def make_env(env_id: str) -> gym.Env:
    """gymnasium's own ENV_ID (``gym.make``), or a one-line ConfigError naming the optional
    dependency it lacks."""
    try:
        return gym.make(env_id)
    except gym.error.DependencyNotInstalled as exc:
        extra = "rlcl[box2d]" if "box2d" in str(exc).lower() else "the package it names"
        raise ConfigError(f"{env_id} needs an optional dependency: pip install '{extra}' "
                          f"({str(exc).splitlines()[0]})") from None


def _wrap(envs, env_id: str, norm_obs: bool, norm_reward: bool, gamma: float):
    check_spaces(envs, env_id)  # before any wrapper relies on a flat Box observation
    envs = RecordEpisodeStatistics(envs)
    if norm_obs:
        envs = NormalizeObservation(envs)
    if norm_reward:
        envs = NormalizeReward(envs, gamma=gamma)
    return envs


def _find(envs, cls):
    while envs is not None:
        if isinstance(envs, cls):
            return envs
        envs = getattr(envs, "env", None)
    return None


def normalization_state(envs) -> dict:
    """The running statistics, for checkpoints (JSON-ready lists)."""
    if hasattr(envs, "normalization_state"):  # device envs keep theirs on the device
        return envs.normalization_state()
    state = {}
    if (obs := _find(envs, NormalizeObservation)) is not None:
        rms = obs.obs_rms
        state["obs"] = {"mean": rms.mean.tolist(), "var": rms.var.tolist(), "count": rms.count}
    if (rew := _find(envs, NormalizeReward)) is not None:
        rms = rew.return_rms
        state["return"] = {"mean": float(rms.mean), "var": float(rms.var), "count": rms.count}
    return state


def load_normalization(envs, state: dict, update: bool) -> None:
    """Set the observation statistics of ENVS from STATE (and freeze them unless UPDATE)."""
    obs = _find(envs, NormalizeObservation)
    if obs is not None and "obs" in state:
        rms = obs.obs_rms
        rms.mean = np.array(state["obs"]["mean"], np.float64)
        rms.var = np.array(state["obs"]["var"], np.float64)
        rms.count = state["obs"]["count"]
        obs.update_running_mean = update
    rew = _find(envs, NormalizeReward)
    if rew is not None and "return" in state:
        rew.return_rms.mean = np.float64(state["return"]["mean"])
        rew.return_rms.var = np.float64(state["return"]["var"])
        rew.return_rms.count = state["return"]["count"]
        rew.update_running_mean = update


def check_spaces(envs: gym.vector.VectorEnv, env_id: str) -> int:
    """obs_dim, after checking that rlcl's MLP policies can handle the env's spaces: a flat
    Box observation and a Discrete or Box action space."""
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        kind = "image" if isinstance(obs_space, gym.spaces.Box) else type(obs_space).__name__
        raise ConfigError(f"{env_id} has a {kind} observation space {obs_space}; rlcl's MLP "
                          "policies need a flat Box: flatten it with a gymnasium wrapper")
    if not isinstance(act_space, (gym.spaces.Discrete, gym.spaces.Box)) or (
            isinstance(act_space, gym.spaces.Box) and len(act_space.shape) != 1):
        raise ConfigError(f"{env_id} has the action space {act_space}; rlcl handles Discrete "
                          "and flat Box action spaces")
    return int(obs_space.shape[0])


def finished_episodes(infos: dict) -> list[tuple[float, int]]:
    """(return, length) of every episode that ended in this vector step, in env order."""
    if "_episode" not in infos:
        return []
    ep = infos["episode"]
    return [(float(ep["r"][i]), int(ep["l"][i])) for i in np.flatnonzero(infos["_episode"])]
