"""Issue 5: bit-identical runs across processes, checkpoints, and resume after SIGKILL.

Identical means the global_step, return and length columns of episodes.csv and the final
parameters (summary.json params_sha256); only the wall-clock column time_s may differ.
"""

import json
import os
import random
import signal
import subprocess
import struct
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rlcl.checkpoint import FORMAT_VERSION, SyncBatch, load_checkpoint, save_checkpoint
from rlcl.logger import RunLogger, read_scalars, write_scalar_rows

from helpers import episodes, run_cli, start_cli

STEPS = 10240  # 40 PPO iterations of 256 steps


def only_run(runs: Path) -> Path:
    (run,) = runs.iterdir()
    return run


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


TRAIN = ["--total-timesteps", STEPS, "--no-progress", "--set", "checkpoint_every=3",
         "--set", "eval_episodes=2"]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("reference")
    proc = run_cli("ppo", "CartPole", "--seed", 11, "--runs-dir", runs, *TRAIN)
    assert proc.returncode == 0, proc.stderr
    return only_run(runs)


@pytest.mark.parametrize("algo, seed, steps", [("ppo", 11, STEPS), ("a2c", 7, 12000)])
def test_two_processes_same_seed_are_bit_identical(tmp_path, reference_run, algo, seed, steps):
    runs = []
    for k in range(2 if algo == "a2c" else 1):
        out = tmp_path / f"r{k}"
        proc = run_cli(algo, "CartPole", "--seed", seed, "--runs-dir", out, *TRAIN[2:],
                       "--total-timesteps", steps)
        assert proc.returncode == 0, proc.stderr
        runs.append(only_run(out))
    if algo == "ppo":
        runs.append(reference_run)
    a, b = runs
    assert episodes(a) == episodes(b) and len(episodes(a)) > 20
    assert summary(a)["params_sha256"] == summary(b)["params_sha256"]


def test_fingerprint_is_recorded(reference_run):
    fp = summary(reference_run)["fingerprint"]
    for key in ("platform", "device", "driver_version", "opencl_version", "build_options",
                "pocl", "rlcl", "numpy", "gymnasium", "pyopencl"):
        assert fp.get(key), key


@pytest.mark.parametrize("kill_seed", [1, 2])
def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path, reference_run,
                                                                 kill_seed):
    chance = random.Random(kill_seed)
    runs = tmp_path / "runs"
    proc = start_cli("ppo", "CartPole", "--seed", 11, "--runs-dir", runs, *TRAIN)
    for _ in range(2):  # kill twice: each time once a checkpoint exists, at a random moment
        deadline = time.time() + 120
        while not list(runs.glob("*/checkpoints/latest.npz")) and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(chance.uniform(0.0, 1.5))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        run = only_run(runs)
        if (run / "summary.json").exists():
            break  # it finished before the kill: resuming must still say so cleanly
        proc = subprocess.Popen([sys.executable, "-m", "rlcl.train", "--resume", str(run),
                                 "--no-progress"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    proc.wait()
    run = only_run(runs)
    if not (run / "summary.json").exists():
        done = run_cli("--resume", run, "--no-progress")
        assert done.returncode == 0, done.stderr
    assert episodes(run) == episodes(reference_run)
    assert summary(run)["params_sha256"] == summary(reference_run)["params_sha256"]
    scalars, ref_scalars = read_scalars(run), read_scalars(reference_run)
    for tag in ("rollout/ep_rew_mean", "train/value_loss", "smooth/update_cos"):
        steps = [s for s, _ in scalars[tag]]
        assert steps == sorted(set(steps)) == [s for s, _ in ref_scalars[tag]], tag
        assert [v for _, v in scalars[tag]] == [v for _, v in ref_scalars[tag]], tag


def test_resume_of_a_finished_run_changes_nothing(tmp_path, reference_run):
    import shutil

    run = tmp_path / reference_run.name
    shutil.copytree(reference_run, run)
    proc = run_cli("--resume", run, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert episodes(run) == episodes(reference_run)


def corrupt(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(b"not a checkpoint" * 100)
    elif how == "newer_format":
        ckpt = load_checkpoint(path)
        import rlcl.checkpoint as module
        old = module.FORMAT_VERSION
        module.FORMAT_VERSION = FORMAT_VERSION + 1
        try:
            save_checkpoint(path, params=ckpt["params"], optimizer_state=ckpt["optimizer_state"],
                            scheduler_state=ckpt["scheduler_state"], meta=ckpt["meta"],
                            extra=ckpt["extra"])
        finally:
            module.FORMAT_VERSION = old
    elif how == "other_network":
        ckpt = load_checkpoint(path)
        save_checkpoint(path, params=np.zeros(10, np.float32),
                        optimizer_state=ckpt["optimizer_state"],
                        scheduler_state=ckpt["scheduler_state"],
                        meta={**ckpt["meta"], "n_params": 10}, extra=ckpt["extra"])
    elif how == "other_env":
        ckpt = load_checkpoint(path)
        meta = {**ckpt["meta"], "config": {**ckpt["meta"]["config"], "env_id": "Acrobot-v1"}}
        save_checkpoint(path, params=ckpt["params"], optimizer_state=ckpt["optimizer_state"],
                        scheduler_state=ckpt["scheduler_state"], meta=meta, extra=ckpt["extra"])


@pytest.mark.parametrize("how, message", [
    ("truncated", "corrupt or truncated"), ("garbage", "corrupt or truncated"),
    ("newer_format", "format version"), ("other_network", "n_params"),
    ("other_env", "is for Acrobot-v1")])
def test_bad_checkpoint_is_one_line_exit_2(tmp_path, reference_run, how, message):
    import shutil

    run = tmp_path / reference_run.name
    shutil.copytree(reference_run, run)
    # pretend the run stopped early so --resume has work to do
    cfg = (run / "config.toml").read_text().replace(f"total_timesteps = {STEPS}",
                                                    f"total_timesteps = {2 * STEPS}")
    (run / "config.toml").write_text(cfg)
    corrupt(run / "checkpoints" / "latest.npz", how)
    proc = run_cli("--resume", run, "--no-progress")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlcl: error:") and message in lines[0]


@pytest.mark.parametrize("background", [False, True], ids=["commit", "in-background"])
def test_a_sync_batch_renames_only_after_every_file_is_synced(tmp_path, monkeypatch, background):
    """A population's checkpoint (checkpoint.SyncBatch): each save leaves the old checkpoint in
    place until commit, which renames only once every fsync has succeeded; in the background
    (as rlcl/batched.py commits while training goes on), wait() ends it and raises its error."""
    def commit(sync):
        if background:
            sync.commit_in_background()
            sync.wait()
        else:
            sync.commit()

    def save(path, value, sync):
        save_checkpoint(path, params=np.full(3, value, np.float32),
                        optimizer_state={"state": {}, "param_groups": []}, scheduler_state={},
                        meta={}, sync=sync)

    paths = [tmp_path / f"agent{k}" / "latest.npz" for k in range(3)]
    for path in paths:
        save(path, 1.0, None)
    sync, flushed = SyncBatch(), []
    for path in paths:
        save(path, 2.0, sync)
        sync.later(lambda: flushed.append(1))  # a run's logs, as Run.save adds them
    assert all(load_checkpoint(p)["params"][0] == 1.0 for p in paths)
    commit(sync)
    assert len(flushed) == 3
    assert all(load_checkpoint(p)["params"][0] == 2.0 for p in paths)
    assert not list(tmp_path.glob("*/.*.tmp"))

    for path in paths:  # a failed fsync (a full disk): no checkpoint is replaced
        save(path, 3.0, sync)

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        commit(sync)
    assert all(load_checkpoint(p)["params"][0] == 2.0 for p in paths)


def test_logs_reach_the_os_at_flush_buffers_and_the_disk_at_sync(tmp_path, monkeypatch):
    """A population's save hands each run's logs to the OS in the training thread and leaves
    their fsyncs to its background commit (Run.save, checkpoint.SyncBatch): flush_buffers makes
    the events and episodes readable without an fsync; sync fsyncs both files."""
    log = RunLogger(tmp_path, {"lr": 0.1}, 100, progress=False)
    synced = []
    monkeypatch.setattr(os, "fsync", synced.append)
    log.scalars({"train/loss": 1.5}, 8)
    log.episode(8, 21.0, 21)
    log.flush_buffers()
    assert not synced
    assert read_scalars(tmp_path)["train/loss"] == [(8, 1.5)]
    assert (tmp_path / "episodes.csv").read_text().splitlines()[1].startswith("8,")
    log.sync()
    assert len(set(synced)) == 2
    monkeypatch.undo()
    log.close()


def test_scalar_rows_are_tensorboardx_records_to_the_byte(tmp_path):
    """event_rows.ScalarRow, which the logger writes, gives the bytes of the protobuf event
    framed by tensorboardX's RecordWriter, NaN, infinities, -0.0 and subnormals included, for
    one event or many at one step (a population's agents); a finite value past float32 is
    stored as protobuf stores it, an infinity; step 0 is left out as protobuf leaves it."""
    from tensorboardX.proto import event_pb2, summary_pb2
    from tensorboardX.record_writer import masked_crc32c

    from rlcl.event_rows import ScalarRow

    tags = ("train/loss", "diag/grad_norm_z", "x" * 200)
    event = event_pb2.Event(summary=summary_pb2.Summary(
        value=[summary_pb2.Summary.Value(tag=tag) for tag in tags]))
    rng = np.random.default_rng(3)
    rows = [[np.nan, -np.inf, -0.0], [1e-45, 3.4028235e38, 1 / 3], [1e300, -1e39, 5e-46],
            *rng.normal(0, 1e6, (20, 3)).tolist()]
    for step in (0, 5, int(rng.integers(0, 2**40))):
        expected = []
        for values in rows:
            for slot, value in zip(event.summary.value, values):
                slot.simple_value = value
            event.wall_time, event.step = 1.7e9 + step, step
            data = event.SerializeToString()
            head = struct.pack("<Q", len(data))
            expected.append(head + struct.pack("<I", masked_crc32c(head)) + data
                            + struct.pack("<I", masked_crc32c(data)))
        assert ScalarRow(tags).records(rows, 1.7e9 + step, step) == expected
        assert ScalarRow(tags).records(rows[4:5], 1.7e9 + step, step) == expected[4:5]
    log = RunLogger(tmp_path, {}, 100, progress=False)
    log.scalars({"a": 1.5, "b": 1e300}, 3)  # b: past float32
    log.scalars({"a": 2.5, "b": -1.0}, 4)
    log.close()
    assert read_scalars(tmp_path) == {"a": [(3, 1.5), (4, 2.5)], "b": [(3, np.inf), (4, -1.0)]}


def test_one_call_writes_each_loggers_events_to_its_own_file(tmp_path):
    """logger.write_scalar_rows, as a population logs its agents: events of two sets of tags
    and two steps in one call, each in its own run's events file, read back as written; a
    logger whose file handle is unknown takes protobuf's path to the same events."""
    folders = [tmp_path / f"r{k}" for k in range(4)]
    for folder in folders:
        folder.mkdir()
    logs = [RunLogger(folder, {}, 100, progress=False) for folder in folders]
    logs[3]._events_handle = None  # as with a tensorboardX that keeps its file elsewhere
    write_scalar_rows([(logs[0], ("a", "b"), [1.5, 2], 8),
                       (logs[1], ("a", "c"), [3.0, 1e300], 8),
                       (logs[2], ("a", "b"), [-0.25, 4.0], 16),
                       (logs[3], ("a", "b"), [5.0, 6.0], 8)])
    write_scalar_rows([(logs[0], ("a", "b"), [7.0, 8.0], 16)])
    for log in logs:
        log.close()
    assert [read_scalars(folder) for folder in folders] == [
        {"a": [(8, 1.5), (16, 7.0)], "b": [(8, 2.0), (16, 8.0)]},
        {"a": [(8, 3.0)], "c": [(8, np.inf)]},  # past float32: an infinity, as protobuf
        {"a": [(16, -0.25)], "b": [(16, 4.0)]},
        {"a": [(8, 5.0)], "b": [(8, 6.0)]}]


def test_resume_needs_a_run_folder(tmp_path):
    proc = run_cli("--resume", tmp_path / "nope")
    assert proc.returncode == 2 and "not an rlcl run folder" in proc.stderr


def run_eval(*args):
    return subprocess.run([sys.executable, "-m", "rlcl.eval", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_eval_cli_prints_the_statistics(reference_run):
    proc = run_eval(reference_run, "--episodes", 3)
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip().splitlines()[0]
    assert line.startswith("CartPole-v1: 3 greedy episodes, seed 11: mean ")
    for word in ("std", "min", "max"):
        assert f" {word} " in line
    sampled = run_eval(reference_run, "--episodes", 3, "--stochastic", "--seed", 4)
    assert sampled.returncode == 0 and "3 sampled episodes, seed 4" in sampled.stdout


def test_eval_video_needs_moviepy_or_records(tmp_path, reference_run):
    proc = run_eval(reference_run, "--episodes", 1, "--video", tmp_path / "videos")
    try:
        import moviepy  # noqa: F401
    except ImportError:
        assert proc.returncode == 2 and "pip install 'rlcl[video]'" in proc.stderr
    else:
        assert proc.returncode == 0 and list((tmp_path / "videos").glob("*.mp4"))


@pytest.mark.parametrize("how, message", [
    ("truncated", "corrupt or truncated"), ("garbage", "corrupt or truncated"),
    ("newer_format", "format version"), ("other_network", "n_params")])
def test_eval_of_a_bad_checkpoint_is_one_line_exit_2(tmp_path, reference_run, how, message):
    import shutil

    run = tmp_path / reference_run.name
    shutil.copytree(reference_run, run)
    corrupt(run / "checkpoints" / "final.npz", how)
    proc = run_eval(run, "--episodes", 1)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlcl: error:") and message in lines[0]


def test_resumed_summary_reports_the_whole_runs_steps_per_second(tmp_path, reference_run):
    """Issue 10: a resume adds its training seconds to those the checkpoint recorded, so a run
    resumed at its very end reports the steps/s of the run, not millions (it divided all the
    steps by the resumed part's seconds)."""
    import shutil

    run = tmp_path / reference_run.name
    shutil.copytree(reference_run, run)
    elapsed = load_checkpoint(run / "checkpoints" / "latest.npz")["meta"]["elapsed"]
    proc = run_cli("--resume", run, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    s, ref = summary(run), summary(reference_run)
    assert s["wall_seconds"] >= elapsed - 1e-3 >= ref["wall_seconds"] - 2e-3  # 3 decimals
    # wall_seconds is rounded to 3 decimals (fps to 1): short runs need the bounds, not a ratio
    wall, steps = s["wall_seconds"], s["total_timesteps"]
    assert steps / (wall + 5e-4) - 0.05 <= s["fps"] <= steps / max(wall - 5e-4, 1e-9) + 0.05
    assert s["fps"] == pytest.approx(ref["fps"], rel=0.25)
