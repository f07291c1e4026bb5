"""kernels/policy.cl policy_act (fused actor + critic forward and sampling) against
reference.policy_act, plus the sampler's randomness: Philox4x32-10 known answers, bit-exact
agreement of kernel and twin uniforms, action frequencies, and determinism.

Outputs go to rows [out_off, out_off + N) of buffers with sentinels around them, and the
observation rows before out_off are NaN, so a wrong row offset is caught.

Tolerances (float32 kernel vs float64 twin on the same float32 parameters):
* values and log-probs: |err| <= 1e-5 + 1e-4 * |ref| (a few layers of O(1) float32 sums).
* sampled actions: exactly equal, except on rows whose uniform lies within BOUNDARY = 1e-5
  of a CDF boundary of the float64 softmax (there float32 rounding may pick the neighbour).
* greedy actions: the first argmax, except where the top two logits are within BOUNDARY.
* action frequencies: each count within 5 binomial standard deviations of n * p.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pyopencl as cl
import pytest

from rlcl import reference as ref
from rlcl.policy import STREAM_EVAL, STREAM_ROLLOUT, ActorCritic

TOL = dict(rtol=1e-4, atol=1e-5)
BOUNDARY = 1e-5
SENTINEL = np.float32(-7.25)
OUT_OFF = 3  # rows before the outputs
PAD = 4  # sentinel rows after them

big = pytest.mark.big
NETS = {"tanh-64x64": ([64, 64], "tanh"), "relu-7": ([7], "relu")}


def make_policy(device, rng, obs_dim, n_actions, net, n, noise=0.3):
    """An ActorCritic whose parameters are perturbed so the output layers matter; returns it
    with its float32 parameters as float64."""
    hidden, activation = NETS[net] if isinstance(net, str) else net
    policy = ActorCritic(device, obs_dim, gym.spaces.Discrete(n_actions), hidden, activation, seed=0, max_batch=n)
    host = policy.flat.numpy().astype(np.float64) + rng.normal(0, noise, policy.flat.n)
    policy.flat.load(host)
    return policy, policy.flat.numpy().astype(np.float64)


def act(device, policy, obs, seed, stream, step, iteration, greedy=False):
    """Run policy_act on OBS at row offset OUT_OFF; check nothing outside the rows changed."""
    n, rows = len(obs), OUT_OFF + len(obs) + PAD
    padded = np.full((rows, policy.obs_dim), np.nan, np.float32)
    padded[OUT_OFF : OUT_OFF + n] = obs
    actions = device.upload(np.full(rows, -3, np.int32))
    logp = device.upload(np.full(rows, SENTINEL))
    values = device.upload(np.full(rows, SENTINEL))
    policy.act(device.upload(padded), n, actions, logp, values, OUT_OFF, seed, stream, step,
               iteration, greedy)
    out = [device.read(actions, rows, np.int32), device.read(logp, rows), device.read(values, rows)]
    inside = np.zeros(rows, bool)
    inside[OUT_OFF : OUT_OFF + n] = True
    assert np.all(out[0][~inside] == -3)
    assert np.all(out[1][~inside] == SENTINEL) and np.all(out[2][~inside] == SENTINEL)
    return [o[inside] for o in out]


def twin_log_softmax(policy, host, obs):
    n_actor = len(policy.actor.layers)
    logits = ref.mlp_forward(obs, host, policy.layer_table, 0, n_actor, policy.act_id)[-1]
    z = logits - logits.max(axis=1, keepdims=True)
    return logits, z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def twin_act(policy, host, obs, seed, stream, step, iteration, greedy):
    return ref.policy_act(obs, host, policy.layer_table, len(policy.actor.layers),
                          len(policy.critic.layers), policy.act_id, seed, stream, step,
                          iteration, int(greedy))


def uniforms(seed, stream, step, iteration, n):
    return np.array([ref.philox_uniform(seed, stream, k, step, iteration) for k in range(n)])


# -- kernel vs twin -------------------------------------------------------------------------
@pytest.mark.parametrize("net", NETS.keys())
@pytest.mark.parametrize("n_actions", [1, 2, 3, 7])
@pytest.mark.parametrize("n", [1, 7, 64, pytest.param(129, marks=big)])
def test_sampled_actions_logp_values_match_twin(device, rng, n, n_actions, net):
    policy, host = make_policy(device, rng, 4, n_actions, net, n)
    obs = rng.standard_normal((n, 4)).astype(np.float32)
    seed, stream, step, iteration = 1234, STREAM_ROLLOUT, 5, 17
    a, logp, values = act(device, policy, obs, seed, stream, step, iteration)
    a_ref, logp_ref, values_ref = twin_act(policy, host, obs, seed, stream, step, iteration, False)

    _, logp_all = twin_log_softmax(policy, host, obs)
    cdf = np.cumsum(np.exp(logp_all), axis=1)[:, :-1]
    u = uniforms(seed, stream, step, iteration, n)
    near = (np.abs(cdf - u[:, None]) < BOUNDARY).any(axis=1)
    assert near.mean() < 0.1  # the exact comparison covers almost every row
    np.testing.assert_array_equal(a[~near], a_ref[~near])
    assert np.all((a >= 0) & (a < n_actions))
    np.testing.assert_allclose(logp, logp_all[np.arange(n), a], **TOL)
    np.testing.assert_allclose(logp[~near], logp_ref[~near], **TOL)
    np.testing.assert_allclose(values, values_ref, **TOL)


@pytest.mark.parametrize("n_actions", [1, 2, 3, 7])
@pytest.mark.parametrize("n", [1, 7, 64, pytest.param(129, marks=big)])
def test_greedy_is_first_argmax(device, rng, n, n_actions):
    policy, host = make_policy(device, rng, 4, n_actions, "tanh-64x64", n)
    obs = rng.standard_normal((n, 4)).astype(np.float32)
    a, logp, values = act(device, policy, obs, 99, STREAM_EVAL, 0, 0, greedy=True)
    a_ref, _, values_ref = twin_act(policy, host, obs, 99, STREAM_EVAL, 0, 0, True)
    logits, logp_all = twin_log_softmax(policy, host, obs)
    top2 = np.sort(logits, axis=1)[:, -2:] if n_actions > 1 else np.zeros((n, 2))
    clear = top2[:, 1] - top2[:, 0] > BOUNDARY if n_actions > 1 else np.ones(n, bool)
    np.testing.assert_array_equal(a[clear], logits.argmax(axis=1)[clear])
    np.testing.assert_array_equal(a[clear], a_ref[clear])
    np.testing.assert_allclose(logp, logp_all[np.arange(n), a], **TOL)
    np.testing.assert_allclose(values, values_ref, **TOL)


def test_stored_logp_and_value_are_bit_identical_to_the_update_forward(device, rng):
    """policy.cl promises the same arithmetic as linear_forward, so the update's recomputed
    log-prob equals the stored one: ppo_loss must see a ratio of exactly 1 and a KL of 0."""
    n, n_actions = 16, 3
    policy, _ = make_policy(device, rng, 4, n_actions, "tanh-64x64", n)
    obs = rng.standard_normal((n, 4)).astype(np.float32)
    a, logp, values = act(device, policy, obs, 7, STREAM_ROLLOUT, 1, 2)
    device.write(policy.obs_buffer, obs)
    policy.evaluate(n)
    np.testing.assert_array_equal(device.read(policy.values, n), values)
    L = 64  # > n: most work-items of the loss have no sample
    stats = device.zeros(8)
    adv = rng.standard_normal(n).astype(np.float32)
    device.launch("ppo_loss", (L,), (L,), device.empty(n * n_actions), device.empty(n), stats, 0,
                  policy.outputs, policy.values, device.upload(a.astype(np.int32)),
                  device.upload(logp), device.upload(adv), device.upload(values),
                  device.upload(values), n, n_actions, 0.2, 0, 0.0, 0.5, 1, 0,
                  cl.LocalMemory(4 * 8 * L))
    s = device.read(stats, 8)
    assert s[3] == 0.0 and s[5] == 0.0  # mean and max approx_kl
    assert s[6] == 1.0 and s[7] == 1.0  # max and min ratio


# -- randomness -----------------------------------------------------------------------------
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


def uniform_policy(device, rng, n_actions, n):
    """Actor output layer all zero: every logit is exactly 0, so the kernel's sampled action
    is exactly floor(u * A) when A is a power of two (u * A and the CDF are exact)."""
    policy, _ = make_policy(device, rng, 3, n_actions, ([8], "tanh"), n)
    w_off, b_off, n_in, n_out = policy.layer_table[len(policy.actor.layers) - 1]
    host = policy.flat.numpy()
    host[w_off : w_off + n_in * n_out] = 0.0
    host[b_off : b_off + n_out] = 0.0
    policy.flat.load(host)
    return policy


COUNTERS = [  # (seed, stream, step, iteration), including values past 2^31
    (0, STREAM_ROLLOUT, 0, 0),
    (1234, STREAM_ROLLOUT, 5, 17),
    (0xDEADBEEF, STREAM_EVAL, 2**31 + 5, 0xFFFFFFFF),
]


@pytest.mark.parametrize("counters", COUNTERS, ids=lambda c: "-".join(map(str, c)))
def test_kernel_uniforms_are_the_twins_philox(device, rng, counters):
    """With A = 64 equal logits the action is the top 6 bits of the 24-bit uniform, so 64 rows
    compare 384 bits of the kernel's Philox stream with the twin's, bit for bit."""
    n, A = 64, 64
    policy = uniform_policy(device, rng, A, n)
    obs = rng.standard_normal((n, 3)).astype(np.float32)
    a, logp, _ = act(device, policy, obs, *counters)
    u = uniforms(*counters, n)
    np.testing.assert_array_equal(a, np.floor(u * A).astype(np.int32))
    np.testing.assert_array_equal(a, twin_act(policy, policy.flat.numpy().astype(np.float64),
                                              obs, *counters, False)[0])
    np.testing.assert_allclose(logp, -np.log(A), rtol=1e-6)
    # the counter order matters: swapping step and iteration gives other draws
    seed, stream, step, iteration = counters
    swapped = np.floor(uniforms(seed, stream, iteration, step, n) * A)
    assert step == iteration or np.mean(a != swapped) > 0.5


@pytest.mark.parametrize("change", ["step", "iteration", "stream", "seed"])
def test_same_counters_same_draws_other_counters_other_draws(device, rng, change):
    n, A = 64, 64
    policy = uniform_policy(device, rng, A, n)
    obs = rng.standard_normal((n, 3)).astype(np.float32)
    base = dict(seed=42, stream=STREAM_ROLLOUT, step=3, iteration=8)
    first = act(device, policy, obs, **base)
    again = act(device, policy, obs, **base)
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x, y)  # bit-identical, logp and values included
    other = act(device, policy, obs, **{**base, change: base[change] + 1})
    assert np.mean(other[0] != first[0]) > 0.5  # 63 of 64 rows differ on average
    np.testing.assert_array_equal(other[2], first[2])  # values do not depend on the draw


def test_determinism_on_a_trained_looking_policy(device, rng):
    n = 16
    policy, _ = make_policy(device, rng, 4, 7, "tanh-64x64", n)
    obs = rng.standard_normal((n, 4)).astype(np.float32)
    first = act(device, policy, obs, 5, STREAM_ROLLOUT, 10, 3)
    again = act(device, policy, obs, 5, STREAM_ROLLOUT, 10, 3)
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x, y)
    assert np.any(act(device, policy, obs, 5, STREAM_ROLLOUT, 11, 3)[0] != first[0])


@pytest.mark.big
@pytest.mark.parametrize("probs", [[0.55, 0.3, 0.15], [0.02, 0.3, 0.1, 0.05, 0.25, 0.08, 0.2]],
                         ids=["A3", "A7"])
def test_action_frequencies_follow_softmax(device, rng, probs):
    """Logits set to log p through the output bias (weights zero), n = 5 x 4096 draws."""
    p = np.asarray(probs)
    A, n, launches = len(p), 4096, 5
    policy, _ = make_policy(device, rng, 2, A, ([4], "relu"), n)
    w_off, b_off, n_in, n_out = policy.layer_table[len(policy.actor.layers) - 1]
    host = policy.flat.numpy()
    host[w_off : w_off + n_in * n_out] = 0.0
    host[b_off : b_off + n_out] = np.log(p)
    policy.flat.load(host)
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
    out = device.upload(np.full(4, -7.0, np.float32))
    device.launch("policy_churn", (L,), (L,), out, 2, device.upload(old), device.upload(new),
                  B, A, cl.LocalMemory(4 * L))
    got = device.read(out, 4)
    want = ref.policy_churn(old, new)
    assert got[0] == -7.0 and got[1] == -7.0  # only its slot is written
    assert got[2] == pytest.approx(want[0], abs=1e-6)
    assert got[3] == pytest.approx(want[1], rel=1e-5)


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
