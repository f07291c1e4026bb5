"""``python -m rlcl.tune ALGO ENV``: hyperparameter search with Optuna (issue 14).

Each trial samples the search space (rlcl/tune_space.py) over the base config (the tuned TOML,
``--config FILE`` and ``--set`` as for rlcl.train), trains the trial's seeds together as one
population (rlcl/population.py) and scores it by the IQM over seeds of the final greedy
evaluation, so one lucky seed cannot win a study (Agarwal et al. 2021). While it trains, the
IQM of the agents' recent training returns is reported at every tenth of the budget (steps
10, 20 ... 90: percent), and the
pruner (median or Hyperband) may stop a weak trial there.

The study lives in Optuna's storage: by default a SQLite file in the study folder, so running
the command again with the same ``--study`` resumes it; with ``--storage postgresql://...``
the same command started on many machines joins one study, the database handing out trials
(rl-zoo's way: rl-baselines3-zoo #14, #200). ``--trials N`` is the study's total of finished
and pruned trials, whichever worker ran them. A trial whose worker was killed (even
``kill -9``) is marked failed when a worker starts: at once on the same machine (the trial
names its worker's pid: ``fail_orphans``), else once its heartbeats stop for two periods; so
the study never keeps a trial half-written. Ctrl-C and ``kill`` mark the running trial failed
at once.

The study folder (``RUNS_DIR/tune/STUDY/``) holds one population folder per trial run here
(``trial_0007/``), and at the end ``best.toml`` (usable as ``rlcl.train --config``),
``trials.csv`` and ``importances.json`` (Optuna's own evaluator).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

import numpy as np

from rlcl import batched, stats
from rlcl.cli import config_from_args, parse_seeds
from rlcl.config import Config, build_config
from rlcl.device import Device
from rlcl.errors import ConfigError, RlclError
from rlcl.checkpoint import POPULATION, fresh_dir
from rlcl.population import Population, write_json
from rlcl.run import train_device
from rlcl.tune_report import report
from rlcl.tune_space import check_space, load_space
from rlcl.tune_storage import WORKER, fail_orphans, open_storage

INSTALL = 'rlcl.tune needs Optuna: pip install -e ".[tune]"'


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise ConfigError(f"{message} (see python -m rlcl.tune --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m rlcl.tune",
                description="Tune PPO or A2C hyperparameters with Optuna; each trial trains "
                            "its seeds together and scores the IQM of their greedy evaluation.")
    p.add_argument("algo", help="algorithm: ppo or a2c")
    p.add_argument("env", help="environment alias (CartPole) or gymnasium id")
    p.add_argument("--trials", type=int, default=20,
                   help="finished or pruned trials the study should reach, over all workers "
                        "(default 20)")
    p.add_argument("--timeout", type=float, help="stop starting trials after S seconds")
    p.add_argument("--seeds", default="0-3", help="each trial's seeds (default 0-3)")
    p.add_argument("--total-timesteps", type=int, help="each agent's training budget")
    p.add_argument("--space", type=Path, help="a TOML search space (default: momentum + "
                   "cosine; see rlcl/tune_space.py)")
    p.add_argument("--storage", help="an Optuna storage URL (default: sqlite in the study "
                   "folder); postgresql://user:pass@host/db joins a shared study")
    p.add_argument("--study", help="the study's name (default: ALGO_ENV)")
    p.add_argument("--sampler", choices=("tpe", "random"), default="tpe")
    p.add_argument("--sampler-seed", type=int, help="seed the sampler (one worker repeats its "
                   "suggestions; several workers do not)")
    p.add_argument("--pruner", choices=("median", "hyperband", "none"), default="median")
    p.add_argument("--heartbeat", type=int, default=60, metavar="S",
                   help="a running trial's heartbeat period; a trial silent for 2 S is "
                        "marked failed (default 60)")
    p.add_argument("--config", type=Path, help="the base config (default: the tuned one)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="fix a hyperparameter of every trial (repeatable)")
    p.add_argument("--device", help="OpenCL device: P:D or a name fragment")
    p.add_argument("--runs-dir", help="where the study folder goes (default: runs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar per trial")
    return p


def import_optuna():
    try:
        import optuna
    except ImportError:
        raise ConfigError(INSTALL) from None
    return optuna


def base_config(args: argparse.Namespace) -> Config:
    base = config_from_args(argparse.Namespace(**vars(args), seed=None, profile=False))
    if base.eval_episodes < 1:
        raise ConfigError("rlcl.tune scores trials by their greedy evaluation: eval_episodes "
                          "must be at least 1")
    return base


def make_sampler(optuna, name: str, seed: int | None):
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)


def make_pruner(optuna, name: str):
    if name == "median":  # no pruning before 5 trials finished, nor in a trial's first 20 %
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=20)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=10, max_resource=100,
                                              reduction_factor=3)
    return optuna.pruners.NopPruner()


class Objective:
    """One trial: sample, train the seeds as a population, score the IQM."""

    def __init__(self, optuna, base: Config, seeds: list[int], space, study_dir: Path):
        self.optuna, self.base, self.seeds, self.space = optuna, base, seeds, space
        self.study_dir = study_dir

    def __call__(self, trial) -> float:
        started = time.perf_counter()
        params = {dim.key: dim.suggest(trial) for dim in self.space}
        try:
            cfg = build_config({**self.base.to_dict(), **params})
        except ConfigError as exc:  # a combination the space allows but the config does not
            trial.set_user_attr("error", str(exc))
            print(f"rlcl.tune: trial {trial.number} failed: its values make no valid config "
                  f"({exc})", file=sys.stderr)
            raise
        # trial_NNNN (trial_NNNN_2 where an older study of the same name left one)
        pop_dir = fresh_dir(self.study_dir, f"trial_{trial.number:04d}")
        trial.set_user_attr("folder", str(pop_dir))
        trial.set_user_attr("worker", WORKER)
        pop = Population(cfg, self.seeds, {}, pop_dir)
        device = train_device(cfg, batched.applies(cfg, len(self.seeds)))
        pop.start(device)
        try:
            pop.train(device, watch=self.pruning(trial))
        except self.optuna.TrialPruned as exc:
            print(f"rlcl.tune: trial {trial.number} pruned {exc}", file=sys.stderr)
            # its folder says so too (the agents stopped mid-run: "running" would mislead)
            write_json(pop_dir / POPULATION, {**pop.index(), "status": "pruned",
                                              "pruned": str(exc)})
            raise
        scores = [float(np.mean(a.eval_returns)) for a in pop.agents if a.eval_returns]
        score = float(stats.iqm(np.array(scores)))
        trial.set_user_attr("eval_means", scores)
        trial.set_user_attr("failed_agents", sum(a.status == "failed" for a in pop.agents))
        print(f"rlcl.tune: trial {trial.number}: IQM {score:.1f} over {len(scores)} seeds "
              f"in {time.perf_counter() - started:.0f} s ({pop_dir})", file=sys.stderr)
        return score

    def pruning(self, trial):
        """The watch of Population.train: at each tenth of the budget, the IQM of the agents'
        recent training returns (the last 20 episodes' mean each) goes to the pruner."""
        reported = [0]

        def watch(pop: Population) -> None:
            live = [a.run for a in pop.agents if a.run is not None]
            if not live:
                return
            tenths = min(run.iteration * 10 // run.cfg.num_iterations for run in live)
            step = 10 * tenths  # the percent of the budget every agent has trained
            recent = [r for run in live if (r := run.recent_return()) is not None]
            if step <= reported[0] or step >= 100 or not recent:
                return
            reported[0] = step
            value = float(stats.iqm(np.array(recent)))
            trial.report(value, step)
            if trial.should_prune():
                raise self.optuna.TrialPruned(f"at {step} % of the budget (IQM of recent "
                                              f"returns {value:.1f})")
        return watch


def run_study(args: argparse.Namespace) -> int:
    optuna = import_optuna()
    base = base_config(args)
    seeds = parse_seeds(args.seeds)
    if args.trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {args.trials}")
    space = load_space(base.algo, args.space)
    check_space(base.to_dict(), space)
    Device(base.device)  # a bad device fails before the study is touched
    name = args.study or f"{base.algo}_{base.env_id.replace('/', '-')}"
    study_dir = Path(base.runs_dir) / "tune" / name
    storage, shown = open_storage(optuna, args.storage, study_dir, args.heartbeat)
    # rlcl.tune prints one line a trial, and one for a failed trial (Optuna's adds a traceback)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize",
                                sampler=make_sampler(optuna, args.sampler, args.sampler_seed),
                                pruner=make_pruner(optuna, args.pruner), load_if_exists=True)
    fail_orphans(optuna, study)
    counted = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    left = args.trials - len(study.get_trials(deepcopy=False, states=counted))
    print(f"rlcl.tune: study {name!r} in {shown}: {args.trials - left} of {args.trials} trials "
          f"done; each trains seeds {args.seeds} for {base.total_timesteps:,} steps",
          file=sys.stderr)
    if left > 0:
        # n_trials bounds this worker; MaxTrialsCallback stops it once all workers together
        # reach the total (a worker may finish one more trial that was already running)
        study.optimize(Objective(optuna, base, seeds, space, study_dir), n_trials=left,
                       timeout=args.timeout, catch=(ConfigError,),
                       callbacks=[optuna.study.MaxTrialsCallback(args.trials, states=counted)])
    return report(optuna, study, base, study_dir, shown)


def _terminate(signum, frame):
    raise KeyboardInterrupt  # `kill`: the running trial is marked failed, as for Ctrl-C


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return run_study(build_parser().parse_args(argv))
    except RlclError as exc:
        print(f"rlcl: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("rlcl.tune: interrupted; the running trial is marked failed and the study can "
              "be resumed with the same command", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
