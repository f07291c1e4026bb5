"""The loss kernels of both heads, kernels/loss.cl ppo_loss (Categorical) and gaussian.cl
ppo_loss_gaussian, against their float64 twins (reference.ppo_loss, ppo_loss_gaussian), the
twins' gradients against finite differences of the twins' losses, and a whole-network gradient
check (ActorCritic: device evaluate + loss + backward, and column_sum for log_std, against
finite differences of the reference composition).

Gradients go to sentinel-guarded buffers and the statistics to one row of a sentinel-filled
table; the Gaussian log_std sits between NaNs in its parameter buffer, so a wrong offset is
caught. Inputs are built so no comparison sits on a branch boundary of the loss: ratios are kept
1e-3 away from 1 +- clip_coef, and values/old values lie on a 2^-10 grid, so v - old_v and
old_v + clip(v - old_v) are exact in float32 and float64 (see the regression tests at the bottom
for what goes wrong off the grid).

Tolerances:
* gradients (float32 kernel vs float64 twin): |err| <= 1e-7 + 1e-4 * |ref|. The terms are
  O(1/M); exp, log and the advantage normalisation each cost a few ulps (the factor z^2 - 1 of
  dlog_std cancels, but z = (a - mu) / std is computed from float32 a and mu nearly exactly).
* stats (means of O(1) terms over M samples): |err| <= 1e-6 + 1e-5 * |ref|.
* twin vs central differences (float64, h = 1e-6): |err| <= 1e-8 + 1e-6 * |ref|.
* whole network, device vs twin: |err| <= 1e-6 * max|g| + 1e-4 * |ref| (three layers).
"""

from __future__ import annotations

import numpy as np
import pyopencl as cl
import pytest
from helpers import (CATEGORICAL, CLIP, FD_TOL, GAUSSIAN, HEADS, NUM_STATS, PAD, VF,
                     central_difference, guarded, head_cases, loss_coefs, make_policy,
                     read_guarded)

from rlcl import reference as ref

GRAD_TOL = dict(rtol=1e-4, atol=1e-7)
STATS_TOL = dict(rtol=1e-5, atol=1e-6)
LOG_STD_OFF = 5  # where the Gaussian loss tests put log_std in their parameter buffer
L = 256  # rlcl.agents.ppo uses the largest power of two <= min(256, max work-group size)
REST = ("actions", "old_logp", "advantages", "returns", "old_values")  # after out, values

# (M, A) per head; M = 300 > L makes work-items stride
SIZES = head_cases({CATEGORICAL: [(1, 2), (7, 3), (64, 7), (129, 3), (300, 2)],
                    GAUSSIAN: [(1, 1), (1, 3), (7, 1), (7, 3), (64, 1), (64, 3), (300, 1),
                               (300, 3)]}, "M%d-A%d")
# every combination of the loss's switches, named as the test ids show them
CFGS = [pytest.param(dict(clip_vloss=clip, ent_coef=ent, norm_adv=norm, pg_mode=pg),
                     id=f"norm_{'on' if norm else 'off'}-vclip_{'on' if clip else 'off'}-{ent}-"
                        + ("a2c" if pg else "ppo"))
        for norm in (False, True) for clip in (False, True) for ent in (0.0, 0.01) for pg in (0, 1)]


def f32_64(x):
    """Rounded to float32, held as float64: what the kernel and the twin both see."""
    return np.asarray(x).astype(np.float32).astype(np.float64)


def on_grid(x):
    return np.round(np.asarray(x) * 1024) / 1024


def off_boundaries(rng, lp):
    """Old log-probs around LP with about half the ratios outside [0.8, 1.2], none within 1e-3
    of a clip boundary."""
    old_logp = lp + rng.normal(0, 0.3, len(lp))
    for bound in (np.log1p(CLIP), np.log1p(-CLIP)):
        old_logp[np.abs((lp - old_logp) - bound) < 1e-3] -= 2e-3
    return old_logp


def loss_inputs(rng, head, M, A):
    """float32-representable inputs (as float64, actions as the kernel reads them); `out` is
    the logits or the mean, `params` holds log_std at LOG_STD_OFF between NaNs."""
    out = f32_64(rng.standard_normal((M, A)))
    log_std = f32_64(rng.uniform(-1.0, 0.5, A))
    actions = head.sample(rng, out, log_std)
    params = np.full(LOG_STD_OFF + A + PAD, np.nan)
    params[LOG_STD_OFF : LOG_STD_OFF + A] = log_std
    values = on_grid(rng.standard_normal(M))
    old_values = on_grid(values + rng.normal(0, 0.25, M))  # about 40% clipped
    return dict(out=out, values=values, params=params, actions=actions,
                old_logp=f32_64(off_boundaries(rng, head.logp(actions, out, log_std))),
                advantages=f32_64(rng.normal(0.3, 1.5, M)),
                returns=f32_64(rng.standard_normal(M)), old_values=old_values)


def run_kernel(device, head, inp, cfg, row=2, rows=4, local=L):
    """The head's loss kernel into guarded buffers; returns (gradients as the twin's, stats
    row), after checking that nothing else was written."""
    M, A = inp["out"].shape

    def up(a):  # actions stay int32, everything else goes down as float32
        return device.upload(np.ascontiguousarray(a, np.int32 if a.dtype == np.int32
                                                  else np.float32))

    shapes = [(M, A), (M,), (M, A)][: 3 if head.continuous else 2]  # d out, values, log_std
    grads = [guarded(device, int(np.prod(s))) for s in shapes]
    stats = guarded(device, NUM_STATS, row * NUM_STATS, (rows - 1 - row) * NUM_STATS)
    log_std = (up(inp["params"]), LOG_STD_OFF) if head.continuous else ()
    device.launch(head.loss_kernel, (local,), (local,), *grads, stats, row, up(inp["out"]),
                  up(inp["values"]), *log_std, *(up(inp[k]) for k in REST), M, A,
                  *loss_coefs(**cfg), cl.LocalMemory(4 * NUM_STATS * local))
    got = [read_guarded(device, g, np.prod(s)).reshape(s) for g, s in zip(grads, shapes)]
    return got, read_guarded(device, stats, NUM_STATS, row * NUM_STATS)


def run_twin(head, inp, cfg):
    """(loss, gradients, stats) of the head's twin."""
    return head.loss_twin(inp["out"], inp["values"], inp["params"], LOG_STD_OFF,
                          [inp[k] for k in REST], loss_coefs(**cfg))


def check_against_twin(got, want):
    (grads, stats), (_, ref_grads, ref_stats) = got, want
    assert len(grads) == len(ref_grads)
    for g, r in zip(grads, ref_grads):
        np.testing.assert_allclose(g, r, **GRAD_TOL)
    np.testing.assert_allclose(stats, ref_stats, **STATS_TOL)


ALL_ON = dict(clip_vloss=True, ent_coef=0.01, norm_adv=True, pg_mode=0)


@pytest.mark.parametrize("cfg", CFGS)
@pytest.mark.parametrize("head, size", SIZES)
def test_loss_matches_twin(device, rng, head, size, cfg):
    inp = loss_inputs(rng, head, *size)
    check_against_twin(run_kernel(device, head, inp, cfg), run_twin(head, inp, cfg))


@pytest.mark.parametrize("local", [1, 8, 64])
@pytest.mark.parametrize("head", HEADS, ids=str)
def test_loss_any_power_of_two_work_group(device, rng, head, local):
    """The result must not depend on the work-group size beyond float32 rounding; M = 37 >
    local for 1 and 8: work-items stride over the samples (also on Oclgrind)."""
    inp = loss_inputs(rng, head, 37, 3)
    check_against_twin(run_kernel(device, head, inp, ALL_ON, row=0, rows=1, local=local),
                       run_twin(head, inp, ALL_ON))


def test_ppo_loss_single_action(device, rng):
    """A = 1: p = 1, so the policy gradient, the entropy and the KL are all zero."""
    inp = loss_inputs(rng, CATEGORICAL, 7, 1)
    (dlogits, _), stats = run_kernel(device, CATEGORICAL, inp, ALL_ON)
    assert np.all(dlogits == 0.0)
    np.testing.assert_allclose(stats, run_twin(CATEGORICAL, inp, ALL_ON)[2], **STATS_TOL)


@pytest.mark.parametrize("head", HEADS, ids=str)
def test_inputs_exercise_every_branch(rng, head):
    """The inputs clip some ratios and some value deltas, else the tests above prove less."""
    inp = loss_inputs(rng, head, 300, 3)
    stats = run_twin(head, inp, ALL_ON)[2]
    assert 0.2 < stats[4] < 0.8  # clip fraction
    clipped_v = np.abs(inp["values"] - inp["old_values"]) > CLIP
    assert 0.2 < clipped_v.mean() < 0.8


# -- the twins' gradients vs finite differences of the twins' losses ------------------------
@pytest.mark.parametrize("cfg", CFGS)
@pytest.mark.parametrize("head, size", head_cases({CATEGORICAL: [(1, 2), (7, 3)],
                                                   GAUSSIAN: [(1, 1), (1, 3), (7, 3)]},
                                                  "M%d-A%d"))
def test_twin_gradients_are_the_derivative(rng, head, size, cfg):
    """d out and d values; for the Gaussian also the column sums of dlog_std, which are
    d loss / d log_std through params."""
    inp = loss_inputs(rng, head, *size)
    _, grads, _ = run_twin(head, inp, cfg)

    def loss(**change):
        return run_twin(head, {**inp, **change}, cfg)[0]

    fd_out = central_difference(lambda z: loss(out=z), inp["out"])
    fd_values = central_difference(lambda v: loss(values=v), inp["values"])
    np.testing.assert_allclose(grads[0], fd_out, **FD_TOL)
    np.testing.assert_allclose(grads[1], fd_values, **FD_TOL)
    if head.continuous:
        log_std = slice(LOG_STD_OFF, LOG_STD_OFF + size[1])

        def loss_of_log_std(x):
            params = inp["params"].copy()
            params[log_std] = x
            return loss(params=params)

        fd_log_std = central_difference(loss_of_log_std, inp["params"][log_std])
        np.testing.assert_allclose(grads[2].sum(axis=0), fd_log_std, **FD_TOL)
        np.testing.assert_allclose(ref.column_sum(grads[2]), fd_log_std, **FD_TOL)


# -- the whole network: evaluate + loss + backward (+ column_sum for log_std) ----------------
@pytest.mark.parametrize("cfg", [ALL_ON,
                                 dict(clip_vloss=0, ent_coef=0.0, norm_adv=0, pg_mode=0),
                                 dict(clip_vloss=0, ent_coef=0.01, norm_adv=0, pg_mode=1)],
                         ids=["all_on", "all_off", "a2c"])
@pytest.mark.parametrize("head", HEADS, ids=str)
def test_network_gradient(device, rng, head, cfg):
    """max_batch 10 > M = 7, with NaN in every gradient slot (and in the unused rows of
    d_log_std) beforehand: backward must overwrite every gradient, log_std's included, and
    use only the batch's rows."""
    M, A, obs_dim, max_batch = 7, 3, 4, 10
    policy, host = make_policy(device, rng, obs_dim, head.space(A), ([5, 6], "tanh"), max_batch)
    table, n_a, n_c, act_id = policy.layer_table, len(policy.actor.layers), len(
        policy.critic.layers), policy.act_id
    off = policy.log_std_off  # the end of the parameters for a Categorical head
    x = rng.standard_normal((M, obs_dim)).astype(np.float32)
    out = ref.mlp_forward(x, host, table, 0, n_a, act_id)[-1]
    actions = head.sample(rng, out, host[off:])
    old_logp = off_boundaries(rng, head.logp(actions, out, host[off:])).astype(np.float32)
    advantages = rng.standard_normal(M).astype(np.float32)
    returns = rng.standard_normal(M).astype(np.float32)
    # old values equal to the current ones (delta 0, exact) or 0.5 away (clipped)
    v0 = ref.mlp_forward(x, host, table, n_a, n_c, act_id)[-1][:, 0]
    old_values = (v0 + np.where(np.arange(M) % 2, 0.0, 0.5)).astype(np.float32)
    args = (actions, old_logp, advantages, returns, old_values)

    # device
    device.write(policy.obs_buffer, x)
    if head.continuous:
        device.write(policy.d_log_std, np.full(max_batch * A, np.nan, np.float32))
    device.write(policy.flat.grads, np.full(policy.flat.n, np.nan, np.float32))
    stats = guarded(device, NUM_STATS, after=0)
    policy.evaluate(M)
    policy.loss(stats, 0, *(device.upload(a) for a in args), M, CLIP, bool(cfg["clip_vloss"]),
                cfg["ent_coef"], VF, bool(cfg["norm_adv"]), cfg["pg_mode"], L)
    policy.backward(M)
    g_dev = policy.flat.grad_numpy()
    assert np.all(np.isfinite(g_dev))

    # reference composition and its finite differences
    rest = [a if a.dtype == np.int32 else a.astype(np.float64) for a in args]

    def composed(params):
        a_acts = ref.mlp_forward(x, params, table, 0, n_a, act_id)
        c_acts = ref.mlp_forward(x, params, table, n_a, n_c, act_id)
        return a_acts, c_acts, head.loss_twin(a_acts[-1], c_acts[-1][:, 0], params, off, rest,
                                              loss_coefs(**cfg))

    a_acts, c_acts, (_, grads, ref_stats) = composed(host)
    g_ref = (ref.mlp_backward(grads[0], a_acts, host, table, 0, n_a, act_id)
             + ref.mlp_backward(grads[1][:, None], c_acts, host, table, n_a, n_c, act_id))
    if head.continuous:
        g_ref[off:] = ref.column_sum(grads[2])
    g_fd = central_difference(lambda params: composed(params)[2][0], host)

    scale = np.abs(g_ref).max()
    assert scale > 1e-2
    np.testing.assert_allclose(g_ref, g_fd, rtol=1e-6, atol=1e-8 * scale)
    np.testing.assert_allclose(g_dev, g_ref, rtol=1e-4, atol=1e-6 * scale)
    if head.continuous:  # log_std's slot, written by column_sum (part of the line above)
        assert np.abs(g_ref[off:]).max() > 1e-3
        np.testing.assert_allclose(g_dev[off:], g_fd[off:], rtol=1e-4, atol=1e-6 * scale)
    np.testing.assert_allclose(read_guarded(device, stats, NUM_STATS), ref_stats, **STATS_TOL)


# -- regression: an unclipped value delta keeps its gradient --------------------------------
# For an unclipped delta vc = old_v + (v - old_v) is v mathematically, but it rounds whenever v
# and old_v are not within a factor of 2 of each other. loss.cl once tested vc == v to decide
# whether the clipped term depends on v, and zeroed the gradient of ~0.2% of samples; it now
# tests |v - old_v| <= c.
def one_sample(v, old_v, R):
    return dict(out=np.zeros((1, 2)), values=np.array([v]), params=None,
                actions=np.zeros(1, np.int32), old_logp=np.array([np.log(0.5)]),
                advantages=np.ones(1), returns=np.array([R]), old_values=np.array([old_v]))


VALUE_ONLY = dict(clip_vloss=True, ent_coef=0.0, norm_adv=False, pg_mode=0)


def test_kernel_keeps_value_gradient_of_unclipped_delta(device):
    v, old_v, R = np.float32(-0.24), np.float32(-0.1), np.float32(-0.96)  # |v - old_v| < c
    assert old_v + (v - old_v) != v  # the float32 rounding that triggers the bug
    (_, dvalues), _ = run_kernel(device, CATEGORICAL, one_sample(v, old_v, R), VALUE_ONLY)
    np.testing.assert_allclose(dvalues[0], VF * (float(v) - float(R)), rtol=1e-6)


def test_twin_keeps_value_gradient_of_unclipped_delta():
    v, old_v, R = -0.22, -0.05, -0.47  # float64 values; |v - old_v| < c
    assert old_v + (v - old_v) != v
    _, (_, dvalues), _ = run_twin(CATEGORICAL, one_sample(v, old_v, R), VALUE_ONLY)
    np.testing.assert_allclose(dvalues[0], VF * (v - R), rtol=1e-9)
