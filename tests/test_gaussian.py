"""What only the diagonal Gaussian head (kernels/gaussian.cl, Box actions) has: the Box-Muller
sampler against reference.philox_normal4 and its statistics, column_sum (log_std's gradient)
against its twin, and ActorCritic.env_actions and std. What both heads do is tested in
test_policy_kernels.py (policy_act_gaussian against its twin, determinism) and test_loss.py
(ppo_loss_gaussian, the whole-network gradient), parametrised over the head.

Tolerances:
* unit draws (mean 0, std 1, so action = eps exactly): |err| <= 1e-5 + 1e-5 * |ref| (float32 log,
  sqrt and cos/sin of 2 pi u; |eps| < 5.8); their log-probs as test_policy_kernels.py's.
* column_sum: bit-identical to an in-order float32 sum; vs float64 within the classic bound
  (rows - 1) * 2^-24 * sum |x|.
* statistics: sample means, standard deviations and correlations within 5 standard errors.

Sizes with A > 4 cross the 4-draws-per-Philox-block boundary; they once showed an Oclgrind 21.10
bug (it mis-runs the switch clang makes of a float4 lane choice), which gaussian.cl now avoids.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from helpers import (ACT_TOL, COUNTERS, GAUSSIAN, act, guarded, make_policy, read_guarded,
                     set_head)

from rlcl import reference as ref
from rlcl.policy import STREAM_ROLLOUT, ActorCritic

EPS_TOL = dict(rtol=1e-5, atol=1e-5)
SIGMAS = 5.0


@pytest.mark.parametrize("counters", COUNTERS, ids=lambda c: "-".join(map(str, c)))
def test_kernel_draws_are_the_twins_box_muller(device, rng, counters):
    """Mean 0 and log_std 0 make the action the N(0, 1) draw itself: 64 rows x 9 dimensions
    compare the kernel's Box-Muller lanes and Philox blocks with philox_normal4's."""
    n, A = 64, 9
    policy, _ = make_policy(device, rng, 3, GAUSSIAN.space(A), ([8], "tanh"), n)
    set_head(policy, np.zeros(A), np.zeros(A))
    a, logp, _ = act(device, policy, rng.standard_normal((n, 3)).astype(np.float32), *counters)
    seed, stream, step, iteration = counters
    eps = np.array([np.concatenate([ref.philox_normal4(seed, stream, r, step, iteration, k)
                                    for k in range(3)])[:A] for r in range(n)])
    np.testing.assert_allclose(a, eps, **EPS_TOL)
    np.testing.assert_allclose(logp, ref.gaussian_logp(eps, 0.0, np.zeros(A)), **ACT_TOL)


@pytest.mark.big
def test_sampler_statistics(device, rng):
    """4096 rows with a fixed mean and log_std (A = 5 spans two Philox blocks): per dimension
    the sample mean, the sample std and every pairwise correlation within 5 standard errors,
    and the mean log-prob equal to minus the entropy."""
    n, A = 4096, 5
    mu = np.array([0.5, -1.0, 2.0, 0.0, 0.25])
    log_std = np.array([-1.0, 0.0, 0.5, -0.5, 0.3])
    policy, _ = make_policy(device, rng, 2, GAUSSIAN.space(A), ([4], "relu"), n)
    host = set_head(policy, mu, log_std)
    b_off = policy.layer_table[len(policy.actor.layers) - 1][1]
    mu, log_std = host[b_off : b_off + A], host[policy.log_std_off :]  # as float32
    std = np.exp(log_std)
    obs = rng.standard_normal((n, 2)).astype(np.float32)
    a, logp, _ = act(device, policy, obs, 77, STREAM_ROLLOUT, 0, 0)
    a = a.astype(np.float64)
    assert np.all(np.abs(a.mean(axis=0) - mu) <= SIGMAS * std / np.sqrt(n))
    assert np.all(np.abs(a.std(axis=0, ddof=1) - std) <= SIGMAS * std / np.sqrt(2 * (n - 1)))
    corr = np.corrcoef(a.T)[np.triu_indices(A, 1)]
    assert np.all(np.abs(corr) <= SIGMAS / np.sqrt(n))
    entropy = (0.5 + ref.HALF_LOG_2PI + log_std).sum()
    assert abs(logp.mean() + entropy) <= SIGMAS * np.sqrt(A / 2 / n)  # Var(-chi2_A / 2) = A/2


def test_twin_normal_draws_look_standard_normal():
    """8192 draws of philox_normal4 (2048 blocks): per lane and overall mean 0 and variance 1,
    lanes uncorrelated, and the two-sided 2-sigma tail mass 4.55%, all within 5 standard
    errors."""
    n = 2048
    x = np.array([ref.philox_normal4(7, STREAM_ROLLOUT, r, 3, 1, r % 3) for r in range(n)])
    flat = x.ravel()
    for lane in (*x.T, flat):
        m = len(lane)
        assert abs(lane.mean()) <= SIGMAS / np.sqrt(m)
        assert abs(lane.var(ddof=1) - 1.0) <= SIGMAS * np.sqrt(2.0 / (m - 1))
    corr = np.corrcoef(x.T)[np.triu_indices(4, 1)]
    assert np.all(np.abs(corr) <= SIGMAS / np.sqrt(n))
    p = 0.0455003
    tail = np.mean(np.abs(flat) > 2.0)
    assert abs(tail - p) <= SIGMAS * np.sqrt(p * (1 - p) / len(flat))
    assert np.all(np.isfinite(flat)) and np.abs(flat).max() < 5.8  # r <= sqrt(2 * 24 log 2)


# -- column_sum -----------------------------------------------------------------------------
# rows is a loop inside each work-item, not a work-item count: 300 rows stay on Oclgrind.
@pytest.mark.parametrize("cols", [1, 3, 9])
@pytest.mark.parametrize("rows", [1, 7, 300])
def test_column_sum_matches_twin(device, rng, rows, cols):
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    out_off = 5
    out = guarded(device, cols, before=out_off)
    device.launch("column_sum", (cols,), None, out, out_off, device.upload(x), rows, cols)
    got = read_guarded(device, out, cols, before=out_off)
    np.testing.assert_array_equal(got, np.add.accumulate(x, axis=0, dtype=np.float32)[-1])
    want = ref.column_sum(x)
    bound = max(rows - 1, 1) * 2.0**-24 * np.abs(x.astype(np.float64)).sum(axis=0)
    assert np.all(np.abs(got - want) <= bound)


# -- ActorCritic with a Box space -----------------------------------------------------------
def test_env_actions_clip_to_the_box_and_leave_stored_actions_alone(device, rng):
    """A (2, 2) Box with uneven bounds and a mean far outside them: the env gets clipped
    actions; the stored actions and log-probs stay those of the unclipped sample."""
    n, A = 7, 4
    box = gym.spaces.Box(np.array([[-1.0, -2.0], [0.5, -3.0]], np.float32),
                         np.array([[1.0, 2.0], [3.0, -1.0]], np.float32))
    policy, _ = make_policy(device, rng, 3, box, ([8], "tanh"), n)
    assert policy.act_dim == A and policy.log_std_off == policy.critic.end
    mu = np.array([3.0, -4.0, 1.75, 0.0])
    set_head(policy, mu, np.zeros(A))
    obs = rng.standard_normal((n, 3)).astype(np.float32)
    a, logp, _ = act(device, policy, obs, 3, STREAM_ROLLOUT, 0, 0)
    low, high = box.low.ravel(), box.high.ravel()
    assert np.any(a > high) and np.any(a < low)  # the test clips something
    stored = a.ravel().copy()
    env_a = policy.env_actions(stored)
    assert env_a.shape == (n, A)
    np.testing.assert_array_equal(env_a, np.clip(a, low, high))
    np.testing.assert_array_equal(stored, a.ravel())  # the host copy is not clipped in place
    assert np.all((env_a >= low) & (env_a <= high))
    lp_unclipped = ref.gaussian_logp(a, np.tile(mu, (n, 1)), np.zeros(A))
    np.testing.assert_allclose(logp, lp_unclipped, **ACT_TOL)


def test_std_is_exp_log_std(device, rng):
    policy = ActorCritic(device, 3, GAUSSIAN.space(5), [8], "tanh", seed=0, max_batch=4)
    np.testing.assert_array_equal(policy.std(), np.ones(5))  # log_std starts at 0
    np.testing.assert_array_equal(policy.flat.numpy()[policy.log_std_off :], np.zeros(5))
    log_std = rng.uniform(-1, 1, 5).astype(np.float32)
    set_head(policy, np.zeros(5), log_std)
    np.testing.assert_allclose(policy.std(), np.exp(log_std.astype(np.float64)),
                               rtol=1e-6)
