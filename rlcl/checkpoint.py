"""Checkpoints: one ``.npz`` per save, written atomically.

A checkpoint holds the flat parameters, the optimizer's buffers and scalars, the scheduler
position, the host RNG state and the counters, plus a JSON header with the format version and
the config. It is written to a temporary file in the same folder, flushed to disk, then
renamed over the target, so a crash never leaves a half-written file where a resume looks.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from rlcl.errors import CheckpointError

FORMAT_VERSION = 1


def save_checkpoint(path: Path, *, params: np.ndarray, optimizer_state: dict,
                    scheduler_state: dict, meta: dict) -> None:
    """Atomically write PATH. Optimizer buffers (numpy arrays) are stored as arrays, the rest
    of its state and META as JSON."""
    arrays = {"params": np.asarray(params, np.float32)}
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
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    """{'params', 'optimizer_state', 'scheduler_state', 'meta'} or a one-line CheckpointError."""
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
    return {"params": arrays["params"], "meta": header["meta"],
            "scheduler_state": header["scheduler"],
            "optimizer_state": {"state": state, "param_groups": header["optim_groups"]}}
