"""The fused update (kernels/ppo_update.cl, two launches per minibatch) against the separate
launches it replaces (agents/ppo.py _minibatch_launches): whole short trainings must give the
same episodes, parameters and logged statistics, bit for bit, for both heads, both algorithms,
the SGD family's options, target_kl's early stop and the divergence guard's refused steps."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import big

from rlcl.agents.ppo import PPO
from rlcl.config import build_config, packaged_config, read_toml
from rlcl.logger import read_scalars
from rlcl.train import make_agent, train

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


@big  # whole trainings: too slow for the Oclgrind simulator, which runs the test below
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


def _one_update(device, algo, env_id, fuse, monkeypatch, **overrides):
    """A tiny agent's first iteration (device rollout, GAE, update): the buffers it wrote."""
    monkeypatch.setattr(PPO, "FUSE", fuse)
    cfg = build_config({**read_toml(packaged_config(algo, "CartPole")), "algo": algo,
                        "env_id": env_id, "num_envs": 3, "num_steps": 6, "num_minibatches": 2,
                        "update_epochs": 2, "hidden_sizes": [8], "seed": 3,
                        **overrides})  # [20, 7]: wide, 4-wide and scalar tiles
    envs, policy, _, rollout, agent = make_agent(cfg, device)
    n = cfg.update_epochs * cfg.num_minibatches
    envs.reset(cfg.seed)
    rollout.collect(envs, None, policy, cfg.seed, 0, 0)
    rollout.compute_gae(cfg.gamma, cfg.gae_lambda)
    agent.update(np.random.default_rng(0))
    agent.update(np.random.default_rng(1))  # a second step: momentum and prev_update in play
    flat = policy.flat
    return {"params": flat.numpy(), "grads": flat.grad_numpy(),
            "stats": device.read(agent.stats, n * 8), "norms": device.read(flat.norms, n),
            "partials": device.read(flat.partials, n * flat.step_groups * 10)}


@pytest.mark.parametrize("algo, env_id, overrides", [
    ("ppo", "CartPole-v1", {}),
    ("a2c", "CartPole-v1", {"update_epochs": 1, "num_minibatches": 1}),
    ("ppo", "Pendulum-v1", {"nesterov": True, "weight_decay": 0.01, "hidden_sizes": [20, 7]}),
])
def test_one_fused_update_equals_separate_launches(device, monkeypatch, algo, env_id, overrides):
    """The same check on one small iteration: quick enough for Oclgrind (README)."""
    fused = _one_update(device, algo, env_id, True, monkeypatch, **overrides)
    launches = _one_update(device, algo, env_id, False, monkeypatch, **overrides)
    for name in fused:
        np.testing.assert_array_equal(fused[name], launches[name], name)
    assert np.any(fused["grads"] != 0)


@big  # 4096 rows: slow on Oclgrind
@pytest.mark.parametrize("backend", ["device", "gymnasium"])
def test_first_minibatch_recomputes_the_rollouts_log_probs(device, monkeypatch, backend):
    """The rollout (device_rollout.h, policy.cl) and the loss (loss.h) take every exp and log of
    the softmax from the same float8 builtins, so on the first minibatch, before any step, the
    update's log-probabilities are the rollout's bits: every ratio is exactly 1."""
    monkeypatch.setattr(PPO, "FUSE", True)
    cfg = build_config({**read_toml(packaged_config("ppo", "CartPole")), "num_envs": 64,
                        "num_steps": 64, "num_minibatches": 2, "seed": 11,
                        "env_backend": backend})
    envs, policy, _, rollout, agent = make_agent(cfg, device)
    rng = np.random.default_rng(5)  # logits spread wide, where the exps' last bits differ
    policy.flat.load(policy.flat.numpy() + rng.normal(0, 1.0, policy.flat.n).astype(np.float32))
    obs, _ = envs.reset(seed=cfg.seed)
    rollout.collect(envs, obs, policy, cfg.seed, 0, 0)
    rollout.compute_gae(cfg.gamma, cfg.gae_lambda)
    agent.update(np.random.default_rng(0))
    first = device.read(agent.stats, 8)  # LOSS_STATS: ..., approx_kl, clip, kl_max, r_max, r_min
    assert first[3] == 0 and first[5] == 0 and first[6] == 1 and first[7] == 1, first
    later = device.read(agent.stats, agent.num_updates * 8).reshape(-1, 8)[1:]
    assert np.any(later[:, 6] != 1)  # the steps did change the policy


@pytest.mark.oclgrind_offset_writes
@pytest.mark.parametrize("algo, env_id, grid", [
    ("ppo", "CartPole-v1", {"learning_rate": [0.01, 0.05], "clip_coef": [0.1, 0.3]}),
    ("a2c", "Pendulum-v1", {"momentum": [0.0, 0.9], "gamma": [0.9, 0.99]}),
])
@pytest.mark.parametrize("per_agent", [True, False], ids=["update-launch", "minibatch-launches"])
def test_population_launches_equal_each_agent_alone(device, tmp_path, monkeypatch, algo, env_id,
                                                    grid, per_agent):
    """Every *_pop launch of rlcl/batched.py (rollout, GAE, the update: ppo_update_pop, or per
    minibatch ppo_minibatch_pop and ppo_step_pop, churn) for four agents with different seeds and
    scalars, two small iterations, against each agent's own launches on the same arena slices:
    every buffer they write, bit for bit (Oclgrind too)."""
    from rlcl.population import Population

    monkeypatch.setattr(device, "update_per_agent", per_agent)

    base = build_config({**read_toml(packaged_config(algo, "CartPole")), "algo": algo,
                         "env_id": env_id, "num_envs": 3, "num_steps": 6, "hidden_sizes": [8],
                         "total_timesteps": 36, "runs_dir": str(tmp_path), "progress": False,
                         "eval_episodes": 0, "env_backend": "device",
                         **({"num_minibatches": 2, "update_epochs": 2} if algo == "ppo" else {})})
    outcome = {}
    for together in (True, False):
        pop = Population(base, [3, 8], grid)
        pop.start(device)
        runs = [a.run for a in pop.agents]
        for _ in range(2):
            if together:
                assert pop.batched.iterate(runs) == []
            else:
                for run in runs:
                    run.iterate()
        outcome[together] = [
            {"params": r.policy.flat.numpy(), "grads": r.policy.flat.grad_numpy(),
             "stats": device.read(r.agent.stats, r.agent.num_updates * 8),
             "norms": device.read(r.policy.flat.norms, r.agent.num_updates),
             "episodes": r.result.episodes, "values": device.read(r.rollout.values, 21)}
            for r in runs]
        for run in runs:
            run.abort()
    for got, want in zip(outcome[True], outcome[False]):
        for name in got:
            np.testing.assert_array_equal(got[name], want[name], name)
        assert np.any(got["grads"] != 0)
