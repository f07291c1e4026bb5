"""Long learning runs (pytest -m slow): every tuned config meets its target on its seeds.

Targets (issues 2 and 3), greedy evaluation mean over 20 episodes at the config's default
budget:
* PPO and A2C on CartPole: >= 475 on seeds 0-4 (budgets 100,000 and 500,000 steps);
* PPO on Acrobot: >= -100, PPO on Pendulum: >= -250, PPO on LunarLander: >= 200 (with the
  box2d extra), on seeds 0-2; A2C on Acrobot has no stated target: >= -100 is checked.
* Issue 14's configs, found with rlcl.tune: PPO on MountainCarContinuous >= 90 and A2C on
  Pendulum >= -250, on seeds 0-4.
"""

import importlib.util

import pytest

from rlcl.config import build_config, packaged_config, read_toml
from rlcl.envs import ALIASES
from rlcl.train import train

BUDGET = {("ppo", "CartPole"): 100_000, ("a2c", "CartPole"): 500_000,
          ("ppo", "LunarLander"): 1_000_000}
TARGETS = {("ppo", "CartPole"): (475, range(5)), ("a2c", "CartPole"): (475, range(5)),
           ("ppo", "Acrobot"): (-100, range(3)), ("a2c", "Acrobot"): (-100, range(3)),
           ("ppo", "Pendulum"): (-250, range(3)), ("ppo", "LunarLander"): (200, range(3)),
           ("ppo", "MountainCarContinuous"): (90, range(5)), ("a2c", "Pendulum"): (-250, range(5))}
CASES = [(algo, env, seed) for (algo, env), (_, seeds) in TARGETS.items()
         if packaged_config(algo, env) is not None for seed in seeds]


@pytest.mark.slow
@pytest.mark.parametrize("algo, env, seed", CASES)
def test_tuned_config_meets_its_target(tmp_path, algo, env, seed):
    if env == "LunarLander" and importlib.util.find_spec("Box2D") is None:
        pytest.skip("LunarLander needs the box2d extra: pip install 'rlcl[box2d]'")
    values = read_toml(packaged_config(algo, env))
    if (algo, env) in BUDGET:
        assert values["total_timesteps"] <= BUDGET[algo, env]
    cfg = build_config({**values, "algo": algo, "env_id": ALIASES[env], "seed": seed,
                        "runs_dir": str(tmp_path), "progress": False})
    result = train(cfg)
    assert result.summary["eval_episodes"] == 20
    assert result.summary["eval_mean_return"] >= TARGETS[algo, env][0], result.summary
