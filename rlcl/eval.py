"""Greedy (or sampled) evaluation episodes of a policy on the device.

One vector env with one sub-env per episode; each sub-env's first episode counts. Actions come
from the same fused ``policy_act`` kernel as the rollout, with ``greedy`` set.
"""

from __future__ import annotations

import numpy as np
import pyopencl as cl

from rlcl.envs import EVAL_SEED_OFFSET, load_normalization, make_vec_env
from rlcl.policy import STREAM_EVAL, ActorCritic


def evaluate_policy(policy: ActorCritic, env_id: str, episodes: int, seed: int,
                    norm_state: dict | None = None, greedy: bool = True) -> np.ndarray:
    """Returns of EPISODES episodes, in sub-env order. NORM_STATE (envs.normalization_state of
    the training envs) normalises observations with the training statistics, frozen."""
    if episodes <= 0:
        return np.zeros(0)
    dev = policy.device
    norm_state = norm_state or {}
    envs = make_vec_env(env_id, episodes, norm_obs="obs" in norm_state)
    load_normalization(envs, norm_state, update=False)
    obs_buf = dev.empty(episodes * policy.obs_dim)
    actions = dev.empty(episodes * policy.act_dim, np.int32)
    logp, values = dev.empty(episodes), dev.empty(episodes)
    actions_host = np.zeros(episodes * policy.act_dim, policy.action_dtype)
    returns = np.full(episodes, np.nan)
    obs, _ = envs.reset(seed=seed + EVAL_SEED_OFFSET)
    step = 0
    while np.isnan(returns).any():
        dev.write(obs_buf, np.ascontiguousarray(obs, np.float32))
        policy.act(obs_buf, episodes, actions, logp, values, 0, seed, STREAM_EVAL, step, 0,
                   greedy=greedy)
        cl.enqueue_copy(dev.queue, actions_host, actions)
        obs, _, _, _, infos = envs.step(policy.env_actions(actions_host))
        if "_episode" in infos:
            for i in np.flatnonzero(infos["_episode"]):
                if np.isnan(returns[i]):
                    returns[i] = infos["episode"]["r"][i]
        step += 1
    envs.close()
    return returns
