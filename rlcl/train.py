"""``python -m rlcl.train ALGO ENV``: ``train(cfg)``, one loop that reads top to bottom, and
``main()``, the command line (its parsing and config resolution live in rlcl/cli.py).

The loop follows CleanRL's order: SETUP, then per iteration ROLLOUT, ADVANTAGE, UPDATE, LOG
(and a checkpoint every ``checkpoint_every`` iterations); then a final checkpoint, a greedy
evaluation on gymnasium's own env and the summary. ``train(cfg, resume=RUN_DIR)`` continues a
run from its latest checkpoint, bit for bit as if it had never stopped (rlcl/checkpoint.py).
Nothing imports this module: it is an entry point (docs/architecture.md, module map).
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
from rlcl.checkpoint import (CONFIG, EPISODES, FINAL, LATEST, SUMMARY, TrainingState,
                             checkpoint_path, resume_training, save_training_state)
from rlcl.cli import parse_command, print_summary
from rlcl.config import Config, to_toml
from rlcl.device import Device
from rlcl.device_rollout import DeviceEnvs, DeviceRollout
from rlcl.diagnostics import EVAL_MEAN, iteration_scalars
from rlcl.envs import make_vec_env, normalization_state
from rlcl.errors import RlclError
from rlcl.eval import evaluate_policy
from rlcl.guard import Guard
from rlcl.logger import RunLogger, format_profile, read_episodes
from rlcl.optim import SGD, Adam, Momentum
from rlcl.optim.lr_scheduler import ConstantLR, CosineAnnealingLR
from rlcl.policy import ActorCritic
from rlcl.rollout import Rollout


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


def make_agent(cfg: Config, device: Device) -> tuple:
    """CFG's envs, policy, optimizer, rollout storage and agent on DEVICE: (envs, policy,
    optimizer, rollout, agent). Bad env ids or spaces fail here, before a run folder exists."""
    if cfg.env_backend == "device":  # the classic-control envs as kernels (issue 11)
        envs = DeviceEnvs(device, cfg.env_id, cfg.num_envs, cfg.norm_obs, cfg.norm_reward,
                          cfg.gamma)
    else:
        envs = make_vec_env(cfg.env_id, cfg.num_envs, cfg.norm_obs, cfg.norm_reward, cfg.gamma)
    obs_dim = int(envs.single_observation_space.shape[0])
    num_updates = cfg.update_epochs * cfg.num_minibatches
    policy = ActorCritic(device, obs_dim, envs.single_action_space, list(cfg.hidden_sizes),
                         cfg.activation, cfg.seed, max_batch=max(cfg.batch_size, cfg.num_envs),
                         norm_slots=num_updates)
    optimizer = make_optimizer(cfg, policy.flat)
    if cfg.env_backend == "device":
        rollout = DeviceRollout(device, policy, envs, cfg.num_steps, cfg.num_envs,
                                cfg.minibatch_size, num_updates)
    else:
        rollout = Rollout(device, policy, cfg.num_steps, cfg.num_envs, cfg.minibatch_size,
                          num_updates)
    agent = {"ppo": PPO, "a2c": A2C}[cfg.algo](cfg, policy, rollout, optimizer)
    return envs, policy, optimizer, rollout, agent


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


def update_flop(cfg: Config) -> float:
    """FLOP of one fused minibatch update (kernels/ppo_update.cl), for the default device rule
    (rlcl/device.py): forward and two backward products of both networks' hidden layers, the
    bulk of it at any width that matters. 0 where the update is not fused (Adam)."""
    if cfg.optimizer == "adam":
        return 0.0
    h = cfg.hidden_sizes
    return 2 * 3 * 2 * cfg.minibatch_size * sum(a * b for a, b in zip(h, h[1:]))


def train(cfg: Config, resume: Path | None = None) -> Result:
    """Train CFG's agent (or continue the run in RESUME); write the run folder; return the
    episodes and the summary."""
    # SETUP ---------------------------------------------------------------------------------
    device = Device(cfg.device, profile=cfg.profile or os.environ.get("RLCL_PROFILE") == "1",
                    work=update_flop(cfg))
    envs, policy, optimizer, rollout, agent = make_agent(cfg, device)
    scheduler = make_scheduler(cfg, optimizer)
    obs_dim = policy.obs_dim
    rng = np.random.default_rng([cfg.seed, 0x5EED])  # minibatch permutations
    meta = {"config": cfg.to_dict(), "obs_dim": obs_dim, "act_dim": policy.act_dim,
            "n_params": policy.flat.n}
    run_dir = Path(resume) if resume is not None else new_run_dir(cfg)
    guard = Guard(cfg, run_dir, policy, optimizer, scheduler, rng, meta)
    state = TrainingState(policy, optimizer, scheduler, rng, guard, agent, envs)
    if resume is None:
        (run_dir / CONFIG).write_text(to_toml(cfg.to_dict()))
        state.obs, _ = envs.reset(seed=cfg.seed)
        start = {"iteration": 0, "global_step": 0, "elapsed": 0.0}
    else:
        start = resume_training(run_dir, state, env_id=cfg.env_id, obs_dim=obs_dim)
    log = RunLogger(run_dir, cfg.to_dict(), cfg.num_iterations * cfg.batch_size, cfg.progress,
                    resume_step=None if resume is None else start["global_step"],
                    elapsed=start["elapsed"])
    result = Result(run_dir, read_episodes(run_dir / EPISODES) if resume else [])
    global_step = start["global_step"]

    def save(iteration: int, name: str) -> None:
        log.flush()  # everything logged so far is on disk before the checkpoint says so
        counters = {"iteration": iteration, "global_step": global_step,
                    "elapsed": log.elapsed()}
        save_training_state(checkpoint_path(run_dir, name), state, counters,
                            {**meta, "normalization": normalization_state(state.envs)})

    try:
        for iteration in range(start["iteration"], cfg.num_iterations):
            # ROLLOUT
            state.obs, finished = rollout.collect(state.envs, state.obs, policy, cfg.seed,
                                                  iteration, global_step)
            global_step += cfg.batch_size
            for episode in finished:
                result.episodes.append(episode)
                log.episode(*episode)
            # ADVANTAGE
            rollout.compute_gae(cfg.gamma, cfg.gae_lambda)
            # UPDATE
            lr = scheduler.get_last_lr()[0]
            guard.before_iteration()
            stats = agent.update(rng)
            scheduler.step()
            stats.update(guard.after_iteration(stats, iteration, global_step))
            # LOG
            sps = (global_step - start["global_step"]) / max(log.elapsed() - start["elapsed"],
                                                              1e-9)
            recent = [(ret, length) for _, ret, length in result.episodes[-100:]]
            log.scalars(iteration_scalars(cfg.algo, stats, lr, sps, recent), global_step)
            log.progress(global_step, sps,
                         float(np.mean([r for r, _ in recent[-20:]])) if recent else None)
            if cfg.checkpoint_every and (iteration + 1) % cfg.checkpoint_every == 0:
                save(iteration + 1, LATEST)
    except BaseException:  # a diverged or interrupted run still leaves readable logs
        log.end_progress()
        log.close()
        state.envs.close()
        raise

    # FINISH: checkpoints, greedy evaluation on gymnasium's env, summary -----------------------
    log.end_progress()
    wall = log.elapsed()  # training seconds of the whole run, resumed parts included
    if device.profile:
        print(format_profile(wall - start["elapsed"], rollout.env_seconds,
                             rollout.readback_seconds, device.collect_profile()),
              file=sys.stderr)
    save(cfg.num_iterations, LATEST)
    save(cfg.num_iterations, FINAL)
    norm_state = normalization_state(state.envs)
    state.envs.close()
    params = policy.flat.numpy()
    returns = evaluate_policy(policy, cfg.env_id, cfg.eval_episodes, cfg.seed, norm_state)
    summary = {
        "algo": cfg.algo, "env_id": cfg.env_id, "seed": cfg.seed, "total_timesteps": global_step,
        # over the training time of the whole run: a resume adds its seconds to those the
        # checkpoint recorded, so steps/s means the same for a resumed and a straight run
        "wall_seconds": round(wall, 3), "fps": round(global_step / max(wall, 1e-9), 1),
        "eval_mean_return": float(returns.mean()) if returns.size else None,
        "eval_std_return": float(returns.std()) if returns.size else None,
        "eval_episodes": int(returns.size), "device": device.fingerprint["device"],
        "fingerprint": device.fingerprint, "train_episodes": len(result.episodes),
        "params_sha256": hashlib.sha256(params.tobytes()).hexdigest(),
        "rollbacks": guard.rollbacks,
    }
    if returns.size:
        log.scalars({EVAL_MEAN: summary["eval_mean_return"]}, global_step)
    log.hparams(cfg.hyperparameters(), {"hparam/eval_mean_return":
                                        summary["eval_mean_return"] or 0.0,
                                        "hparam/fps": summary["fps"]})
    log.close()
    (run_dir / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    result.summary, result.final_params = summary, params
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m rlcl.train`` (and the ``rlcl-train`` script): one line and exit code 2 for
    bad input, 3 for a divergence the guard could not recover from."""
    try:
        cfg, resume = parse_command(argv)
        if cfg is None:  # --list or --device list: printed already
            return 0
        result = train(cfg, resume=resume)
    except RlclError as exc:
        print(f"rlcl: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("rlcl: interrupted", file=sys.stderr)
        return 130
    print_summary(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
