"""What ``python -m rlcl.tune`` leaves at the end of a study (issue 14): ``best.toml``, the
table of the top trials (printed, and every trial in ``trials.csv``) and the parameter
importances from Optuna's own evaluator (``importances.json``)."""

from __future__ import annotations

import csv
import json
import os
import sys
import warnings
from pathlib import Path

from rlcl.checkpoint import write_text_atomic
from rlcl.config import Config, build_config, to_toml
from rlcl.errors import RlclError
from rlcl.tune_space import NOT_TUNABLE

TOP = 10


def best_toml(base: Config, trial, study_name: str) -> str:
    """The base config with the best trial's values: a --config file for rlcl.train (the run's
    identity and plumbing left out: the seed, device and folders are the user's)."""
    values = {k: v for k, v in base.to_dict().items() if k not in NOT_TUNABLE}
    values.update({k: _value(v) for k, v in trial.params.items()})
    build_config({**base.to_dict(), **values})  # still valid: it trained
    seeds = len(trial.user_attrs.get("eval_means", []))
    header = (f"# rlcl.tune study {study_name!r}, trial {trial.number}: IQM of the greedy "
              f"evaluation {trial.value:.2f} over {seeds} seeds at {base.total_timesteps:,} "
              f"steps.\n# Train it: python -m rlcl.train {base.algo} {base.env_id} --config "
              f"best.toml\n")
    return header + f"total_timesteps = {base.total_timesteps}\n" + to_toml(values)


def _value(v):
    """A trial's value as the config takes it (list choices travel as JSON text)."""
    return json.loads(v) if isinstance(v, str) and v.startswith("[") else v


def write_trials_csv(path: Path, trials: list) -> None:
    keys = sorted({k for t in trials for k in t.params})
    rows = [["number", "state", "iqm", "duration_s", "last_reported_step",
             "last_reported_value", *keys, "folder"]]
    for t in trials:
        duration = (t.datetime_complete - t.datetime_start).total_seconds() \
            if t.datetime_complete and t.datetime_start else ""
        step = t.last_step
        rows.append([t.number, t.state.name, _score(t) if _score(t) is not None else "",
                     duration if duration == "" else round(duration, 1),
                     "" if step is None else step,
                     "" if step is None else t.intermediate_values[step],
                     *(t.params.get(k, "") for k in keys), t.user_attrs.get("folder", "")])
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    os.replace(tmp, path)


def _score(trial) -> float | None:
    """A finished trial's IQM of the greedy evaluation. (Optuna gives a pruned trial its last
    intermediate value, the IQM of training returns: not a score to rank it by.)"""
    return trial.value if trial.state.name == "COMPLETE" else None


def print_top(trials: list) -> None:
    complete = sorted((t for t in trials if _score(t) is not None), key=lambda t: -t.value)[:TOP]
    if not complete:
        return
    keys = sorted({k for t in complete for k in t.params})
    header = ["trial", "IQM", *keys]
    rows = [[str(t.number), f"{t.value:.1f}", *(_fmt(t.params.get(k, "")) for k in keys)]
            for t in complete]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"top {len(rows)} trials (IQM of the greedy evaluation over seeds):")
    for line in [header, *rows]:
        print("  " + "  ".join(c.rjust(w) for c, w in zip(line, widths)))


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def importances(optuna, study) -> dict | None:
    """Optuna's parameter importances (its default evaluator); None while there are too few
    finished trials to tell, or no parameter varied."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            found = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError):
        return None
    # "too few trials: importances will be equal" (Optuna 5's PED-ANOVA): nothing to report
    return None if any("too small" in str(w.message) for w in caught) else found


def report(optuna, study, base: Config, study_dir: Path, storage_shown: str) -> int:
    """Write and print the study's results; exit code 0, or 2 when no trial finished."""
    study_dir.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    states = optuna.trial.TrialState
    count = {s.name.lower(): sum(t.state == s for t in trials) for s in states}
    print(f"study {study.study_name!r}: " + ", ".join(f"{n} {k}" for k, n in count.items() if n))
    write_trials_csv(study_dir / "trials.csv", trials)
    print_top(trials)
    if not any(t.state == states.COMPLETE for t in trials):
        print(f"rlcl: error: no trial of study {study.study_name!r} finished; see "
              f"{study_dir / 'trials.csv'}", file=sys.stderr)
        return RlclError.exit_code
    best = study.best_trial
    write_text_atomic(study_dir / "best.toml", best_toml(base, best, study.study_name))
    found = importances(optuna, study)
    if found is not None:
        write_text_atomic(study_dir / "importances.json", json.dumps(found, indent=1) + "\n")
        print("parameter importances (Optuna's evaluator): "
              + ", ".join(f"{k} {v:.2f}" for k, v in found.items()))
    print(f"best: trial {best.number}, IQM {best.value:.1f}; {study_dir / 'best.toml'} "
          f"(python -m rlcl.train {base.algo} {base.env_id} --config "
          f"{study_dir / 'best.toml'})")
    print(f"trials: {study_dir / 'trials.csv'}; dashboard: optuna-dashboard {storage_shown}")
    return 0
