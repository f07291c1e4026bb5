"""Seeded regression tests of episode returns (issue 5), through the public rlcl.testing.

The golden files in tests/regression/ hold, for PPO and A2C on CartPole, each seed's episode
(global_step, return, length) sequence over 20,000 steps and the fingerprint it was recorded
with. With the same fingerprint the sequence must match exactly; otherwise the statistical
check runs and says so. Re-record: `python -m rlcl.testing record tests/regression/*.json`.
"""

import json
from pathlib import Path

import pytest

from rlcl.config import build_config, packaged_config, read_toml
from rlcl.testing import (DriftError, assert_population_matches, assert_returns_match,
                          statistical_check)

GOLDEN = Path(__file__).parent / "regression"
CASES = [("ppo", 0), ("ppo", 1), ("a2c", 0), ("a2c", 1)]


def regression_config(algo: str, seed: int):
    return build_config({**read_toml(packaged_config(algo, "CartPole")), "algo": algo,
                         "seed": seed, "total_timesteps": 20000})


@pytest.mark.parametrize("algo, seed", CASES)
def test_episode_returns_match_golden(algo, seed):
    path = GOLDEN / f"{algo}_cartpole_seed{seed}.json"
    mode = assert_returns_match(regression_config(algo, seed), path)
    assert mode in ("exact", "statistical", "recorded")
    golden = json.loads(path.read_text())
    assert len(golden["episodes"]) > 50 and golden["config"]["seed"] == seed


def test_a_drift_fails(tmp_path):
    """Record a short run, then change one return in the golden file: the check must fail."""
    cfg = build_config({**read_toml(packaged_config("ppo", "CartPole")), "seed": 5,
                        "total_timesteps": 2048})
    path = tmp_path / "golden.json"
    assert assert_returns_match(cfg, path) == "recorded"
    assert assert_returns_match(cfg, path) == "exact"
    golden = json.loads(path.read_text())
    golden["episodes"][3][1] += 1.0
    path.write_text(json.dumps(golden))
    with pytest.raises(DriftError, match="at episode 3"):
        assert_returns_match(cfg, path)


def test_other_fingerprint_runs_the_statistical_check(tmp_path, capsys):
    cfg = build_config({**read_toml(packaged_config("ppo", "CartPole")), "seed": 5,
                        "total_timesteps": 2048})
    path = tmp_path / "golden.json"
    assert_returns_match(cfg, path)
    golden = json.loads(path.read_text())
    golden["fingerprint"]["driver_version"] = "another driver"
    path.write_text(json.dumps(golden))
    with pytest.warns(UserWarning, match="exact check of golden.json skipped"):
        assert assert_returns_match(cfg, path) == "statistical"
    assert "driver_version" in capsys.readouterr().err


def test_statistical_check_bounds():
    want = [(s, 20.0 + s / 100, 20) for s in range(10, 1001, 10)]
    assert statistical_check(want, want, 1000) == []
    other_seed = [(s, r * 2.5, l) for s, r, l in want]  # within the seeds' spread (x3)
    assert statistical_check(other_seed, want, 1000) == []
    stuck = [(s, r * 0.3, l) for s, r, l in want]
    assert len(statistical_check(stuck, want, 1000)) == 4
    flipped = [(s, -r, l) for s, r, l in want]
    assert len(statistical_check(flipped, want, 1000)) == 4


# -- populations (issue 13) -------------------------------------------------------------------
POP_SEEDS = range(8)


def test_population_episode_returns_match_golden():
    """Eight seeds of the shipped PPO CartPole config, trained as one population."""
    path = GOLDEN / "ppo_cartpole_pop8.json"
    mode = assert_population_matches(regression_config("ppo", 0), POP_SEEDS, path)
    assert mode in ("exact", "statistical", "recorded")
    golden = json.loads(path.read_text())
    assert [a["seed"] for a in golden["agents"]] == list(POP_SEEDS)
    assert all(len(a["episodes"]) > 50 for a in golden["agents"])


@pytest.fixture(scope="module")
def small_population(tmp_path_factory):
    """A short population's golden file, with a grid: (config, grid, path)."""
    cfg = build_config({**read_toml(packaged_config("ppo", "CartPole")), "total_timesteps": 4096})
    grid = {"learning_rate": [0.03, 0.01]}
    path = tmp_path_factory.mktemp("golden") / "pop.json"
    assert assert_population_matches(cfg, range(6), path, grid) == "recorded"
    return cfg, grid, path


def test_a_population_drift_fails(small_population, tmp_path):
    cfg, grid, path = small_population
    assert assert_population_matches(cfg, range(6), path, grid) == "exact"
    golden = json.loads(path.read_text())
    golden["agents"][7]["episodes"][2][1] += 1.0  # seed 1 of the second grid point
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(golden))
    with pytest.raises(DriftError, match="agent seed 1 .*learning_rate.*at episode 2"):
        assert_population_matches(cfg, range(6), changed, grid)


def test_population_statistical_check_uses_every_seed(small_population, tmp_path):
    cfg, grid, path = small_population
    golden = json.loads(path.read_text())
    golden["fingerprint"]["driver_version"] = "another driver"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(golden))
    with pytest.warns(UserWarning, match="exact check of other.json skipped"):
        assert assert_population_matches(cfg, range(6), other, grid) == "statistical"
    for agent in golden["agents"]:  # a clearly worse learner: every return at 60 %
        for episode in agent["episodes"]:
            episode[1] *= 1.6
    other.write_text(json.dumps(golden))
    with pytest.warns(UserWarning), pytest.raises(DriftError, match="quarter .* excludes 0"):
        assert_population_matches(cfg, range(6), other, grid)
