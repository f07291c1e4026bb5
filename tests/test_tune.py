"""python -m rlcl.tune (issue 14): a study of populations scored by IQM, its outputs, bad
spaces and storages in one line, pruning, kill and resume, and two workers sharing one
PostgreSQL study."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import postgres_bin, postgres_server, run_cli, start_cli

optuna = pytest.importorskip("optuna")

from rlcl import stats, tune  # noqa: E402
from rlcl.tune_space import DEFAULT_SPACES, parse_space  # noqa: E402

# tiny trials: CartPole on the device, two seeds, 2,048 steps each, a short evaluation
FAST = ["--seeds", "0-1", "--total-timesteps", 2048, "--no-progress", "--sampler-seed", 3,
        "--set", "env_backend=device", "--set", "eval_episodes=3"]
SMALL_SPACE = """
[learning_rate]
low = 0.005
high = 0.1
log = true
[hidden_sizes]
choices = [[16, 16], [32, 32]]
[momentum]
choices = [0.8, 0.9]
"""


def tune_main(*args) -> int:
    return tune.main([str(a) for a in args])


def load(runs, study="ppo_CartPole-v1"):
    folder = runs / "tune" / study
    return optuna.load_study(study_name=study, storage=f"sqlite:///{folder / 'study.db'}"), folder


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text(SMALL_SPACE)
    return path


def test_study_scores_iqm_writes_best_toml_and_resumes(tmp_path, space, capsys):
    runs = tmp_path / "runs"
    assert tune_main("ppo", "CartPole", "--trials", 3, "--space", space, "--runs-dir", runs,
                     *FAST) == 0
    out = capsys.readouterr().out
    study, folder = load(runs)
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    for t in trials:  # the score: the IQM of the population's own evaluations
        index = json.loads((folder / f"trial_{t.number:04d}" / "population.json").read_text())
        means = [a["eval_mean_return"] for a in index["agents"]]
        assert t.value == pytest.approx(float(stats.iqm(np.array(means))))
        assert index["grid_points"][0]["eval"]["iqm"]["value"] == pytest.approx(t.value)
        assert set(t.params) == {"learning_rate", "hidden_sizes", "momentum"}
    rows = (folder / "trials.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[0].startswith("number,state,iqm")
    assert "top 3 trials" in out and "optuna-dashboard sqlite:///" in out
    assert set(json.loads((folder / "importances.json").read_text())) == {
        "learning_rate", "hidden_sizes", "momentum"}
    best = folder / "best.toml"
    text = best.read_text()
    assert f"trial {study.best_trial.number}" in text
    assert f"learning_rate = {study.best_params['learning_rate']!r}" in text
    # best.toml trains on a seed the study never saw
    trained = run_cli("ppo", "CartPole", "--config", best, "--seed", 11, "--total-timesteps",
                      1024, "--runs-dir", tmp_path / "best", "--no-progress")
    assert trained.returncode == 0, trained.stderr
    # the same command with a larger total resumes the study: trials 0-2 are not run again
    assert tune_main("ppo", "CartPole", "--trials", 4, "--space", space, "--runs-dir", runs,
                     *FAST) == 0
    assert [t.state.name for t in load(runs)[0].get_trials()] == ["COMPLETE"] * 4
    assert sorted(p.name for p in folder.glob("trial_*")) == [f"trial_{n:04d}" for n in range(4)]


class _AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return True


def test_pruner_stops_a_trial_at_a_tenth_of_its_budget(tmp_path, space, monkeypatch):
    monkeypatch.setattr(tune, "make_pruner", lambda optuna_, name: _AlwaysPrune())
    runs = tmp_path / "runs"
    assert tune_main("ppo", "CartPole", "--trials", 1, "--space", space, "--runs-dir", runs,
                     *FAST, "--total-timesteps", 8192) == 2  # no trial finished: exit 2
    (trial,) = load(runs)[0].get_trials()
    assert trial.state.name == "PRUNED"
    (step,) = trial.intermediate_values
    assert 10 <= step < 100  # the first report that had training returns to show
    index = json.loads((load(runs)[1] / "trial_0000" / "population.json").read_text())
    assert index["status"] == "pruned" and f"at {step} %" in index["pruned"]


@pytest.mark.parametrize("name, kind", [("median", "MedianPruner"),
                                        ("hyperband", "HyperbandPruner"), ("none", "NopPruner")])
def test_pruner_choices(name, kind):
    assert type(tune.make_pruner(optuna, name)).__name__ == kind
    assert type(tune.make_sampler(optuna, "random", 0)).__name__ == "RandomSampler"


@pytest.mark.parametrize("text, says", [
    ("[learning_rat]\nlow = 0.01\nhigh = 0.1", "unknown config key 'learning_rat'"),
    ("[learning_rate]\nlow = 0.1\nhigh = 0.01", "empty range"),
    ("[learning_rate]\nlow = 0.0\nhigh = 0.1\nlog = true", "log range needs low > 0"),
    ("[learning_rate]\nmean = 0.1", "unknown field(s) mean"),
    ("[learning_rate]\nlow = 0.01", "needs low and high"),
    ("[hidden_sizes]\nchoices = []", "non-empty list"),
    ("[num_envs]\nlow = 1.5\nhigh = 4", "must be integers"),
    ("[num_envs]\nchoices = [4, 'eight']", "the value 'eight' is not valid"),
    ("[seed]\nchoices = [1, 2]", "cannot be tuned"),
    ("[gamma]\nlow = 0.9\nhigh = 1.5", "the value 1.5 is not valid"),
    ("learning_rate = 0.1", "needs a table"),
    ("", "search space is empty"),
    ("[learning_rate\n", "not valid TOML"),
])
def test_bad_space_file_is_one_line_and_exit_2(tmp_path, capsys, text, says):
    path = tmp_path / "space.toml"
    path.write_text(text)
    assert tune_main("ppo", "CartPole", "--space", path, "--runs-dir", tmp_path) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1 and err.startswith("rlcl: error:")
    assert not (tmp_path / "tune").exists()  # nothing started


@pytest.mark.parametrize("url, says", [
    ("runs/study.db", "not a database URL"),
    ("postgresql://rlcl:secret@127.0.0.1:1/none", "cannot be opened"),
    ("mysql://u@localhost/db", "database driver is missing"),
])
def test_bad_storage_url_is_one_line_and_exit_2(tmp_path, capsys, url, says):
    assert tune_main("ppo", "CartPole", "--storage", url, "--runs-dir", tmp_path, *FAST) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1 and "secret" not in err


def test_without_optuna_it_says_how_to_install(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    assert tune_main("ppo", "CartPole", "--runs-dir", tmp_path) == 2
    assert 'pip install -e ".[tune]"' in capsys.readouterr().err


def test_default_spaces_are_valid_for_the_tuned_configs(tmp_path):
    for algo in ("ppo", "a2c"):
        for env in ("CartPole", "Pendulum"):
            args = tune.build_parser().parse_args([algo, env, "--runs-dir", str(tmp_path)])
            base = tune.base_config(args)
            tune.check_space(base.to_dict(), parse_space(DEFAULT_SPACES[algo]))


def _wait_for(predicate, timeout=120):
    deadline = time.time() + timeout
    while not predicate() and time.time() < deadline:
        time.sleep(0.05)
    assert predicate(), "timed out"


@pytest.mark.parametrize("heartbeat", [None, 1])
def test_kill_and_resume_leave_no_trial_half_written(tmp_path, space, heartbeat):
    """SIGTERM marks the running trial failed at once; a trial left running by kill -9 is
    marked failed when the study resumes, at once on the same machine (its worker is gone),
    and by its missing heartbeat once two periods passed (HEARTBEAT 1: the worker's record
    is hidden from the resuming one); the study still reaches its total."""
    runs = tmp_path / "runs"
    args = ["ppo", "CartPole", "--trials", 2, "--space", space, "--runs-dir", runs, *FAST,
            "--total-timesteps", 600_000, *(["--heartbeat", heartbeat] if heartbeat else [])]
    folder = runs / "tune" / "ppo_CartPole-v1"
    for number, sig in enumerate((signal.SIGTERM, signal.SIGKILL)):
        proc = start_cli(*args, module="rlcl.tune")
        _wait_for(lambda: (folder / f"trial_{number:04d}" / "population.json").is_file())
        time.sleep(1.0)
        os.kill(proc.pid, sig)
        assert proc.wait(timeout=60) == (130 if sig == signal.SIGTERM else -signal.SIGKILL)
    if heartbeat:  # as if the killed worker ran on another machine
        study = load(runs)[0]
        (orphan,) = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
        study._storage.set_trial_user_attr(orphan._trial_id, "worker", "elsewhere:1")
        time.sleep(2.5)  # past the grace period of two heartbeats
    resumed = run_cli(*[a if a != 600_000 else 2048 for a in args], module="rlcl.tune")
    assert resumed.returncode == 0, resumed.stderr
    states = [t.state.name for t in load(runs)[0].get_trials()]
    assert states == ["FAIL", "FAIL", "COMPLETE", "COMPLETE"]


@pytest.mark.skipif(postgres_bin() is None,
                    reason="PostgreSQL is not installed (apt-get install postgresql; .ci/run "
                           "installs it)")
def test_two_workers_share_one_postgresql_study(tmp_path, space):
    psycopg = pytest.importorskip("psycopg")
    with postgres_server() as url:
        args = ["ppo", "CartPole", "--trials", 4, "--space", space, "--storage", url,
                "--study", "shared", *FAST]
        workers = [start_cli(*args, "--runs-dir", tmp_path / f"w{k}", module="rlcl.tune",
                             stderr=subprocess.PIPE)
                   for k in range(2)]  # started together: they race to create the tables
        for w in workers:
            _, err = w.communicate(timeout=600)
            assert w.returncode == 0, err
        with psycopg.connect(url) as conn:  # a libpq URI
            rows = conn.execute("SELECT t.number, t.state FROM trials t JOIN studies s ON "
                                "t.study_id = s.study_id WHERE s.study_name = 'shared'").fetchall()
            best = conn.execute("SELECT max(v.value) FROM trial_values v JOIN trials t ON "
                                "v.trial_id = t.trial_id").fetchone()[0]
    numbers = [n for n, _ in rows]
    assert len(numbers) == len(set(numbers))  # no trial twice
    complete = [n for n, state in rows if state == "COMPLETE"]
    assert 4 <= len(complete) <= 5 and len(rows) == len(complete)  # a worker may run one more
    folders = sorted(p.name for k in range(2) for p in (tmp_path / f"w{k}" / "tune" /
                                                        "shared").glob("trial_*"))
    assert folders == [f"trial_{n:04d}" for n in sorted(numbers)]  # each ran on one worker
    assert best is not None and best > 0
