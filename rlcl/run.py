"""One agent's training run: its objects (``make_agent``), the loop that trains it a step at a
time (:class:`Run`) and ``train(cfg)``, which runs one to the end.

The loop follows CleanRL's order: SETUP, then per iteration ROLLOUT, ADVANTAGE, UPDATE, LOG
(and a checkpoint every ``checkpoint_every`` iterations); then a final checkpoint, a greedy
evaluation on gymnasium's own env and the summary. ``train(cfg, resume=RUN_DIR)`` continues a
run from its latest checkpoint, bit for bit as if it had never stopped (rlcl/checkpoint.py).
rlcl/population.py runs many :class:`Run` objects side by side (issue 13).
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
from rlcl.checkpoint import (CONFIG, EPISODES, FINAL, LATEST, SUMMARY, SyncBatch,
                             TrainingState, checkpoint_path, fresh_dir, resume_training,
                             save_training_state)
from rlcl.config import Config, to_toml
from rlcl.device import Device
from rlcl.device_choice import PARALLEL_MIN_FLOP
from rlcl.device_rollout import DeviceEnvs, DeviceRollout
from rlcl.diagnostics import EVAL_MEAN, EpisodeWindow, iteration_values
from rlcl.envs import make_vec_env, normalization_state
from rlcl.eval import evaluate_policy
from rlcl.guard import Guard
from rlcl.logger import RunLogger, format_profile, read_episodes, write_scalar_rows
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
    eval_returns: np.ndarray | None = None  # the final greedy evaluation's, per episode

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
    return fresh_dir(Path(cfg.runs_dir), f"{env}__{cfg.algo}__{cfg.seed}__{int(time.time())}")


def update_flop(cfg: Config) -> float:
    """FLOP of one fused minibatch update (kernels/ppo_update.cl), for the default device rule
    (rlcl/device_choice.py): forward and two backward products of both networks' hidden
    layers, the bulk of it at any width that matters. 0 where the update is not fused (Adam)."""
    if cfg.optimizer == "adam":
        return 0.0
    h = cfg.hidden_sizes
    return 2 * 3 * 2 * cfg.minibatch_size * sum(a * b for a, b in zip(h, h[1:]))


class Run:
    """One agent's training, a step at a time: SETUP in the constructor, one iteration of
    ROLLOUT, ADVANTAGE, UPDATE, LOG per ``iterate()``, ``finish()`` for the checkpoints, the
    greedy evaluation and the summary. ``train`` runs one; rlcl/population.py runs many side
    by side on one device, each exactly as ``train`` would (issue 13)."""

    def __init__(self, cfg: Config, device: Device, resume: Path | None = None,
                 run_dir: Path | None = None, solo: bool = True, arena=None, index: int = 0):
        self.cfg, self.device = cfg, device
        self.solo = solo  # alone on the console: its progress bar and profile (not a member's)
        self.index = index  # its place in a population (and in ARENA, rlcl/arena.py)
        if arena is not None:
            with arena.building(index):
                envs, self.policy, self.optimizer, self.rollout, self.agent = make_agent(
                    cfg, device)
        else:
            envs, self.policy, self.optimizer, self.rollout, self.agent = make_agent(cfg, device)
        self.scheduler = make_scheduler(cfg, self.optimizer)
        self.rng = np.random.default_rng([cfg.seed, 0x5EED])  # minibatch permutations
        self.meta = {"config": cfg.to_dict(), "obs_dim": self.policy.obs_dim,
                     "act_dim": self.policy.act_dim, "n_params": self.policy.flat.n}
        self.run_dir = (Path(resume) if resume is not None
                        else run_dir if run_dir is not None else new_run_dir(cfg))
        self.guard = Guard(cfg, self.run_dir, self.policy, self.optimizer, self.scheduler,
                           self.rng, self.meta)
        self.state = TrainingState(self.policy, self.optimizer, self.scheduler, self.rng,
                                   self.guard, self.agent, envs)
        if resume is None:
            (self.run_dir / CONFIG).write_text(to_toml(cfg.to_dict()))
            self.state.obs, _ = envs.reset(seed=cfg.seed)
            self.start = {"iteration": 0, "global_step": 0, "elapsed": 0.0}
        else:
            self.start = resume_training(self.run_dir, self.state, env_id=cfg.env_id,
                                         obs_dim=self.policy.obs_dim)
        self.log = RunLogger(self.run_dir, cfg.to_dict(), cfg.num_iterations * cfg.batch_size,
                             cfg.progress, elapsed=self.start["elapsed"],
                             resume_step=None if resume is None else self.start["global_step"])
        self.result = Result(self.run_dir,
                             read_episodes(self.run_dir / EPISODES) if resume else [])
        self.iteration, self.global_step = self.start["iteration"], self.start["global_step"]
        self.sps, self.lr = 0.0, cfg.learning_rate
        self._unlogged: tuple | None = None  # end_update's scalars, deferred to write_log
        self.window = EpisodeWindow(self.result.episodes)  # the logged episode means

    @property
    def done(self) -> bool:
        return self.iteration >= self.cfg.num_iterations

    def recent_return(self) -> float | None:
        """The mean return of the last 20 training episodes (None before the first)."""
        recent = self.result.episodes[-20:]
        return float(np.mean([r for _, r, _ in recent])) if recent else None

    def save(self, name: str, sync: SyncBatch | None = None) -> None:
        """Checkpoint NAME; SYNC (a population's checkpoint of all its agents) makes this
        one's fsyncs and rename with the others' (checkpoint.SyncBatch)."""
        self.write_log()
        # everything logged so far is on disk before the checkpoint says so
        if sync is None:
            self.log.flush()
        else:
            self.log.flush_buffers()
            sync.later(self.log.sync)
        counters = {"iteration": self.iteration, "global_step": self.global_step,
                    "elapsed": self.log.elapsed()}
        save_training_state(checkpoint_path(self.run_dir, name), self.state, counters,
                            {**self.meta, "normalization": normalization_state(self.state.envs)},
                            sync)

    def iterate(self) -> None:
        """One iteration; a guard that cannot recover raises DivergenceError."""
        cfg, state = self.cfg, self.state
        # ROLLOUT
        state.obs, finished = self.rollout.collect(state.envs, state.obs, self.policy, cfg.seed,
                                                   self.iteration, self.global_step)
        self.after_rollout(finished)
        # UPDATE
        self.begin_update()
        self.end_update(self.agent.update_minibatches())

    # The phases of an iteration around its launches, which a population makes for all its
    # agents at once (rlcl/batched.py): after_rollout and begin_update (which touch disjoint
    # state: a population books the update first), the minibatches, then end_update. Each
    # takes a flag for the launches a population makes for all agents at once.
    def after_rollout(self, finished: list, gae: bool = True) -> None:
        """The rollout's episodes into the logs; then ADVANTAGE."""
        self.global_step += self.cfg.batch_size
        for episode in finished:
            self.result.episodes.append(episode)
            self.window.add(episode)
            self.log.episode(*episode)
        if gae:
            self.rollout.compute_gae(self.cfg.gamma, self.cfg.gae_lambda)

    def begin_update(self, launch: bool = True) -> None:
        self.lr = self.scheduler.get_last_lr()[0]
        self.guard.before_iteration()
        if launch:
            self.agent.begin_update(self.rng)

    def end_update(self, done: int, stats: dict | None = None, defer_log: bool = False) -> bool:
        """The update's statistics (STATS if a population has summarised them already), the
        schedule, the guard; then LOG and the checkpoint. DEFER_LOG: the iteration's scalars
        are written by the next ``write_log()`` (a population writes them while the device runs
        the next update: rlcl/batched.py), and a checkpoint due now is left to the caller
        (``save(LATEST)``, which a population makes for all its agents together, before any
        of them changes again). Returns whether a checkpoint is due."""
        cfg, log = self.cfg, self.log
        stats = self.agent.end_update(done) if stats is None else stats
        self.scheduler.step()
        stats.update(self.guard.after_iteration(stats, self.iteration, self.global_step))
        self.iteration += 1
        # LOG: the figures as they stand now (the next rollout's episodes are not yet in)
        self.sps = ((self.global_step - self.start["global_step"])
                    / max(log.elapsed() - self.start["elapsed"], 1e-9))
        self._unlogged = (stats, self.lr, self.sps, self.window.means(), self.global_step)
        checkpoint = bool(cfg.checkpoint_every) and self.iteration % cfg.checkpoint_every == 0
        if not defer_log:
            self.write_log()
        if self.solo and log.bar.due(self.global_step):
            log.progress(self.global_step, self.sps, self.recent_return())
        if checkpoint and not defer_log:
            self.save(LATEST)
        return checkpoint

    def write_log(self) -> None:
        """The last iteration's scalars into the events file, if not written yet."""
        write_logs([self])

    def abort(self) -> None:
        """A diverged or interrupted run still leaves readable logs."""
        self.write_log()
        self.log.end_progress()
        self.log.close()
        self.state.envs.close()

    def finish(self, eval_returns: np.ndarray | None = None) -> Result:
        """The final checkpoints, the greedy evaluation on gymnasium's env (EVAL_RETURNS if a
        population has evaluated its agents together) and the summary."""
        cfg, device, log, policy = self.cfg, self.device, self.log, self.policy
        self.write_log()
        log.end_progress()
        wall = log.elapsed()  # training seconds of the whole run, resumed parts included
        if device.profile and self.solo:
            print(format_profile(wall - self.start["elapsed"], self.rollout.env_seconds,
                                 self.rollout.readback_seconds, device.collect_profile()),
                  file=sys.stderr)
        self.save(LATEST)
        self.save(FINAL)
        norm_state = normalization_state(self.state.envs)
        self.state.envs.close()
        params = policy.flat.numpy()
        returns = (evaluate_policy(policy, cfg.env_id, cfg.eval_episodes, cfg.seed, norm_state)
                   if eval_returns is None else eval_returns)
        summary = {
            "algo": cfg.algo, "env_id": cfg.env_id, "seed": cfg.seed,
            "total_timesteps": self.global_step,
            # over the training time of the whole run: a resume adds its seconds to those the
            # checkpoint recorded, so steps/s means the same for a resumed and a straight run
            "wall_seconds": round(wall, 3), "fps": round(self.global_step / max(wall, 1e-9), 1),
            "eval_mean_return": float(returns.mean()) if returns.size else None,
            "eval_std_return": float(returns.std()) if returns.size else None,
            "eval_episodes": int(returns.size), "device": device.fingerprint["device"],
            "fingerprint": device.fingerprint, "train_episodes": len(self.result.episodes),
            "params_sha256": hashlib.sha256(params.tobytes()).hexdigest(),
            "rollbacks": self.guard.rollbacks, "eval_returns": returns.tolist(),
        }
        if returns.size:
            log.scalars({EVAL_MEAN: summary["eval_mean_return"]}, self.global_step)
        log.hparams(cfg.hyperparameters(), {"hparam/eval_mean_return":
                                            summary["eval_mean_return"] or 0.0,
                                            "hparam/fps": summary["fps"]})
        log.close()
        (self.run_dir / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
        self.result.summary, self.result.final_params = summary, params
        self.result.eval_returns = returns
        return self.result


# A batched population (rlcl/batched.py) trains on PoCL's pthread device whatever its
# networks: its launches run every agent (work-groups for all cores), and the host books,
# summarises and logs the agents while the device runs a rollout or an update, which only a
# device with worker threads allows (``basic`` runs a kernel in the enqueuing thread, which
# holds the GIL meanwhile). Measured (issue 13, 2-core AVX2 EPYC): 64 agents of the default
# config 258,000 env steps/s on basic, 338,000 on pthread; 8 and 32 agents ~1.2-1.3x too.


def train_device(cfg: Config, batched: bool = False) -> Device:
    """The device a run of CFG trains on (the same for every agent of a population; BATCHED:
    one whose launches run all agents)."""
    work = max(update_flop(cfg), PARALLEL_MIN_FLOP) if batched else update_flop(cfg)
    return Device(cfg.device, profile=cfg.profile or os.environ.get("RLCL_PROFILE") == "1",
                  work=work)


def write_logs(runs: list) -> None:
    """Each of RUNS' last iteration scalars into its events file, if not written yet; a
    population writes all its agents' at once (rlcl/logger.py write_scalar_rows)."""
    entries = []
    for run in runs:
        if run._unlogged is not None:
            stats, lr, sps, means, step = run._unlogged
            run._unlogged = None
            entries.append((run.log, *iteration_values(run.cfg.algo, stats, lr, sps, means),
                            step))
    if entries:
        write_scalar_rows(entries)


def train(cfg: Config, resume: Path | None = None) -> Result:
    """Train CFG's agent (or continue the run in RESUME); write the run folder; return the
    episodes and the summary."""
    run = Run(cfg, train_device(cfg), resume)
    try:
        while not run.done:
            run.iterate()
    except BaseException:
        run.abort()
        raise
    return run.finish()
