"""The flat parameter buffer and MLPs whose layers run as linear.cl kernels.

All parameters of a model are slices of ONE float32 buffer (llm.c's layout): gradients and
optimizer state mirror it, so an optimizer step is one launch and the gradient norm is one
reduction. A weight matrix is stored IN x OUT row-major (``x @ W``) so that a layer's work-items,
which run along the outputs, read it contiguously.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlcl.device import Device
from rlcl.kernel_constants import ACTIVATIONS, SMOOTH_STATS, STEP_CHUNK, STEP_LANES


@dataclass(frozen=True)
class Layer:
    """Where one linear layer lives in the flat buffer."""

    w_off: int
    b_off: int
    n_in: int
    n_out: int


def _quads(n: int) -> int:
    """Work-items for N outputs, four to a work-item (linear_x4.cl)."""
    return -(-n // 4)


def orthogonal(rng: np.random.Generator, n_out: int, n_in: int, gain: float) -> np.ndarray:
    """torch.nn.init.orthogonal_ for an (n_out, n_in) weight: QR of a Gaussian matrix with the
    signs of R's diagonal folded in, as CleanRL's layer_init uses (Saxe et al. 2014)."""
    flat = rng.standard_normal((max(n_out, n_in), min(n_out, n_in)))
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))
    if n_out < n_in:
        q = q.T
    return gain * q[:n_out, :n_in]


class FlatParams:
    """One float32 buffer of parameters and its gradient twin, plus the host layout."""

    def __init__(self, device: Device, host: np.ndarray, norm_slots: int = 1):
        self.device = device
        self.n = int(host.size)
        self.params = device.upload(host.astype(np.float32))
        self.grads = device.zeros(self.n)
        # Per update of an iteration ("slot"), read back once per iteration: the gradient norm
        # written by clip_grad_norm_ (and read by the optimizer kernel), and the optimizer's
        # smoothness partial sums, one row of SMOOTH_STATS per work-group (optim.cl).
        self.norm_slots = norm_slots
        self.norms = device.zeros(norm_slots)
        # optim.cl: STEP_LANES work-items per group, a contiguous STEP_CHUNK of coordinates
        self.step_local_size = STEP_LANES
        self.step_groups = max(1, -(-self.n // STEP_CHUNK))
        self.partials = device.zeros(norm_slots * self.step_groups * SMOOTH_STATS)
        self.pending_clip = (0.0, 0)  # (max_norm, slot) for the next optimizer step

    def numpy(self) -> np.ndarray:
        return self.device.read(self.params, self.n)

    def grad_numpy(self) -> np.ndarray:
        return self.device.read(self.grads, self.n)

    def load(self, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values, np.float32)
        if values.size != self.n:
            raise ValueError(f"expected {self.n} parameters, got {values.size}")
        self.device.write(self.params, values)
        self.device.queue.finish()  # values may be a temporary


def backward_param_tiles(n_in: int, n_out: int, tile_cols: int) -> int:
    """Work-items of one layer in actor_critic.cl ac_backward_params: 4 x 2 TILE_COLS tiles of
    [W; bias] when 2 TILE_COLS (Device.tile_cols) divides OUT (backward_params_tilew2), else
    4 x TILE_COLS when TILE_COLS does, 16 rows x all columns when OUT < 4
    (linear_tiles.h backward_params_narrow), else 4 x 4."""
    if n_out < 4:
        return -(-(n_in + 1) // 16)
    width = next(w for w in (2 * tile_cols, tile_cols, 4) if w == 4 or n_out % w == 0)
    cols = -(-n_out // width)
    return cols * _quads(n_in + 1)


class MLP:
    """Linear layers with ACT between them and a linear output, placed from offset FIRST.

    ``forward`` keeps every layer's activations in preallocated buffers (``acts``) for the
    backward pass; ``backward`` writes this MLP's slice of the gradient buffer.
    """

    def __init__(self, sizes: list[int], activation: str, first: int = 0):
        self.sizes = list(sizes)
        self.act = ACTIVATIONS[activation]
        self.layers: list[Layer] = []
        off = first
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            self.layers.append(Layer(off, off + n_in * n_out, n_in, n_out))
            off += n_in * n_out + n_out
        self.end = off

    def init(self, host: np.ndarray, rng: np.random.Generator, hidden_gain: float,
             out_gain: float) -> None:
        """Orthogonal weights, zero biases (CleanRL's layer_init)."""
        for k, layer in enumerate(self.layers):
            gain = out_gain if k == len(self.layers) - 1 else hidden_gain
            w = orthogonal(rng, layer.n_out, layer.n_in, gain)
            host[layer.w_off : layer.b_off] = w.T.ravel()
            host[layer.b_off : layer.b_off + layer.n_out] = 0.0

    def alloc(self, device: Device, batch: int) -> list:
        """Activation buffers for up to BATCH rows: [input, hidden..., output]."""
        return [device.empty(batch * n) for n in self.sizes]

    def alloc_grads(self, device: Device, batch: int) -> list:
        """Scratch for the backward pass: one delta buffer per hidden width."""
        return [device.empty(batch * n) for n in self.sizes[1:-1]]

    def forward(self, device: Device, params, acts: list, batch: int) -> None:
        """acts[0] must hold the input; fills acts[1:], one launch per layer (linear_x4.cl,
        bit-identical to linear.cl). Training uses the whole-network kernels of
        actor_critic.cl instead (ActorCritic.evaluate); this path is their reference in the
        tests."""
        cols = device.tile_cols
        for k, layer in enumerate(self.layers):
            act = 0 if k == len(self.layers) - 1 else self.act
            if layer.n_out % cols == 0 and batch % 4 == 0:  # 4 x TILE_COLS tiles fit
                name, shape = "linear_forward_wide", (layer.n_out // cols, batch // 4)
            else:
                name, shape = "linear_forward_x4", (_quads(layer.n_out), _quads(batch))
            device.launch(name, shape, None, acts[k + 1], acts[k], params, layer.w_off,
                          layer.b_off, batch, layer.n_in, layer.n_out, act)

    def backward(self, device: Device, params, grads, acts: list, dout, scratch: list,
                 batch: int) -> None:
        """DOUT is d(loss)/d(output); fills this MLP's slice of GRADS, one launch per layer and
        pass (the reference for ActorCritic.backward's whole-network kernels)."""
        cols = device.tile_cols
        for k in reversed(range(len(self.layers))):
            layer = self.layers[k]
            if layer.n_out % cols == 0:
                name, shape = "linear_backward_params_wide", (layer.n_out // cols,
                                                              _quads(layer.n_in + 1))
            else:
                name, shape = "linear_backward_params_x4", (_quads(layer.n_out),
                                                            _quads(layer.n_in + 1))
            device.launch(name, shape, None, grads, dout, acts[k], layer.w_off, layer.b_off,
                          batch, layer.n_in, layer.n_out)
            if k == 0:
                break  # no gradient w.r.t. the observations is needed
            dinp = scratch[k - 1]
            device.launch("linear_backward_input_x4", (_quads(layer.n_in), _quads(batch)), None,
                          dinp,
                          dout, acts[k], params, layer.w_off, batch, layer.n_in, layer.n_out,
                          self.act)
            dout = dinp
