"""Seeded regression tests of episode returns, for rlcl itself and for your own projects.

A golden file (JSON) holds a config, the fingerprint of the machine that recorded it
(rlcl.device.Device.fingerprint: platform, device, driver, PoCL, build options and package
versions) and the per-episode (global_step, return, length) sequence of a run::

    from rlcl.config import build_config
    from rlcl.testing import assert_returns_match

    def test_my_cartpole_agent():
        cfg = build_config({"algo": "ppo", "env_id": "CartPole-v1", "seed": 3,
                            "total_timesteps": 20000, "runs_dir": "/tmp/rlcl-regression"})
        assert_returns_match(cfg, "tests/golden/ppo_cartpole_seed3.json")

* No golden file yet: the run is recorded and the test passes.
* Same fingerprint: the episode sequence must be **identical** (rlcl is bit-reproducible
  for a given seed, device, driver and versions); any difference is a drift and fails.
* Other fingerprint: bit-identity is not promised, so a statistical check of the return curve
  runs instead, and a note says the exact check was skipped and why. The run is cut into four
  quarters of global steps; each quarter's mean return must lie within a factor of 3 of the
  golden quarter's mean, or within 3 standard errors of it. One seed on other numerics is
  another sample of the curve (PPO CartPole's seeds differ up to 2.7x in a quarter), so this
  catches a run that stopped learning, not a small drift: use a population for that (below).
* Re-record with ``RLCL_RECORD_GOLDEN=1`` (or ``record=True``). A golden file recorded with
  another fingerprint is not overwritten unless ``RLCL_RECORD_GOLDEN=force``.

Populations (issue 13): ``assert_population_matches(cfg, seeds, path, grid)`` trains every
seed (crossed with GRID) as one population in one process and checks all agents at once::

    from rlcl.testing import assert_population_matches

    def test_my_env_population():
        cfg = build_config({"algo": "ppo", "env_id": "CartPole-v1", "total_timesteps": 20000})
        assert_population_matches(cfg, range(16), "tests/golden/ppo_cartpole_pop16.json")

* Same fingerprint: every agent's episode sequence must be identical.
* Other fingerprint: for each grid point and each quarter of the run, the IQM over seeds of
  the seeds' mean returns in that quarter is compared with the golden file's: the 95 %
  bootstrap CI of their difference (rlcl/stats.py, the two groups resampled independently,
  Bonferroni-corrected over quarters and grid points) must contain 0. Every seed counts, so
  16 seeds make a far sharper check than one. Use at least 8 seeds.

Command line: ``python -m rlcl.testing record FILE... [--force]`` re-records golden files
(single runs and populations) from their own configs (rlcl's are in tests/regression/).
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from rlcl.config import Config, build_config
from rlcl.errors import RlclError

# A single run on other numerics is, for the return curve, another seed. Measured (issue 12,
# 32 seeds of the shipped CartPole configs over 20,000 steps, all 496 pairs): PPO's quarter means
# of two seeds differ by up to 2.7x (more than 25 % in most pairs; 5 % of pairs by more than
# 2x), A2C's by under 1.5x. So a quarter passes within a factor of RATIO of the golden one or
# STD_ERRORS of the difference: it catches a run that stopped learning or blew up, not a small
# drift; a population (assert_population_matches) makes the sharp cross-device check.
QUARTERS, RATIO, STD_ERRORS = 4, 3.0, 3.0
# Run plumbing, not part of what a golden file pins down.
_NOT_PINNED = ("device", "runs_dir", "progress", "eval_episodes", "checkpoint_every")


class DriftError(AssertionError):
    """The episode returns differ from the golden file."""


def _run(cfg: Config):
    from rlcl.train import train  # late: rlcl.testing must import cheaply in conftest files

    with tempfile.TemporaryDirectory() as tmp:
        return train(replace(cfg, runs_dir=tmp, progress=False, eval_episodes=0,
                             checkpoint_every=0))


def record(cfg: Config, path: Path, force: bool = False) -> dict:
    path = Path(path)
    result = _run(cfg)
    _refuse_other_fingerprint(path, result.fingerprint, force)
    config = {k: v for k, v in cfg.to_dict().items() if k not in _NOT_PINNED}
    golden = {"config": config, "fingerprint": result.fingerprint,
              "episodes": [list(e) for e in result.episodes]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(golden, indent=1) + "\n")
    return golden


def _run_population(cfg: Config, seeds, grid: dict):
    from rlcl import batched  # late, as _run
    from rlcl.population import Population
    from rlcl.run import train_device

    with tempfile.TemporaryDirectory() as tmp:
        base = replace(cfg, runs_dir=tmp, progress=False, eval_episodes=0, checkpoint_every=0)
        pop = Population(base, list(seeds), grid or {})
        device = train_device(base, batched.applies(base, len(pop.agents)))
        pop.start(device)
        pop.train(device)
        return pop, device.fingerprint


def record_population(cfg: Config, seeds, path: Path, grid: dict | None = None,
                      force: bool = False) -> dict:
    path = Path(path)
    pop, fingerprint = _run_population(cfg, seeds, grid)
    _refuse_other_fingerprint(path, fingerprint, force)
    config = {k: v for k, v in cfg.to_dict().items() if k not in _NOT_PINNED + ("seed",)}
    golden = {"config": config, "seeds": list(seeds), "grid": grid or {},
              "fingerprint": fingerprint,
              "agents": [{"seed": a.seed, "grid": a.grid, "status": a.status,
                          "episodes": [list(e) for e in a.episodes]} for a in pop.agents]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(golden, indent=1) + "\n")
    return golden


def population_check(got: list, want: list, total_steps: int) -> list[str]:
    """GOT and WANT: per agent {"seed", "grid", "episodes"}, the same agents in the same order.
    The (grid point, quarter) pairs whose IQM over seeds differs (empty: the check passed)."""
    from rlcl import stats  # late: scipy

    points = []
    for agent in want:
        if agent["grid"] not in points:
            points.append(agent["grid"])
    confidence = 1 - (1 - stats.CONFIDENCE) / (QUARTERS * len(points))
    problems = []
    for point in points:
        members = [i for i, a in enumerate(want) if a["grid"] == point]
        per_seed = lambda runs: np.array([[m for m, _, _ in quarter_means(  # noqa: E731
            [tuple(e) for e in runs[i]["episodes"]], total_steps)] for i in members])
        g, w = per_seed(got), per_seed(want)
        for q in range(QUARTERS):
            a, b = g[:, q][np.isfinite(g[:, q])], w[:, q][np.isfinite(w[:, q])]
            lo, hi = stats.difference_interval(a, b, confidence)
            if not lo <= 0 <= hi:
                problems.append(f"{point or 'population'} quarter {q + 1}: IQM "
                                f"{stats.iqm(a):.1f} vs golden {stats.iqm(b):.1f} (CI of the "
                                f"difference [{lo:.1f}, {hi:.1f}] excludes 0)")
    return problems


def assert_population_matches(cfg: Config, seeds, path, grid: dict | None = None,
                              record_golden: bool | None = None) -> str:
    """Train SEEDS (crossed with GRID) as one population and compare every agent with the
    golden file PATH (see the module doc). Returns 'recorded', 'exact' or 'statistical'."""
    path, seeds = Path(path), list(seeds)
    mode = os.environ.get("RLCL_RECORD_GOLDEN", "")
    if record_golden or mode or not path.is_file():
        record_population(cfg, seeds, path, grid, force=mode == "force")
        return "recorded"
    golden = json.loads(path.read_text())
    if golden["seeds"] != seeds or golden["grid"] != (grid or {}):
        raise DriftError(f"{path} holds seeds {golden['seeds']} and grid {golden['grid']}, "
                         f"not {seeds} and {grid or {}}: re-record it")
    pop, fingerprint = _run_population(cfg, seeds, grid)
    got = [{"seed": a.seed, "grid": a.grid, "episodes": [list(e) for e in a.episodes]}
           for a in pop.agents]
    if fingerprint == golden["fingerprint"]:
        for g, w in zip(got, golden["agents"]):
            if g["episodes"] != w["episodes"]:
                first = next((i for i, (a, b) in enumerate(zip(g["episodes"], w["episodes"]))
                              if a != b), min(len(g["episodes"]), len(w["episodes"])))
                raise DriftError(f"agent seed {w['seed']} {w['grid'] or ''} drifted from {path} "
                                 f"at episode {first} (same fingerprint, so it should have been "
                                 "bit-identical)")
        return "exact"
    _note_statistical(path, golden["fingerprint"], fingerprint)
    problems = population_check(got, golden["agents"], cfg.num_iterations * cfg.batch_size)
    if problems:
        raise DriftError(f"episode returns drifted from {path}: " + "; ".join(problems))
    return "statistical"


def _refuse_other_fingerprint(path: Path, fingerprint: dict, force: bool) -> None:
    if path.is_file() and not force:
        old = json.loads(path.read_text())
        if old["fingerprint"] != fingerprint:
            raise RlclError(f"{path} was recorded with another fingerprint "
                            f"({_differences(old['fingerprint'], fingerprint)}); "
                            "re-record with --force (RLCL_RECORD_GOLDEN=force) to replace it")


def _note_statistical(path: Path, theirs: dict, ours: dict) -> None:
    note = (f"rlcl.testing: exact check of {path.name} skipped, fingerprint differs "
            f"({_differences(theirs, ours)}); ran the statistical check of the return curve "
            "instead")
    warnings.warn(note, stacklevel=3)
    print(note, file=sys.stderr)


def _differences(a: dict, b: dict) -> str:
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return ", ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in keys) or "none"


def quarter_means(episodes, total_steps: int) -> list[tuple[float, float, int]]:
    """(mean return, its standard error, count) per quarter of the run's global steps."""
    out = []
    for q in range(QUARTERS):
        lo, hi = q * total_steps / QUARTERS, (q + 1) * total_steps / QUARTERS
        rets = np.array([r for s, r, _ in episodes if lo < s <= hi], np.float64)
        se = rets.std(ddof=1) / math.sqrt(len(rets)) if len(rets) > 1 else math.inf
        out.append((float(rets.mean()) if len(rets) else math.nan, se, len(rets)))
    return out


def statistical_check(got, want, total_steps: int) -> list[str]:
    """The quarters whose mean return is out of bounds (empty: the check passed)."""
    problems = []
    for q, ((g, g_se, _), (w, w_se, _)) in enumerate(
            zip(quarter_means(got, total_steps), quarter_means(want, total_steps))):
        bound = STD_ERRORS * math.hypot(g_se, w_se)
        within_factor = g * w > 0 and 1 / RATIO <= g / w <= RATIO
        if not (within_factor or abs(g - w) <= bound):
            problems.append(f"quarter {q + 1}: mean return {g:.1f} vs golden {w:.1f} (allowed: "
                            f"within a factor of {RATIO:g}, or +-{bound:.1f})")
    return problems


def assert_returns_match(cfg: Config, path, record_golden: bool | None = None) -> str:
    """Run CFG and compare its episodes with the golden file PATH (see the module doc).
    Returns what was done: 'recorded', 'exact' or 'statistical'."""
    path = Path(path)
    mode = os.environ.get("RLCL_RECORD_GOLDEN", "")
    if record_golden or mode or not path.is_file():
        record(cfg, path, force=mode == "force")
        return "recorded"
    golden = json.loads(path.read_text())
    result = _run(cfg)
    got = [tuple(e) for e in result.episodes]
    want = [tuple(e) for e in golden["episodes"]]
    if result.fingerprint == golden["fingerprint"]:
        if got != want:
            first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b),
                         min(len(got), len(want)))
            show = lambda eps: eps[first] if first < len(eps) else "no episode"  # noqa: E731
            raise DriftError(f"episode returns drifted from {path} at episode {first}: "
                             f"{show(got)} vs golden {show(want)} (same fingerprint, so the run "
                             "should have been bit-identical)")
        return "exact"
    _note_statistical(path, golden["fingerprint"], result.fingerprint)
    problems = statistical_check(got, want, cfg.num_iterations * cfg.batch_size)
    if problems:
        raise DriftError(f"episode returns drifted from {path}: " + "; ".join(problems))
    return "statistical"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] != "record" or len([a for a in argv[1:] if a != "--force"]) == 0:
        print("usage: python -m rlcl.testing record GOLDEN.json... [--force]", file=sys.stderr)
        return 2
    force = "--force" in argv
    try:
        for name in (a for a in argv[1:] if a != "--force"):
            golden = json.loads(Path(name).read_text())
            if "agents" in golden:  # a population's
                record_population(build_config(golden["config"]), golden["seeds"], Path(name),
                                  golden["grid"], force=force)
            else:
                record(build_config(golden["config"]), Path(name), force=force)
            print(f"recorded {name}")
    except (RlclError, OSError, json.JSONDecodeError, KeyError) as exc:
        print(f"rlcl: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
