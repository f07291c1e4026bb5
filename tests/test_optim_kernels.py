"""kernels/optim.cl sgd_step and adam_step launched directly against reference.sgd_step and
reference.adam_step, over several steps, with clipping off, active and inactive (the norm is
read from a slot of the norms buffer whose neighbours hold decoy values), the guard's skip,
and the smoothness partial sums each work-group writes in the same pass.

(tests/test_optim.py checks the same kernels through the rlcl.optim classes; this file pins
the kernel contract itself: argument order, the first-step flag, the norms slot.)

Tolerances (float32 kernel vs float64 twin, parameters and gradients of order 1, 3 steps):
* sgd_step:  |err| <= 2e-6 + 2e-6 * |ref|  (a few float32 ulps per step)
* adam_step: |err| <= 1e-5 + 1e-5 * |ref|  (one divide and one sqrt per step)
* partial sums (added over the work-groups in float64): rtol 1e-5, atol 1e-6 (float32 dot
  products over at most 129 terms in a tree); the two counts are exact.
"""

from __future__ import annotations

import math

import numpy as np
import pyopencl as cl
import pytest
from helpers import ADAM_TOL, SENTINEL, SGD_TOL, big, f32

from rlcl import reference as ref
from rlcl.kernel_constants import STEP_CHUNK, STEP_LANES

STEPS = 3
SLOT = 1
# (max_norm, ||g|| written to norms[SLOT]): no clipping, clipping by 0.25, a max_norm above
# the norm (scale 1). The other slots hold 100 and 1e-3, so reading the wrong slot shows.
CLIPS = {"off": (0.0, 2.0), "active": (0.5, 2.0), "inactive": (5.0, 2.0)}
SIZES = [1, 7, 129, pytest.param(600, marks=big)]  # 600: three step groups, one partial

SGD_CASES = {
    "plain": dict(momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=0),
    "plain_wd": dict(momentum=0.0, dampening=0.0, weight_decay=0.01, nesterov=0),
    "heavy_ball": dict(momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=0),
    "dampening": dict(momentum=0.9, dampening=0.1, weight_decay=0.0, nesterov=0),
    "nesterov": dict(momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=1),
    "nesterov_wd": dict(momentum=0.9, dampening=0.0, weight_decay=0.01, nesterov=1),
}


def norms_buffer(device, norm):
    return device.upload(f32([100.0, norm, 1e-3]))


# the steps' geometry (optim.cl): groups of STEP_LANES work-items, STEP_CHUNK coordinates each
L = STEP_LANES
NUM_SMOOTH = 10
PART_TOL = dict(rtol=1e-5, atol=1e-6)


def launch_step(device, kernel, n, *args, partials_rows=4):
    """Launch KERNEL over N coordinates in its groups; return the partial sums added over the
    groups (float64), per slot row."""
    groups = -(-n // STEP_CHUNK)
    partials = device.upload(np.full(partials_rows * groups * NUM_SMOOTH, SENTINEL))
    device.launch(kernel, (groups * L,), (L,), *args, partials,
                  cl.LocalMemory(4 * NUM_SMOOTH * L))
    rows = device.read(partials, partials_rows * groups * NUM_SMOOTH)
    return rows.reshape(partials_rows, groups, NUM_SMOOTH).astype(np.float64).sum(axis=1)


@pytest.mark.parametrize("clip", CLIPS.keys())
@pytest.mark.parametrize("case", SGD_CASES.keys())
@pytest.mark.parametrize("n", SIZES)
def test_sgd_step_matches_twin(device, rng, n, case, clip):
    hp, lr = SGD_CASES[case], 0.05
    max_norm, norm = CLIPS[clip]
    p = f32(rng.standard_normal(n))
    # the first step must ignore whatever the velocity buffer holds (torch allocates it lazily)
    v0 = np.full(n, np.nan, np.float32)
    params, velocity, prev = device.upload(p), device.upload(v0), device.zeros(n)
    norms = norms_buffer(device, norm)
    ref_p, ref_v, ref_u = p.astype(np.float64), v0.astype(np.float64), np.zeros(n)
    for step in range(STEPS):
        g = f32(rng.standard_normal(n))
        first = int(step == 0)
        rows = launch_step(device, "sgd_step", n, params, device.upload(g), velocity, prev,
                           norms, SLOT, max_norm, -1.0, n, lr, hp["momentum"], hp["dampening"],
                           hp["weight_decay"], hp["nesterov"], first)
        ref_p, ref_v, ref_u, sums = ref.sgd_step(
            ref_p, g, ref_v, ref_u, float(np.float32(norm)), max_norm, -1.0, lr, hp["momentum"],
            hp["dampening"], hp["weight_decay"], hp["nesterov"], first)
        np.testing.assert_allclose(device.read(params, n), ref_p, **SGD_TOL,
                                   err_msg=f"params after step {step}")
        np.testing.assert_allclose(device.read(prev, n), ref_u, **SGD_TOL)
        np.testing.assert_allclose(rows[SLOT], sums, **PART_TOL)
        assert np.all(np.delete(rows, SLOT, axis=0) == SENTINEL * -(-n // STEP_CHUNK))  # other rows
        v = device.read(velocity, n)
        if hp["momentum"] == 0:
            assert np.all(np.isnan(v)), "sgd_step without momentum must not touch the velocity"
        else:
            np.testing.assert_allclose(v, ref_v, **SGD_TOL, err_msg=f"velocity, step {step}")


def test_sgd_step_by_hand(device):
    """theta = 1, g = 2, lr = 0.1, momentum 0.5, clipping 4 -> 1 (scale 0.5 on ||g|| = 4):
    step 1 (first): g' = 1, v = 1, theta = 0.9;  step 2: g' = 1, v = 1.5, theta = 0.75.
    Smoothness sums of step 2: u = -0.15, u_prev = -0.1, v_old = 1."""
    params, velocity, prev = device.upload(f32([1.0])), device.zeros(1), device.zeros(1)
    grads, norms = device.upload(f32([2.0])), device.upload(f32([0.0, 4.0 - 1e-6]))
    for first, theta, v in ((1, 0.9, 1.0), (0, 0.75, 1.5)):
        rows = launch_step(device, "sgd_step", 1, params, grads, velocity, prev, norms, 1, 2.0,
                           -1.0, 1, 0.1, 0.5, 0.0, 0.0, 0, first, partials_rows=2)
        np.testing.assert_allclose(device.read(params, 1), [theta], rtol=1e-6)
        np.testing.assert_allclose(device.read(velocity, 1), [v], rtol=1e-6)
    want = [0.015, 0.0225, 0.01, 1.0, 1.0, 1.0, 2.25, 0.0, 0.81, 0.0]
    np.testing.assert_allclose(rows[1], want, rtol=1e-6)


@pytest.mark.parametrize("norm", [5.0, float("nan")], ids=["spike", "nan"])
def test_sgd_step_skips_above_threshold(device, rng, norm):
    """The guard's skip: a gradient norm over skip_above, or NaN, changes nothing, and the
    partial sums describe what was written: no update, the parameters as they are (issue 10:
    they used to describe the refused update, and a refused NaN step read as non-finite
    parameters)."""
    n = 7
    p = f32(rng.standard_normal(n))
    params, velocity, prev = device.upload(p), device.zeros(n), device.zeros(n)
    g = f32(rng.standard_normal(n))
    rows = launch_step(device, "sgd_step", n, params, device.upload(g), velocity, prev,
                       norms_buffer(device, norm), SLOT, 0.0, 2.0, n, 0.1, 0.9, 0.0, 0.0, 0, 1)
    assert np.array_equal(device.read(params, n), p)
    assert np.all(device.read(velocity, n) == 0) and np.all(device.read(prev, n) == 0)
    assert rows[SLOT][1] == 0 and rows[SLOT][7] == 0  # ||u||^2 and sign flips: nothing moved
    assert rows[SLOT][9] == 0  # all parameters finite, as they are
    np.testing.assert_allclose(rows[SLOT][8], np.sum(p.astype(np.float64) ** 2), rtol=1e-5)
    # below the threshold the same call does step
    launch_step(device, "sgd_step", n, params, device.upload(g), velocity, prev,
                norms_buffer(device, 1.5), SLOT, 0.0, 2.0, n, 0.1, 0.9, 0.0, 0.0, 0, 1)
    np.testing.assert_allclose(device.read(params, n), p - 0.1 * g, **SGD_TOL)


def test_nonfinite_parameters_are_counted(device):
    p = f32([1.0, 2.0, 3.0])
    params, velocity, prev = device.upload(p), device.zeros(3), device.zeros(3)
    g = f32([np.inf, 0.0, np.nan])
    rows = launch_step(device, "sgd_step", 3, params, device.upload(g), velocity, prev,
                       norms_buffer(device, 1.0), SLOT, 0.0, -1.0, 3, 0.1, 0.0, 0.0, 0.0, 0, 1)
    assert rows[SLOT][9] == 2


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
@pytest.mark.parametrize("clip", CLIPS.keys())
@pytest.mark.parametrize("n", SIZES)
def test_adam_step_matches_twin(device, rng, n, clip, weight_decay):
    lr, beta1, beta2, eps = 0.01, 0.9, 0.999, 1e-8
    max_norm, norm = CLIPS[clip]
    p = f32(rng.standard_normal(n))
    params, m, s, prev = device.upload(p), device.zeros(n), device.zeros(n), device.zeros(n)
    norms = norms_buffer(device, norm)
    ref_p, ref_m, ref_s, ref_u = p.astype(np.float64), np.zeros(n), np.zeros(n), np.zeros(n)
    for t in range(1, STEPS + 1):
        g = f32(rng.standard_normal(n))
        # the bias corrections come from the host in float64, then go down as float32
        step_size = float(np.float32(lr / (1 - beta1**t)))
        bc2_sqrt = float(np.float32(math.sqrt(1 - beta2**t)))
        rows = launch_step(device, "adam_step", n, params, device.upload(g), m, s, prev, norms,
                           SLOT, max_norm, -1.0, n, device.upload(f32([step_size, bc2_sqrt])),
                           SLOT, beta1, beta2, eps, weight_decay)
        ref_p, ref_m, ref_s, ref_u, sums = ref.adam_step(
            ref_p, g, ref_m, ref_s, ref_u, float(np.float32(norm)), max_norm, -1.0, step_size,
            beta1, beta2, eps, bc2_sqrt, weight_decay)
        np.testing.assert_allclose(device.read(params, n), ref_p, **ADAM_TOL,
                                   err_msg=f"params after step {t}")
        np.testing.assert_allclose(device.read(m, n), ref_m, **ADAM_TOL)
        np.testing.assert_allclose(device.read(s, n), ref_s, **ADAM_TOL)
        np.testing.assert_allclose(rows[SLOT], sums, rtol=1e-4, atol=1e-6)


def test_adam_first_step_moves_each_coordinate_by_lr(device, rng):
    """Adam's first step is lr * sign(g) whatever the gradient's scale (here 1e-2 .. 1e3).
    Error: float32 rounding of theta in [-1, 1] (ulp <= 1.2e-7) plus lr * eps / |g| <= 1e-8."""
    n, lr = 7, 0.01
    p = f32(rng.uniform(-1, 1, n))
    g = f32(rng.choice([-1.0, 1.0], n) * np.logspace(-2, 3, n))
    params, norms = device.upload(p), device.zeros(1)
    launch_step(device, "adam_step", n, params, device.upload(g), device.zeros(n),
                device.zeros(n), device.zeros(n), norms, 0, 0.0, -1.0, n,
                device.upload(f32([lr / (1 - 0.9), math.sqrt(1 - 0.999)])), 0, 0.9, 0.999, 1e-8,
                0.0, partials_rows=1)
    step = p.astype(np.float64) - device.read(params, n)
    np.testing.assert_allclose(step, lr * np.sign(g), rtol=0, atol=3e-7)


def test_refused_nan_step_counts_no_nonfinite_parameters(device):
    """A NaN gradient refused by the guard leaves finite parameters, and the sums say so
    (before issue 10 they counted the refused theta + u, and the guard rolled back)."""
    p = f32([1.0, 2.0, 3.0])
    params, velocity, prev = device.upload(p), device.zeros(3), device.zeros(3)
    rows = launch_step(device, "sgd_step", 3, params, device.upload(f32([np.nan] * 3)),
                       velocity, prev, norms_buffer(device, np.nan), SLOT, 0.0, 2.0, 3, 0.1,
                       0.9, 0.0, 0.0, 0, 1)
    assert rows[SLOT][9] == 0 and rows[SLOT][1] == 0
    assert np.array_equal(device.read(params, 3), p)


def test_adam_bias_correction_skips_refused_steps(device, rng):
    """adam_step's t counts the steps taken since run_start: with slot 1 refused (NaN norm),
    the step at slot 2 uses the table's second row (t0 + 2), not its third."""
    n = 5
    p = f32(rng.standard_normal(n))
    g = f32(rng.standard_normal(n))
    norms = device.upload(f32([1.0, np.nan, 1.0]))
    table = f32([[0.5, 0.25], [0.125, 0.0625], [1e6, 1e6]])  # the third row must not be used
    params, m, s = device.upload(p), device.zeros(n), device.zeros(n)
    launch_step(device, "adam_step", n, params, device.upload(g), m, s, device.zeros(n), norms,
                2, 0.0, 2.0, n, device.upload(table), 0, 0.9, 0.999, 1e-8, 0.0)
    want = ref.adam_step(p, g, np.zeros(n), np.zeros(n), np.zeros(n), 1.0, 0.0, 2.0, 0.125,
                         0.9, 0.999, 1e-8, 0.0625, 0.0)
    np.testing.assert_allclose(device.read(params, n), want[0], **ADAM_TOL)
