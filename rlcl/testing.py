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
  quarters of global steps; each quarter's mean return must lie within 25% of the golden
  quarter's mean, or within 3 standard errors of it, whichever is wider.
* Re-record with ``RLCL_RECORD_GOLDEN=1`` (or ``record=True``). A golden file recorded with
  another fingerprint is not overwritten unless ``RLCL_RECORD_GOLDEN=force``.

Command line: ``python -m rlcl.testing record FILE... [--force]`` re-records golden files
from their own configs (rlcl's are in tests/regression/).
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

QUARTERS, REL_TOL, STD_ERRORS = 4, 0.25, 3.0
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
    if path.is_file() and not force:
        old = json.loads(path.read_text())
        if old["fingerprint"] != result.fingerprint:
            raise RlclError(f"{path} was recorded with another fingerprint "
                            f"({_differences(old['fingerprint'], result.fingerprint)}); "
                            "re-record with --force (RLCL_RECORD_GOLDEN=force) to replace it")
    config = {k: v for k, v in cfg.to_dict().items() if k not in _NOT_PINNED}
    golden = {"config": config, "fingerprint": result.fingerprint,
              "episodes": [list(e) for e in result.episodes]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(golden, indent=1) + "\n")
    return golden


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
        bound = max(REL_TOL * abs(w), STD_ERRORS * math.hypot(g_se, w_se))
        if not abs(g - w) <= bound:
            problems.append(f"quarter {q + 1}: mean return {g:.1f} vs golden {w:.1f} "
                            f"(allowed +-{bound:.1f})")
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
    note = (f"rlcl.testing: exact check of {path.name} skipped, fingerprint differs "
            f"({_differences(golden['fingerprint'], result.fingerprint)}); ran the statistical "
            "check of the return curve instead")
    warnings.warn(note, stacklevel=2)
    print(note, file=sys.stderr)
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
            record(build_config(golden["config"]), Path(name), force=force)
            print(f"recorded {name}")
    except (RlclError, OSError, json.JSONDecodeError, KeyError) as exc:
        print(f"rlcl: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
