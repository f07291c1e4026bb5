"""Rollout collection and GAE on a tiny env whose advantages are worked out by hand.

The env "Count" returns obs [k], k = steps taken in the episode, and reward 1 per step. It
either terminates at k = 3 or is truncated there by a TimeLimit. The critic is a single linear
layer set to V(s) = s[0] = k, so every number below can be checked on paper
(gamma = 0.5, lambda = 1, T = 4, one env; step 2 ends the episode, step 3 starts the next):

  V(s_t) = 0, 1, 2, 0 and V(obs after the rollout) = 1; the final obs at the end has k = 3.
  terminated: A = 1.75, 0.5, -1, 1.5     (no bootstrap at t = 2)
  truncated:  A = 2.125, 1.25, 0.5, 1.5  (t = 2 bootstraps gamma * V(final_obs) = 0.5 * 3)
"""

import gymnasium as gym
import numpy as np
import pytest

from rlcl.envs import make_vec_env
from rlcl.policy import ActorCritic
from rlcl.rollout import TERMINATED, TRUNCATED, Rollout


class Count(gym.Env):
    def __init__(self, terminate: bool):
        self.terminate = terminate
        self.observation_space = gym.spaces.Box(0, 10, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.k = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.k = 0
        return np.array([self.k], np.float32), {}

    def step(self, action):
        self.k += 1
        return np.array([self.k], np.float32), 1.0, self.terminate and self.k == 3, False, {}


gym.register("rlcl-test/CountTerminate-v0", entry_point=lambda: Count(True))
gym.register("rlcl-test/CountTruncate-v0", entry_point=lambda: Count(False), max_episode_steps=3)


def linear_value_policy(device) -> ActorCritic:
    policy = ActorCritic(device, 1, gym.spaces.Discrete(2), [], "tanh", seed=0, max_batch=4)
    host = policy.flat.numpy()
    (critic,) = policy.critic.layers
    host[critic.w_off] = 1.0  # V(s) = 1 * s[0] + 0
    host[critic.b_off] = 0.0
    policy.flat.load(host)
    return policy


@pytest.mark.parametrize("env_id, expected_adv, end", [
    ("rlcl-test/CountTerminate-v0", [1.75, 0.5, -1.0, 1.5], TERMINATED),
    ("rlcl-test/CountTruncate-v0", [2.125, 1.25, 0.5, 1.5], TRUNCATED),
])
def test_gae_by_hand(device, env_id, expected_adv, end):
    policy = linear_value_policy(device)
    rollout = Rollout(device, policy, num_steps=4, num_envs=1, minibatch_size=4, num_updates=1)
    envs = make_vec_env(env_id, 1)
    obs, _ = envs.reset(seed=0)
    _, episodes = rollout.collect(envs, obs, policy, seed=0, iteration=0, global_step=0)
    rollout.compute_gae(gamma=0.5, gae_lambda=1.0)
    adv = device.read(rollout.advantages, 4)
    ret = device.read(rollout.returns, 4)
    values = device.read(rollout.values, 5)
    np.testing.assert_allclose(values, [0, 1, 2, 0, 1], atol=1e-6)
    np.testing.assert_allclose(adv, expected_adv, atol=1e-6)
    np.testing.assert_allclose(ret, np.array(expected_adv) + values[:4], atol=1e-6)
    assert list(rollout.ends_host[:, 0]) == [0, 0, end, 0]
    assert episodes == [(3, 3.0, 3)]  # (global step, return, length) of the one finished episode
