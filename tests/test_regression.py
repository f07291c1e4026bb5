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
from rlcl.testing import DriftError, assert_returns_match, statistical_check

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
    worse = [(s, r * 0.5, l) for s, r, l in want]
    assert len(statistical_check(worse, want, 1000)) == 4
