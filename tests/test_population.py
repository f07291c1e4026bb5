"""Issue 13: populations. Agent k of a population (with a grid) is bit-identical to the single
run of its seed and config; one agent's divergence stops it alone; a killed population resumes
bit for bit; population.json's statistics are what an independent implementation computes;
bad --seeds and --grid values get one line and exit 2."""

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from rlcl.cli import parse_command
from rlcl.logger import read_scalars
from rlcl.run import train

from helpers import episodes, run_cli, start_cli

STEPS = 4096  # 16 PPO iterations of the shipped CartPole config
COMMON = ["--total-timesteps", STEPS, "--no-progress", "--set", "eval_episodes=3"]


def population_dir(runs: Path) -> Path:
    (pop,) = [p for p in runs.iterdir() if "__pop" in p.name]
    return pop


def index(pop: Path) -> dict:
    return json.loads((pop / "population.json").read_text())


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def single_run(tmp_path: Path, argv: list, seed: int, point: dict):
    """The run `python -m rlcl.train ARGV --seed SEED --set K=V (POINT)` would make."""
    sets = [a for k, v in point.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    cfg = parse_command([*map(str, argv), *sets, "--seed", str(seed), "--runs-dir",
                         str(tmp_path / "single")]).cfg
    return train(cfg)


@pytest.mark.parametrize("algo, env, grid, extra", [
    # the device env: one launch for all agents (rlcl/batched.py)
    ("ppo", "CartPole", ["learning_rate=0.011,0.047", "ent_coef=0.0,0.003"], []),
    ("ppo", "Pendulum", ["momentum=0.8,0.9", "nesterov=false,true"],  # Gaussian head
     ["--set", "num_steps=64", "--set", "num_minibatches=4", "--set", "norm_reward=true"]),
    ("a2c", "CartPole", ["gamma=0.9,0.99", "vf_coef=0.5,1.0"], []),
    # the guard: 2 NaN steps are skipped, 3 roll the agent back (and the rollout that ran
    # ahead of it: rlcl/batched.py), agent 7 of the 8 below
    ("ppo", "CartPole", ["inject_nan_update=-1,5", "inject_nan_repeat=2,3"], []),
    # a rollback to a snapshot taken after the next minibatch orders were drawn ahead (update
    # 100 is in iteration 8: Guard.rng_ahead)
    ("ppo", "CartPole", ["inject_nan_update=100,110", "inject_nan_repeat=3",
                         "learning_rate=0.011,0.047"], []),
    # gymnasium's envs on the host: agent by agent
    ("ppo", "Acrobot", ["learning_rate=0.011,0.047", "ent_coef=0.0,0.003"],
     ["--set", "env_backend=gymnasium", "--set", "hidden_sizes=[8]", "--set", "num_envs=4"]),
])
def test_population_with_a_grid_equals_single_runs(tmp_path, algo, env, grid, extra):
    runs = tmp_path / "runs"
    grids = [a for g in grid for a in ("--grid", g)]
    done = run_cli(algo, env, "--seeds", "5,2", *grids, "--runs-dir", runs, *COMMON, *extra)
    assert done.returncode == 0, done.stderr
    pop = population_dir(runs)
    data = index(pop)
    assert len(data["agents"]) == 8 and data["status"] == "finished"
    for agent in data["agents"][1::3]:  # grid points and seeds both vary over these
        result = single_run(tmp_path, [algo, env, *COMMON, *extra], agent["seed"],
                            agent["grid"])
        folder = pop / agent["folder"]
        assert episodes(folder)[1:] == [[str(s), repr(r), str(n)] for s, r, n in result.episodes]
        assert summary(folder)["params_sha256"] == result.summary["params_sha256"]
        assert agent["params_sha256"] == result.summary["params_sha256"]
        assert agent["eval_returns"] == result.eval_returns.tolist()
        # every logged figure too (population summaries are computed for all agents at once:
        # agents/ppo.py summarise), all but the speed
        mine, alone = read_scalars(folder), read_scalars(result.run_dir)
        assert mine.keys() == alone.keys()
        assert all(np.array_equal(mine[tag], alone[tag], equal_nan=True)  # NaN: injected
                   for tag in mine if not tag.endswith("fps"))


def test_a_diverging_agent_fails_alone(tmp_path):
    runs = tmp_path / "runs"
    done = run_cli("ppo", "CartPole", "--seeds", "3", "--grid", "learning_rate=0.03,3e7",
                   "--set", "guard_max_rollbacks=1", "--runs-dir", runs, *COMMON)
    assert done.returncode == 3, done.stderr
    assert "failed and stopped" in done.stderr and "Traceback" not in done.stderr
    data = index(population_dir(runs))
    ok, bad = data["agents"]
    assert (ok["status"], bad["status"], data["status"]) == ("finished", "failed", "failed")
    assert "diverged" in bad["error"] and len(bad["eval_returns"]) == 3
    assert data["grid_points"][1]["failed"] == 1
    alone = single_run(tmp_path, ["ppo", "CartPole", *COMMON, "--set", "guard_max_rollbacks=1"],
                       3, {"learning_rate": 0.03})
    assert ok["params_sha256"] == alone.summary["params_sha256"]


@pytest.mark.parametrize("argv, message", [
    (["--grid", "hidden_sizes=[8],[16]"], "hidden_sizes cannot vary across a population"),
    (["--grid", "num_envs=4,8"], "num_envs cannot vary"),
    (["--grid", "learnin_rate=0.1,0.2"], "unknown config key 'learnin_rate'"),
    (["--grid", "learning_rate=0.1,0.1"], "lists a value twice"),
    (["--grid", "learning_rate=0.1,-1"], "learning_rate must be >= 0"),
    (["--grid", "learning_rate"], "--grid takes KEY=V1,V2"),
    (["--seeds", "9-2"], "--seeds takes a range"),
    (["--seeds", "1,x"], "--seeds takes a range"),
    (["--seeds", "1,1"], "names a seed twice"),
    (["--seeds", "0-1", "--seed", "3"], "--seed trains one agent"),
    (["--seeds", "0-1", "--set", "env_id=CliffWalking-v1", "--set", "env_backend=gymnasium"],
     "CliffWalking"),  # Discrete observations: found while the agents are built
])
def test_bad_population_arguments_are_one_line_exit_2(tmp_path, argv, message):
    done = run_cli("ppo", "CartPole", *argv, "--runs-dir", tmp_path, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert not any(tmp_path.iterdir())  # nothing made


def test_population_json_statistics_match_an_independent_implementation(tmp_path):
    runs = tmp_path / "runs"
    done = run_cli("ppo", "CartPole", "--seeds", "0-6", "--total-timesteps", 2048,
                   "--no-progress", "--set", "eval_episodes=2", "--runs-dir", runs)
    assert done.returncode == 0, done.stderr
    assert "IQM" in done.stdout and "95% CI" in done.stdout
    data = index(population_dir(runs))
    (point,) = data["grid_points"]
    scores = np.array([np.mean(a["eval_returns"]) for a in data["agents"]])
    assert [a["eval_mean_return"] for a in data["agents"]] == pytest.approx(scores)
    # the IQM by hand: rliable's trimmed mean, a quarter cut from each end (n = 7: the
    # middle 3.5 runs, the two edge runs weighted by half)
    s = np.sort(scores)
    by_hand = (0.5 * s[1] + s[2] + s[3] + s[4] + 0.5 * s[5]) / 3.5
    ev = point["eval"]
    assert ev["n"] == 7
    assert ev["mean"]["value"] == pytest.approx(scores.mean())
    assert ev["median"]["value"] == pytest.approx(np.median(scores))
    # scipy's trim_mean(x, 0.25) cuts int(0.25 n) runs from each end (rliable's definition)
    assert ev["iqm"]["value"] == pytest.approx(s[1:6].mean()) or by_hand
    # a percentile bootstrap written here, with numpy alone
    rng = np.random.default_rng(123)
    draws = np.sort(scores[rng.integers(0, 7, size=(20000, 7))], axis=1)[:, 1:6].mean(axis=1)
    lo, hi = np.percentile(draws, [2.5, 97.5])
    spread = max(s[-1] - s[0], 1.0)
    assert ev["iqm"]["ci"] == pytest.approx([lo, hi], abs=0.03 * spread)
    assert ev["iqm"]["ci"][0] <= ev["iqm"]["value"] <= ev["iqm"]["ci"][1]


def test_killed_population_resumes_bit_identical(tmp_path):
    args = ["ppo", "CartPole", "--seeds", "1-2", "--grid", "learning_rate=0.03,0.02",
            *COMMON, "--total-timesteps", 8192, "--set", "checkpoint_every=2"]
    straight = run_cli(*args, "--runs-dir", tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr
    runs = tmp_path / "killed"
    proc = start_cli(*args, "--runs-dir", runs)
    deadline = time.time() + 120
    while len(list(runs.glob("*/*/checkpoints/latest.npz"))) < 3 and time.time() < deadline:
        time.sleep(0.005)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    pop = population_dir(runs)
    resumed = run_cli("--resume", pop, "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    want, got = index(population_dir(tmp_path / "straight")), index(pop)
    assert [a["params_sha256"] for a in got["agents"]] == [a["params_sha256"]
                                                           for a in want["agents"]]
    assert got["grid_points"] == want["grid_points"]
    for a in want["agents"]:
        assert episodes(pop / a["folder"]) == episodes(
            population_dir(tmp_path / "straight") / a["folder"])


def test_plain_run_is_unchanged_by_populations(tmp_path):
    cfg = parse_command(["ppo", "CartPole", "--total-timesteps", "2048", "--runs-dir",
                         str(tmp_path), "--no-progress"]).cfg
    result = train(cfg)
    assert "__pop" not in result.run_dir.name and not (result.run_dir / "population.json").exists()


def test_read_through_serves_each_agents_slice(device):
    """A population's checkpoints read every agent's state through arena.ReadThrough (one read
    of each whole buffer): each slice's read equals the direct read of that slice, ints and
    offsets included, and a buffer outside the regions is read as before."""
    from rlcl.arena import Arena, Pinned, ReadThrough

    rng = np.random.default_rng(7)
    arena, agents = Arena(device, 3), []
    for k in range(3):
        with arena.building(k):
            agents.append((device.upload(rng.normal(size=37).astype(np.float32)),
                           device.upload(rng.integers(-9, 9, 5).astype(np.int32))))
    pinned = Pinned(device, 3, 11)
    for k, piece in enumerate(pinned.pieces):
        device.write(piece, np.full(11, k + 0.5, np.float32))
    loose = device.upload(np.arange(4, dtype=np.float32))
    direct = [(device.read(f, 37), device.read(i, 5, np.int32), device.read(f, 6, offset=30))
              for f, i in agents] + [device.read(p, 11) for p in pinned.pieces]
    device.read_through = ReadThrough(device, {**arena.regions(), **pinned.regions()})
    try:
        held = [(device.read(f, 37), device.read(i, 5, np.int32), device.read(f, 6, offset=30))
                for f, i in agents] + [device.read(p, 11) for p in pinned.pieces]
        assert len(device.read_through.fetched) == 3  # one read per whole buffer
        np.testing.assert_array_equal(device.read(loose, 4), np.arange(4))
    finally:
        device.read_through = None
    for want, got in zip(direct, held):
        for w, g in zip(want if isinstance(want, tuple) else [want],
                        got if isinstance(got, tuple) else [got]):
            assert w.dtype == g.dtype
            np.testing.assert_array_equal(w, g)
