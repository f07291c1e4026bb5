"""envs.py: aliases, space checks and observation/reward normalisation."""

import gymnasium as gym
import numpy as np
import pytest

from rlcl.envs import (NormalizeObservation, check_spaces, load_normalization, make_vec_env,
                       normalization_state, resolve_env)
from rlcl.errors import ConfigError


def test_aliases_and_ids():
    assert resolve_env("CartPole") == ("CartPole-v1", "CartPole")
    assert resolve_env("CartPole-v1") == ("CartPole-v1", "CartPole")
    assert resolve_env("MountainCarContinuous-v0")[0] == "MountainCarContinuous-v0"
    with pytest.raises(ConfigError, match="unknown environment 'CartPol'.*did you mean"):
        resolve_env("CartPol")


class DictObs(gym.Env):
    observation_space = gym.spaces.Dict({"a": gym.spaces.Box(-1, 1, (2,))})
    action_space = gym.spaces.Discrete(2)


class ImageObs(gym.Env):
    observation_space = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)
    action_space = gym.spaces.Discrete(2)


class MultiBinaryAct(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (3,))
    action_space = gym.spaces.MultiBinary(4)


@pytest.mark.parametrize("env_cls, message", [
    (DictObs, "Dict observation space"), (ImageObs, "image observation space"),
    (MultiBinaryAct, "handles Discrete and flat Box action spaces")])
def test_unsupported_spaces_are_one_clear_error(env_cls, message):
    envs = gym.vector.SyncVectorEnv([env_cls])
    with pytest.raises(ConfigError, match=message):
        check_spaces(envs, "rlcl-test/Odd-v0")


def test_supported_spaces():
    assert check_spaces(make_vec_env("CartPole-v1", 2), "CartPole-v1") == 4
    assert check_spaces(make_vec_env("Pendulum-v1", 2), "Pendulum-v1") == 3


def test_obs_normalisation_covers_final_obs_and_freezes():
    envs = make_vec_env("CartPole-v1", 4, norm_obs=True, norm_reward=True, gamma=0.9)
    obs, _ = envs.reset(seed=0)
    assert isinstance(envs.env, NormalizeObservation)  # obs normalised under reward normalisation
    seen_final = False
    for _ in range(200):
        obs, rewards, term, trunc, info = envs.step(np.zeros(4, np.int64))
        assert np.all(np.abs(obs) <= 10.0)
        if "final_obs" in info:
            seen_final = True
            for i in np.flatnonzero(info["_final_obs"]):
                # final observations are normalised as well (same statistics as obs)
                assert np.all(np.abs(info["final_obs"][i]) <= 10.0)
        if "_episode" in info:  # episode statistics stay those of the raw reward (1 a step)
            ep = info["episode"]
            assert np.all(ep["r"][info["_episode"]] == ep["l"][info["_episode"]])
    assert seen_final
    state = normalization_state(envs)
    assert set(state) == {"obs", "return"} and len(state["obs"]["mean"]) == 4
    frozen = make_vec_env("CartPole-v1", 2, norm_obs=True)
    load_normalization(frozen, state, update=False)
    raw = make_vec_env("CartPole-v1", 2)
    o_frozen, _ = frozen.reset(seed=3)
    o_raw, _ = raw.reset(seed=3)
    expect = np.clip((o_raw - np.array(state["obs"]["mean"]))
                     / np.sqrt(np.array(state["obs"]["var"]) + 1e-8), -10, 10)
    np.testing.assert_allclose(o_frozen, expect, rtol=1e-5, atol=1e-6)
    assert normalization_state(frozen)["obs"] == state["obs"]  # frozen: not updated


def test_missing_box2d_is_a_one_line_error(tmp_path):
    """LunarLander without the box2d extra: one line that names the extra, exit code 2.
    (Box2D is hidden from the child interpreter, so this runs whether it is installed or not.)"""
    import subprocess
    import sys

    code = ("import sys; sys.modules['Box2D'] = None\n"
            "from rlcl.train import main\n"
            f"sys.exit(main(['ppo', 'LunarLander', '--runs-dir', {str(tmp_path)!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'rlcl[box2d]'" in lines[0]
    assert not any(tmp_path.iterdir())


class TwoRewards(gym.Env):
    """Rewards 2, 4, 2, 4 ...; ends every LENGTH steps, by termination or by truncation."""

    observation_space = gym.spaces.Box(-1, 1, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length: int, truncate: bool):
        self.length, self.truncate, self.k = length, truncate, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.k = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.k += 1
        end = self.k == self.length
        reward = 2.0 if self.k % 2 else 4.0
        return np.zeros(1, np.float32), reward, end and not self.truncate, end and self.truncate, {}


def test_reward_normalisation_follows_sb3_vecnormalize():
    """Issue 10, worked by hand with gamma 0.5: env 0 terminates every 2 steps, env 1 truncates
    every 3. SB3's rule: ret = 0.5 ret + r before scaling, reset after EVERY end, so env 0's
    returns run 2, 5, 2, 5 ... and env 1's 2, 5, 4.5, 2, 5, 4.5 ...; each reward is divided by
    the std of all returns seen so far (gymnasium's NormalizeReward got 0 for the first reward
    of each episode and carried env 1's return over its truncations)."""
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    from rlcl.envs import NormalizeReward

    envs = NormalizeReward(SyncVectorEnv([lambda: TwoRewards(2, False), lambda: TwoRewards(3, True)],
                                         autoreset_mode=AutoresetMode.SAME_STEP), gamma=0.5)
    envs.reset(seed=0)
    by_hand = [[2.0, 5.0][t % 2] for t in range(12)], [[2.0, 5.0, 4.5][t % 3] for t in range(12)]
    raw = [[2.0, 4.0][t % 2] for t in range(12)], [[2.0, 4.0, 2.0][t % 3] for t in range(12)]
    seen = []
    for t in range(12):
        _, scaled, _, _, _ = envs.step(np.zeros(2, np.int64))
        seen += [by_hand[0][t], by_hand[1][t]]
        std = np.sqrt(np.var(seen) + 1e-8)  # the running statistics' prior weighs 1e-4
        want = np.clip([raw[0][t] / std, raw[1][t] / std], -10, 10)
        np.testing.assert_allclose(scaled, want, rtol=2e-3, err_msg=f"step {t}")
    assert envs.return_rms.var == pytest.approx(np.var(seen), rel=2e-3)


class StartsAtOne(gym.Env):
    """A Discrete(2, start=1) action space: actions 1 and 2 only; 0 is an error."""

    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Discrete(2, start=1)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.k = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        assert action in (1, 2), f"action {action} is outside Discrete(2, start=1)"
        self.k += 1
        return np.full(2, action - 1.5, np.float32), float(action == 2), False, self.k == 20, {}


gym.register("rlcl-test/StartsAtOne-v0", entry_point=StartsAtOne)


def test_discrete_actions_are_shifted_by_the_space_start(tmp_path):
    """Issue 10: Discrete(n, start) gets actions start .. start+n-1, in training and in the
    greedy evaluation; the env asserts it. Action 2 pays, so the policy should learn it."""
    from rlcl.config import build_config
    from rlcl.train import train

    cfg = build_config({"env_id": "rlcl-test/StartsAtOne-v0", "total_timesteps": 2048,
                        "num_envs": 4, "num_steps": 32, "runs_dir": str(tmp_path),
                        "progress": False, "eval_episodes": 2, "hidden_sizes": [8]})
    result = train(cfg)
    assert result.summary["eval_mean_return"] == 20.0


def test_gymnasium_requirement_excludes_versions_that_miscount_episodes():
    """Issue 10: gymnasium 1.0 has no AutoresetMode, and 1.1-1.3's vector
    RecordEpisodeStatistics ignores SAME_STEP autoreset; pyproject.toml must exclude them."""
    import tomllib
    from pathlib import Path

    from packaging.requirements import Requirement

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    (spec,) = [Requirement(d).specifier for d in deps if Requirement(d).name == "gymnasium"]
    assert not any(v in spec for v in ("1.0.0", "1.1.1", "1.2.2", "1.3.0"))
    assert "1.4.0" in spec and "1.5.1" in spec


def test_episode_statistics_count_every_step_under_same_step_autoreset():
    """The installed gymnasium's RecordEpisodeStatistics over rlcl's vector env: CartPole
    episodes after the first are full length (1.1-1.3 reported them one step short)."""
    envs = make_vec_env("rlcl-test/StartsAtOne-v0", 2)
    envs.reset(seed=0)
    lengths = []
    for _ in range(60):
        _, _, _, _, infos = envs.step(np.ones(2, np.int64))
        if "_episode" in infos:
            lengths += [int(n) for n in infos["episode"]["l"][infos["_episode"]]]
    assert lengths == [20] * 6


def _upright(obs: np.ndarray, step: int) -> list:
    """A controller that keeps CartPole up for long episodes: push toward the pole's fall."""
    return list(((obs[..., 2] + 0.5 * obs[..., 3]) > 0).astype(np.int64))


@pytest.mark.parametrize("env_id, norm", [("CartPole-v1", False), ("CartPole-v1", True),
                                           ("Pendulum-v1", False)])
def test_first_episodes_are_those_of_gymnasiums_vector_env(env_id, norm):
    """The evaluation's envs (eval_pool.FirstEpisodes: one gymnasium env per episode, each
    stepped until its first episode ends) give each sub-env's first return exactly as
    gymnasium's SyncVectorEnv with RecordEpisodeStatistics and the frozen observation
    normalisation did, float rewards (Pendulum) and normalised inputs included."""
    from rlcl.envs import load_normalization, make_vec_env
    from rlcl.eval_pool import FirstEpisodes

    stats = {"obs": {"mean": [0.1, -0.2, 0.01, 0.3], "var": [0.5, 2.0, 0.02, 1.5],
                     "count": 9.0}} if norm else {}

    def act(obs, step):  # a function of each env's own observation and the step alone
        if env_id.startswith("CartPole"):
            return ((obs[:, 2] + 0.5 * obs[:, 3]) > 0).astype(np.int64)
        return np.clip(-2.0 * obs[:, 2:3] - 0.3 * np.sin(7 * obs[:, :1] + step), -2, 2)

    vector = make_vec_env(env_id, 4, norm_obs=norm)
    load_normalization(vector, stats, update=False)
    obs, expected, step = vector.reset(seed=7)[0], np.full(4, np.nan), 0
    while np.isnan(expected).any():
        obs, _, _, _, infos = vector.step(act(np.float32(obs), step))
        for i in np.flatnonzero(infos.get("_episode", [])):
            if np.isnan(expected[i]):
                expected[i] = infos["episode"]["r"][i]
        step += 1
    envs = FirstEpisodes(env_id, 4, stats)
    obs, step = envs.reset(7), 0
    while not envs.done:
        obs = envs.step(act(np.float32(obs), step))
        step += 1
    assert envs.returns.tobytes() == expected.tobytes()


def test_pooled_evaluation_gives_the_serial_returns():
    """A population's final evaluation with its envs stepped by worker processes
    (rlcl/eval_pool.py) gives eval.first_returns' returns to the bit, observation
    normalisation included, with agents split unevenly over the workers; a worker's failure
    is raised here, not hung on."""
    from rlcl.eval import first_returns
    from rlcl.eval_pool import eval_envs, pooled_first_returns

    norm = {"obs": {"mean": [0.1, -0.2, 0.01, 0.3], "var": [0.5, 2.0, 0.02, 1.5], "count": 9.0}}
    specs = [("CartPole-v1", 3, None), ("CartPole-v1", 3, norm), ("CartPole-v1", 3, None),
             ("CartPole-v1", 3, norm), ("CartPole-v1", 3, None)]
    seeds = [4, 4, 11, 12, 13]
    steps = []

    def act(obs, step):
        steps.append(step)
        return _upright(obs, step)

    pooled = pooled_first_returns(specs, seeds, act, workers=2)
    pooled_steps, steps[:] = list(steps), []
    serial = first_returns([eval_envs(*spec) for spec in specs], seeds, act)
    np.testing.assert_array_equal(pooled, serial)
    assert pooled_steps == steps and pooled.shape == (5, 3)
    assert 20 < serial.min() and serial.max() > 100  # long episodes, and not all alike
    assert not np.array_equal(serial[0], serial[1])  # the normalised agent saw other inputs
    with pytest.raises(Exception, match="NoSuchEnv"):
        pooled_first_returns([("NoSuchEnv-v0", 2, None)] * 2, [0, 1], act, workers=2)
