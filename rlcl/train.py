"""``python -m rlcl.train ALGO ENV``: the command line, and ``train(cfg)``, one readable loop.

The loop follows CleanRL's order: SETUP, then per iteration ROLLOUT, ADVANTAGE, UPDATE, LOG;
then a final checkpoint and a greedy evaluation.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from rlcl.agents.a2c import A2C
from rlcl.agents.ppo import PPO
from rlcl.checkpoint import save_checkpoint
from rlcl.config import ALGOS, Config, build_config, packaged_config, parse_override, read_toml
from rlcl.device import Device, list_devices
from rlcl.diagnostics import EVAL_MEAN, iteration_scalars
from rlcl.envs import ALIASES, check_spaces, make_vec_env, normalization_state, resolve_env
from rlcl.errors import ConfigError, RlclError
from rlcl.eval import evaluate_policy
from rlcl.guard import Guard
from rlcl.logger import RunLogger
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


def make_agent(cfg: Config, policy, rollout, optimizer):
    return {"ppo": PPO, "a2c": A2C}[cfg.algo](cfg, policy, rollout, optimizer)


def train(cfg: Config) -> Result:
    """Train CFG's agent; write the run folder; return the episodes and the summary."""
    # SETUP ---------------------------------------------------------------------------------
    device = Device(cfg.device)
    envs = make_vec_env(cfg.env_id, cfg.num_envs, cfg.norm_obs, cfg.norm_reward, cfg.gamma)
    obs_dim = check_spaces(envs, cfg.env_id)
    num_updates = cfg.update_epochs * cfg.num_minibatches
    policy = ActorCritic(device, obs_dim, envs.single_action_space, list(cfg.hidden_sizes),
                         cfg.activation, cfg.seed, max_batch=max(cfg.batch_size, cfg.num_envs),
                         norm_slots=num_updates)
    optimizer = make_optimizer(cfg, policy.flat)
    scheduler = make_scheduler(cfg, optimizer)
    rollout = Rollout(device, policy, cfg.num_steps, cfg.num_envs, cfg.minibatch_size,
                      num_updates)
    agent = make_agent(cfg, policy, rollout, optimizer)
    rng = np.random.default_rng([cfg.seed, 0x5EED])  # minibatch permutations

    run_dir = Path(cfg.runs_dir) / f"{cfg.env_id}__{cfg.algo}__{cfg.seed}__{int(time.time())}"
    run_dir.mkdir(parents=True, exist_ok=False)
    (run_dir / "config.toml").write_text(to_toml(cfg.to_dict()))
    total = cfg.num_iterations * cfg.batch_size
    log = RunLogger(run_dir, cfg.to_dict(), total, cfg.progress)
    result = Result(run_dir)
    meta = {"config": cfg.to_dict(), "obs_dim": obs_dim, "act_dim": policy.act_dim,
            "n_params": policy.flat.n}
    guard = Guard(cfg, run_dir, policy, optimizer, scheduler, rng, meta)

    def on_episode(step: int, ret: float, length: int) -> None:
        result.episodes.append((step, ret, length))
        log.episode(step, ret, length)

    try:
        global_step, wall = _loop(cfg, envs, policy, rollout, agent, scheduler, guard, rng, log,
                                  result, on_episode)
    except BaseException:  # a diverged or interrupted run still leaves readable logs
        log.end_progress()
        log.close()
        envs.close()
        raise
    log.end_progress()
    norm_state = normalization_state(envs)
    envs.close()

    params = policy.flat.numpy()
    save_checkpoint(run_dir / "checkpoints" / "final.npz", params=params,
                    optimizer_state=optimizer.state_dict(),
                    scheduler_state=scheduler.state_dict(),
                    meta={**meta, "iteration": cfg.num_iterations, "global_step": global_step,
                          "normalization": norm_state})
    returns = evaluate_policy(policy, cfg.env_id, cfg.eval_episodes, cfg.seed, norm_state)
    summary = {
        "algo": cfg.algo, "env_id": cfg.env_id, "seed": cfg.seed, "total_timesteps": global_step,
        "wall_seconds": round(wall, 3), "fps": round(global_step / wall, 1),
        "eval_mean_return": float(returns.mean()) if returns.size else None,
        "eval_std_return": float(returns.std()) if returns.size else None,
        "eval_episodes": int(returns.size), "device": device.fingerprint["device"],
        "fingerprint": device.fingerprint, "train_episodes": len(result.episodes),
        "rollbacks": guard.rollbacks,
    }
    if returns.size:
        log.scalars({EVAL_MEAN: summary["eval_mean_return"]}, global_step)
    log.hparams(cfg.to_dict(), {"hparam/eval_mean_return": summary["eval_mean_return"] or 0.0,
                                "hparam/fps": summary["fps"]})
    log.close()
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    result.summary, result.final_params = summary, params
    return result


def _loop(cfg, envs, policy, rollout, agent, scheduler, guard, rng, log, result, on_episode):
    """The iterations: ROLLOUT, ADVANTAGE, UPDATE, LOG. Returns (global_step, wall seconds)."""
    global_step = 0
    obs, _ = envs.reset(seed=cfg.seed)
    start = time.perf_counter()
    for iteration in range(cfg.num_iterations):
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
        sps = global_step / (time.perf_counter() - start)
        recent = [(r, l) for _, r, l in result.episodes[-100:]]
        log.scalars(iteration_scalars(cfg.algo, stats, lr, sps, recent), global_step)
        log.progress(global_step, sps, float(np.mean([r for r, _ in recent[-20:]])) if recent else None)
    return global_step, time.perf_counter() - start


def to_toml(values: dict) -> str:
    """The resolved config as TOML (flat keys: str, bool, int, float and lists of ints)."""
    def fmt(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(fmt(x) for x in v) + "]"
        return repr(v)

    return "".join(f"{k} = {fmt(v)}\n" for k, v in values.items())


# -- command line ---------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit code 2, as for every bad input
        raise ConfigError(f"{message} (see python -m rlcl.train --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m rlcl.train",
                description="Train PPO or A2C whose networks run as OpenCL kernels.")
    p.add_argument("algo", nargs="?", help=f"algorithm: {', '.join(ALGOS)}")
    p.add_argument("env", nargs="?", help="environment alias (CartPole) or gymnasium id")
    p.add_argument("--config", type=Path, help="a TOML file of hyperparameters")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one hyperparameter (repeatable)")
    p.add_argument("--seed", type=int)
    p.add_argument("--total-timesteps", type=int)
    p.add_argument("--device", help="OpenCL device: P:D, a name fragment, or 'list'")
    p.add_argument("--runs-dir", help="where run folders go (default: runs)")
    p.add_argument("--no-progress", action="store_true", help="plain lines, no progress bar")
    p.add_argument("--list", action="store_true",
                   help="list the algorithms, environment aliases and tuned configs")
    return p


def describe_choices() -> str:
    """What --list prints."""
    tuned = [f"  {algo} {alias} ({env_id})" for algo in ALGOS for alias, env_id in ALIASES.items()
             if packaged_config(algo, alias) is not None]
    aliases = [f"  {alias} = {env_id}" for alias, env_id in ALIASES.items()]
    return "\n".join([f"algorithms: {', '.join(ALGOS)}", "environment aliases:", *aliases,
                      "tuned configs (algorithm, environment):", *tuned])


def config_from_args(args: argparse.Namespace) -> Config:
    if args.algo is None or args.env is None:
        raise ConfigError("give an algorithm and an environment, e.g. "
                          "python -m rlcl.train ppo CartPole")
    if args.algo not in ALGOS:
        raise ConfigError(f"unknown algorithm {args.algo!r}; choose one of {', '.join(ALGOS)}")
    env_id, alias = resolve_env(args.env)
    if args.config is not None:
        values = read_toml(args.config)
    else:
        path = packaged_config(args.algo, alias)
        if path is None:
            path = packaged_config(args.algo, "generic")
            print(f"rlcl: note: no tuned config for {args.algo} on {env_id}; using the untuned "
                  f"{path.name} (see --list; pass your own with --config FILE)",
                  file=sys.stderr)
        values = read_toml(path)
    values.update(algo=args.algo, env_id=env_id)
    for text in args.set:
        key, value = parse_override(text)
        values[key] = value
    flags = {"seed": args.seed, "total_timesteps": args.total_timesteps, "device": args.device,
             "runs_dir": args.runs_dir}
    values.update({k: v for k, v in flags.items() if v is not None})
    if args.no_progress:
        values["progress"] = False
    return build_config(values)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.device == "list":
            print(list_devices())
            return 0
        if args.list:
            print(describe_choices())
            return 0
        cfg = config_from_args(args)
        Device(cfg.device)  # fail on a bad device before a run folder is made
        result = train(cfg)
    except RlclError as exc:
        print(f"rlcl: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("rlcl: interrupted", file=sys.stderr)
        return 130
    s = result.summary
    print(f"run folder: {result.run_dir}")
    print(f"trained {s['total_timesteps']:,} steps in {s['wall_seconds']:.1f} s "
          f"({s['fps']:,.0f} steps/s) on {s['device']}")
    if s["eval_episodes"]:
        print(f"greedy evaluation over {s['eval_episodes']} episodes: "
              f"{s['eval_mean_return']:.1f} +/- {s['eval_std_return']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
