"""The divergence guard (issue 4), carried out on the device; rlcl/divergence.py decides.

Per step, the optimizer kernel refuses a step whose gradient norm is NaN or past the z-score
threshold (``optimizer.skip_above``). After each iteration the guard asks the
:class:`DivergenceMonitor` for a verdict:

* ok: the iteration becomes the last good snapshot (device copies of the parameters and every
  optimizer buffer, plus the scheduler position and the minibatch RNG state);
* skipped: bad steps were refused and nothing else looks wrong: go on, no new snapshot;
* rollback: restore the last good snapshot, halve the scheduler's ``lr_scale`` and go on (the
  schedule's position is not rewound: the lr is a function of the iteration, so the cosine
  still ends at lr_min; issue 10); past
  ``guard_max_rollbacks`` the run stops with :class:`DivergenceError` (exit code 3) after
  writing the last good state to ``checkpoints/last_good.npz``.

Every event goes to ``divergence.json`` in the run folder: the first bad quantity, its value,
the update and global step, and what the guard did.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np

from rlcl.checkpoint import DIVERGENCE, LAST_GOOD, checkpoint_path, save_checkpoint
from rlcl.divergence import DivergenceMonitor
from rlcl.errors import RlclError


class DivergenceError(RlclError):
    """Training diverged and the guard could not recover."""

    exit_code = 3


class Guard:
    def __init__(self, cfg, run_dir: Path, policy, optimizer, scheduler, rng, meta: dict):
        self.cfg, self.run_dir, self.meta = cfg, run_dir, meta
        self.policy, self.optimizer, self.scheduler, self.rng = policy, optimizer, scheduler, rng
        self.monitor = DivergenceMonitor(cfg.guard_z, cfg.guard_max_skips,
                                         cfg.guard_max_update_ratio)
        self.rollbacks, self.events = 0, []
        self.snapshot: dict | None = None
        # A population sets copy_later and makes every agent's snapshot copies at once
        # (rlcl/batched.py), after every guard has run and before the parameters next change;
        # copies_due says a snapshot's device copies are still to be made.
        self.copy_later, self.copies_due = False, False
        # A population may draw the next iteration's minibatch orders before this guard has
        # judged the iteration (rlcl/batched.py, _draw_orders_ahead): the RNG's state before
        # that draw, which a snapshot taken meanwhile records
        self.rng_ahead: dict | None = None
        self.take_snapshot(iteration=0, global_step=0)

    def before_iteration(self) -> None:
        self.optimizer.skip_above = self.monitor.skip_threshold() if self.cfg.guard else None

    def after_iteration(self, stats: dict, iteration: int, global_step: int) -> dict:
        """Act on the iteration's STATS; return the guard's own figures for the log."""
        figures, verdict = self.monitor.observe(stats)
        if not self.cfg.guard:
            return {**figures, "lr_scale": self.scheduler.lr_scale, "rollbacks": 0}
        if verdict.action == "ok":
            self.take_snapshot(iteration + 1, global_step)
        else:
            action = "skipped the bad steps"
            if verdict.action == "rollback":
                self.rollbacks += 1
                halved = self.scheduler.lr_scale * 0.5  # cumulative: the snapshot holds the old
                self.restore()
                self.scheduler.lr_scale = halved
                action = (f"rolled back to iteration {self.snapshot['iteration']} and halved "
                          f"lr_scale to {self.scheduler.lr_scale:g}")
            self.events.append({"quantity": verdict.reason, "value": _json_float(verdict.value),
                                "iteration": iteration, "updates": stats["updates"],
                                "global_step": global_step, "action": action})
            self.write_report()
            if self.rollbacks > self.cfg.guard_max_rollbacks:
                self.save_last_good()
                raise DivergenceError(
                    f"training diverged ({verdict.reason} = {verdict.value:.3g} at step "
                    f"{global_step}) and {self.cfg.guard_max_rollbacks} rollbacks did not help; "
                    f"see {self.run_dir / DIVERGENCE}; the last good state is in "
                    f"{checkpoint_path(self.run_dir, LAST_GOOD)}: lower learning_rate")
        return {**figures, "lr_scale": self.scheduler.lr_scale, "rollbacks": self.rollbacks}

    def state_dict(self) -> dict:
        """The guard's baselines and history, for resumable checkpoints."""
        emas = {name: vars(getattr(self.monitor, name)).copy() for name in ("grad_ema", "loss_ema")}
        return {"emas": emas, "rollbacks": self.rollbacks, "events": self.events}

    def load_state_dict(self, state: dict) -> None:
        for name, values in state["emas"].items():
            vars(getattr(self.monitor, name)).update(values)
        self.rollbacks, self.events = state["rollbacks"], list(state["events"])

    # -- snapshots ----------------------------------------------------------------------------
    def _buffers(self) -> dict:
        """Every device buffer a rollback must restore, by name."""
        out = {"params": self.policy.flat.params}
        for i, state in enumerate(self.optimizer.state.values()):
            out.update({f"{i}/{k}": v for k, v in state.items() if self.policy.device.is_buffer(v)})
        return out

    def take_snapshot(self, iteration: int, global_step: int) -> None:
        dev, n = self.policy.device, self.policy.flat.n
        old = self.snapshot["copies"] if self.snapshot else {}
        # the optimizer's state in one pass: its buffers (copied: _buffers' names) and its
        # numbers (fresh dicts of numbers; state_dict and the RNG state are built anew at each
        # call: no deepcopy, which cost ~50 us an iteration, and A2C takes 12,500)
        copies, scalars = {"params": old["params"] if "params" in old else dev.empty(n)}, []
        for i, state in enumerate(self.optimizer.state.values()):
            numbers = {}
            for key, value in state.items():
                if dev.is_buffer(value):
                    name = f"{i}/{key}"
                    copies[name] = old[name] if name in old else dev.empty(n)
                else:
                    numbers[key] = value
            scalars.append(numbers)
        self.snapshot = {"copies": copies, "iteration": iteration, "global_step": global_step,
                         "scalars": scalars, "scheduler": self.scheduler.state_dict(),
                         "rng": (self.rng.bit_generator.state if self.rng_ahead is None
                                 else self.rng_ahead)}
        self.copies_due = True
        if not self.copy_later:
            self.copy_snapshot()

    def copy_snapshot(self) -> None:
        """The last snapshot's device copies of the parameters and optimizer buffers."""
        dev, n = self.policy.device, self.policy.flat.n
        if self.copies_due:
            for name, buf in self._buffers().items():
                dev.copy(self.snapshot["copies"][name], buf, n)
            self.copies_due = False

    def restore(self) -> None:
        dev, n, snap = self.policy.device, self.policy.flat.n, self.snapshot
        # State created after the snapshot (e.g. a velocity allocated by the first step) goes,
        # so the optimizer starts it afresh exactly as it did then.
        for i, state in enumerate(self.optimizer.state.values()):
            scalars = snap["scalars"][i] if i < len(snap["scalars"]) else {}
            for key in list(state):
                if f"{i}/{key}" not in snap["copies"] and key not in scalars:
                    del state[key]
            state.update(copy.deepcopy(scalars))
        for name, buf in self._buffers().items():
            dev.copy(buf, snap["copies"][name], n)
        # not the scheduler: its position is the iteration's, and the caller sets lr_scale
        self.rng.bit_generator.state = copy.deepcopy(snap["rng"])

    def save_last_good(self) -> None:
        dev, n, snap = self.policy.device, self.policy.flat.n, self.snapshot
        state = {}
        for name, buf in snap["copies"].items():
            if name != "params":
                index, key = name.split("/", 1)
                state.setdefault(int(index), {})[key] = dev.read(buf, n)
        for i, scalars in enumerate(snap["scalars"]):
            state.setdefault(i, {}).update(scalars)
        opt_state = {"state": state, "param_groups": self.optimizer.state_dict()["param_groups"]}
        save_checkpoint(checkpoint_path(self.run_dir, LAST_GOOD),
                        params=dev.read(snap["copies"]["params"], n), optimizer_state=opt_state,
                        scheduler_state=snap["scheduler"],
                        meta={**self.meta, "iteration": snap["iteration"],
                              "global_step": snap["global_step"]})

    def write_report(self) -> None:
        first = self.events[0]
        report = {"first_bad_quantity": first["quantity"], "value": first["value"],
                  "iteration": first["iteration"], "global_step": first["global_step"],
                  "rollbacks": self.rollbacks, "lr_scale": self.scheduler.lr_scale,
                  "events": self.events}
        (self.run_dir / DIVERGENCE).write_text(json.dumps(report, indent=2) + "\n")


def _json_float(x: float):
    return float(x) if np.isfinite(x) else str(x)
