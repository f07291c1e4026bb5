"""Populations (issue 13): many agents, seeds crossed with a grid of per-agent hyperparameters,
trained together in one process on one device, each exactly as ``--seed k`` alone would be.

``python -m rlcl.train ppo CartPole --seeds 0-63 --grid learning_rate=0.01,0.03`` makes one
population folder: the base config (``config.toml``), ``population.json`` (each agent's seed,
grid values, status, final greedy evaluation and steps to the env's reward threshold, and per
grid point the mean, median and IQM of the evaluations with 95 % bootstrap CIs: rlcl/stats.py)
and one ordinary run folder per agent, which TensorBoard, ``rlcl.eval`` and ``rlcl.diagnose``
read as they read any run.

Each agent is a :class:`rlcl.run.Run` of its own config, so agent k does the arithmetic of
the single run with its seed, in the same order: the same episodes and parameters, bit for
bit. Its guard acts on it alone; an agent that cannot recover is stopped, marked failed and
evaluated at its last good state, and the others train on. Agents checkpoint as single runs
do, so ``--resume POP_DIR`` after a kill continues each from its own latest checkpoint.
"""

from __future__ import annotations

import contextlib
import gc
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np

from rlcl import batched, stats
from rlcl.arena import Arena
from rlcl.checkpoint import (CONFIG, EPISODES, POPULATION, SUMMARY, fresh_dir,
                             resumable_checkpoint, write_text_atomic)
from rlcl.cli import grid_points
from rlcl.config import Config, build_config, read_toml, to_toml
from rlcl.errors import CheckpointError, RlclError
from rlcl.eval import evaluate_policy
from rlcl.envs import normalization_state
from rlcl.guard import DivergenceError
from rlcl.logger import Progress, format_profile, read_episodes
from rlcl.run import Run, train_device

RUNNING, FINISHED, FAILED = "running", "finished", "failed"
LAST_N = 20  # steps to threshold: the first step where the last 20 episodes' mean reaches it


@dataclass(eq=False)
class Agent:
    """One member: its place in the population, its config and folder, and how it ended."""

    index: int
    seed: int
    grid: dict
    cfg: Config
    folder: str
    status: str = RUNNING
    run: Run | None = None
    eval_returns: list = field(default_factory=list)
    episodes: list = field(default_factory=list)
    error: str | None = None
    summary: dict = field(default_factory=dict)

    def record(self) -> dict:
        """Its entry in population.json."""
        returns = self.eval_returns
        return {"index": self.index, "folder": self.folder, "seed": self.seed,
                "grid": self.grid, "status": self.status,
                "eval_mean_return": float(np.mean(returns)) if returns else None,
                "eval_returns": returns,
                "steps_to_threshold": steps_to_threshold(self.episodes, self.cfg.env_id),
                "params_sha256": self.summary.get("params_sha256"), "error": self.error}


def reward_threshold(env_id: str) -> float | None:
    return gym.spec(env_id).reward_threshold


def steps_to_threshold(episodes, env_id: str) -> int | None:
    """The global step at which the mean of the last 20 training returns first reaches the
    env's reward threshold (gymnasium's spec); None if it never does or there is none."""
    threshold = reward_threshold(env_id)
    if threshold is None or len(episodes) < LAST_N:
        return None
    returns = np.array([r for _, r, _ in episodes], np.float64)
    window = np.convolve(returns, np.ones(LAST_N) / LAST_N, mode="valid")
    hits = np.nonzero(window >= threshold)[0]
    return int(episodes[hits[0] + LAST_N - 1][0]) if hits.size else None


def agent_folder(index: int, seed: int, grid: dict) -> str:
    return "__".join([f"{index:03d}", f"seed{seed}", *(f"{k}={v}" for k, v in grid.items())])


def plan(base: Config, seeds: list[int], grid: dict[str, list]) -> list[Agent]:
    """The agents: every grid point (first key slowest) crossed with every seed."""
    agents = []
    for point in grid_points(grid):
        for seed in seeds:
            cfg = build_config({**base.to_dict(), **point, "seed": seed, "progress": False})
            i = len(agents)
            agents.append(Agent(i, seed, point, cfg, agent_folder(i, seed, point)))
    return agents


def new_population_dir(base: Config, n: int) -> Path:
    env = base.env_id.replace("/", "-")
    return fresh_dir(Path(base.runs_dir), f"{env}__{base.algo}__pop{n}__{int(time.time())}")


def write_json(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=1) + "\n")


class Population:
    def __init__(self, base: Config, seeds: list[int], grid: dict[str, list],
                 pop_dir: Path | None = None):
        self.base, self.seeds, self.grid = base, seeds, grid
        self.agents = plan(base, seeds, grid)
        self.pop_dir = pop_dir
        self.wall = 0.0
        self.batched: batched.Batched | None = None  # one launch for all agents, where it applies

    # -- the folder ------------------------------------------------------------------------
    def index(self) -> dict:
        """population.json: the agents, and per grid point the statistics of the finished
        and failed agents' final greedy evaluations."""
        points = []
        for point in grid_points(self.grid):
            members = [a for a in self.agents if a.grid == point]
            scored = [a for a in members if a.status != RUNNING and a.eval_returns]
            points.append({"grid": point, "agents": [a.index for a in members],
                           "failed": sum(a.status == FAILED for a in members),
                           "eval": stats.aggregate([np.mean(a.eval_returns) for a in scored])})
        steps = sum(a.summary.get("total_timesteps", 0) for a in self.agents)
        done = all(a.status != RUNNING for a in self.agents)
        return {"algo": self.base.algo, "env_id": self.base.env_id, "seeds": self.seeds,
                "grid": self.grid, "total_timesteps": self.base.total_timesteps,
                "reward_threshold": reward_threshold(self.base.env_id),
                "status": RUNNING if not done else (
                    FAILED if any(a.status == FAILED for a in self.agents) else FINISHED),
                "wall_seconds": round(self.wall, 3),
                "fps": round(steps / self.wall, 1) if done and self.wall > 0 else None,
                "statistics": "mean, median and IQM (scipy trim_mean 0.25) of each agent's "
                              "mean greedy evaluation return, 95 % percentile bootstrap CIs "
                              f"({stats.RESAMPLES} resamples, seed {stats.BOOTSTRAP_SEED})",
                "grid_points": points, "agents": [a.record() for a in self.agents]}

    def write_index(self) -> None:
        write_json(self.pop_dir / POPULATION, self.index())

    # -- training --------------------------------------------------------------------------
    def start(self, device) -> None:
        """A fresh population folder and every agent's Run."""
        self.pop_dir = self.pop_dir or new_population_dir(self.base, len(self.agents))
        try:
            (self.pop_dir / CONFIG).write_text(to_toml(self.base.to_dict()))
            arena = self.arena(device)
            for agent in self.agents:
                folder = self.pop_dir / agent.folder
                folder.mkdir()
                agent.run = Run(agent.cfg, device, run_dir=folder, solo=False, arena=arena,
                                index=agent.index)
            self.together(device, arena)
        except RlclError:  # a bad env or space: no folder is left behind, as for one run
            shutil.rmtree(self.pop_dir, ignore_errors=True)
            raise
        self.write_index()

    def arena(self, device) -> Arena | None:
        """Where the agents' buffers go when one launch can run them all (rlcl/batched.py)."""
        return Arena(device, len(self.agents)) if batched.applies(self.base, len(self.agents)) \
            else None

    def together(self, device, arena: Arena | None) -> None:
        self.batched = (batched.Batched(device, arena, [a.run for a in self.agents])
                        if arena is not None else None)

    def train(self, device, watch=None) -> int:
        """Train every running agent to the end; returns the exit code (3 if any failed).
        WATCH(population), if given, is called after each pass over the agents (rlcl.tune
        reports to its pruner there); an exception it raises stops the population.

        The agents' objects, built by now, are kept out of Python's cyclic garbage collector
        meanwhile (gc.freeze): each full collection walked all of them, a ~40 ms pause every
        few dozen iterations of 64 agents, often while the device waited (issue 13)."""
        gc.freeze()
        try:
            return self._train(device, watch)
        finally:
            gc.unfreeze()  # collectable again: rlcl.tune trains many populations in a process

    def _train(self, device, watch) -> int:
        started = time.perf_counter() - self.wall
        running = [a for a in self.agents if a.status == RUNNING]
        total = sum(a.cfg.num_iterations * a.cfg.batch_size for a in self.agents)
        progress = Progress(total, self.base.progress, label="median return")
        steps_before = sum(a.run.global_step for a in running)
        # the steps of the agents that had ended before (a resumed population's)
        steps_before_ended = sum(a.summary.get("total_timesteps", 0) for a in self.agents
                                 if a not in running)
        try:
            while live := [a for a in running if a.status == RUNNING and not a.run.done]:
                behind = min(a.run.iteration for a in live)
                if self.batched is not None and all(a.run.iteration == behind for a in live):
                    for run, exc in self.batched.iterate([a.run for a in live]):
                        self._fail(self.agents[run.index], str(exc))
                else:  # one by one; with a batched path, the agents behind (after a resume)
                    if self.batched is not None:
                        self.batched.settle()
                    for agent in live:
                        if self.batched is None or agent.run.iteration == behind:
                            self._iterate(agent)
                self.wall = time.perf_counter() - started
                self._show(progress, steps_before, steps_before_ended, running)
                if watch is not None:
                    watch(self)
        except BaseException:
            progress.end()
            if self.batched is not None:
                # the checkpoint's files before the aborts close them; an error of its own
                # would hide the one on its way out, which says more
                with contextlib.suppress(Exception):
                    self.batched.settle()
            for agent in running:
                if agent.status == RUNNING:
                    agent.run.abort()
            raise
        progress.end()
        if self.batched is not None:
            self.batched.settle()
        if device.profile:
            print(format_profile(self.wall, sum(a.run.rollout.env_seconds for a in running),
                                 sum(a.run.rollout.readback_seconds for a in running),
                                 device.collect_profile()), file=sys.stderr)
        finishing = [a for a in running if a.status == RUNNING]
        evaluations = ([None] * len(finishing) if self.batched is None or not finishing else
                       self.batched.evaluate([a.run for a in finishing], self.base.eval_episodes))
        evaluated = dict(zip(finishing, evaluations))
        for agent in running:
            if agent.status == RUNNING:
                result = agent.run.finish(evaluated[agent])
                agent.status, agent.summary = FINISHED, result.summary
                agent.eval_returns = result.eval_returns.tolist()
                agent.episodes = result.episodes
            agent.run = None  # its buffers go
        self.write_index()
        return DivergenceError.exit_code if any(a.status == FAILED for a in self.agents) else 0

    def _iterate(self, agent: Agent) -> None:
        try:
            agent.run.iterate()
        except DivergenceError as exc:  # this agent alone stops; the others train on
            self._fail(agent, str(exc))

    def _fail(self, agent: Agent, message: str) -> None:
        """Stop AGENT, evaluated at its last good state (the guard's snapshot)."""
        run = agent.run
        run.guard.restore()
        norm_state = normalization_state(run.state.envs)
        agent.eval_returns = evaluate_policy(run.policy, agent.cfg.env_id,
                                             agent.cfg.eval_episodes, agent.seed,
                                             norm_state).tolist()
        agent.status, agent.error, agent.episodes = FAILED, message, run.result.episodes
        agent.summary = {"total_timesteps": run.global_step}
        run.abort()
        self.write_index()
        print(f"rlcl: agent {agent.folder} failed and stopped: {message}", file=sys.stderr)

    def _show(self, progress: Progress, steps_before: int, steps_ended: int,
              running: list[Agent]) -> None:
        steps = sum(a.run.global_step for a in running if a.run is not None)
        if not progress.due(steps_ended + steps):
            return
        recent = [r for a in running if a.run is not None
                  and (r := a.run.recent_return()) is not None]
        progress.show(steps_ended + steps, (steps - steps_before) / max(self.wall, 1e-9),
                      float(np.median(recent)) if recent else None)


def resume_population(pop_dir: Path, device_spec: str | None, no_progress: bool) -> Population:
    """The population in POP_DIR, its unfinished agents continuing from their latest
    checkpoints (an agent killed before its first checkpoint starts again)."""
    try:
        index = json.loads((pop_dir / POPULATION).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{pop_dir / POPULATION} cannot be read ({exc}); it is not a "
                              "population folder rlcl can resume") from None
    values = read_toml(pop_dir / CONFIG)
    if device_spec is not None:
        values["device"] = device_spec
    if no_progress:
        values["progress"] = False
    pop = Population(build_config(values), index["seeds"], index["grid"], pop_dir)
    pop.wall = index.get("wall_seconds", 0.0)
    return pop


def start_agents(pop: Population, device) -> None:
    """On resume: each agent from its own folder, as it was left."""
    index = json.loads((pop.pop_dir / POPULATION).read_text())
    saved = {entry["index"]: entry for entry in index["agents"]}
    arena = pop.arena(device)
    for agent in pop.agents:
        folder, entry = pop.pop_dir / agent.folder, saved.get(agent.index, {})
        if entry.get("status") == FAILED:
            agent.status, agent.error = FAILED, entry["error"]
            agent.eval_returns = entry["eval_returns"]
            agent.episodes = read_episodes(folder / EPISODES)
            agent.summary = {"total_timesteps": agent.episodes[-1][0] if agent.episodes else 0}
        elif (folder / SUMMARY).is_file():
            agent.status = FINISHED
            agent.summary = json.loads((folder / SUMMARY).read_text())
            agent.eval_returns = agent.summary.get("eval_returns", [])
            agent.episodes = read_episodes(folder / EPISODES)
        else:
            try:
                resumable_checkpoint(folder)
                agent.run = Run(agent.cfg, device, resume=folder, solo=False, arena=arena,
                                index=agent.index)
            except CheckpointError:  # killed before its first checkpoint: from the start
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir()
                agent.run = Run(agent.cfg, device, run_dir=folder, solo=False, arena=arena,
                                index=agent.index)
    if all(agent.run is not None for agent in pop.agents):  # else one by one: the launches
        pop.together(device, arena)  # would run agents that are not there


def train_population(command) -> tuple[Population, int]:
    """Run COMMAND's population (new or resumed); returns it and the exit code."""
    if command.resume is not None:
        pop = resume_population(command.resume, command.device, command.no_progress)
        device = train_device(pop.base, batched.applies(pop.base, len(pop.agents)))
        start_agents(pop, device)
    else:
        pop = Population(command.cfg, command.seeds, command.grid)
        device = train_device(pop.base, batched.applies(pop.base, len(pop.agents)))
        pop.start(device)
    return pop, pop.train(device)
