"""The command line of ``python -m rlcl.train``: parsing, config resolution and the summary
lines. ``rlcl.train.main`` runs it; this module never imports rlcl.train (no import cycle).

Every bad input (an unknown algorithm, environment or key, a bad value, no usable device, a
corrupt checkpoint) is an RlclError, which main() prints as one line with exit code 2 (3 for a
divergence the guard could not recover from).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rlcl.checkpoint import resumable_checkpoint, run_config_path
from rlcl.config import ALGOS, Config, build_config, packaged_config, parse_override, read_toml
from rlcl.device import Device, list_devices
from rlcl.envs import ALIASES, resolve_env
from rlcl.errors import ConfigError


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
    p.add_argument("--profile", action="store_true",
                   help="print where the time went (also RLCL_PROFILE=1)")
    p.add_argument("--list", action="store_true",
                   help="list the algorithms, environment aliases and tuned configs")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR",
                   help="continue RUN_DIR from its latest checkpoint to its configured total")
    return p


def resume_config(run_dir: Path, args: argparse.Namespace) -> Config:
    """The run's own resolved config (config.toml), with only --device and --no-progress
    taken from this command line."""
    resumable_checkpoint(run_dir)  # a one-line error if there is nothing to resume
    values = read_toml(run_config_path(run_dir))
    if args.device is not None:
        values["device"] = args.device
    if args.no_progress:
        values["progress"] = False
    return build_config(values)


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
    if args.profile:
        values["profile"] = True
    return build_config(values)


def parse_command(argv: list[str] | None = None) -> tuple[Config | None, Path | None]:
    """(config, run folder to resume or None) for ARGV; (None, None) when the command only
    prints (--list, --device list). The device is checked here, before any run folder."""
    args = build_parser().parse_args(argv)
    if args.device == "list":
        print(list_devices())
        return None, None
    if args.list:
        print(describe_choices())
        return None, None
    cfg = resume_config(args.resume, args) if args.resume is not None else config_from_args(args)
    Device(cfg.device)  # fail on a bad device before a run folder is made
    return cfg, args.resume


def print_summary(result) -> None:
    s = result.summary
    print(f"run folder: {result.run_dir}")
    print(f"trained {s['total_timesteps']:,} steps in {s['wall_seconds']:.1f} s "
          f"({s['fps']:,.0f} steps/s) on {s['device']}")
    if s["eval_episodes"]:
        print(f"greedy evaluation over {s['eval_episodes']} episodes: "
              f"{s['eval_mean_return']:.1f} +/- {s['eval_std_return']:.1f}")
