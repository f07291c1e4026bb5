"""Environments: aliases, vector-env creation and seeding, episode statistics.

Vector envs use gymnasium 1.x ``SyncVectorEnv`` with ``AutoresetMode.SAME_STEP``: when a
sub-env ends, ``step`` returns the first observation of the next episode and puts the last
one in ``info["final_obs"]``, which the rollout needs to bootstrap time-limit truncations.
"""

from __future__ import annotations

import difflib

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers.vector import RecordEpisodeStatistics

from rlcl.errors import ConfigError

ALIASES = {
    "CartPole": "CartPole-v1",
    "Acrobot": "Acrobot-v1",
    "MountainCar": "MountainCar-v0",
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


def make_vec_env(env_id: str, num_envs: int) -> gym.vector.VectorEnv:
    """SAME_STEP-autoreset vector env that records episode returns and lengths."""
    envs = SyncVectorEnv([lambda: gym.make(env_id) for _ in range(num_envs)],
                         autoreset_mode=AutoresetMode.SAME_STEP)
    return RecordEpisodeStatistics(envs)


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
