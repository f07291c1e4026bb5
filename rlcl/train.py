"""``python -m rlcl.train ALGO ENV``: ``train(cfg)``, one readable loop, and the command line
(rlcl/cli.py).

The loop follows CleanRL's order: SETUP, then per iteration ROLLOUT, ADVANTAGE, UPDATE, LOG;
then a final checkpoint and a greedy evaluation. ``train(cfg, resume=RUN_DIR)`` continues a
run from its latest checkpoint, bit for bit as if it had never stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rlcl.agents.a2c import A2C
from rlcl.agents.ppo import PPO
from rlcl.checkpoint import (check_compatible, load_checkpoint, restore_training_state,
                             save_training_state)
from rlcl.config import Config, to_toml
from rlcl.device import Device
from rlcl.diagnostics import EVAL_MEAN, iteration_scalars
from rlcl.envs import make_vec_env, normalization_state
from rlcl.eval import evaluate_policy
from rlcl.guard import Guard
from rlcl.logger import RunLogger, format_profile, read_episodes
from rlcl.optim import SGD, Adam, Momentum
from rlcl.optim.lr_scheduler import ConstantLR, CosineAnnealingLR
from rlcl.policy import ActorCritic
from rlcl.rollout import Rollout

LATEST = "latest.npz"  # the resumable checkpoint, replaced atomically every checkpoint_every


@dataclass
class Result:
    """What ``train`` returns: the run folder, every training episode and the summary."""

    run_dir: Path
    episodes: list[tuple[int, float, int]] = field(default_factory=list)  # (step, return, length)
    summary: dict = field(default_factory=dict)
    final_params: np.ndarray | None = None

    @property
    def returns(self) -> list[float]:
        return [ret for _, ret, _ in self.episodes]

    @property
    def fingerprint(self) -> dict:
        return self.summary.get("fingerprint", {})


def make_optimizer(cfg: Config, flat):
    if cfg.optimizer == "adam":
        return Adam(flat, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return SGD(flat, lr=cfg.learning_rate, momentum=cfg.momentum,
                   weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)
    return Momentum(flat, lr=cfg.learning_rate, momentum=cfg.momentum,
                    weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)


def make_scheduler(cfg: Config, optimizer):
    if cfg.lr_schedule == "constant":
        return ConstantLR(optimizer)
    return CosineAnnealingLR(optimizer, T_max=cfg.num_iterations, eta_min=cfg.lr_min)


def new_run_dir(cfg: Config) -> Path:
    """runs/<env_id>__<algo>__<seed>__<unix_time>, with _2, _3 ... for runs started within the
    same second. A namespaced id (``ALE/Pong-v5``) names one folder: ``ALE-Pong-v5``."""
    env = cfg.env_id.replace("/", "-")
    base = Path(cfg.runs_dir) / f"{env}__{cfg.algo}__{cfg.seed}__{int(time.time())}"
    Path(cfg.runs_dir).mkdir(parents=True, exist_ok=True)
    for k in range(1, 1000):
        run_dir = base if k == 1 else base.with_name(f"{base.name}_{k}")
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            continue
    raise RuntimeError(f"cannot create a run folder next to {base}")


def train(cfg: Config, resume: Path | None = None) -> Result:
    """Train CFG's agent (or continue the run in RESUME); write the run folder; return the
    episodes and the summary."""
    # SETUP ---------------------------------------------------------------------------------
    device = Device(cfg.device, profile=cfg.profile or os.environ.get("RLCL_PROFILE") == "1")
    envs = make_vec_env(cfg.env_id, cfg.num_envs, cfg.norm_obs, cfg.norm_reward, cfg.gamma,
                        cfg.vector_env)
    obs_dim = int(envs.single_observation_space.shape[0])  # make_vec_env checked the spaces
    num_updates = cfg.update_epochs * cfg.num_minibatches
    policy = ActorCritic(device, obs_dim, envs.single_action_space, list(cfg.hidden_sizes),
                         cfg.activation, cfg.seed, max_batch=max(cfg.batch_size, cfg.num_envs),
                         norm_slots=num_updates)
    optimizer = make_optimizer(cfg, policy.flat)
    scheduler = make_scheduler(cfg, optimizer)
    rollout = Rollout(device, policy, cfg.num_steps, cfg.num_envs, cfg.minibatch_size,
                      num_updates)
    agent = {"ppo": PPO, "a2c": A2C}[cfg.algo](cfg, policy, rollout, optimizer)
    rng = np.random.default_rng([cfg.seed, 0x5EED])  # minibatch permutations
    meta = {"config": cfg.to_dict(), "obs_dim": obs_dim, "act_dim": policy.act_dim,
            "n_params": policy.flat.n}

    start = {"iteration": 0, "global_step": 0, "elapsed": 0.0}
    if resume is None:
        run_dir = new_run_dir(cfg)
        (run_dir / "config.toml").write_text(to_toml(cfg.to_dict()))
        guard = Guard(cfg, run_dir, policy, optimizer, scheduler, rng, meta)
        obs, _ = envs.reset(seed=cfg.seed)
    else:
        run_dir = Path(resume)
        path = run_dir / "checkpoints" / LATEST
        ckpt = load_checkpoint(path)
        check_compatible(ckpt, path, env_id=cfg.env_id, n_params=policy.flat.n,
                         obs_dim=obs_dim, act_dim=policy.act_dim)
        start = {k: ckpt["meta"][k] for k in start}
        guard = Guard(cfg, run_dir, policy, optimizer, scheduler, rng, meta)
        envs.close()
        envs, obs = restore_training_state(ckpt, policy=policy, optimizer=optimizer,
                                           scheduler=scheduler, rng=rng, guard=guard,
                                           agent=agent)
        guard.take_snapshot(start["iteration"], start["global_step"])
    log = RunLogger(run_dir, cfg.to_dict(), cfg.num_iterations * cfg.batch_size, cfg.progress,
                    resume_step=None if resume is None else start["global_step"],
                    elapsed=start["elapsed"])
    result = Result(run_dir, read_episodes(run_dir / "episodes.csv") if resume else [])

    def on_episode(step: int, ret: float, length: int) -> None:
        result.episodes.append((step, ret, length))
        log.episode(step, ret, length)

    def checkpoint(iteration: int, global_step: int, obs, name: str = LATEST) -> None:
        log.flush()
        save_training_state(
            run_dir / "checkpoints" / name, policy=policy, optimizer=optimizer,
            scheduler=scheduler, rng=rng, envs=envs, obs=obs, guard=guard, agent=agent,
            counters={"iteration": iteration, "global_step": global_step,
                      "elapsed": log.elapsed()},
            meta={**meta, "normalization": normalization_state(envs)})

    try:
        global_step, obs = _loop(cfg, envs, obs, start, policy, rollout, agent, scheduler,
                                 guard, rng, log, result, on_episode, checkpoint)
    except BaseException:  # a diverged or interrupted run still leaves readable logs
        log.end_progress()
        log.close()
        envs.close()
        raise
    wall = log.elapsed() - start["elapsed"]
    log.end_progress()
    if device.profile:
        print(format_profile(wall, rollout.env_seconds, rollout.readback_seconds,
                             device.collect_profile()), file=sys.stderr)
    checkpoint(cfg.num_iterations, global_step, obs)
    checkpoint(cfg.num_iterations, global_step, obs, name="final.npz")
    norm_state = normalization_state(envs)
    envs.close()

    params = policy.flat.numpy()
    returns = evaluate_policy(policy, cfg.env_id, cfg.eval_episodes, cfg.seed, norm_state)
    summary = {
        "algo": cfg.algo, "env_id": cfg.env_id, "seed": cfg.seed, "total_timesteps": global_step,
        "wall_seconds": round(wall, 3), "fps": round(global_step / wall, 1),
        "eval_mean_return": float(returns.mean()) if returns.size else None,
        "eval_std_return": float(returns.std()) if returns.size else None,
        "eval_episodes": int(returns.size), "device": device.fingerprint["device"],
        "fingerprint": device.fingerprint, "train_episodes": len(result.episodes),
        "params_sha256": hashlib.sha256(params.tobytes()).hexdigest(),
        "rollbacks": guard.rollbacks,
    }
    if returns.size:
        log.scalars({EVAL_MEAN: summary["eval_mean_return"]}, global_step)
    log.hparams(cfg.hyperparameters(), {"hparam/eval_mean_return": summary["eval_mean_return"] or 0.0,
                                "hparam/fps": summary["fps"]})
    log.close()
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    result.summary, result.final_params = summary, params
    return result


def _loop(cfg, envs, obs, start, policy, rollout, agent, scheduler, guard, rng, log, result,
          on_episode, checkpoint):
    """The iterations: ROLLOUT, ADVANTAGE, UPDATE, LOG. Returns (global_step, next obs)."""
    global_step = start["global_step"]
    for iteration in range(start["iteration"], cfg.num_iterations):
        # ROLLOUT
        obs = rollout.collect(envs, obs, policy, cfg.seed, iteration, global_step, on_episode)
        global_step += cfg.batch_size
        # ADVANTAGE
        rollout.compute_gae(cfg.gamma, cfg.gae_lambda)
        # UPDATE
        lr = scheduler.get_last_lr()[0]
        guard.before_iteration()
        stats = agent.update(rng)
        scheduler.step()
        stats.update(guard.after_iteration(stats, iteration, global_step))
        # LOG
        sps = (global_step - start["global_step"]) / max(log.elapsed() - start["elapsed"], 1e-9)
        recent = [(r, l) for _, r, l in result.episodes[-100:]]
        log.scalars(iteration_scalars(cfg.algo, stats, lr, sps, recent), global_step)
        log.progress(global_step, sps, float(np.mean([r for r, _ in recent[-20:]])) if recent else None)
        if cfg.checkpoint_every and (iteration + 1) % cfg.checkpoint_every == 0:
            checkpoint(iteration + 1, global_step, obs)
    return global_step, obs


if __name__ == "__main__":
    from rlcl.cli import main

    sys.exit(main())
