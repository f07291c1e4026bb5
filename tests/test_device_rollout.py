"""kernels/device_rollout.cl (issue 11): the rollout in one launch against its parts.

* The network and the draws: every stored action, log-prob and value equals, bit for bit, what
  the tested policy_act / policy_act_gaussian kernels give on the stored observations with the
  same Philox counters (so the update recomputes the same log-probs).
* The envs: the stored observations, rewards, end codes and episode log equal, bit for bit, the
  numpy twins (rlcl/reference_envs.py) stepped with the stored actions, autoreset included
  (Philox counter (env, episode)); a time-limit end stores V(final obs) for the bootstrap.
* Normalisation: the running statistics equal numpy's mean and variance of every raw
  observation the envs produced (float32 merges: rtol 1e-4).
Training through it (determinism, kill and resume, greedy evaluation on gymnasium's env) is
tested by the shipped CartPole config, which uses it (test_resume.py, test_regression.py).
"""

import dataclasses

import numpy as np
import pytest

from rlcl import reference_envs as ref_envs
from rlcl.device_envs import DEVICE_ENVS
from rlcl.device_rollout import DeviceEnvs, DeviceRollout
from rlcl.policy import STREAM_ENV_RESET, STREAM_ROLLOUT, ActorCritic

N, T, SEED, ITERATION, LIMIT = 7, 33, 12345, 3, 20


def rollout_once(device, env_id, norm_obs=False, limit=LIMIT, norm_reward=False, hidden=(8,)):
    envs = DeviceEnvs(device, env_id, N, norm_obs, norm_reward, 0.99)
    envs.spec = dataclasses.replace(envs.spec, max_episode_steps=limit)  # ends inside T
    policy = ActorCritic(device, envs.spec.obs_dim, envs.single_action_space, list(hidden), "tanh",
                         seed=1, max_batch=(T + 1) * N)
    rollout = DeviceRollout(device, policy, envs, T, N, T * N, 1)
    envs.reset(SEED)
    _, finished = rollout.collect(envs, None, policy, SEED, ITERATION, global_step=100)
    return envs, policy, rollout, finished


def read(device, rollout, policy):
    D, W = rollout.obs_dim, policy.act_dim
    dtype = np.float32 if policy.continuous else np.int32
    return {"obs": device.read(rollout.obs, (T + 1) * N * D).reshape(T + 1, N, D),
            "actions": device.read(rollout.actions, T * N * W, dtype).reshape(T, N, W),
            "logp": device.read(rollout.logp, T * N).reshape(T, N),
            "values": device.read(rollout.values, (T + 1) * N).reshape(T + 1, N),
            "rewards": device.read(rollout.rewards, T * N).reshape(T, N),
            "ends": device.read(rollout.ends, T * N, np.int32).reshape(T, N),
            "trunc": device.read(rollout.trunc_values, T * N).reshape(T, N)}


def act(device, policy, obs_rows, step):
    """policy_act on N observation rows: (actions, logp, values)."""
    dtype = np.float32 if policy.continuous else np.int32
    obs = device.upload(np.ascontiguousarray(obs_rows, np.float32))
    actions, logp, values = (device.empty(N * policy.act_dim, np.int32), device.empty(N),
                             device.empty(N))
    policy.act(obs, N, actions, logp, values, 0, SEED, STREAM_ROLLOUT, step, ITERATION)
    return (device.read(actions, N * policy.act_dim, dtype).reshape(N, -1),
            device.read(logp, N), device.read(values, N))


def replay(e, actions, continuous):
    """The env twins stepped with the stored ACTIONS, autoreset included: per step t yields
    (raw obs before, rewards, end codes, final raw obs, ended episodes' (return, length))."""
    _, state = ref_envs.env_reset(e.env_id, N, SEED, STREAM_ENV_RESET, 0)
    steps, episodes = np.zeros(N, np.int64), np.zeros(N, np.int64)
    ep_ret, ep_len = np.zeros(N, np.float32), np.zeros(N, np.int64)
    for t in range(T + 1):
        before = ref_envs.env_obs(e.env_id, state)
        if t == T:
            yield before, None, None, None, []
            return
        a = actions[t].ravel() if continuous else actions[t][:, 0]
        final, rewards, term, trunc, state, steps = ref_envs.env_step(e.env_id, state, steps, a,
                                                                      e.max_episode_steps)
        ends = np.where(term, 1, np.where(trunc, 2, 0))
        ep_ret += rewards
        ep_len += 1
        done = []
        for n in np.flatnonzero(ends):
            done.append((float(ep_ret[n]), int(ep_len[n])))
            ep_ret[n], ep_len[n], steps[n] = 0, 0, 0
            episodes[n] += 1
            state[n] = ref_envs.env_reset(e.env_id, N, SEED, STREAM_ENV_RESET, episodes[n])[1][n]
        yield before, rewards, ends, final, done


# (20, 7): wide, 4-wide and scalar outputs; (76, 7): four and two wide tiles per pass too
@pytest.mark.parametrize("hidden", [(8,), (20, 7), (76, 7)])
@pytest.mark.parametrize("env_id", list(DEVICE_ENVS))
def test_rollout_matches_policy_act_and_env_twins(device, env_id, hidden):
    envs, policy, rollout, finished = rollout_once(device, env_id, hidden=hidden)
    got, log = read(device, rollout, policy), []
    for t, (raw, rewards, ends, final, done) in enumerate(
            replay(envs.spec, read(device, rollout, policy)["actions"], policy.continuous)):
        np.testing.assert_array_equal(got["obs"][t], raw, f"t={t}")
        actions, logp, values = act(device, policy, got["obs"][t], t)
        np.testing.assert_array_equal(got["values"][t], values, f"t={t}")
        if t == T:
            break
        np.testing.assert_array_equal(got["actions"][t], actions, f"t={t}")
        np.testing.assert_array_equal(got["logp"][t], logp)
        np.testing.assert_array_equal(got["rewards"][t], rewards)
        np.testing.assert_array_equal(got["ends"][t], ends)
        if (ends == 2).any():  # V(final obs), as policy_act computes it
            final_values = act(device, policy, final, t)[2]
            np.testing.assert_array_equal(got["trunc"][t][ends == 2], final_values[ends == 2])
        log += [(100 + (t + 1) * N, ret, length) for ret, length in done]
    assert finished == log and len(log) >= N  # LIMIT 20 < T: every env ended at least once


def test_observation_statistics_merge_every_raw_observation(device):
    """norm_obs: obs_rms ends as the mean and variance of the N reset observations and the N
    after each step (autoreset ones included), as gymnasium's RunningMeanStd (prior count
    1e-4) merges them; the last stored row is normalised with those statistics."""
    envs, policy, rollout, _ = rollout_once(device, "Pendulum-v1", norm_obs=True, limit=10)
    got = read(device, rollout, policy)
    raws = [raw for raw, *_ in replay(envs.spec, got["actions"], policy.continuous)]
    rows = np.concatenate(raws).astype(np.float64)
    stats = envs.normalization_state()["obs"]
    assert stats["count"] == pytest.approx(len(rows) + 1e-4, rel=1e-6)
    np.testing.assert_allclose(stats["mean"], rows.mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats["var"], rows.var(axis=0), rtol=1e-4)
    want = np.clip((raws[-1] - stats["mean"]) / np.sqrt(np.asarray(stats["var"]) + 1e-8), -10, 10)
    np.testing.assert_allclose(got["obs"][T], want, rtol=1e-4, atol=1e-5)


def test_reward_scaling_follows_sb3_vecnormalize(device):
    """norm_reward, SB3's rule as rlcl/envs.py's NormalizeReward: per env ret = 0.99 ret + r,
    merged over the envs each step, the reward divided by sqrt(Var(every ret so far) + 1e-8)
    and clipped to +-10, ret reset at every end; the episode log keeps the raw rewards."""
    envs, policy, rollout, finished = rollout_once(device, "Pendulum-v1", limit=10,
                                                   norm_reward=True)
    got = read(device, rollout, policy)
    ret, seen, raw_returns = np.zeros(N), [], []
    for t, (_, rewards, ends, _, done) in enumerate(
            replay(envs.spec, got["actions"], policy.continuous)):
        if t == T:
            break
        ret = 0.99 * ret + rewards
        seen.extend(ret)
        want = np.clip(rewards / np.sqrt(np.var(seen) + 1e-8), -10, 10)  # prior weighs 1e-4
        np.testing.assert_allclose(got["rewards"][t], want, rtol=1e-3, err_msg=f"t={t}")
        ret[ends != 0] = 0.0
        raw_returns += [r for r, _ in done]
    assert [r for _, r, _ in finished] == pytest.approx(raw_returns, rel=1e-6)
    stats = envs.normalization_state()["return"]
    assert stats["var"] == pytest.approx(np.var(seen), rel=1e-3)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_envs_per_work_item_change_no_bit(device, monkeypatch, env_id):
    """Device.rollout_items: a CPU gives a work-item several envs, four at a time through the
    networks (forward_env4), a GPU one. One env an item, three (7 = 3 + 3 + 1: the statistics
    merged across items) and the device's choice store the same bits, normalisation on."""
    outcomes = []
    for per_item in (1, 3, None):
        if per_item:
            monkeypatch.setattr(device, "rollout_items", lambda n, k=per_item: (k, -(-n // k)))
        envs, policy, rollout, finished = rollout_once(device, env_id, norm_obs=True,
                                                       norm_reward=True, hidden=(20, 7))
        outcomes.append((read(device, rollout, policy), envs.normalization_state(), finished,
                         rollout.items))
        monkeypatch.undo()
    assert [items for *_, items in outcomes[:2]] == [N, 3]
    for got, stats, finished, _ in outcomes[1:]:
        for name, want in outcomes[0][0].items():
            np.testing.assert_array_equal(got[name], want, name)
        for kind in ("obs", "return"):
            for key, want in outcomes[0][1][kind].items():
                np.testing.assert_array_equal(stats[kind][key], want, f"{kind} {key}")
        assert finished == outcomes[0][2]


def test_device_backend_refuses_other_envs_and_too_many_envs(device):
    from rlcl.config import build_config
    from rlcl.errors import ConfigError

    with pytest.raises(ConfigError, match="runs CartPole-v1, Acrobot-v1"):
        build_config({"env_id": "LunarLander-v3", "env_backend": "device"})
    with pytest.raises(ConfigError, match="at most"):
        DeviceEnvs(device, "CartPole-v1", device.max_group + 1, False, False,
                   0.99)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_stored_actor_outputs_equal_the_update_forward(device, env_id):
    """rollout.outputs (the "before" logits of smooth/policy_churn) are ac_forward's on the
    stored observations, bit for bit, so the churn needs no forward pass of its own."""
    envs, policy, rollout, _ = rollout_once(device, env_id, hidden=(20, 7))
    A, B = policy.n_outputs, T * N
    device.copy(policy.obs_buffer, rollout.obs, B * policy.obs_dim)
    policy.evaluate(B)
    np.testing.assert_array_equal(device.read(rollout.outputs, B * A),
                                  device.read(policy.outputs, B * A))
