"""The command line of ``python -m rlcl.train``: parsing, config resolution and the summary
lines. ``rlcl.train.main`` runs it; this module never imports rlcl.train (no import cycle).

Every bad input (an unknown algorithm, environment or key, a bad value, no usable device, a
corrupt checkpoint) is an RlclError, which main() prints as one line with exit code 2 (3 for a
divergence the guard could not recover from).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rlcl.checkpoint import POPULATION, resumable_checkpoint, run_config_path
from rlcl.config import (ALGOS, FIELDS, PER_AGENT_KEYS, Config, build_config, check_key,
                         packaged_config, parse_override, read_toml)
from rlcl.device_choice import choose_device, list_devices
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
                   help="continue RUN_DIR (a run or a population folder) from its latest "
                        "checkpoint to its configured total")
    p.add_argument("--seeds", metavar="SEEDS",
                   help="train a population, one agent per seed: a range (0-63) or a list "
                        "(0,5,9)")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="cross a per-agent hyperparameter's values with the seeds "
                        "(repeatable; implies a population)")
    return p


@dataclass
class Command:
    """What a command line asks for: CFG trained once, or (SEEDS, GRID given) a population of
    agents with CFG as the base; RESUME: the run or population folder to continue."""

    cfg: Config | None
    resume: Path | None = None
    seeds: list[int] | None = None
    grid: dict[str, list] = field(default_factory=dict)
    device: str | None = None  # a resumed population's --device and --no-progress
    no_progress: bool = False

    @property
    def population(self) -> bool:
        return self.seeds is not None


def parse_seeds(text: str) -> list[int]:
    """``0-63``, ``0,5,9`` or both (``0-3,7``): distinct seeds >= 0, in the order given."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            lo, dash, hi = part.strip().partition("-")
            first, last = int(lo), int(hi) if dash else int(lo)
            if first < 0 or last < first:
                raise ValueError
            seeds.extend(range(first, last + 1))
    except ValueError:
        raise ConfigError(f"--seeds takes a range (0-63) or a list (0,5,9) of seeds >= 0, got "
                          f"{text!r}") from None
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {text!r} names a seed twice")
    return seeds


def parse_grid(items: list[str]) -> dict[str, list]:
    """``KEY=V1,V2`` per item: the values of each per-agent key (config.PER_AGENT_KEYS)."""
    grid: dict[str, list] = {}
    for text in items:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not raw.strip():
            raise ConfigError(f"--grid takes KEY=V1,V2,..., got {text!r}")
        if key in grid:
            raise ConfigError(f"--grid names {key} twice; give all its values at once")
        if key == "seed":
            raise ConfigError("the seeds of a population come from --seeds, not --grid")
        if key not in PER_AGENT_KEYS:
            if key in FIELDS:
                raise ConfigError(f"{key} cannot vary across a population: it fixes the shapes, "
                                  f"kernels or plumbing all agents share; set one value with "
                                  f"--set (--grid varies {', '.join(PER_AGENT_KEYS)})")
            check_key(key)  # an unknown key: its one-line message
        grid[key] = [parse_override(f"{key}={v}")[1] for v in raw.split(",")]
        if len(set(map(repr, grid[key]))) != len(grid[key]):
            raise ConfigError(f"--grid {key} lists a value twice")
    return grid


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


def parse_command(argv: list[str] | None = None) -> Command:
    """What ARGV asks for; a Command with no config when it only prints (--list, --device
    list). The device, and every agent's config, is checked here, before any run folder."""
    args = build_parser().parse_args(argv)
    if args.device == "list":
        print(list_devices())
        return Command(None)
    if args.list:
        print(describe_choices())
        return Command(None)
    if args.resume is not None:
        if args.seeds is not None or args.grid:
            raise ConfigError("--resume continues a folder as it was started: drop --seeds "
                              "and --grid")
        if (args.resume / POPULATION).is_file():
            # rlcl/population.py reads the rest from the folder
            return Command(None, args.resume, seeds=[], device=args.device,
                           no_progress=args.no_progress)
        cfg = resume_config(args.resume, args)
        choose_device(cfg.device)  # fail on a bad device before a run folder is made
        return Command(cfg, args.resume)
    cfg = config_from_args(args)
    command = Command(cfg)
    if args.seeds is not None or args.grid:
        if args.seed is not None:
            raise ConfigError("--seed trains one agent; a population takes --seeds")
        command.seeds = parse_seeds(args.seeds) if args.seeds is not None else [cfg.seed]
        command.grid = parse_grid(args.grid)
        for values in grid_points(command.grid):  # every agent's config is valid
            build_config({**cfg.to_dict(), **values})
    choose_device(cfg.device)  # fail on a bad device before a run folder is made
    return command


def grid_points(grid: dict[str, list]) -> list[dict]:
    """Every combination of the grid's values, the first key varying slowest."""
    return [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]


def print_summary(result) -> None:
    s = result.summary
    print(f"run folder: {result.run_dir}")
    print(f"trained {s['total_timesteps']:,} steps in {s['wall_seconds']:.1f} s "
          f"({s['fps']:,.0f} steps/s) on {s['device']}")
    if s["eval_episodes"]:
        print(f"greedy evaluation over {s['eval_episodes']} episodes: "
              f"{s['eval_mean_return']:.1f} +/- {s['eval_std_return']:.1f}")


def print_population(pop) -> None:
    """The end-of-run table of a population.Population: per grid point its agents, failures
    and IQM with its CI."""
    index = pop.index()
    print(f"population folder: {pop.pop_dir}")
    fps = index["fps"]
    print(f"trained {len(pop.agents)} agents in {pop.wall:.1f} s"
          + (f" ({fps:,.0f} env steps/s in all)" if fps else ""))
    keys = list(pop.grid)
    header = [*keys, "agents", "failed", "IQM", "95% CI", "mean", "median"]
    rows = []
    for point in index["grid_points"]:
        ev = point["eval"]
        if not ev["n"]:  # eval_episodes = 0
            return
        ci = ev["iqm"]["ci"]
        rows.append([*(str(point["grid"][k]) for k in keys), str(len(point["agents"])),
                     str(point["failed"]), f"{ev['iqm']['value']:.1f}",
                     f"[{ci[0]:.1f}, {ci[1]:.1f}]", f"{ev['mean']['value']:.1f}",
                     f"{ev['median']['value']:.1f}"])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("greedy evaluation per grid point:")
    for line in [header, *rows]:
        print("  " + "  ".join(c.rjust(w) for c, w in zip(line, widths)))
