"""kernels/gaussian.cl, the diagonal Gaussian head for Box actions, against reference.py:
policy_act_gaussian (actions, log-probs, values, the Box-Muller sampler and its statistics,
determinism), ppo_loss_gaussian and column_sum against their float64 twins, the twin's
gradients against finite differences of the twin's loss, a whole-network gradient check
(ActorCritic with a Box space: evaluate + loss + backward against finite differences of the
reference composition) and ActorCritic.env_actions.

Outputs go to rows [out_off, out_off + N) of buffers with sentinels around them (observation
rows before out_off are NaN), the loss statistics to one row of a sentinel-filled table, and the
log-std parameters sit between NaNs, so a wrong offset is caught. As in test_loss.py, loss
inputs stay off the loss's branch boundaries: ratios 1e-3 away from 1 +- clip_coef, values and
old values on a 2^-10 grid.

Tolerances (float32 kernel vs float64 twin on the same float32 inputs):
* actions, log-probs, values of policy_act_gaussian: |err| <= 1e-5 + 1e-4 * |ref| (a few MLP
  layers of float32 sums, float32 log/cos/sin in Box-Muller, up to 9 log-prob terms).
* unit draws (mean 0, std 1, so action = eps exactly): |err| <= 1e-5 + 1e-5 * |ref| (float32 log,
  sqrt and cos/sin of 2 pi u; |eps| < 5.8).
* loss gradients: |err| <= 1e-7 + 1e-4 * |ref| (as test_loss.py; the factor z^2 - 1 of dlog_std
  cancels, but z = (a - mu) / std is computed from float32 a and mu nearly exactly).
* loss stats: |err| <= 1e-6 + 1e-5 * |ref|.
* column_sum: bit-identical to an in-order float32 sum; vs float64 within the classic bound
  (rows - 1) * 2^-24 * sum |x|.
* twin vs central differences (float64, h = 1e-6): |err| <= 1e-8 + 1e-6 * |ref|.
* whole network, device vs twin: |err| <= 1e-6 * max|g| + 1e-4 * |ref|.
* statistics: sample means, standard deviations and correlations within 5 standard errors.

Sizes with A > 4 cross the 4-draws-per-Philox-block boundary; they once showed an Oclgrind 21.10
bug (it mis-runs the switch clang makes of a float4 lane choice), which gaussian.cl now avoids.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pyopencl as cl
import pytest

from rlcl import reference as ref
from rlcl.policy import STREAM_EVAL, STREAM_ROLLOUT, ActorCritic

ACT_TOL = dict(rtol=1e-4, atol=1e-5)
EPS_TOL = dict(rtol=1e-5, atol=1e-5)
GRAD_TOL = dict(rtol=1e-4, atol=1e-7)
STATS_TOL = dict(rtol=1e-5, atol=1e-6)
FD_TOL = dict(rtol=1e-6, atol=1e-8)
FD_H = 1e-6
SIGMAS = 5.0
SENTINEL = np.float32(-7.25)
OUT_OFF = 3  # rows before the outputs
PAD = 4  # sentinel rows / floats after them
LOG_STD_OFF = 5  # where the loss tests put log_std in their parameter buffer (NaN around it)
NUM_STATS = ref.NUM_LOSS_STATS
L = 256  # the loss's work-group size, as rlcl.agents.ppo picks it
CLIP, VF = 0.2, 0.5

big = pytest.mark.big
NETS = {"tanh-64x64": ([64, 64], "tanh"), "relu-7": ([7], "relu")}
A_DIMS = [1, 2, 4, 5, 9]  # 4 draws per Philox block: 1, 2 or 3 blocks, partly used


def f32_64(x):
    """Rounded to float32, held as float64: what the kernel and the twin both see."""
    return np.asarray(x).astype(np.float32).astype(np.float64)


def on_grid(x):
    return np.round(np.asarray(x) * 1024) / 1024


# -- policy_act_gaussian --------------------------------------------------------------------
def make_policy(device, rng, obs_dim, A, net, n, noise=0.3, box=None):
    """A Box ActorCritic with perturbed parameters and log_std in [-1, 0.5]; returns it with its
    float32 parameters as float64."""
    hidden, activation = NETS[net] if isinstance(net, str) else net
    box = box or gym.spaces.Box(-1.0, 1.0, (A,), np.float32)
    policy = ActorCritic(device, obs_dim, box, hidden, activation, seed=0, max_batch=n)
    host = policy.flat.numpy().astype(np.float64) + rng.normal(0, noise, policy.flat.n)
    host[policy.log_std_off :] = rng.uniform(-1.0, 0.5, A)
    policy.flat.load(host)
    return policy, policy.flat.numpy().astype(np.float64)


def set_head(policy, mu, log_std):
    """Actor output weights 0 and bias MU: the mean is MU for every observation."""
    w_off, b_off, n_in, n_out = policy.layer_table[len(policy.actor.layers) - 1]
    host = policy.flat.numpy()
    host[w_off : w_off + n_in * n_out] = 0.0
    host[b_off : b_off + n_out] = mu
    host[policy.log_std_off :] = log_std
    policy.flat.load(host)
    return host.astype(np.float64)


def act(device, policy, obs, seed, stream, step, iteration, greedy=False):
    """Run policy_act_gaussian on OBS at row offset OUT_OFF; check nothing outside the rows
    changed. Returns (actions (n, A), logp, values)."""
    n, rows, A = len(obs), OUT_OFF + len(obs) + PAD, policy.act_dim
    padded = np.full((rows, policy.obs_dim), np.nan, np.float32)
    padded[OUT_OFF : OUT_OFF + n] = obs
    actions = device.upload(np.full(rows * A, SENTINEL))
    logp = device.upload(np.full(rows, SENTINEL))
    values = device.upload(np.full(rows, SENTINEL))
    policy.act(device.upload(padded), n, actions, logp, values, OUT_OFF, seed, stream, step,
               iteration, greedy)
    a = device.read(actions, rows * A).reshape(rows, A)
    lp, v = device.read(logp, rows), device.read(values, rows)
    inside = np.zeros(rows, bool)
    inside[OUT_OFF : OUT_OFF + n] = True
    assert np.all(a[~inside] == SENTINEL), "actions written outside the rows"
    assert np.all(lp[~inside] == SENTINEL) and np.all(v[~inside] == SENTINEL)
    return a[inside], lp[inside], v[inside]


def twin_act(policy, host, obs, seed, stream, step, iteration, greedy=False):
    return ref.policy_act_gaussian(obs, host, policy.layer_table, len(policy.actor.layers),
                                   len(policy.critic.layers), policy.act_id, policy.log_std_off,
                                   seed, stream, step, iteration, int(greedy))


def twin_mean(policy, host, obs):
    return ref.mlp_forward(obs, host, policy.layer_table, 0, len(policy.actor.layers),
                           policy.act_id)[-1]


@pytest.mark.parametrize("net", NETS.keys())
@pytest.mark.parametrize("A", A_DIMS)
@pytest.mark.parametrize("n", [1, 7, 64, pytest.param(129, marks=big)])
def test_sampled_actions_logp_values_match_twin(device, rng, n, A, net):
    policy, host = make_policy(device, rng, 4, A, net, n)
    obs = rng.standard_normal((n, 4)).astype(np.float32)
    counters = (1234, STREAM_ROLLOUT, 5, 17)
    a, logp, values = act(device, policy, obs, *counters)
    a_ref, logp_ref, values_ref = twin_act(policy, host, obs, *counters)
    np.testing.assert_allclose(a, a_ref, **ACT_TOL)
    np.testing.assert_allclose(logp, logp_ref, **ACT_TOL)
    np.testing.assert_allclose(values, values_ref, **ACT_TOL)
    # the stored log-prob is that of the stored (float32) action
    lp_of_a = ref.gaussian_logp(a, twin_mean(policy, host, obs), host[policy.log_std_off :])
    np.testing.assert_allclose(logp, lp_of_a, **ACT_TOL)


@pytest.mark.parametrize("A", A_DIMS)
@pytest.mark.parametrize("n", [1, 7, 64, pytest.param(129, marks=big)])
def test_greedy_action_is_the_mean(device, rng, n, A):
    policy, host = make_policy(device, rng, 4, A, "tanh-64x64", n)
    obs = rng.standard_normal((n, 4)).astype(np.float32)
    a, logp, values = act(device, policy, obs, 99, STREAM_EVAL, 0, 0, greedy=True)
    a_ref, logp_ref, values_ref = twin_act(policy, host, obs, 99, STREAM_EVAL, 0, 0, True)
    np.testing.assert_allclose(a, twin_mean(policy, host, obs), **ACT_TOL)
    np.testing.assert_allclose(a, a_ref, **ACT_TOL)
    # z = 0 exactly: lp = -sum(log_std) - A log(2 pi) / 2 in every row
    lp_at_mean = np.full(n, -host[policy.log_std_off :].sum() - A * ref.HALF_LOG_2PI)
    np.testing.assert_allclose(logp, lp_at_mean, **ACT_TOL)
    np.testing.assert_allclose(logp_ref, lp_at_mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(values, values_ref, **ACT_TOL)


COUNTERS = [  # (seed, stream, step, iteration), including values past 2^31
    (0, STREAM_ROLLOUT, 0, 0),
    (1234, STREAM_ROLLOUT, 5, 17),
    (0xDEADBEEF, STREAM_EVAL, 2**31 + 5, 0xFFFFFFFF),
]


@pytest.mark.parametrize("counters", COUNTERS, ids=lambda c: "-".join(map(str, c)))
def test_kernel_draws_are_the_twins_box_muller(device, rng, counters):
    """Mean 0 and log_std 0 make the action the N(0, 1) draw itself: 64 rows x 9 dimensions
    compare the kernel's Box-Muller lanes and Philox blocks with philox_normal4's."""
    n, A = 64, 9
    policy, _ = make_policy(device, rng, 3, A, ([8], "tanh"), n)
    set_head(policy, np.zeros(A), np.zeros(A))
    a, logp, _ = act(device, policy, rng.standard_normal((n, 3)).astype(np.float32), *counters)
    seed, stream, step, iteration = counters
    eps = np.array([np.concatenate([ref.philox_normal4(seed, stream, r, step, iteration, k)
                                    for k in range(3)])[:A] for r in range(n)])
    np.testing.assert_allclose(a, eps, **EPS_TOL)
    np.testing.assert_allclose(logp, ref.gaussian_logp(eps, 0.0, np.zeros(A)), **ACT_TOL)


def min_pair_distance(m):
    """The smallest max-norm distance between two rows of M."""
    d = np.abs(m[:, None, :] - m[None, :, :]).max(axis=2)
    return d[np.triu_indices(len(m), 1)].min()


@pytest.mark.parametrize("change", ["step", "iteration", "stream", "seed"])
def test_same_counters_same_draws_other_counters_other_draws(device, rng, change):
    n, A = 64, 5
    policy, _ = make_policy(device, rng, 4, A, "relu-7", n)
    obs = rng.standard_normal((n, 4)).astype(np.float32)
    base = dict(seed=42, stream=STREAM_ROLLOUT, step=3, iteration=8)
    first = act(device, policy, obs, **base)
    again = act(device, policy, obs, **base)
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x, y)  # bit-identical, logp and values included
    other = act(device, policy, obs, **{**base, change: base[change] + 1})
    assert np.all(other[0] != first[0])  # continuous draws: every entry changes
    np.testing.assert_array_equal(other[2], first[2])  # values do not depend on the draw
    # every row and every dimension has its own draw (row n, block j / 4, lane j % 4)
    host = policy.flat.numpy().astype(np.float64)
    eps = (first[0] - twin_mean(policy, host, obs)) / np.exp(host[policy.log_std_off :])
    assert min_pair_distance(eps) > 1e-3 and min_pair_distance(eps.T) > 1e-3


@pytest.mark.big
def test_sampler_statistics(device, rng):
    """4096 rows with a fixed mean and log_std (A = 5 spans two Philox blocks): per dimension
    the sample mean, the sample std and every pairwise correlation within 5 standard errors,
    and the mean log-prob equal to minus the entropy."""
    n, A = 4096, 5
    mu = np.array([0.5, -1.0, 2.0, 0.0, 0.25])
    log_std = np.array([-1.0, 0.0, 0.5, -0.5, 0.3])
    policy, _ = make_policy(device, rng, 2, A, ([4], "relu"), n)
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


def test_stored_logp_is_bit_identical_to_the_update(device, rng):
    """policy_act_gaussian and ppo_loss_gaussian share gaussian_lp_term, and the fused forward
    equals linear_forward bit for bit, so the first epoch sees a ratio of exactly 1."""
    n, A = 16, 5
    policy, _ = make_policy(device, rng, 4, A, "tanh-64x64", n)
    obs = rng.standard_normal((n, 4)).astype(np.float32)
    a, logp, values = act(device, policy, obs, 7, STREAM_ROLLOUT, 1, 2)
    greedy, _, _ = act(device, policy, obs, 7, STREAM_ROLLOUT, 1, 2, greedy=True)
    device.write(policy.obs_buffer, obs)
    policy.evaluate(n)
    np.testing.assert_array_equal(device.read(policy.outputs, n * A).reshape(n, A), greedy)
    np.testing.assert_array_equal(device.read(policy.values, n), values)
    stats = device.upload(np.full(NUM_STATS, SENTINEL))
    adv = rng.standard_normal(n).astype(np.float32)
    policy.loss(stats, 0, device.upload(a), device.upload(logp), device.upload(adv),
                device.upload(values), device.upload(values), n, CLIP, False, 0.0, VF, True, 0,
                64)  # 64 > n: most work-items of the loss have no sample
    s = device.read(stats, NUM_STATS)
    assert s[3] == 0.0 and s[5] == 0.0, s  # mean and max approx_kl
    assert s[4] == 0.0, s  # clip fraction
    assert s[6] == 1.0 and s[7] == 1.0, s  # max and min ratio


# -- ppo_loss_gaussian ----------------------------------------------------------------------
def loss_inputs(rng, M, A):
    """float32-representable inputs (as float64) for ppo_loss_gaussian, in the kernel's order;
    params holds log_std at LOG_STD_OFF between NaNs."""
    mean = f32_64(rng.standard_normal((M, A)))
    log_std = f32_64(rng.uniform(-1.0, 0.5, A))
    actions = f32_64(mean + np.exp(log_std) * rng.standard_normal((M, A)))
    params = np.full(LOG_STD_OFF + A + PAD, np.nan)
    params[LOG_STD_OFF : LOG_STD_OFF + A] = log_std
    lp = ref.gaussian_logp(actions, mean, log_std)
    old_logp = lp + rng.normal(0, 0.3, M)  # about half the ratios fall outside [0.8, 1.2]
    for bound in (np.log1p(CLIP), np.log1p(-CLIP)):
        near = np.abs((lp - old_logp) - bound) < 1e-3
        old_logp[near] -= 2e-3
    values = on_grid(rng.standard_normal(M))
    old_values = on_grid(values + rng.normal(0, 0.25, M))  # about 40% clipped
    return dict(mean=mean, values=values, params=params, actions=actions,
                old_logp=f32_64(old_logp), advantages=f32_64(rng.normal(0.3, 1.5, M)),
                returns=f32_64(rng.standard_normal(M)), old_values=old_values)


def run_kernel(device, inp, clip_vloss, ent_coef, norm_adv, pg_mode=0, row=2, rows=4, local=L):
    """ppo_loss_gaussian into sentinel-filled buffers; returns (dmean, dvalues, dlog_std,
    stats row) after checking that nothing else was written."""
    M, A = inp["mean"].shape

    def up(a):
        return device.upload(np.ascontiguousarray(a, np.float32))

    dm = up(np.full(M * A + PAD, SENTINEL))
    dv = up(np.full(M + PAD, SENTINEL))
    dls = up(np.full(M * A + PAD, SENTINEL))
    stats = up(np.full(rows * NUM_STATS, SENTINEL))
    device.launch("ppo_loss_gaussian", (local,), (local,), dm, dv, dls, stats, row,
                  up(inp["mean"]), up(inp["values"]), up(inp["params"]), LOG_STD_OFF,
                  up(inp["actions"]), up(inp["old_logp"]), up(inp["advantages"]),
                  up(inp["returns"]), up(inp["old_values"]), M, A, CLIP, int(clip_vloss),
                  ent_coef, VF, int(norm_adv), pg_mode,
                  cl.LocalMemory(4 * NUM_STATS * local))
    dm, dv = device.read(dm, M * A + PAD), device.read(dv, M + PAD)
    dls = device.read(dls, M * A + PAD)
    st = device.read(stats, rows * NUM_STATS).reshape(rows, NUM_STATS)
    assert np.all(dm[M * A :] == SENTINEL) and np.all(dls[M * A :] == SENTINEL)
    assert np.all(dv[M:] == SENTINEL)
    assert np.all(np.delete(st, row, axis=0) == SENTINEL), "stats written outside `row`"
    return dm[: M * A].reshape(M, A), dv[:M], dls[: M * A].reshape(M, A), st[row]


def run_twin(inp, clip_vloss, ent_coef, norm_adv, pg_mode=0):
    return ref.ppo_loss_gaussian(inp["mean"], inp["values"], inp["params"], LOG_STD_OFF,
                                 inp["actions"], inp["old_logp"], inp["advantages"],
                                 inp["returns"], inp["old_values"], CLIP, int(clip_vloss),
                                 ent_coef, VF, int(norm_adv), pg_mode)


def check_against_twin(got, want):
    dmean, dvalues, dlog_std, stats = got
    _, ref_dmean, ref_dvalues, ref_dlog_std, ref_stats = want
    np.testing.assert_allclose(dmean, ref_dmean, **GRAD_TOL)
    np.testing.assert_allclose(dvalues, ref_dvalues, **GRAD_TOL)
    np.testing.assert_allclose(dlog_std, ref_dlog_std, **GRAD_TOL)
    np.testing.assert_allclose(stats, ref_stats, **STATS_TOL)


LOSS_SIZES = [(1, 1), (1, 3), (7, 1), (7, 3), (64, 1), (64, 3),
              pytest.param((300, 1), marks=big), pytest.param((300, 3), marks=big)]  # (M, A)


@pytest.mark.parametrize("pg_mode", [0, 1], ids=["ppo", "a2c"])
@pytest.mark.parametrize("ent_coef", [0.0, 0.01])
@pytest.mark.parametrize("clip_vloss", [False, True], ids=["vclip_off", "vclip_on"])
@pytest.mark.parametrize("norm_adv", [False, True], ids=["norm_off", "norm_on"])
@pytest.mark.parametrize("size", LOSS_SIZES, ids=lambda s: "M%d-A%d" % s)
def test_ppo_loss_gaussian_matches_twin(device, rng, size, norm_adv, clip_vloss, ent_coef,
                                        pg_mode):
    inp = loss_inputs(rng, *size)
    check_against_twin(run_kernel(device, inp, clip_vloss, ent_coef, norm_adv, pg_mode),
                       run_twin(inp, clip_vloss, ent_coef, norm_adv, pg_mode))


@pytest.mark.parametrize("local", [1, 8, 64])
def test_ppo_loss_gaussian_any_power_of_two_work_group(device, rng, local):
    """M = 37 > local for 1 and 8: work-items stride over the samples (also on Oclgrind)."""
    inp = loss_inputs(rng, 37, 3)
    check_against_twin(run_kernel(device, inp, True, 0.01, True, row=0, rows=1, local=local),
                       run_twin(inp, True, 0.01, True))


def test_loss_inputs_exercise_every_branch(rng):
    inp = loss_inputs(rng, 300, 3)
    stats = run_twin(inp, True, 0.01, True)[4]
    assert 0.2 < stats[4] < 0.8  # clip fraction
    clipped_v = np.abs(inp["values"] - inp["old_values"]) > CLIP
    assert 0.2 < clipped_v.mean() < 0.8


@pytest.mark.parametrize("pg_mode", [0, 1], ids=["ppo", "a2c"])
@pytest.mark.parametrize("ent_coef", [0.0, 0.01])
@pytest.mark.parametrize("clip_vloss", [False, True], ids=["vclip_off", "vclip_on"])
@pytest.mark.parametrize("norm_adv", [False, True], ids=["norm_off", "norm_on"])
@pytest.mark.parametrize("size", [(1, 1), (1, 3), (7, 3)], ids=lambda s: "M%d-A%d" % s)
def test_twin_gradients_are_the_derivative(rng, size, norm_adv, clip_vloss, ent_coef, pg_mode):
    """dmean, dvalues and the column sums of dlog_std (d loss / d log_std through params)."""
    inp = loss_inputs(rng, *size)
    _, dmean, dvalues, dlog_std, _ = run_twin(inp, clip_vloss, ent_coef, norm_adv, pg_mode)

    def fd(key, index):
        def loss(sign):
            x = inp[key].copy()
            x[index] += sign * FD_H
            return run_twin({**inp, key: x}, clip_vloss, ent_coef, norm_adv, pg_mode)[0]

        return (loss(1) - loss(-1)) / (2 * FD_H)

    M, A = dmean.shape
    fd_mean = np.array([[fd("mean", (b, j)) for j in range(A)] for b in range(M)])
    fd_values = np.array([fd("values", b) for b in range(M)])
    fd_log_std = np.array([fd("params", LOG_STD_OFF + j) for j in range(A)])
    np.testing.assert_allclose(dmean, fd_mean, **FD_TOL)
    np.testing.assert_allclose(dvalues, fd_values, **FD_TOL)
    np.testing.assert_allclose(dlog_std.sum(axis=0), fd_log_std, **FD_TOL)
    np.testing.assert_allclose(ref.column_sum(dlog_std), fd_log_std, **FD_TOL)


# -- column_sum -----------------------------------------------------------------------------
# rows is a loop inside each work-item, not a work-item count: 300 rows stay on Oclgrind.
@pytest.mark.parametrize("cols", [1, 3, 9])
@pytest.mark.parametrize("rows", [1, 7, 300])
def test_column_sum_matches_twin(device, rng, rows, cols):
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    out_off = 5
    out = device.upload(np.full(out_off + cols + PAD, SENTINEL))
    device.launch("column_sum", (cols,), None, out, out_off, device.upload(x), rows, cols)
    got = device.read(out, out_off + cols + PAD)
    assert np.all(got[:out_off] == SENTINEL) and np.all(got[out_off + cols :] == SENTINEL)
    got = got[out_off : out_off + cols]
    np.testing.assert_array_equal(got, np.add.accumulate(x, axis=0, dtype=np.float32)[-1])
    want = ref.column_sum(x)
    bound = max(rows - 1, 1) * 2.0**-24 * np.abs(x.astype(np.float64)).sum(axis=0)
    assert np.all(np.abs(got - want) <= bound)


# -- the whole network: evaluate + ppo_loss_gaussian + backward (incl. column_sum) ----------
@pytest.mark.parametrize("cfg", [dict(clip_vloss=1, ent_coef=0.01, norm_adv=1, pg_mode=0),
                                 dict(clip_vloss=0, ent_coef=0.0, norm_adv=0, pg_mode=0),
                                 dict(clip_vloss=0, ent_coef=0.01, norm_adv=0, pg_mode=1)],
                         ids=["all_on", "all_off", "a2c"])
def test_network_gradient(device, rng, cfg):
    """max_batch 10 > M = 7, with NaN in the unused rows of d_log_std and in every gradient
    slot beforehand: backward must overwrite every gradient, log_std's included, and sum only
    the batch's rows."""
    M, A, obs_dim, max_batch = 7, 3, 4, 10
    policy, host = make_policy(device, rng, obs_dim, A, ([5, 6], "tanh"), max_batch)
    table, n_a, n_c, act_id = policy.layer_table, len(policy.actor.layers), len(
        policy.critic.layers), policy.act_id
    off = policy.log_std_off
    x = rng.standard_normal((M, obs_dim)).astype(np.float32)
    mean = ref.mlp_forward(x, host, table, 0, n_a, act_id)[-1]
    actions = (mean + np.exp(host[off:]) * rng.standard_normal((M, A))).astype(np.float32)
    lp = ref.gaussian_logp(actions, mean, host[off:])
    old_logp = lp + rng.normal(0, 0.3, M)
    for bound in (np.log1p(CLIP), np.log1p(-CLIP)):
        old_logp[np.abs((lp - old_logp) - bound) < 1e-3] -= 2e-3
    old_logp = old_logp.astype(np.float32)
    advantages = rng.standard_normal(M).astype(np.float32)
    returns = rng.standard_normal(M).astype(np.float32)
    v0 = ref.mlp_forward(x, host, table, n_a, n_c, act_id)[-1][:, 0]
    old_values = (v0 + np.where(np.arange(M) % 2, 0.0, 0.5)).astype(np.float32)
    args = (actions, old_logp, advantages, returns, old_values)
    coefs = (CLIP, cfg["clip_vloss"], cfg["ent_coef"], VF, cfg["norm_adv"], cfg["pg_mode"])

    # device
    device.write(policy.obs_buffer, x)
    device.write(policy.d_log_std, np.full(max_batch * A, np.nan, np.float32))
    device.write(policy.flat.grads, np.full(policy.flat.n, np.nan, np.float32))
    stats = device.upload(np.full(NUM_STATS, SENTINEL))
    policy.evaluate(M)
    policy.loss(stats, 0, *(device.upload(a) for a in args), M, CLIP, bool(cfg["clip_vloss"]),
                cfg["ent_coef"], VF, bool(cfg["norm_adv"]), cfg["pg_mode"], L)
    policy.backward(M)
    g_dev = policy.flat.grad_numpy()
    assert np.all(np.isfinite(g_dev))

    # reference composition and its finite differences
    def composed(params):
        a_acts = ref.mlp_forward(x, params, table, 0, n_a, act_id)
        c_acts = ref.mlp_forward(x, params, table, n_a, n_c, act_id)
        return a_acts, c_acts, ref.ppo_loss_gaussian(
            a_acts[-1], c_acts[-1][:, 0], params, off, *(a.astype(np.float64) for a in args),
            *coefs)

    a_acts, c_acts, (_, dmean, dvalues, dlog_std, ref_stats) = composed(host)
    g_ref = (ref.mlp_backward(dmean, a_acts, host, table, 0, n_a, act_id)
             + ref.mlp_backward(dvalues[:, None], c_acts, host, table, n_a, n_c, act_id))
    g_ref[off:] = ref.column_sum(dlog_std)
    g_fd = np.zeros_like(host)
    for i in range(len(host)):
        e = np.zeros_like(host)
        e[i] = FD_H
        g_fd[i] = (composed(host + e)[2][0] - composed(host - e)[2][0]) / (2 * FD_H)

    scale = np.abs(g_ref).max()
    assert scale > 1e-2 and np.abs(g_ref[off:]).max() > 1e-3
    np.testing.assert_allclose(g_ref, g_fd, rtol=1e-6, atol=1e-8 * scale)
    np.testing.assert_allclose(g_dev, g_ref, rtol=1e-4, atol=1e-6 * scale)
    # log_std's slot, written by column_sum (part of the line above, named for the report)
    np.testing.assert_allclose(g_dev[off:], g_fd[off:], rtol=1e-4, atol=1e-6 * scale)
    np.testing.assert_allclose(device.read(stats, NUM_STATS), ref_stats, **STATS_TOL)


# -- ActorCritic with a Box space -----------------------------------------------------------
def test_env_actions_clip_to_the_box_and_leave_stored_actions_alone(device, rng):
    """A (2, 2) Box with uneven bounds and a mean far outside them: the env gets clipped
    actions; the stored actions and log-probs stay those of the unclipped sample."""
    n, A = 7, 4
    box = gym.spaces.Box(np.array([[-1.0, -2.0], [0.5, -3.0]], np.float32),
                         np.array([[1.0, 2.0], [3.0, -1.0]], np.float32))
    policy, _ = make_policy(device, rng, 3, A, ([8], "tanh"), n, box=box)
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
    policy = ActorCritic(device, 3, gym.spaces.Box(-1.0, 1.0, (5,), np.float32), [8], "tanh",
                         seed=0, max_batch=4)
    np.testing.assert_array_equal(policy.std(), np.ones(5))  # log_std starts at 0
    np.testing.assert_array_equal(policy.flat.numpy()[policy.log_std_off :], np.zeros(5))
    log_std = rng.uniform(-1, 1, 5).astype(np.float32)
    set_head(policy, np.zeros(5), log_std)
    np.testing.assert_allclose(policy.std(), np.exp(log_std.astype(np.float64)),
                               rtol=1e-6)
