"""rlcl.optim (kernels/optim.cl: sum_squares, sgd_step, adam_step) and lr_scheduler.

Every update rule is checked over several steps against an independent numpy float64 twin
written here (torch.optim semantics, docs/architecture.md "Optimizer semantics"), on awkward sizes (1, 7, 129).
Gradients are written into ``flat.grads`` from the host; the update itself runs in the kernel.

Tolerances (float32 kernel vs float64 reference, parameters and gradients of order 1):
  * SGD family, a few steps: |err| <= 2e-6 + 2e-6 * |ref|   (a few float32 ulps per step)
  * Adam, a few steps:       |err| <= 1e-5 + 1e-5 * |ref|   (one divide and sqrt per step)
  * long trajectories (100+ steps): stated where used
  * the scheduler is pure Python float64: rel 1e-12
"""

from __future__ import annotations

import math

import numpy as np
import pyopencl as cl
import pytest
from helpers import ADAM_TOL, SGD_TOL

from rlcl.errors import ConfigError, RlclError
from rlcl.nn import FlatParams
from rlcl.optim import SGD, Adam, Momentum, clip_grad_norm_
from rlcl.optim.lr_scheduler import CosineAnnealingLR

SIZES = (1, 7, 129)
STEPS = 6


# -- helpers --------------------------------------------------------------------------------
def make_flat(device, values) -> FlatParams:
    return FlatParams(device, np.asarray(values, np.float32).ravel())


def set_grad(flat: FlatParams, g) -> np.ndarray:
    """Blocking write of G into flat.grads; returns the float32-rounded G in float64."""
    g32 = np.ascontiguousarray(np.asarray(g, np.float32).ravel())
    cl.enqueue_copy(flat.device.queue, flat.grads, g32, is_blocking=True)
    return g32.astype(np.float64)


def read_buffer(flat: FlatParams, buf) -> np.ndarray:
    return flat.device.read(buf, flat.n)


class RefSGD:
    """torch.optim.SGD in numpy float64 (coupled weight decay, lazy velocity, v = g first)."""

    def __init__(self, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        self.lr, self.mu, self.damp = lr, momentum, dampening
        self.wd, self.nesterov = weight_decay, nesterov
        self.buf = None

    def step(self, p, g, scale=1.0):
        g = g * scale + self.wd * p
        if self.mu == 0:
            return p - self.lr * g
        self.buf = g.copy() if self.buf is None else self.mu * self.buf + (1 - self.damp) * g
        d = g + self.mu * self.buf if self.nesterov else self.buf
        return p - self.lr * d


class RefAdam:
    """torch.optim.Adam (amsgrad=False, coupled weight decay) in numpy float64."""

    def __init__(self, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.lr, (self.b1, self.b2), self.eps, self.wd = lr, betas, eps, weight_decay
        self.m = self.s = None
        self.t = 0

    def step(self, p, g, scale=1.0):
        g = g * scale + self.wd * p
        if self.m is None:
            self.m, self.s = np.zeros_like(p), np.zeros_like(p)
        self.t += 1
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.s = self.b2 * self.s + (1 - self.b2) * g * g
        bc1, bc2 = 1 - self.b1**self.t, 1 - self.b2**self.t
        denom = np.sqrt(self.s) / math.sqrt(bc2) + self.eps
        return p - (self.lr / bc1) * self.m / denom


# -- (a) update rules against numpy float64 ------------------------------------------------
SGD_CASES = {
    "plain": dict(lr=0.1),  # momentum 0: theta -= lr * g, no velocity at all
    "heavy_ball": dict(lr=0.1, momentum=0.9),
    "nesterov": dict(lr=0.1, momentum=0.9, nesterov=True),
    "weight_decay": dict(lr=0.1, momentum=0.9, weight_decay=0.05),
    "weight_decay_plain": dict(lr=0.1, weight_decay=0.05),
    "dampening": dict(lr=0.1, momentum=0.9, dampening=0.3),
    "nesterov_weight_decay": dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
}


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("case", list(SGD_CASES))
def test_sgd_matches_float64_reference(device, case, n):
    kwargs = SGD_CASES[case]
    rng = np.random.default_rng(n)
    flat = make_flat(device, rng.standard_normal(n))
    opt, ref = SGD(flat, **kwargs), RefSGD(**kwargs)
    p_ref = flat.numpy().astype(np.float64)
    assert "momentum_buffer" not in opt.state.get(flat, {})  # allocated lazily, as torch does
    for _ in range(STEPS):
        g = set_grad(flat, rng.standard_normal(n))
        opt.step()
        p_ref = ref.step(p_ref, g)
        np.testing.assert_allclose(flat.numpy(), p_ref, **SGD_TOL)
    if kwargs.get("momentum", 0) == 0:
        assert "momentum_buffer" not in opt.state[flat]
    else:
        np.testing.assert_allclose(read_buffer(flat, opt.state[flat]["momentum_buffer"]),
                                   ref.buf, **SGD_TOL)
    np.testing.assert_array_equal(flat.grad_numpy(), g.astype(np.float32))  # grads untouched


def test_first_step_velocity_is_the_gradient(device, monkeypatch):
    """v = g on the first step (no dampening applied, no stale memory read), then mu*v + g.

    The lazily allocated velocity is poisoned with NaN: the first step must not read it.
    """
    flat = make_flat(device, [1.0, -2.0, 3.0])
    opt = SGD(flat, lr=0.5, momentum=0.9, dampening=0.5)
    monkeypatch.setattr(device, "empty", lambda count, dtype=np.float32: device.upload(
        np.full(max(1, int(count)), np.nan, dtype)))
    set_grad(flat, [0.2, 0.4, -0.6])
    opt.step()
    v = read_buffer(flat, opt.state[flat]["momentum_buffer"])
    np.testing.assert_array_equal(v, np.float32([0.2, 0.4, -0.6]))
    np.testing.assert_allclose(flat.numpy(), [0.9, -2.2, 3.3], **SGD_TOL)
    set_grad(flat, [1.0, 1.0, 1.0])
    opt.step()
    v = read_buffer(flat, opt.state[flat]["momentum_buffer"])
    np.testing.assert_allclose(v, [0.68, 0.86, -0.04], **SGD_TOL)  # 0.9 v + 0.5 g


def test_state_of_unstepped_param_is_empty_dict_as_in_torch(device):
    flat = make_flat(device, [1.0])
    opt = Momentum(flat, lr=0.1)
    assert "momentum_buffer" not in opt.state[flat]


@pytest.mark.parametrize("n", SIZES)
def test_adam_matches_torch_style_reference(device, n):
    kwargs = dict(lr=0.05, betas=(0.8, 0.99), eps=1e-8, weight_decay=0.01)
    rng = np.random.default_rng(100 + n)
    flat = make_flat(device, rng.standard_normal(n))
    opt, ref = Adam(flat, **kwargs), RefAdam(**kwargs)
    p_ref = flat.numpy().astype(np.float64)
    for t in range(1, STEPS + 1):
        g = set_grad(flat, rng.standard_normal(n))
        opt.step()
        p_ref = ref.step(p_ref, g)
        np.testing.assert_allclose(flat.numpy(), p_ref, **ADAM_TOL)
        assert opt.state[flat]["step"] == t
    np.testing.assert_allclose(read_buffer(flat, opt.state[flat]["exp_avg"]), ref.m, **ADAM_TOL)
    np.testing.assert_allclose(read_buffer(flat, opt.state[flat]["exp_avg_sq"]), ref.s,
                               **ADAM_TOL)


def test_adam_defaults_are_torchs(device):
    group = Adam(make_flat(device, [0.0])).param_groups[0]
    assert (group["lr"], group["betas"], group["eps"], group["weight_decay"]) == (
        1e-3, (0.9, 0.999), 1e-8, 0.0)


# -- (a) global-norm clipping ---------------------------------------------------------------
@pytest.mark.parametrize("n", (1, 129, 513))
def test_clip_grad_norm_scales_one_step_only(device, n):
    """clip_grad_norm_(flat, max_norm) then step(): g *= min(1, max_norm / (||g|| + 1e-6)).

    The next step without a new clip call uses the raw gradient (the clip is one-shot).
    """
    rng = np.random.default_rng(7 * n)
    flat = make_flat(device, rng.standard_normal(n))
    opt, ref = SGD(flat, lr=0.1, momentum=0.9), RefSGD(lr=0.1, momentum=0.9)
    p_ref = flat.numpy().astype(np.float64)
    max_norm = 0.5

    g = set_grad(flat, 3.0 * rng.standard_normal(n) + 1.0)  # ||g|| >> max_norm
    clip_grad_norm_(flat, max_norm)
    norm = float(np.linalg.norm(g))
    np.testing.assert_allclose(device.read(flat.norms, 1)[0], norm, rtol=1e-6)
    opt.step()
    p_ref = ref.step(p_ref, g, scale=min(1.0, max_norm / (norm + 1e-6)))
    np.testing.assert_allclose(flat.numpy(), p_ref, **SGD_TOL)
    # the velocity holds the clipped gradient: its norm is max_norm
    v = read_buffer(flat, opt.state[flat]["momentum_buffer"])
    np.testing.assert_allclose(np.linalg.norm(v.astype(np.float64)), max_norm, rtol=1e-5)

    g = set_grad(flat, 3.0 * rng.standard_normal(n) + 1.0)  # large again, but not clipped
    opt.step()
    p_ref = ref.step(p_ref, g)
    np.testing.assert_allclose(flat.numpy(), p_ref, **SGD_TOL)


def test_clip_below_max_norm_is_identity(device):
    flat = make_flat(device, np.zeros(7))
    g = set_grad(flat, np.full(7, 0.1))  # ||g|| = 0.2646 < 1
    clip_grad_norm_(flat, 1.0)
    SGD(flat, lr=1.0).step()
    np.testing.assert_array_equal(flat.numpy(), -g.astype(np.float32))


def test_clip_applies_inside_adam(device):
    """eps = 0.5 makes Adam's first step depend on the gradient scale, so a missing clip shows."""
    rng = np.random.default_rng(3)
    flat = make_flat(device, rng.standard_normal(7))
    opt, ref = Adam(flat, lr=0.1, eps=0.5), RefAdam(lr=0.1, eps=0.5)
    p_ref = flat.numpy().astype(np.float64)
    g = set_grad(flat, 4.0 * rng.standard_normal(7))
    clip_grad_norm_(flat, 0.3)
    opt.step()
    p_ref = ref.step(p_ref, g, scale=min(1.0, 0.3 / (np.linalg.norm(g) + 1e-6)))
    np.testing.assert_allclose(flat.numpy(), p_ref, **ADAM_TOL)
    g = set_grad(flat, 4.0 * rng.standard_normal(7))
    opt.step()
    p_ref = ref.step(p_ref, g)
    np.testing.assert_allclose(flat.numpy(), p_ref, **ADAM_TOL)


# -- Momentum is SGD with other defaults ----------------------------------------------------
def test_momentum_defaults_and_shared_kernel(device, monkeypatch):
    assert issubclass(Momentum, SGD) and Momentum.step is SGD.step
    w0 = np.linspace(-1.0, 1.0, 7)
    flat_m, flat_s = make_flat(device, w0), make_flat(device, w0)
    mom = Momentum(flat_m, lr=0.1)
    group = mom.param_groups[0]
    assert (group["momentum"], group["dampening"], group["nesterov"], group["weight_decay"]) == (
        0.9, 0.0, False, 0.0)
    sgd = SGD(flat_s, lr=0.1, momentum=0.9)

    launched = []
    real_launch = device.launch
    monkeypatch.setattr(device, "launch",
                        lambda name, *a: (launched.append(name), real_launch(name, *a))[1])
    rng = np.random.default_rng(0)
    for _ in range(STEPS):
        g = rng.standard_normal(7)
        set_grad(flat_m, g), set_grad(flat_s, g)
        mom.step(), sgd.step()
        np.testing.assert_array_equal(flat_m.numpy(), flat_s.numpy())  # bit-identical
    assert set(launched) == {"sgd_step"} and len(launched) == 2 * STEPS


# -- (b) the worked example and the v = beta*v - lr*g form ----------------------------------
def other_form_step(w, v, g, lr, beta):
    """Sutskever et al. 2013 / CS231n: v = beta*v - lr*g; w += v."""
    v = beta * v - lr * g
    return w + v, v


def test_worked_example_and_equivalence_at_constant_lr(device):
    """The worked example, and why rlcl's form equals ``v = beta*v - lr*g; w += v`` at a
    constant lr.

    Other form: w = 2.0, grad = 0.5, lr = 0.1, beta = 0.9, previous v = -0.03 gives
    v = 0.9 * (-0.03) - 0.1 * 0.5 = -0.077 and w = 2.0 - 0.077 = 1.923.

    rlcl (torch) form: u = mu*u + g; w -= lr*u. With u = v / (-lr) the two recursions are the
    same: -lr*u_new = mu*(-lr*u) - lr*g = beta*v - lr*g. So the equivalent previous velocity
    is u = -0.03 / -0.1 = 0.3; then u = 0.9 * 0.3 + 0.5 = 0.77 and w = 2.0 - 0.1 * 0.77 = 1.923.
    At a constant lr the two forms therefore produce the same parameters at every step.
    """
    w, v = other_form_step(2.0, -0.03, 0.5, 0.1, 0.9)
    assert v == pytest.approx(-0.077, abs=1e-12) and w == pytest.approx(1.923, abs=1e-12)

    flat = make_flat(device, [2.0])
    opt = Momentum(flat, lr=0.1, momentum=0.9)
    state = opt.state_dict()
    state["state"] = {0: {"momentum_buffer": np.float32([0.3])}}  # = -0.03 / -0.1
    opt.load_state_dict(state)
    set_grad(flat, [0.5])
    opt.step()
    assert flat.numpy()[0] == pytest.approx(1.923, abs=1e-6)  # float32: 1 ulp of 2 is 2.4e-7
    assert read_buffer(flat, opt.state[flat]["momentum_buffer"])[0] == pytest.approx(0.77, abs=1e-6)

    # Many steps at constant lr on a quadratic, each form following its own gradients
    # g = h * (w - target); both start from rest at the same w.
    h, target, lr, beta = np.array([0.5, 1.0, 2.0, 4.0, 8.0, 0.1, 3.0]), 0.25, 0.02, 0.9
    w0 = np.linspace(-2.0, 2.0, 7)
    flat = make_flat(device, w0)
    opt = Momentum(flat, lr=lr, momentum=beta)
    w_other, v_other = flat.numpy().astype(np.float64), np.zeros(7)
    for _ in range(150):
        set_grad(flat, h * (flat.numpy() - target))
        opt.step()
        w_other, v_other = other_form_step(w_other, v_other, h * (w_other - target), lr, beta)
        np.testing.assert_allclose(flat.numpy(), w_other, rtol=0, atol=1e-5)
    np.testing.assert_allclose(read_buffer(flat, opt.state[flat]["momentum_buffer"]) * -lr,
                               v_other, rtol=0, atol=1e-5)


def test_forms_differ_under_decaying_lr(device):
    """Under a decaying lr (cosine here) the two forms are NOT the same, in a known direction.

    rlcl multiplies the WHOLE velocity u_t = sum_k mu^k g_{t-k} by today's lr_t, so a decay
    slows old momentum at once. The other form stores already-scaled steps,
    v_t = -sum_k beta^k lr_{t-k} g_{t-k}, so every past gradient keeps the (larger) lr it
    was taken with and its effective lr lags the schedule by about 1/(1 - beta) steps.
    With a constant gradient (a linear loss, so both forms see the same g) and lr
    non-increasing, every rlcl step is therefore no larger than the other form's step,
    strictly smaller once lr has decayed, and once lr reaches eta_min = 0 rlcl stops dead while
    the other form keeps coasting on its stored velocity.
    """
    lr0, beta, T_max, steps = 0.1, 0.9, 40, 50
    g = np.array([0.5, -1.0, 2.0, 0.25, -0.75, 1.5, 1.0])
    flat = make_flat(device, np.zeros(7))
    opt = Momentum(flat, lr=lr0, momentum=beta)
    sched = CosineAnnealingLR(opt, T_max=T_max, eta_min=0.0)
    w_rl, w_other, v_other = flat.numpy().astype(np.float64), np.zeros(7), np.zeros(7)
    g = set_grad(flat, g)
    for t in range(steps):
        lr = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        w_new = flat.numpy().astype(np.float64)
        d_rl, w_rl = w_new - w_rl, w_new
        w_prev_other = w_other
        w_other, v_other = other_form_step(w_other, v_other, g, lr, beta)
        d_other = w_other - w_prev_other
        if t == 0:  # from rest, the first step is the same in both forms
            np.testing.assert_allclose(d_rl, d_other, **SGD_TOL)
            continue
        assert np.all(np.sign(d_rl) == np.sign(d_other)) or lr == 0.0
        assert np.all(np.abs(d_rl) <= np.abs(d_other) + 1e-7)  # never larger
        if 0.0 < lr:
            assert np.all(np.abs(d_rl) < np.abs(d_other))  # strictly smaller while decaying
        if t >= T_max:  # lr == eta_min == 0: rlcl stops, the other form coasts
            assert lr == 0.0 and np.all(d_rl == 0.0) and np.all(np.abs(d_other) > 1e-4)
    # In total rlcl travelled clearly less far, in the same direction.
    ratio = np.abs(w_rl) / np.abs(w_other)
    assert np.all(ratio < 0.9) and np.all(ratio > 0.5), ratio


# -- (c) fitting y = 2x ---------------------------------------------------------------------
def test_momentum_fits_a_line(device):
    """y = 2x on X = [1, 2, 3, 4], MSE, one weight from 0: lr 0.01, momentum 0.9, 200 steps.

    The loss has curvature 2 * mean(x^2) = 15, so the heavy-ball iteration contracts by
    sqrt(0.9) = 0.949 per step: after 200 steps |w - 2| is about 3.4e-5 (float64 gives
    2.0000342); we assert < 1e-4 and agreement with the float64 run to 1e-5.
    """
    X = np.array([1.0, 2.0, 3.0, 4.0])
    Y = 2.0 * X
    flat = make_flat(device, [0.0])
    opt = Momentum(flat, lr=0.01, momentum=0.9)
    ref, w_ref = RefSGD(lr=0.01, momentum=0.9), np.zeros(1)
    for _ in range(200):
        w = float(flat.numpy()[0])
        set_grad(flat, [np.mean(2.0 * X * (w * X - Y))])  # d/dw mean((w x - y)^2)
        opt.step()
        w_ref = ref.step(w_ref, np.array([np.mean(2.0 * X * (w_ref[0] * X - Y))]))
    w = float(flat.numpy()[0])
    assert abs(w - 2.0) < 1e-4, w
    assert w == pytest.approx(w_ref[0], abs=1e-5)


# -- (d) cosine schedule --------------------------------------------------------------------
def cosine(t, T_max, lr0, eta_min):
    t = min(t, T_max)
    return eta_min + (lr0 - eta_min) * (1 + math.cos(math.pi * t / T_max)) / 2


def test_cosine_schedule_values(device):
    lr0, eta_min, T_max = 0.3, 0.01, 10
    opt = Momentum(make_flat(device, [0.0]), lr=lr0)
    sched = CosineAnnealingLR(opt, T_max=T_max, eta_min=eta_min)
    lrs = [sched.get_last_lr()[0]]
    for _ in range(2 * T_max):
        sched.step()
        lrs.append(sched.get_last_lr()[0])
        assert opt.param_groups[0]["lr"] == lrs[-1]
    assert lrs[0] == pytest.approx(lr0, rel=1e-12)
    assert lrs[T_max // 2] == pytest.approx((lr0 + eta_min) / 2, rel=1e-12)
    assert lrs[T_max] == pytest.approx(eta_min, rel=1e-12)
    assert all(lr == lrs[T_max] for lr in lrs[T_max:])  # stays at eta_min, no restart
    assert all(a > b for a, b in zip(lrs[:T_max], lrs[1 : T_max + 1]))  # strictly decreasing
    for t, lr in enumerate(lrs):
        assert lr == pytest.approx(cosine(t, T_max, lr0, eta_min), rel=1e-12)


def test_cosine_lr_scale_multiplies(device):
    opt = SGD(make_flat(device, [0.0]), lr=0.2)
    sched = CosineAnnealingLR(opt, T_max=8, eta_min=0.02)
    for _ in range(3):
        sched.step()
    sched.lr_scale = 0.5  # applies at once, not only from the next step()
    assert sched.get_last_lr()[0] == pytest.approx(0.5 * cosine(3, 8, 0.2, 0.02), rel=1e-12)
    sched.step()
    assert sched.get_last_lr()[0] == pytest.approx(0.5 * cosine(4, 8, 0.2, 0.02), rel=1e-12)
    for _ in range(10):
        sched.step()  # past T_max the scale still applies to eta_min
    assert sched.get_last_lr()[0] == pytest.approx(0.5 * 0.02, rel=1e-12)


def test_cosine_state_dict_resume_gives_same_lrs(device):
    def make(lr):
        opt = Momentum(make_flat(device, [0.0]), lr=lr)
        return opt, CosineAnnealingLR(opt, T_max=20, eta_min=1e-3)

    opt_a, sched_a = make(0.1)
    for _ in range(6):
        sched_a.step()
    sched_a.lr_scale = 0.25  # as the divergence guard would
    sched_a.step()
    saved = sched_a.state_dict()
    opt_b, sched_b = make(0.7)  # built with another lr: the state dict must win
    opt_b.load_state_dict(opt_a.state_dict())
    sched_b.load_state_dict(saved)
    assert sched_b.get_last_lr() == sched_a.get_last_lr()
    seq_a, seq_b = [], []
    for _ in range(20):
        sched_a.step(), sched_b.step()
        seq_a.append(sched_a.get_last_lr()[0]), seq_b.append(sched_b.get_last_lr()[0])
    assert seq_a == seq_b  # bit-identical
    assert seq_a[-1] == pytest.approx(0.25 * 1e-3, rel=1e-12)


# -- state_dict round-trip ------------------------------------------------------------------
ROUND_TRIP = {
    "SGD": (SGD, dict(lr=0.05, momentum=0.8, dampening=0.1, weight_decay=0.01),
            dict(lr=0.9, momentum=0.1)),
    "Momentum": (Momentum, dict(lr=0.05, nesterov=True, weight_decay=0.02), dict(lr=0.9)),
    "Adam": (Adam, dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.01), dict(lr=0.9)),
}


@pytest.mark.parametrize("name", list(ROUND_TRIP))
def test_state_dict_round_trip_is_bit_identical(device, name):
    cls, kwargs, other = ROUND_TRIP[name]
    rng = np.random.default_rng(11)
    grads = [rng.standard_normal(129) for _ in range(6)]
    flat_a = make_flat(device, rng.standard_normal(129))
    opt_a = cls(flat_a, **kwargs)
    for g in grads[:3]:
        set_grad(flat_a, g)
        opt_a.step()
    saved = opt_a.state_dict()
    snapshot = {k: np.array(v, copy=True) if isinstance(v, np.ndarray) else v
                for k, v in saved["state"][0].items()}
    assert set(snapshot) == set(cls._buffer_keys) | ({"step"} if cls is Adam else set())

    flat_b = make_flat(device, flat_a.numpy())
    opt_b = cls(flat_b, **other)  # other hyperparameters: the state dict restores them
    opt_b.load_state_dict(saved)
    assert opt_b.param_groups[0] == {**opt_a.param_groups[0], "params": [flat_b]}
    for g in grads[3:]:
        set_grad(flat_a, g), set_grad(flat_b, g)
        opt_a.step(), opt_b.step()
        np.testing.assert_array_equal(flat_a.numpy(), flat_b.numpy())
    for key in cls._buffer_keys:
        np.testing.assert_array_equal(read_buffer(flat_a, opt_a.state[flat_a][key]),
                                      read_buffer(flat_b, opt_b.state[flat_b][key]))
    # the saved dict holds copies, not views of live device state
    for k, v in snapshot.items():
        np.testing.assert_array_equal(saved["state"][0][k], v)


# -- bad arguments --------------------------------------------------------------------------
@pytest.mark.parametrize("build", [
    lambda f: SGD(f, lr=-0.1),
    lambda f: Momentum(f, lr=-1e-3),
    lambda f: Adam(f, lr=-1e-3),
    lambda f: SGD(f, lr=0.1, nesterov=True),  # nesterov without momentum
    lambda f: SGD(f, lr=0.1, momentum=0.9, dampening=0.5, nesterov=True),
    lambda f: Momentum(f, lr=0.1, momentum=0.0, nesterov=True),
    lambda f: SGD(f, lr=0.1, momentum=-0.5),
    lambda f: SGD(f, lr=0.1, momentum=0.9, dampening=1.5),
    lambda f: SGD(f, lr=0.1, weight_decay=-0.1),
    lambda f: Adam(f, betas=(1.0, 0.999)),
    lambda f: Adam(f, eps=-1.0),
], ids=["sgd_neg_lr", "momentum_neg_lr", "adam_neg_lr", "nesterov_no_momentum",
        "nesterov_dampening", "momentum_nesterov_zero", "neg_momentum", "dampening_gt_1",
        "neg_weight_decay", "adam_beta1_is_1", "adam_neg_eps"])
def test_bad_arguments_raise_config_error(device, build):
    with pytest.raises(ConfigError) as info:
        build(make_flat(device, [0.0]))
    assert isinstance(info.value, RlclError) and str(info.value)


def test_adam_never_counts_a_refused_step(device):
    """Issue 10: with the guard's threshold set, steps at norm slots 0..4 where slot 2 holds a
    NaN gradient (refused on the device): state["step"] counts 4, and every parameter matches
    torch's Adam fed only the four gradients it took (the bias correction of the steps after
    the refused one uses t = 3 and 4, not 4 and 5)."""
    from rlcl.optim import clip_grad_norm_

    n, rng = 7, np.random.default_rng(7)
    flat = FlatParams(device, rng.standard_normal(n).astype(np.float32), norm_slots=5)
    opt, ref = Adam(flat, lr=0.01), RefAdam(lr=0.01)
    opt.skip_above = 1e6
    p_ref = flat.numpy().astype(np.float64)
    for slot in range(5):
        g = set_grad(flat, np.full(n, np.nan) if slot == 2 else rng.standard_normal(n))
        clip_grad_norm_(flat, 0.0, slot=slot)  # writes the norm the kernel's skip test reads
        opt.step()
        if slot != 2:
            p_ref = ref.step(p_ref, g)
        np.testing.assert_allclose(flat.numpy(), p_ref, **ADAM_TOL, err_msg=f"slot {slot}")
    assert list(opt.settle()) == [False, False, True, False, False]  # read back once here
    assert opt.state[flat]["step"] == 4 == ref.t
    assert opt.state_dict()["state"][0]["step"] == 4
