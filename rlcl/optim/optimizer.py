"""The torch-style Optimizer base and global-norm gradient clipping.

The class does the bookkeeping (``param_groups``, ``state``, ``state_dict``); the math lives in
one fused kernel per update over each flat buffer (kernels/optim.cl). A parameter here is a
:class:`rlcl.nn.FlatParams`, the whole model in one buffer.
"""

from __future__ import annotations

import copy
from collections import defaultdict

import numpy as np

from rlcl.errors import ConfigError
from rlcl.nn import SMOOTH_STATS, FlatParams

REDUCE_LOCAL_SIZE = 256


def clip_grad_norm_(flat: FlatParams, max_norm: float, slot: int = 0) -> None:
    """torch.nn.utils.clip_grad_norm_ for a flat buffer, fused into the next optimizer step.

    One single-work-group reduction writes ||g|| to ``flat.norms[slot]``; the next ``step()`` scales
    the gradient by min(1, max_norm / (||g|| + 1e-6)) inside its own kernel, so clipping costs
    no extra pass over the parameters. The norm stays on the device (no readback).
    """
    dev = flat.device
    L = dev.group_size(REDUCE_LOCAL_SIZE)
    dev.launch("sum_squares", (L,), (L,), flat.norms, slot, flat.grads, flat.n, dev.local(4 * L))
    flat.pending_clip = (float(max_norm), int(slot))


def refused_steps(norms: np.ndarray, skip_above) -> np.ndarray:
    """Which steps optim.cl refused, from their gradient NORMS and the threshold each ran under
    (SKIP_ABOVE: one or one per step; None or < 0: never): the kernel's rule, compared in
    float32 as the kernel does."""
    skip = np.float32(-1.0) if skip_above is None else np.asarray(skip_above, np.float32)
    return (skip >= 0) & ~(np.asarray(norms, np.float32) <= skip)


def settle_many(optimizers: list, params: list, norms: np.ndarray) -> np.ndarray:
    """Optimizer.settle() of each of OPTIMIZERS, whose PARAMS[k] took the steps of row k of
    NORMS (float32 gradient norms, one per norm slot from 0): which steps each refused, a row
    per optimizer. Where every optimizer's unsettled steps are exactly those slots (a
    population's iteration), one comparison for all; else one settle() each."""
    skips = [opt.slot_skips(p, norms.shape[1]) for opt, p in zip(optimizers, params)]
    if any(skip is None for skip in skips):
        refused = np.zeros(norms.shape, bool)
        for k, (opt, p) in enumerate(zip(optimizers, params)):
            settled = opt.settle({p: norms[k]})
            if settled.size:  # (Adam settles a step launched without a threshold at once)
                refused[k] = settled
        return refused
    refused = refused_steps(norms, np.array(skips))
    for opt, row in zip(optimizers, refused):
        opt.settled(row)
    return refused


class Optimizer:
    """torch.optim.Optimizer's interface over :class:`FlatParams`."""

    def __init__(self, params, defaults: dict):
        if isinstance(params, FlatParams):
            params = [params]
        params = list(params)
        groups = params if params and isinstance(params[0], dict) else [{"params": params}]
        self.defaults = dict(defaults)
        self.param_groups: list[dict] = []
        for group in groups:
            group = {**self.defaults, **group}
            group["params"] = list(group["params"])
            if group["lr"] < 0:
                raise ConfigError(f"invalid learning rate {group['lr']}: use lr >= 0")
            self.param_groups.append(group)
        self.state: defaultdict[FlatParams, dict] = defaultdict(dict)  # as torch
        # The divergence guard sets this: a step whose gradient norm is not <= skip_above
        # (a spike or NaN) changes nothing. None never skips.
        self.skip_above: float | None = None
        # (param, norm slot, skip_above) of each step launched since the last settle(): only
        # the device knows which of them it refused until their norms are read back
        self._launched: list[tuple[FlatParams, int, float]] = []

    def zero_grad(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                p.device.fill(p.grads, 0.0, p.n)

    def _launch_step(self, kernel: str, p: FlatParams, *args) -> None:
        """Launch a fused step over P: its buffers and the clip/skip scalars come first, the
        smoothness partials and local scratch last (optim.cl)."""
        L = p.step_local_size
        p.device.launch(kernel, (p.step_groups * L,), (L,), *args, p.partials,
                        p.device.local(4 * SMOOTH_STATS * L))

    def _clip_and_skip(self, p: FlatParams) -> tuple:
        """(norms, slot, max_norm, skip_above) arguments for this step, which joins the run of
        unsettled steps of P. A run holds consecutive norm slots (the kernels count refused
        steps over a slot range), so a step that does not continue it settles it first."""
        max_norm, slot = self._take_clip(p)
        skip_above = -1.0 if self.skip_above is None else float(self.skip_above)
        last = next((s for q, s, _ in reversed(self._launched) if q is p), None)
        if last is not None and slot != last + 1:
            self.settle()
        self._launched.append((p, slot, skip_above))
        return p.norms, slot, max_norm, skip_above

    def unsettled_slots(self, p: FlatParams) -> list[int]:
        """Norm slots of P's steps launched since the last settle(), in order."""
        return [slot for q, slot, _ in self._launched if q is p]

    def settle(self, norms_read: dict | None = None) -> np.ndarray:
        """Which of the steps launched since the last settle() the kernel refused: a bool per
        step, in launch order. Reads back the gradient norms (a few floats) only where a step
        could be refused, and brings step counts up to date (Adam's ``step``): torch never
        counts a step it did not take (issue 10). The kernel compares in float32, so here too.
        NORMS_READ: {flat params: the first slots of its norms buffer, float32}, which the
        caller has just read, so as not to read them again."""
        launched, self._launched = self._launched, []
        refused = np.zeros(len(launched), bool)
        for p in {p for p, _, skip_above in launched if skip_above >= 0}:
            mine = [(i, slot, skip) for i, (q, slot, skip) in enumerate(launched) if q is p]
            index, slots, skips = (np.array(column) for column in zip(*mine))
            norms = (norms_read or {}).get(p)
            if norms is None or len(norms) <= slots.max():
                norms = p.device.read(p.norms, p.norm_slots)  # one read per buffer
            norms = norms[slots]
            refused[index] = refused_steps(norms, skips)
        self._count_taken(launched, refused)
        return refused

    def slot_skips(self, p: FlatParams, count: int) -> list | None:
        """The skip thresholds of the unsettled steps if they are exactly P's norm slots
        0 .. COUNT - 1 in order (an iteration's updates), else None. Settles nothing: a
        population compares all its agents' norms in one call, then ``settled`` (settle_many)."""
        if len(self._launched) != count or self.unsettled_slots(p) != list(range(count)):
            return None
        return [skip for _, _, skip in self._launched]

    def settled(self, refused: np.ndarray) -> None:
        """Close the steps ``slot_skips`` described, REFUSED saying which were refused."""
        launched, self._launched = self._launched, []
        self._count_taken(launched, refused)

    def _count_taken(self, launched: list, refused: np.ndarray) -> None:
        """Hook for optimizers whose state counts steps."""

    @staticmethod
    def _take_clip(p: FlatParams) -> tuple[float, int]:
        """(max_norm, norm slot) for this step; clipping applies to one step only."""
        clip, p.pending_clip = p.pending_clip, (0.0, 0)
        return clip

    # -- state_dict -------------------------------------------------------------------------
    _buffer_keys: tuple[str, ...] = ()

    def state_dict(self) -> dict:
        """torch's layout: per-parameter state keyed by index, buffers as numpy arrays (after
        settle(), so step counts are exact)."""
        self.settle()
        index = {p: i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}
        state = {}
        for p, s in self.state.items():
            state[index[p]] = {k: (p.device.read(v, p.n) if k in self._buffer_keys else v)
                               for k, v in s.items()}
        groups = []
        for g in self.param_groups:
            groups.append({**{k: copy.deepcopy(v) for k, v in g.items() if k != "params"},
                           "params": [index[p] for p in g["params"]]})
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        flat = [p for g in self.param_groups for p in g["params"]]
        if len(state_dict["param_groups"]) != len(self.param_groups):
            raise ValueError("state_dict has a different number of parameter groups")
        for g, saved in zip(self.param_groups, state_dict["param_groups"]):
            g.update({k: v for k, v in saved.items() if k != "params"})
        self.state = defaultdict(dict)
        self._launched = []
        for i, s in state_dict["state"].items():
            p = flat[int(i)]
            self.state[p] = {k: (p.device.upload(np.asarray(v, np.float32))
                                 if k in self._buffer_keys else v) for k, v in s.items()}
