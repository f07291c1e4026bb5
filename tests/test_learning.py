"""Long learning runs (pytest -m slow): the default PPO config solves CartPole on every seed.

Issue 2's bar: each of seeds 0-4 reaches a greedy evaluation mean >= 475 over 20 episodes
within the default budget (100,000 env steps). About 30 s per seed on 2 CPU cores.
"""

import pytest

from rlcl.config import build_config, packaged_config, read_toml
from rlcl.train import train


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_ppo_cartpole_defaults_solve_every_seed(tmp_path, seed):
    values = read_toml(packaged_config("ppo", "CartPole"))
    assert values["total_timesteps"] <= 100_000
    cfg = build_config({**values, "seed": seed, "runs_dir": str(tmp_path), "progress": False})
    result = train(cfg)
    assert result.summary["eval_episodes"] == 20
    assert result.summary["eval_mean_return"] >= 475, result.summary
