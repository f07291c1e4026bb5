"""Checkpoints: one ``.npz`` per save, written atomically.

A checkpoint holds the flat parameters, the optimizer's buffers and scalars, the scheduler
position, the host RNG state and the counters, plus a JSON header with the format version and
the config. It is written to a temporary file in the same folder, flushed to disk, then
renamed over the target, so a crash never leaves a half-written file where a resume looks.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlcl.errors import CheckpointError

FORMAT_VERSION = 1

# -- the run folder ----------------------------------------------------------------------------
# runs/<env>__<algo>__<seed>__<unix_time>/ holds config.toml (the resolved config), the
# TensorBoard events, episodes.csv, summary.json, divergence.json (if the guard acted) and
# checkpoints/: LATEST every checkpoint_every iterations (what --resume continues), FINAL at
# the end (what evaluation loads), LAST_GOOD when the guard gives up; DIVERGENCE is the guard's
# report.
CONFIG, LATEST, FINAL, LAST_GOOD = "config.toml", "latest.npz", "final.npz", "last_good.npz"
DIVERGENCE = "divergence.json"  # the guard's report
EPISODES, SUMMARY = "episodes.csv", "summary.json"  # rlcl/logger.py, rlcl/run.py
POPULATION = "population.json"  # a population folder's index (rlcl/population.py)


def fresh_dir(root: Path, stem: str) -> Path:
    """A new folder ROOT/STEM, or STEM_2, STEM_3 ... where one exists (never reuse one)."""
    root.mkdir(parents=True, exist_ok=True)
    for k in range(1, 1000):
        path = root / (stem if k == 1 else f"{stem}_{k}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"cannot create a folder next to {root / stem}")


def write_text_atomic(path: Path, text: str) -> None:
    """A kill leaves the old file or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class SyncBatch:
    """The fsyncs and renames of many atomic writes, made together by ``commit()``: every
    temporary file written, then every file's fsync, then every rename. Each write keeps its
    order: its own files (the run's logs, the checkpoint's temporary file) on disk before the
    rename makes it the checkpoint. A population checkpoints all its agents in one batch, in
    the background while it trains on (``commit_in_background``; the temporary files are
    written there too, from data taken and serialised at the save: ``write_later``).

    One thread does it all, in order (issue 13): a pool of 16 fsync threads finished sooner,
    but on two cores its threads' turns at the GIL slowed the training thread for ~20
    iterations after each checkpoint; whole x64 trainings spent ~100 ms of slower iterations
    per checkpoint with the pool against ~50 with one thread (three alternated pairs)."""

    def __init__(self):
        self.writes: list = []  # callables, each writing a temporary file
        self.syncs: list = []  # callables, each making its files durable
        self.renames: list[tuple[Path, Path]] = []  # (temporary file, its final path)

    def write_later(self, write) -> None:
        """Call WRITE (it writes a temporary file from data already taken) at commit, first."""
        self.writes.append(write)

    def later(self, sync) -> None:
        """Call SYNC (it makes some files durable) at commit, before any rename."""
        self.syncs.append(sync)

    def defer(self, tmp: Path, path: Path) -> None:
        self.later(lambda: _fsync_path(tmp))
        self.renames.append((tmp, path))

    def commit(self) -> None:
        for write in self.writes:
            write()
            time.sleep(0)  # the GIL to the training thread between files (x64: 41-48 ms of
            # slower iterations after a checkpoint, 51-71 without)
        for sync in self.syncs:
            sync()  # an error (a full disk) is raised here, before any rename
        for tmp, path in self.renames:
            os.replace(tmp, path)
        self.writes, self.syncs, self.renames = [], [], []

    def commit_in_background(self) -> None:
        """``commit()`` in a thread, while the caller goes on; ``wait()`` joins it and raises
        its error. The order within each write holds as in commit(): a kill before a rename
        leaves that file's previous version."""
        def run():
            try:
                self.commit()
            except BaseException as exc:  # noqa: BLE001 -- raised again by wait()
                self._error = exc

        self._error = None
        self._thread = threading.Thread(target=run, name="rlcl-checkpoint-commit", daemon=True)
        self._thread.start()

    def wait(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


def _fsync_path(path: Path) -> None:
    """fsync a file written and closed before: Linux and macOS flush a file's data through any
    of its descriptors."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def checkpoint_path(run_dir: Path, name: str = LATEST) -> Path:
    return Path(run_dir) / "checkpoints" / name


def run_config_path(run_dir: Path) -> Path:
    """RUN_DIR's config.toml, or a one-line CheckpointError if RUN_DIR is no run folder."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{run_dir} is not an rlcl run folder (no {CONFIG})")
    return path


def resumable_checkpoint(run_dir: Path) -> Path:
    """The checkpoint --resume continues from, or a one-line CheckpointError."""
    run_config_path(run_dir)
    path = checkpoint_path(run_dir, LATEST)
    if not path.is_file():
        raise CheckpointError(f"{run_dir} has no checkpoints/{LATEST} to resume from; set "
                              "checkpoint_every > 0 for runs you may want to resume")
    return path


def trained_checkpoint(run_dir: Path) -> Path:
    """The parameters to evaluate: the final checkpoint, else the latest one."""
    run_config_path(run_dir)
    final = checkpoint_path(run_dir, FINAL)
    return final if final.is_file() else checkpoint_path(run_dir, LATEST)


def save_checkpoint(path: Path, *, params: np.ndarray, optimizer_state: dict,
                    scheduler_state: dict, meta: dict, extra: dict | None = None,
                    sync: SyncBatch | None = None) -> None:
    """Atomically write PATH (with SYNC, its writing, fsync and rename left to SYNC's commit:
    the caller must not change the arrays meanwhile; the rest is serialised now). Optimizer
    buffers (numpy arrays) are stored as arrays, the rest of its state and META as JSON; EXTRA
    holds further named arrays (a resumable checkpoint's next observation and pickled vector
    env)."""
    arrays = {"params": np.asarray(params, np.float32)}
    arrays.update({f"extra/{k}": v for k, v in (extra or {}).items()})
    opt_scalars = {}
    for index, state in optimizer_state["state"].items():
        for key, value in state.items():
            if isinstance(value, np.ndarray):
                arrays[f"optim/{index}/{key}"] = value
            else:
                opt_scalars[f"{index}/{key}"] = value
    header = {"format_version": FORMAT_VERSION, "meta": meta, "scheduler": scheduler_state,
              "optim_groups": optimizer_state["param_groups"], "optim_scalars": opt_scalars}
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")

    def write():
        # in memory, then one write: on the file np.savez seeks back to patch each member
        # (0.82 ms a checkpoint against 0.60; a population writes one per agent)
        zipped = io.BytesIO()
        np.savez(zipped, **arrays)
        with open(tmp, "wb") as fh:
            fh.write(zipped.getbuffer())

    if sync is not None:  # the arrays are taken (the header serialised): written at commit
        sync.write_later(write)
        sync.defer(tmp, path)
        return
    write()
    _fsync_path(tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    """{'params', 'optimizer_state', 'scheduler_state', 'meta', 'extra'} or a one-line
    CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(bytes(data["header"]).decode())
            arrays = {k: data[k] for k in data.files if k != "header"}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({type(exc).__name__}); "
                              "use an earlier checkpoint or retrain") from None
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {version}, this rlcl reads "
                              f"{FORMAT_VERSION}; use the rlcl version that wrote it")
    state: dict = {}
    for key, value in arrays.items():
        if key.startswith("optim/"):
            _, index, name = key.split("/", 2)
            state.setdefault(int(index), {})[name] = value
    for key, value in header["optim_scalars"].items():
        index, name = key.split("/", 1)
        state.setdefault(int(index), {})[name] = value
    extra = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("extra/")}
    return {"params": arrays["params"], "meta": header["meta"], "extra": extra,
            "scheduler_state": header["scheduler"],
            "optimizer_state": {"state": state, "param_groups": header["optim_groups"]}}


# -- resumable training state ------------------------------------------------------------------
@dataclass
class TrainingState:
    """The live objects a resumable checkpoint holds: parameters and optimizer buffers, the
    scheduler position, the minibatch RNG, the guard's baselines, the agent's update count,
    the vector env (with its normalisation statistics and episode accumulators) and the
    observation the next rollout starts from."""

    policy: object
    optimizer: object
    scheduler: object
    rng: np.random.Generator
    guard: object
    agent: object
    envs: object
    obs: np.ndarray | None = None


def save_training_state(path: Path, state: TrainingState, counters: dict, meta: dict,
                        sync: SyncBatch | None = None) -> None:
    """Everything a resume needs to continue bit for bit, with COUNTERS (iteration,
    global_step, elapsed training seconds). Pickles are only ever read back from the user's
    own run folder. SYNC: save_checkpoint's."""
    save_checkpoint(
        path, params=state.policy.flat.numpy(), optimizer_state=state.optimizer.state_dict(),
        scheduler_state=state.scheduler.state_dict(),
        meta={**meta, **counters, "rng": state.rng.bit_generator.state,
              "guard": state.guard.state_dict(), "total_updates": state.agent.total_updates},
        extra={"obs": np.zeros(0, np.float32) if state.obs is None else
               np.asarray(state.obs, np.float32),
               "env": np.frombuffer(pickle.dumps(_env_state(state.envs)), np.uint8)},
        sync=sync)


def _env_state(envs):
    """What a checkpoint keeps of the envs: device envs' arrays (rlcl/device_rollout.py), or the
    whole pickled gymnasium vector env with its wrappers."""
    return envs.state_dict() if hasattr(envs, "load_state_dict") else envs


def resume_training(run_dir: Path, state: TrainingState, *, env_id: str, obs_dim: int) -> dict:
    """Load RUN_DIR's latest checkpoint into STATE's fresh objects (its envs are replaced by
    the saved ones, after closing them); return the counters to continue from."""
    path = resumable_checkpoint(run_dir)
    ckpt = load_checkpoint(path)
    check_compatible(ckpt, path, env_id=env_id, n_params=state.policy.flat.n, obs_dim=obs_dim,
                     act_dim=state.policy.act_dim)
    if "env" not in ckpt["extra"]:
        raise CheckpointError("this checkpoint holds no training state (an evaluation-only "
                              "checkpoint?); resume from a run's checkpoints/latest.npz")
    try:
        envs = pickle.loads(ckpt["extra"]["env"].tobytes())
    except Exception as exc:  # a pickle from another gymnasium version, say
        raise CheckpointError(f"the checkpoint's environment state cannot be restored "
                              f"({type(exc).__name__}); resume with the versions that wrote it")
    if hasattr(state.envs, "load_state_dict"):  # device envs: their arrays
        state.envs.load_state_dict(envs)
    else:
        state.envs.close()
        state.envs = envs
    state.obs = ckpt["extra"]["obs"] if ckpt["extra"]["obs"].size else None
    state.policy.flat.load(ckpt["params"])
    state.optimizer.load_state_dict(ckpt["optimizer_state"])
    state.scheduler.load_state_dict(ckpt["scheduler_state"])
    state.rng.bit_generator.state = ckpt["meta"]["rng"]
    state.guard.load_state_dict(ckpt["meta"]["guard"])
    state.agent.total_updates = ckpt["meta"]["total_updates"]
    counters = {k: ckpt["meta"][k] for k in ("iteration", "global_step", "elapsed")}
    state.guard.take_snapshot(counters["iteration"], counters["global_step"])
    return counters


def check_compatible(ckpt: dict, path: Path, *, env_id: str, n_params: int, obs_dim: int,
                     act_dim: int) -> None:
    """A one-line CheckpointError if CKPT was written for another env or network shape."""
    meta = ckpt["meta"]
    saved_env = meta.get("config", {}).get("env_id")
    if saved_env != env_id:
        raise CheckpointError(f"checkpoint {path} is for {saved_env}, not {env_id}")
    for key, want in (("n_params", n_params), ("obs_dim", obs_dim), ("act_dim", act_dim)):
        if meta.get(key) != want or (key == "n_params" and ckpt["params"].size != want):
            raise CheckpointError(f"checkpoint {path} has {key} = {meta.get(key)}, this "
                                  f"network needs {want}: same hidden_sizes and env needed")
