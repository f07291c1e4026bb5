"""Long learning runs (pytest -m slow): the default configs solve CartPole on every seed.

The bar (issues 2 and 3): each of seeds 0-4 reaches a greedy evaluation mean >= 475 over 20
episodes within the default budget: PPO 100,000 env steps (about 30 s per seed on 2 CPU
cores), A2C 500,000 (about 40 s).
"""

import pytest

from rlcl.config import build_config, packaged_config, read_toml
from rlcl.train import train


BUDGET = {"ppo": 100_000, "a2c": 500_000}


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_cartpole_defaults_solve_every_seed(tmp_path, algo, seed):
    values = read_toml(packaged_config(algo, "CartPole"))
    assert values["total_timesteps"] <= BUDGET[algo]
    cfg = build_config({**values, "algo": algo, "seed": seed, "runs_dir": str(tmp_path),
                        "progress": False})
    result = train(cfg)
    assert result.summary["eval_episodes"] == 20
    assert result.summary["eval_mean_return"] >= 475, result.summary
