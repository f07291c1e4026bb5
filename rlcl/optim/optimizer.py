"""The torch-style Optimizer base and global-norm gradient clipping.

The class does the bookkeeping (``param_groups``, ``state``, ``state_dict``); the math lives in
one fused kernel per update over each flat buffer (kernels/optim.cl). A parameter here is a
:class:`rlcl.nn.FlatParams`, the whole model in one buffer.
"""

from __future__ import annotations

import copy
from collections import defaultdict

import numpy as np
import pyopencl as cl

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
    dev.launch("sum_squares", (L,), (L,), flat.norms, slot, flat.grads, flat.n,
               cl.LocalMemory(4 * L))
    flat.pending_clip = (float(max_norm), int(slot))


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

    def zero_grad(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                cl.enqueue_fill_buffer(p.device.queue, p.grads, np.float32(0), 0, 4 * p.n)

    def _launch_step(self, kernel: str, p: FlatParams, *args) -> None:
        """Launch a fused step over P: its buffers and the clip/skip scalars come first, the
        smoothness partials and local scratch last (optim.cl)."""
        L = p.step_local_size
        p.device.launch(kernel, (p.step_groups * L,), (L,), *args, p.partials,
                        cl.LocalMemory(4 * SMOOTH_STATS * L))

    def _clip_and_skip(self, p: FlatParams) -> tuple:
        """(norms, slot, max_norm, skip_above) arguments for this step."""
        max_norm, slot = self._take_clip(p)
        skip_above = -1.0 if self.skip_above is None else float(self.skip_above)
        return p.norms, slot, max_norm, skip_above

    @staticmethod
    def _take_clip(p: FlatParams) -> tuple[float, int]:
        """(max_norm, norm slot) for this step; clipping applies to one step only."""
        clip, p.pending_clip = p.pending_clip, (0.0, 0)
        return clip

    # -- state_dict -------------------------------------------------------------------------
    _buffer_keys: tuple[str, ...] = ()

    def state_dict(self) -> dict:
        """torch's layout: per-parameter state keyed by index, buffers as numpy arrays."""
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
        for i, s in state_dict["state"].items():
            p = flat[int(i)]
            self.state[p] = {k: (p.device.upload(np.asarray(v, np.float32))
                                 if k in self._buffer_keys else v) for k, v in s.items()}
