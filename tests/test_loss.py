"""kernels/loss.cl ppo_loss against reference.ppo_loss, the twin's gradients against finite
differences of the twin's loss, and a whole-network gradient check (device evaluate + loss +
backward against finite differences of the reference composition).

Inputs are built so no comparison sits on a branch boundary of the loss: ratios are kept
1e-3 away from 1 +- clip_coef, and values/old values lie on a 2^-10 grid, so v - old_v and
old_v + clip(v - old_v) are exact in float32 and float64 (see the regression tests at the bottom
for what goes wrong off the grid).

Tolerances:
* gradients (float32 kernel vs float64 twin): |err| <= 1e-7 + 1e-4 * |ref|. The terms are
  O(1/M); exp, log and the advantage normalisation each cost a few ulps.
* stats (means of O(1) terms over M samples): |err| <= 1e-6 + 1e-5 * |ref|.
* twin vs central differences (float64, h = 1e-6): |err| <= 1e-8 + 1e-6 * |ref|.
* whole network, device vs twin: |err| <= 1e-6 * max|g| + 1e-4 * |ref| (three layers).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pyopencl as cl
import pytest

from rlcl import reference as ref
from rlcl.policy import ActorCritic

GRAD_TOL = dict(rtol=1e-4, atol=1e-7)
STATS_TOL = dict(rtol=1e-5, atol=1e-6)
FD_TOL = dict(rtol=1e-6, atol=1e-8)
FD_H = 1e-6
SENTINEL = np.float32(-7.25)
PAD = 4
NUM_STATS = ref.NUM_LOSS_STATS
L = 256  # rlcl.agents.ppo uses the largest power of two <= min(256, max work-group size)
CLIP, VF = 0.2, 0.5

big = pytest.mark.big
SIZES = [(1, 2), (7, 3), (64, 7), pytest.param((129, 3), marks=big),
         pytest.param((300, 2), marks=big)]  # (M, A); M = 300 > L makes work-items stride


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def f32_64(x):
    """Rounded to float32, held as float64: what the kernel and the twin both see."""
    return np.asarray(x).astype(np.float32).astype(np.float64)


def on_grid(x):
    return np.round(np.asarray(x) * 1024) / 1024


def loss_inputs(rng, M, A):
    """float32-representable inputs (as float64) for ppo_loss, in the kernel's order."""
    logits = f32_64(rng.standard_normal((M, A)))
    actions = rng.integers(0, A, M).astype(np.int32)
    lp = log_softmax(logits)[np.arange(M), actions]
    old_logp = lp + rng.normal(0, 0.3, M)  # about half the ratios fall outside [0.8, 1.2]
    for bound in (np.log1p(CLIP), np.log1p(-CLIP)):
        near = np.abs((lp - old_logp) - bound) < 1e-3
        old_logp[near] -= 2e-3
    values = on_grid(rng.standard_normal(M))
    old_values = on_grid(values + rng.normal(0, 0.25, M))  # about 40% clipped
    advantages = rng.normal(0.3, 1.5, M)
    returns = rng.standard_normal(M)
    return dict(logits=logits, values=values, actions=actions, old_logp=f32_64(old_logp),
                advantages=f32_64(advantages), returns=f32_64(returns), old_values=old_values)


def run_kernel(device, inp, clip_vloss, ent_coef, norm_adv, row=2, rows=4, local=L, pg_mode=0):
    """ppo_loss into sentinel-filled buffers; returns (dlogits, dvalues, stats row), after
    checking that nothing else was written."""
    M, A = inp["logits"].shape

    def up(a):  # actions stay int32, everything else goes down as float32
        return device.upload(np.ascontiguousarray(a, np.int32 if a.dtype == np.int32
                                                  else np.float32))

    dl = device.upload(np.full(M * A + PAD, SENTINEL))
    dv = device.upload(np.full(M + PAD, SENTINEL))
    stats = device.upload(np.full(rows * NUM_STATS, SENTINEL))
    device.launch("ppo_loss", (local,), (local,), dl, dv, stats, row, up(inp["logits"]),
                  up(inp["values"]), up(inp["actions"]), up(inp["old_logp"]),
                  up(inp["advantages"]), up(inp["returns"]), up(inp["old_values"]), M, A, CLIP,
                  int(clip_vloss), ent_coef, VF, int(norm_adv), pg_mode,
                  cl.LocalMemory(4 * NUM_STATS * local))
    dl, dv = device.read(dl, M * A + PAD), device.read(dv, M + PAD)
    st = device.read(stats, rows * NUM_STATS).reshape(rows, NUM_STATS)
    assert np.all(dl[M * A :] == SENTINEL) and np.all(dv[M:] == SENTINEL)
    assert np.all(np.delete(st, row, axis=0) == SENTINEL), "stats written outside `row`"
    return dl[: M * A].reshape(M, A), dv[:M], st[row]


def run_twin(inp, clip_vloss, ent_coef, norm_adv, pg_mode=0):
    return ref.ppo_loss(inp["logits"], inp["values"], inp["actions"], inp["old_logp"],
                        inp["advantages"], inp["returns"], inp["old_values"], CLIP,
                        int(clip_vloss), ent_coef, VF, int(norm_adv), pg_mode)


@pytest.mark.parametrize("pg_mode", [0, 1], ids=["ppo", "a2c"])
@pytest.mark.parametrize("ent_coef", [0.0, 0.01])
@pytest.mark.parametrize("clip_vloss", [False, True], ids=["vclip_off", "vclip_on"])
@pytest.mark.parametrize("norm_adv", [False, True], ids=["norm_off", "norm_on"])
@pytest.mark.parametrize("size", SIZES, ids=lambda s: "M%d-A%d" % s)
def test_ppo_loss_matches_twin(device, rng, size, norm_adv, clip_vloss, ent_coef, pg_mode):
    inp = loss_inputs(rng, *size)
    dlogits, dvalues, stats = run_kernel(device, inp, clip_vloss, ent_coef, norm_adv,
                                         pg_mode=pg_mode)
    _, ref_dlogits, ref_dvalues, ref_stats = run_twin(inp, clip_vloss, ent_coef, norm_adv,
                                                      pg_mode)
    np.testing.assert_allclose(dlogits, ref_dlogits, **GRAD_TOL)
    np.testing.assert_allclose(dvalues, ref_dvalues, **GRAD_TOL)
    np.testing.assert_allclose(stats, ref_stats, **STATS_TOL)


@pytest.mark.parametrize("local", [1, 8, 64])
def test_ppo_loss_any_power_of_two_work_group(device, rng, local):
    """The result must not depend on the work-group size beyond float32 rounding."""
    inp = loss_inputs(rng, 37, 3)
    dlogits, dvalues, stats = run_kernel(device, inp, True, 0.01, True, row=0, rows=1,
                                         local=local)
    _, ref_dlogits, ref_dvalues, ref_stats = run_twin(inp, True, 0.01, True)
    np.testing.assert_allclose(dlogits, ref_dlogits, **GRAD_TOL)
    np.testing.assert_allclose(dvalues, ref_dvalues, **GRAD_TOL)
    np.testing.assert_allclose(stats, ref_stats, **STATS_TOL)


def test_ppo_loss_single_action(device, rng):
    """A = 1: p = 1, so the policy gradient, the entropy and the KL are all zero."""
    inp = loss_inputs(rng, 7, 1)
    dlogits, dvalues, stats = run_kernel(device, inp, True, 0.01, True)
    assert np.all(dlogits == 0.0)
    np.testing.assert_allclose(stats, run_twin(inp, True, 0.01, True)[3], **STATS_TOL)


def test_inputs_exercise_every_branch(rng):
    """The inputs clip some ratios and some value deltas, else the tests above prove less."""
    inp = loss_inputs(rng, 300, 3)
    _, _, _, stats = run_twin(inp, True, 0.01, True)
    assert 0.2 < stats[4] < 0.8  # clip fraction
    clipped_v = np.abs(inp["values"] - inp["old_values"]) > CLIP
    assert 0.2 < clipped_v.mean() < 0.8


# -- the twin's gradients vs finite differences of the twin's loss --------------------------
@pytest.mark.parametrize("pg_mode", [0, 1], ids=["ppo", "a2c"])
@pytest.mark.parametrize("ent_coef", [0.0, 0.01])
@pytest.mark.parametrize("clip_vloss", [False, True], ids=["vclip_off", "vclip_on"])
@pytest.mark.parametrize("norm_adv", [False, True], ids=["norm_off", "norm_on"])
@pytest.mark.parametrize("size", [(1, 2), (7, 3)], ids=lambda s: "M%d-A%d" % s)
def test_twin_gradients_are_the_derivative(rng, size, norm_adv, clip_vloss, ent_coef, pg_mode):
    inp = loss_inputs(rng, *size)
    _, dlogits, dvalues, _ = run_twin(inp, clip_vloss, ent_coef, norm_adv, pg_mode)

    def loss(**change):
        return run_twin({**inp, **change}, clip_vloss, ent_coef, norm_adv, pg_mode)[0]

    fd_logits = np.zeros_like(dlogits)
    for i in np.ndindex(dlogits.shape):
        e = np.zeros_like(dlogits)
        e[i] = FD_H
        z = inp["logits"]
        fd_logits[i] = (loss(logits=z + e) - loss(logits=z - e)) / (2 * FD_H)
    fd_values = np.zeros_like(dvalues)
    for i in range(len(dvalues)):
        e = np.zeros_like(dvalues)
        e[i] = FD_H
        v = inp["values"]
        fd_values[i] = (loss(values=v + e) - loss(values=v - e)) / (2 * FD_H)
    np.testing.assert_allclose(dlogits, fd_logits, **FD_TOL)
    np.testing.assert_allclose(dvalues, fd_values, **FD_TOL)


# -- the whole network: ActorCritic.evaluate + ppo_loss + ActorCritic.backward ---------------
@pytest.mark.parametrize("cfg", [dict(clip_vloss=1, ent_coef=0.01, norm_adv=1, pg_mode=0),
                                 dict(clip_vloss=0, ent_coef=0.0, norm_adv=0, pg_mode=0),
                                 dict(clip_vloss=0, ent_coef=0.01, norm_adv=0, pg_mode=1)],
                         ids=["all_on", "all_off", "a2c"])
def test_network_gradient(device, rng, cfg):
    M, A, obs_dim, layers = 7, 3, 4, [5, 6]
    policy = ActorCritic(device, obs_dim, gym.spaces.Discrete(A), layers, "tanh", seed=0,
                         max_batch=M)
    host = policy.flat.numpy().astype(np.float64) + rng.normal(0, 0.3, policy.flat.n)
    policy.flat.load(host)
    host = policy.flat.numpy().astype(np.float64)
    table, n_a, n_c, act = policy.layer_table, len(policy.actor.layers), len(
        policy.critic.layers), policy.act_id
    x = rng.standard_normal((M, obs_dim)).astype(np.float32)
    actions = rng.integers(0, A, M).astype(np.int32)
    old_logp = rng.normal(-1, 0.3, M).astype(np.float32)
    advantages = rng.standard_normal(M).astype(np.float32)
    returns = rng.standard_normal(M).astype(np.float32)
    # old values equal to the current ones (delta 0, exact) or 0.5 away (clipped)
    v0 = ref.mlp_forward(x, host, table, n_a, n_c, act)[-1][:, 0]
    old_values = (v0 + np.where(np.arange(M) % 2, 0.0, 0.5)).astype(np.float32)
    args = (actions, old_logp, advantages, returns, old_values)
    coefs = (CLIP, cfg["clip_vloss"], cfg["ent_coef"], VF, cfg["norm_adv"], cfg["pg_mode"])

    # device
    device.write(policy.obs_buffer, x)
    policy.evaluate(M)
    dl, dv, stats = policy.d_outputs, policy.d_values, device.zeros(NUM_STATS)
    device.launch("ppo_loss", (L,), (L,), dl, dv, stats, 0, policy.outputs, policy.values,
                  *(device.upload(a) for a in args), M, A, *coefs,
                  cl.LocalMemory(4 * NUM_STATS * L))
    policy.backward(M)
    g_dev = policy.flat.grad_numpy()

    # reference composition and its finite differences
    def composed(params):
        a_acts = ref.mlp_forward(x, params, table, 0, n_a, act)
        c_acts = ref.mlp_forward(x, params, table, n_a, n_c, act)
        return a_acts, c_acts, ref.ppo_loss(a_acts[-1], c_acts[-1][:, 0], *args[:4],
                                            old_values.astype(np.float64), *coefs)

    a_acts, c_acts, (_, dlogits, dvalues, ref_stats) = composed(host)
    g_ref = (ref.mlp_backward(dlogits, a_acts, host, table, 0, n_a, act)
             + ref.mlp_backward(dvalues[:, None], c_acts, host, table, n_a, n_c, act))
    g_fd = np.zeros_like(host)
    for i in range(len(host)):
        e = np.zeros_like(host)
        e[i] = FD_H
        g_fd[i] = (composed(host + e)[2][0] - composed(host - e)[2][0]) / (2 * FD_H)

    scale = np.abs(g_ref).max()
    assert scale > 1e-2
    np.testing.assert_allclose(g_ref, g_fd, rtol=1e-6, atol=1e-8 * scale)
    np.testing.assert_allclose(g_dev, g_ref, rtol=1e-4, atol=1e-6 * scale)
    np.testing.assert_allclose(device.read(stats, NUM_STATS), ref_stats, **STATS_TOL)


# -- regression: an unclipped value delta keeps its gradient --------------------------------
# For an unclipped delta vc = old_v + (v - old_v) is v mathematically, but it rounds whenever v
# and old_v are not within a factor of 2 of each other. loss.cl once tested vc == v to decide
# whether the clipped term depends on v, and zeroed the gradient of ~0.2% of samples; it now
# tests |v - old_v| <= c.
def test_kernel_keeps_value_gradient_of_unclipped_delta(device):
    v, old_v, R = np.float32(-0.24), np.float32(-0.1), np.float32(-0.96)  # |v - old_v| < c
    assert old_v + (v - old_v) != v  # the float32 rounding that triggers the bug
    inp = dict(logits=np.zeros((1, 2)), values=np.array([v]), actions=np.zeros(1, np.int32),
               old_logp=np.array([np.log(0.5)]), advantages=np.ones(1), returns=np.array([R]),
               old_values=np.array([old_v]))
    _, dvalues, _ = run_kernel(device, inp, clip_vloss=True, ent_coef=0.0, norm_adv=False)
    np.testing.assert_allclose(dvalues[0], VF * (float(v) - float(R)), rtol=1e-6)


def test_twin_keeps_value_gradient_of_unclipped_delta():
    v, old_v, R = -0.22, -0.05, -0.47  # float64 values; |v - old_v| < c
    assert old_v + (v - old_v) != v
    inp = dict(logits=np.zeros((1, 2)), values=np.array([v]), actions=np.zeros(1, np.int32),
               old_logp=np.array([np.log(0.5)]), advantages=np.ones(1), returns=np.array([R]),
               old_values=np.array([old_v]))
    _, _, dvalues, _ = run_twin(inp, clip_vloss=True, ent_coef=0.0, norm_adv=False)
    np.testing.assert_allclose(dvalues[0], VF * (v - R), rtol=1e-9)
