"""kernels/rollout.cl (gae, gather_minibatch, explained_variance) and optim.cl sum_squares
against their float64 twins.

Tolerances:
* gae: |err| <= 1e-5 + 1e-5 * |ref|. Each step adds O(1) terms to a sum discounted by
  gamma * lambda < 1, so the float32 error stays a few ulps of the largest return.
* gather_minibatch: exact (it only copies).
* explained_variance and sum_squares: float32 sums of n squares in a fixed tree, relative
  error about log2(n) ulps plus the strided partial sums: rtol 1e-5 (EV: atol 1e-5 on a
  quantity of order 1).
"""

from __future__ import annotations

import numpy as np
import pyopencl as cl
import pytest
from helpers import big, f32, guarded, read_guarded

from rlcl import reference as ref

GAE_TOL = dict(rtol=1e-5, atol=1e-5)
REDUCE_TOL = dict(rtol=1e-5, atol=1e-5)
L = 256  # the agents' reduction work-group size on PoCL and Oclgrind


# -- gae ------------------------------------------------------------------------------------
def run_gae(device, rewards, values, ends, trunc_values, gamma, lam):
    T, N = rewards.shape
    adv, ret = guarded(device, T * N), guarded(device, T * N)
    device.launch("gae", (N,), None, adv, ret, device.upload(f32(rewards)),
                  device.upload(f32(values)), device.upload(ends.astype(np.int32)),
                  device.upload(f32(trunc_values)), T, N, gamma, lam)
    return (read_guarded(device, adv, T * N).reshape(T, N),
            read_guarded(device, ret, T * N).reshape(T, N))


@pytest.mark.parametrize("T", [1, 7, 64])
@pytest.mark.parametrize("N", [1, 7, pytest.param(129, marks=big)])
def test_gae_matches_twin(device, rng, T, N):
    rewards = f32(rng.standard_normal((T, N))).astype(np.float64)
    values = f32(rng.standard_normal((T + 1, N))).astype(np.float64)
    ends = rng.choice([0, 1, 2], size=(T, N), p=[0.7, 0.15, 0.15])
    trunc_values = f32(rng.standard_normal((T, N))).astype(np.float64)
    adv, ret = run_gae(device, rewards, values, ends, trunc_values, 0.99, 0.95)
    ref_adv, ref_ret = ref.gae(rewards, values, ends, trunc_values, np.float32(0.99),
                               np.float32(0.95))
    np.testing.assert_allclose(adv, ref_adv, **GAE_TOL)
    np.testing.assert_allclose(ret, ref_ret, **GAE_TOL)


def test_gae_by_hand(device):
    """One env, gamma = 0.9, lambda = 0.8, ends = running, truncated, terminated:
    t=2 (terminated): delta = 1 - 0.5 = 0.5                        A = 0.5
    t=1 (truncated):  delta = 1 + 0.9 * 2.0 (trunc value) - 0.5    A = 2.3 (no carry from t=2)
    t=0 (running):    delta = 1 + 0.9 * 0.5 - 0.5 = 0.95           A = 0.95 + 0.72 * 2.3 = 2.606
    """
    rewards = np.ones((3, 1))
    values = np.full((4, 1), 0.5)
    ends = np.array([[0], [2], [1]])
    trunc_values = np.array([[9.0], [2.0], [9.0]])  # read only where ends == 2
    want_adv = np.array([[2.606], [2.3], [0.5]])
    for adv, ret in (run_gae(device, rewards, values, ends, trunc_values, 0.9, 0.8),
                     ref.gae(rewards, values, ends, trunc_values, 0.9, 0.8)):
        np.testing.assert_allclose(adv, want_adv, rtol=1e-6)
        np.testing.assert_allclose(ret, want_adv + 0.5, rtol=1e-6)


# -- gather_minibatch -----------------------------------------------------------------------
@pytest.mark.parametrize("act_dim", [1, 3])
@pytest.mark.parametrize("obs_dim", [1, 4])
@pytest.mark.parametrize("M", [1, 7, 64, pytest.param(129, marks=big)])
def test_gather_minibatch_matches_twin(device, rng, M, obs_dim, act_dim):
    rows = 2 * M + 5  # the flattened (T * N) storage
    idx = np.concatenate([rng.permutation(rows) for _ in range(3)]).astype(np.int32)
    idx_off = rows + 3  # a minibatch from the middle of the second permutation
    obs = f32(rng.standard_normal((rows, obs_dim)))
    actions = (rng.integers(0, 7, rows).astype(np.int32) if act_dim == 1  # Discrete
               else f32(rng.standard_normal((rows, act_dim))))              # Box: copied as bits
    logp, adv, ret, val = (f32(rng.standard_normal(rows)) for _ in range(4))
    outs = [guarded(device, M * obs_dim), guarded(device, M * act_dim, dtype=actions.dtype),
            *(guarded(device, M) for _ in range(4))]
    device.launch("gather_minibatch", (M,), None, *outs, device.upload(idx), idx_off,
                  device.upload(obs), device.upload(actions), device.upload(logp),
                  device.upload(adv), device.upload(ret), device.upload(val), M, obs_dim, act_dim)
    want = ref.gather_minibatch(idx, idx_off, M, obs, actions, logp, adv, ret, val)
    got = [read_guarded(device, outs[0], M * obs_dim).reshape(M, obs_dim),
           read_guarded(device, outs[1], M * act_dim, dtype=actions.dtype).reshape(
               actions[:M].shape),
           *(read_guarded(device, b, M) for b in outs[2:])]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


# -- single-work-group reductions ----------------------------------------------------------
def run_explained_variance(device, values, returns, slot=1, local=L):
    n = len(values)
    out = guarded(device, 2, before=slot)
    device.launch("explained_variance", (local,), (local,), out, slot, device.upload(f32(values)),
                  device.upload(f32(returns)), n, cl.LocalMemory(4 * local))
    return read_guarded(device, out, 2, before=slot)


@pytest.mark.parametrize("n", [7, 129, pytest.param(10000, marks=big)])
def test_explained_variance_matches_twin(device, rng, n):
    returns = f32(rng.normal(1.0, 2.0, n)).astype(np.float64)
    values = f32(returns + rng.normal(0, 1.0, n)).astype(np.float64)  # EV about 0.75
    ev, var_r = run_explained_variance(device, values, returns)
    ref_ev, ref_var = ref.explained_variance(values, returns)
    np.testing.assert_allclose(var_r, ref_var, **REDUCE_TOL)
    np.testing.assert_allclose(ev, ref_ev, **REDUCE_TOL)


@pytest.mark.parametrize("local", [1, 64])
def test_explained_variance_other_work_group_sizes(device, rng, local):
    returns = f32(rng.standard_normal(100)).astype(np.float64)
    values = f32(rng.standard_normal(100)).astype(np.float64)
    ev, var_r = run_explained_variance(device, values, returns, slot=0, local=local)
    ref_ev, ref_var = ref.explained_variance(values, returns)
    np.testing.assert_allclose([ev, var_r], [ref_ev, ref_var], **REDUCE_TOL)


@pytest.mark.parametrize("n", [1, 7])
def test_explained_variance_of_constant_returns_is_nan(device, rng, n):
    """Var(returns) = 0 gives NaN, as SB3 does (2.0 keeps the float32 mean exact)."""
    values, returns = rng.standard_normal(n), np.full(n, 2.0)
    ev, var_r = run_explained_variance(device, values, returns)
    assert np.isnan(ev) and var_r == 0.0
    assert np.isnan(ref.explained_variance(values, returns)[0])


def test_explained_variance_of_constant_inexact_returns_is_nan(device, rng):
    """The float32 mean of seven 0.1f is not 0.1f, so Var(returns) is ~1e-17, not 0."""
    values, returns = rng.standard_normal(7), np.full(7, 0.1)
    assert np.isnan(ref.explained_variance(values, f32(returns))[0])
    ev, _ = run_explained_variance(device, values, returns)
    assert np.isnan(ev)


@pytest.mark.parametrize("n", [1, 7, 129, pytest.param(10000, marks=big)])
def test_sum_squares_matches_twin(device, rng, n):
    x = f32(rng.standard_normal(n))
    slot, slots = 2, 4
    norms = guarded(device, 1, before=slot, after=slots - slot - 1)
    device.launch("sum_squares", (L,), (L,), norms, slot, device.upload(x), n,
                  cl.LocalMemory(4 * L))
    got = read_guarded(device, norms, 1, before=slot)
    np.testing.assert_allclose(got[0], ref.sum_squares(x), **REDUCE_TOL)
