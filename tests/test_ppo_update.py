"""The fused update (kernels/ppo_update.cl, one launch per minibatch) against the separate
launches it replaces (agents/ppo.py _minibatch_launches): whole short trainings must give the
same episodes, parameters and logged statistics, bit for bit, for both heads, both algorithms,
the SGD family's options, target_kl's early stop and the divergence guard's refused steps."""

from __future__ import annotations

import numpy as np
import pytest

from rlcl.agents.ppo import PPO
from rlcl.config import build_config, packaged_config, read_toml
from rlcl.logger import read_scalars
from rlcl.train import train

CASES = {
    "ppo-cartpole": ("ppo", "CartPole", {}),
    "ppo-cartpole-nesterov-wd": ("ppo", "CartPole", {"nesterov": True, "weight_decay": 1e-3}),
    "ppo-cartpole-sgd-target-kl": ("ppo", "CartPole", {"optimizer": "sgd", "momentum": 0.0,
                                                       "target_kl": 0.002}),
    "ppo-cartpole-guard": ("ppo", "CartPole", {"inject_nan_update": 23}),
    "a2c-cartpole": ("a2c", "CartPole", {}),
    "ppo-pendulum": ("ppo", "Pendulum", {"num_steps": 128, "num_minibatches": 4,
                                         "update_epochs": 2}),
}


def _train(tmp_path, algo, env, overrides, fuse, monkeypatch):
    monkeypatch.setattr(PPO, "FUSE", fuse)
    cfg = build_config({**read_toml(packaged_config(algo, env)), "algo": algo,
                        "total_timesteps": 3000, "progress": False, "eval_episodes": 1,
                        "runs_dir": str(tmp_path / ("fused" if fuse else "launches")),
                        **overrides})
    return train(cfg)


@pytest.mark.parametrize("case", CASES)
def test_fused_update_equals_separate_launches(case, tmp_path, monkeypatch):
    algo, env, overrides = CASES[case]
    fused = _train(tmp_path, algo, env, overrides, True, monkeypatch)
    launches = _train(tmp_path, algo, env, overrides, False, monkeypatch)
    assert len(fused.episodes) > 5
    assert fused.episodes == launches.episodes
    assert np.array_equal(fused.final_params, launches.final_params)
    got, want = read_scalars(fused.run_dir), read_scalars(launches.run_dir)
    skip = {tag for tag in got if "fps" in tag}  # wall time
    assert set(got) == set(want)
    for tag in set(got) - skip:
        assert np.array_equal(np.array(got[tag]), np.array(want[tag]), equal_nan=True), tag
    if "inject_nan_update" in overrides:  # the guard refused a step in both
        assert max(v for _, v in got["diag/skipped_steps"]) >= 1
