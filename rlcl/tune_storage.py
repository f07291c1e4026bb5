"""Where a study of ``python -m rlcl.tune`` lives (issue 14): Optuna's RDB storage, opened
with heartbeats and one-line errors, and the trials that killed workers left RUNNING.

Coordination is the database's: Optuna gives each ``ask()`` its own trial row, so workers on
many machines sharing one PostgreSQL study never run a trial twice (docs/architecture.md,
Tuning).
"""

from __future__ import annotations

import os
import socket
import sys
import time
import warnings
from pathlib import Path

from rlcl.errors import ConfigError

WORKER = f"{socket.gethostname()}:{os.getpid()}"  # who runs a trial, for fail_orphans


def open_storage(optuna, url: str | None, study_dir: Path, heartbeat: int):
    """Optuna's RDB storage for URL (default: study_dir/study.db), with heartbeats."""
    if heartbeat < 1:
        raise ConfigError(f"--heartbeat must be at least 1 second, got {heartbeat}")
    if url is None:
        study_dir.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{(study_dir / 'study.db').resolve()}"
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        raise ConfigError(f"--storage {url!r} is not a database URL; give sqlite:///PATH.db or "
                          "postgresql://USER:PASSWORD@HOST/DB") from None
    try:
        storage = _rdb_storage(optuna, url, heartbeat)
    except ImportError as exc:  # Optuna re-raises the driver's ModuleNotFoundError
        missing = getattr(exc.__cause__, "name", None) or getattr(exc, "name", None)
        raise ConfigError(f"--storage {shown}: its database driver is missing"
                          + (f" ({missing})" if missing else "")
                          + '; pip install -e ".[tune]" brings PostgreSQL\'s (psycopg)') from None
    except Exception as exc:  # sqlalchemy's and the driver's errors: one line, what to check
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"--storage {shown} cannot be opened: {first}") from None
    return storage, shown


def _rdb_storage(optuna, url: str, heartbeat: int):
    """RDBStorage(URL). Workers that start together on a new database race to create Optuna's
    tables, and the loser's CREATE fails (an IntegrityError, seen with PostgreSQL 15): it
    tries again, and then finds the tables there."""
    from sqlalchemy.exc import IntegrityError, ProgrammingError
    for attempt in range(5):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, heartbeat_interval=heartbeat)
        except (IntegrityError, ProgrammingError):
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))


def fail_orphans(optuna, study) -> None:
    """Mark FAIL the RUNNING trials of workers on this machine that are gone (kill -9): at
    once, where the heartbeat would take two periods (it still covers other machines)."""
    host = WORKER.rsplit(":", 1)[0]
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        owner, _, pid = trial.user_attrs.get("worker", "").rpartition(":")
        if owner == host and pid.isdigit() and not _alive(int(pid)):
            study._storage.set_trial_state_values(trial._trial_id,
                                                  state=optuna.trial.TrialState.FAIL)
            print(f"rlcl.tune: trial {trial.number} was left running by a killed worker "
                  f"(pid {pid}): marked failed", file=sys.stderr)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
