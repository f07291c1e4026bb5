"""The fused rollout step of both heads, kernels/policy.cl policy_act (Categorical) and
gaussian.cl policy_act_gaussian, against reference.policy_act and policy_act_gaussian, with
determinism and the bit-identity of the stored log-probs with the update's; then the
Categorical sampler's randomness (Philox4x32-10 known answers, bit-exact agreement of kernel
and twin uniforms, action frequencies), policy_churn, and the whole-network kernels of
actor_critic.cl against the per-layer ones. The Gaussian sampler's own checks (Box-Muller,
statistics) are in test_gaussian.py.

Outputs go to rows [out_off, out_off + N) of buffers with sentinels around them, and the
observation rows before out_off are NaN, so a wrong row offset is caught (helpers.act).

Tolerances (float32 kernel vs float64 twin on the same float32 parameters):
* values, log-probs and Box actions: |err| <= 1e-5 + 1e-4 * |ref| (a few MLP layers of float32
  sums, float32 log/cos/sin in Box-Muller, up to 9 log-prob terms).
* Discrete sampled actions: exactly equal, except on rows whose uniform lies within BOUNDARY =
  1e-5 of a CDF boundary of the float64 softmax (there float32 rounding may pick the neighbour).
* Discrete greedy actions: the first argmax, except where the top two logits are within
  BOUNDARY.
* action frequencies: each count within 5 binomial standard deviations of n * p.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pyopencl as cl
import pytest
from helpers import (ACT_TOL, CATEGORICAL, CLIP, COUNTERS, GAUSSIAN, HEADS, NETS, NUM_STATS, VF,
                     act, assert_actions_close, big, guarded, head_cases, make_policy,
                     read_guarded, set_head, twin_act, twin_outputs, uniforms)

from rlcl import reference as ref
from rlcl.arena import agent_words
from rlcl.policy import STREAM_EVAL, STREAM_ROLLOUT, ActorCritic

N_ROWS = [1, 7, 64, pytest.param(129, marks=big)]
# action counts per head; Gaussian: 4 draws per Philox block, so 1, 2 or 3 blocks, partly used
ACTIONS = head_cases({CATEGORICAL: [1, 2, 3, 7], GAUSSIAN: [1, 2, 4, 5, 9]}, "A%d")


def min_pair_distance(m):
    """The smallest max-norm distance between two rows of M."""
    d = np.abs(m[:, None, :] - m[None, :, :]).max(axis=2)
    return d[np.triu_indices(len(m), 1)].min()


# -- kernel vs twin, both heads -------------------------------------------------------------
@pytest.mark.parametrize("net", NETS.keys())
@pytest.mark.parametrize("head, A", ACTIONS)
@pytest.mark.parametrize("n", N_ROWS)
def test_sampled_actions_logp_values_match_twin(device, rng, n, head, A, net):
    policy, host = make_policy(device, rng, 4, head.space(A), net, n)
    obs = rng.standard_normal((n, 4)).astype(np.float32)
    counters = (1234, STREAM_ROLLOUT, 5, 17)
    a, logp, values = act(device, policy, obs, *counters)
    a_ref, logp_ref, values_ref = twin_act(policy, host, obs, *counters)
    out = twin_outputs(policy, host, obs)
    rows = head.sampled_rows(out, counters)
    assert rows.mean() > 0.9  # the comparison with the twin covers almost every row
    assert np.all(head.in_space(a, A))
    assert_actions_close(a[rows], a_ref[rows])
    np.testing.assert_allclose(logp[rows], logp_ref[rows], **ACT_TOL)
    np.testing.assert_allclose(values, values_ref, **ACT_TOL)
    # the stored log-prob is that of the stored action (a float32 one for a Box)
    lp_of_a = head.logp(a, out, host[policy.log_std_off :])
    np.testing.assert_allclose(logp, lp_of_a, **ACT_TOL)


@pytest.mark.parametrize("head, A", ACTIONS)
@pytest.mark.parametrize("n", N_ROWS)
def test_greedy_action_is_the_mode(device, rng, n, head, A):
    """The first argmax of the logits, or the Gaussian mean."""
    policy, host = make_policy(device, rng, 4, head.space(A), "tanh-64x64", n)
    obs = rng.standard_normal((n, 4)).astype(np.float32)
    a, logp, values = act(device, policy, obs, 99, STREAM_EVAL, 0, 0, greedy=True)
    a_ref, logp_ref, values_ref = twin_act(policy, host, obs, 99, STREAM_EVAL, 0, 0, True)
    out = twin_outputs(policy, host, obs)
    rows = head.greedy_rows(out)
    assert_actions_close(a[rows], head.mode(out)[rows])
    assert_actions_close(a[rows], a_ref[rows])
    np.testing.assert_allclose(logp, head.logp(a, out, host[policy.log_std_off :]), **ACT_TOL)
    np.testing.assert_allclose(values, values_ref, **ACT_TOL)
    if head.continuous:  # z = 0 exactly: lp = -sum(log_std) - A log(2 pi) / 2 in every row
        lp_at_mean = np.full(n, -host[policy.log_std_off :].sum() - A * ref.HALF_LOG_2PI)
        np.testing.assert_allclose(logp, lp_at_mean, **ACT_TOL)
        np.testing.assert_allclose(logp_ref, lp_at_mean, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("head, A", head_cases({CATEGORICAL: [3], GAUSSIAN: [5]}, "A%d"))
def test_stored_logp_and_value_are_bit_identical_to_the_update(device, rng, head, A):
    """policy.cl and gaussian.cl promise the same arithmetic as the update's forward (and
    share the log-prob term with the loss), so the update's recomputed log-prob equals the
    stored one: the loss must see a ratio of exactly 1 and a KL of 0."""
    n = 16
    policy, _ = make_policy(device, rng, 4, head.space(A), "tanh-64x64", n)
    obs = rng.standard_normal((n, 4)).astype(np.float32)
    a, logp, values = act(device, policy, obs, 7, STREAM_ROLLOUT, 1, 2)
    greedy, _, _ = act(device, policy, obs, 7, STREAM_ROLLOUT, 1, 2, greedy=True)
    device.write(policy.obs_buffer, obs)
    policy.evaluate(n)
    outputs = device.read(policy.outputs, n * A).reshape(n, A)
    np.testing.assert_array_equal(head.mode(outputs), greedy)
    np.testing.assert_array_equal(device.read(policy.values, n), values)
    stats = guarded(device, NUM_STATS, after=0)
    adv = rng.standard_normal(n).astype(np.float32)
    policy.loss(stats, 0, device.upload(a), device.upload(logp), device.upload(adv),
                device.upload(values), device.upload(values), n, CLIP, False, 0.0, VF, True, 0,
                64)  # 64 > n: most work-items of the loss have no sample
    s = read_guarded(device, stats, NUM_STATS)
    assert s[3] == 0.0 and s[5] == 0.0, s  # mean and max approx_kl
    assert s[4] == 0.0, s  # clip fraction
    assert s[6] == 1.0 and s[7] == 1.0, s  # max and min ratio


@pytest.mark.parametrize("change", ["step", "iteration", "stream", "seed"])
@pytest.mark.parametrize("head", HEADS, ids=str)
def test_same_counters_same_draws_other_counters_other_draws(device, rng, head, change):
    """64 rows; Discrete: 64 equal logits, so an action is 6 bits of its uniform; Box: 5
    dimensions (two Philox blocks) of a perturbed policy."""
    n = 64
    if head.continuous:
        policy, host = make_policy(device, rng, 4, head.space(5), "relu-7", n)
    else:
        policy, _ = make_policy(device, rng, 4, head.space(64), ([8], "tanh"), n)
        set_head(policy, 0.0)
    obs = rng.standard_normal((n, 4)).astype(np.float32)
    base = dict(seed=42, stream=STREAM_ROLLOUT, step=3, iteration=8)
    first = act(device, policy, obs, **base)
    again = act(device, policy, obs, **base)
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x, y)  # bit-identical, logp and values included
    other = act(device, policy, obs, **{**base, change: base[change] + 1})
    np.testing.assert_array_equal(other[2], first[2])  # values do not depend on the draw
    if not head.continuous:
        assert np.mean(other[0] != first[0]) > 0.5  # 63 of 64 rows differ on average
        return
    assert np.all(other[0] != first[0])  # continuous draws: every entry changes
    # every row and every dimension has its own draw (row n, block j / 4, lane j % 4)
    eps = (first[0] - twin_outputs(policy, host, obs)) / np.exp(host[policy.log_std_off :])
    assert min_pair_distance(eps) > 1e-3 and min_pair_distance(eps.T) > 1e-3


@pytest.mark.parametrize("head", HEADS, ids=str)
def test_determinism_on_a_trained_looking_policy(device, rng, head):
    n = 16
    policy, _ = make_policy(device, rng, 4, head.space(7), "tanh-64x64", n)
    obs = rng.standard_normal((n, 4)).astype(np.float32)
    first = act(device, policy, obs, 5, STREAM_ROLLOUT, 10, 3)
    again = act(device, policy, obs, 5, STREAM_ROLLOUT, 10, 3)
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x, y)
    assert np.any(act(device, policy, obs, 5, STREAM_ROLLOUT, 11, 3)[0] != first[0])


@pytest.mark.parametrize("head, A", head_cases({CATEGORICAL: [3], GAUSSIAN: [2, 5]}, "A%d"))
@pytest.mark.parametrize("greedy", [False, True])
def test_population_act_is_each_agents_own(device, rng, head, A, greedy):
    """policy_act_pop / policy_act_gaussian_pop (a population's evaluation, issue 13): agent a's
    rows are policy_act's with agent a's parameters and seed (hp), bit for bit."""
    P, n = 3, 5
    policies = [make_policy(device, rng, 4, head.space(A), "relu-7", n)[0] for _ in range(P)]
    p0, seeds = policies[0], [11, 2**32 - 3, 7]
    stride = p0.flat.n + 5  # the agents' parameters with a gap between them, as in an arena
    params = np.full((P, stride), np.nan, np.float32)
    for a, policy in enumerate(policies):
        params[a, :policy.flat.n] = policy.flat.numpy()
    obs = rng.standard_normal((P, n, 4)).astype(np.float32)
    actions = device.empty(P * n * p0.act_dim, p0.action_dtype)
    logp, values = device.empty(P * n), device.empty(P * n)
    L, local = p0.local_size, device.local(p0.act_local_bytes)
    device.launch("policy_act_gaussian_pop" if p0.continuous else "policy_act_pop",
                  (n * L, P), (L, 1), actions, logp, values, device.upload(obs),
                  device.upload(params), stride, device.upload(agent_words([{"seed": s}
                                                                              for s in seeds])),
                  p0.layers_buf, len(p0.actor.layers), len(p0.critic.layers), p0.act_id,
                  *((p0.log_std_off,) if p0.continuous else ()), n, STREAM_EVAL, 9, 4,
                  int(greedy), local, device.local(p0.act_local_bytes))
    got = (device.read(actions, P * n * p0.act_dim, p0.action_dtype).reshape(P, n, -1),
           device.read(logp, P * n).reshape(P, n), device.read(values, P * n).reshape(P, n))
    for a, policy in enumerate(policies):
        want_a, want_logp, want_values = act(device, policy, obs[a], seeds[a], STREAM_EVAL, 9,
                                             4, greedy)
        assert np.array_equal(got[0][a].ravel(), want_a.ravel())
        assert np.array_equal(got[1][a], want_logp) and np.array_equal(got[2][a], want_values)


# -- the Categorical sampler's randomness ---------------------------------------------------
def test_twin_philox_matches_random123_known_answers():
    """Random123's tests/kat_vectors for philox4x32 with 10 rounds."""
    kat = [
        ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
        ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
        ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
         [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
    ]
    for ctr, key, want in kat:
        assert ref.philox4x32(ctr, key) == want


@pytest.mark.parametrize("counters", COUNTERS, ids=lambda c: "-".join(map(str, c)))
def test_kernel_uniforms_are_the_twins_philox(device, rng, counters):
    """With A = 64 equal logits (all exactly 0) the action is the top 6 bits of the 24-bit
    uniform (u * A and the CDF are exact), so 64 rows compare 384 bits of the kernel's Philox
    stream with the twin's, bit for bit."""
    n, A = 64, 64
    policy, _ = make_policy(device, rng, 3, CATEGORICAL.space(A), ([8], "tanh"), n)
    host = set_head(policy, 0.0)
    obs = rng.standard_normal((n, 3)).astype(np.float32)
    a, logp, _ = act(device, policy, obs, *counters)
    u = uniforms(*counters, n)
    np.testing.assert_array_equal(a, np.floor(u * A).astype(np.int32))
    np.testing.assert_array_equal(a, twin_act(policy, host, obs, *counters)[0])
    np.testing.assert_allclose(logp, -np.log(A), rtol=1e-6)
    # the counter order matters: swapping step and iteration gives other draws
    seed, stream, step, iteration = counters
    swapped = np.floor(uniforms(seed, stream, iteration, step, n) * A)
    assert step == iteration or np.mean(a != swapped) > 0.5


@pytest.mark.big
@pytest.mark.parametrize("probs", [[0.55, 0.3, 0.15], [0.02, 0.3, 0.1, 0.05, 0.25, 0.08, 0.2]],
                         ids=["A3", "A7"])
def test_action_frequencies_follow_softmax(device, rng, probs):
    """Logits set to log p through the output bias (weights zero), n = 5 x 4096 draws."""
    p = np.asarray(probs)
    A, n, launches = len(p), 4096, 5
    policy, _ = make_policy(device, rng, 2, CATEGORICAL.space(A), ([4], "relu"), n)
    set_head(policy, np.log(p))
    obs = rng.standard_normal((n, 2)).astype(np.float32)
    counts = np.zeros(A)
    for step in range(launches):
        counts += np.bincount(act(device, policy, obs, 77, STREAM_ROLLOUT, step, 0)[0],
                              minlength=A)
    total = n * launches
    sigma = np.sqrt(total * p * (1 - p))
    assert np.all(np.abs(counts - total * p) <= 5 * sigma), (counts / total, p)


# -- policy_churn (issue 4) -------------------------------------------------------------------
def test_policy_churn_kernel_matches_twin(device, rng):
    B, A, L = 129, 3, 64
    old = rng.standard_normal((B, A)).astype(np.float32)
    new = (old + rng.normal(0, 0.5, (B, A))).astype(np.float32)
    out = guarded(device, 2, before=2, after=0)
    device.launch("policy_churn", (L,), (L,), out, 2, device.upload(old), device.upload(new),
                  B, A, cl.LocalMemory(4 * L))
    got = read_guarded(device, out, 2, before=2)  # only its slot is written
    want = ref.policy_churn(old, new)
    assert got[0] == pytest.approx(want[0], abs=1e-6)
    assert got[1] == pytest.approx(want[1], rel=1e-5)


# -- actor_critic.cl: whole networks per launch, bit-identical to one launch per layer ----------
@pytest.mark.parametrize("hidden, activation", [([64, 64], "tanh"), ([16, 16], "tanh"),
                                                ([7], "relu"), ([16, 5, 32], "tanh")])
@pytest.mark.parametrize("n", [1, 7, 64])
@pytest.mark.parametrize("space", [gym.spaces.Discrete(3), gym.spaces.Box(-1, 1, (2,))],
                         ids=["discrete", "box"])
def test_whole_network_kernels_match_per_layer_kernels(device, rng, hidden, activation, n,
                                                       space):
    policy = ActorCritic(device, 5, space, hidden, activation, seed=0, max_batch=n + 5)
    policy.flat.load(policy.flat.numpy() + np.float32(rng.normal(0, 0.3, policy.flat.n)))
    obs = rng.standard_normal((n, 5)).astype(np.float32)
    d_out = rng.standard_normal((n, policy.n_outputs)).astype(np.float32)
    d_val = rng.standard_normal(n).astype(np.float32)
    device.write(policy.obs_buffer, obs)
    device.write(policy.d_outputs, d_out)
    device.write(policy.d_values, d_val)
    policy.evaluate(n)
    if policy.continuous:
        device.write(policy.d_log_std, np.zeros(n * policy.act_dim, np.float32))
    policy.backward(n)
    fused_grads = policy.flat.grad_numpy()

    params, grads = policy.flat.params, device.zeros(policy.flat.n)
    for net, (mlp, out, dout) in enumerate(((policy.actor, policy.outputs, d_out),
                                            (policy.critic, policy.values, d_val))):
        acts, scratch = mlp.alloc(device, n), mlp.alloc_grads(device, n)
        device.write(acts[0], obs)
        mlp.forward(device, params, acts, n)
        for k in range(1, len(acts)):
            size = n * mlp.sizes[k]
            got = (device.read(out, size) if k == len(acts) - 1 else
                   device.read(policy.hidden, size, offset=policy.hidden_offsets[net][k - 1][0]))
            np.testing.assert_array_equal(got, device.read(acts[k], size))
        mlp.backward(device, params, grads, acts, device.upload(dout), scratch, n)
    end = policy.critic.end
    np.testing.assert_array_equal(fused_grads[:end], device.read(grads, policy.flat.n)[:end])
    assert np.abs(fused_grads[:end]).max() > 0
    # and against the numpy twins directly (float64 on the same float32 parameters)
    host, table = policy.flat.numpy().astype(np.float64), policy.layer_table
    count, want = len(policy.actor.layers), np.zeros(policy.flat.n)
    for first, dout, outputs in ((0, d_out, policy.outputs), (count, d_val, policy.values)):
        acts = ref.mlp_forward(obs, host, table, first, count, policy.act_id)
        got = device.read(outputs, dout.size).reshape(acts[-1].shape)
        np.testing.assert_allclose(got, acts[-1], rtol=1e-4, atol=1e-5)
        want += ref.mlp_backward(dout.reshape(acts[-1].shape), acts, host, table, first, count,
                                 policy.act_id)
    np.testing.assert_allclose(fused_grads[:end], want[:end], rtol=1e-3, atol=1e-4)
