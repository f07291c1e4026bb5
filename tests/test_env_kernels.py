"""kernels/classic_envs.cl (env_reset, env_step over classic_envs.h) against the numpy twins
(rlcl/reference_envs.py) and against gymnasium 1.4's own envs.

Tolerances:
* kernel vs twin: none. State, observation, reward and both flags are bit-identical: the envs
  use only + - * / fmod and classic_math.h's sin and cos, all reproduced exactly in numpy.
* twin vs gymnasium, one step from the same float32 state (gymnasium computes in float64):
  |twin - gym| <= ATOL[env] + 1e-6 |gym| for every state, observation and reward component.
  Measured maxima over the sampled ranges: CartPole 3e-7, MountainCar 6e-8 (state) and
  4e-6 (MountainCarContinuous' reward of ~100), Pendulum 5e-7 (state) and 4e-6 (reward ~16).
  Acrobot: ATOL grows with the speed fraction f = |dtheta1| / 4 pi + |dtheta2| / 9 pi of the
  state stepped from (measured over 60,000 states: 1.9e-6 for f <= 0.5, 8.6e-5 for f <= 1,
  7e-3 up to f = 2; 2.3e-2 at an edge case with f = 1.86), because rk4's stiff intermediate
  stages at high speeds amplify float32 rounding up to 1e5-fold. Random play stays below
  f = 0.7 and a torque-pumping policy below 1. Angles are compared modulo 2 pi (wrap at +-pi).
* termination: the flags may differ only where gymnasium's next state lies within the same
  tolerance of a termination bound (near_bound); MountainCar's velocity may differ only where
  one side clipped the position to min_position and zeroed it. The edge tests build states
  on both sides of every bound and check exactly that.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.classic_control import acrobot

from helpers import SENTINEL, big

from rlcl import reference_envs as ref
from rlcl.device_envs import DEVICE_ENVS, MAX_OBS_DIM, STATE_DIM
from rlcl.policy import STREAM_ENV_RESET

NAMES = list(DEVICE_ENVS)
F = np.float32
RTOL = 1e-6
ATOL = {"CartPole-v1": 1e-6, "MountainCar-v0": 1e-6, "MountainCarContinuous-v0": 1e-6,
        "Pendulum-v1": 2e-6}
ACROBOT_ATOL = ((0.5, 1e-5), (1.0, 2e-4), (np.inf, 5e-2))  # (speed fraction up to, atol)


# -- helpers --------------------------------------------------------------------------------
def words(name, actions) -> np.ndarray:
    """The 32-bit action words the kernels read: ints for Discrete envs, floats for Box."""
    return np.asarray(actions, np.int32 if DEVICE_ENVS[name].discrete else F).view(np.uint32)


class DeviceEnvs:
    """N device envs of one kind and the buffers env_reset and env_step work on."""

    def __init__(self, device, name, N):
        self.device, self.name, self.N, self.e = device, name, N, DEVICE_ENVS[name]
        self.obs = device.upload(np.full(N * self.e.obs_dim + 4, SENTINEL))
        self.rew, self.term, self.trunc = (device.empty(N), device.empty(N, np.int32),
                                           device.empty(N, np.int32))
        self.state, self.steps = device.zeros(N * STATE_DIM), device.zeros(N, np.int32)

    def read(self):
        """(obs, rewards, terminated, truncated, state, steps) as the kernels left them."""
        dev, N, D = self.device, self.N, self.e.obs_dim
        obs = dev.read(self.obs, N * D + 4)
        assert np.all(obs[N * D:] == SENTINEL), "wrote past the observations"
        return (obs[: N * D].reshape(N, D), dev.read(self.rew, N),
                dev.read(self.term, N, np.int32).astype(bool),
                dev.read(self.trunc, N, np.int32).astype(bool),
                dev.read(self.state, N * STATE_DIM).reshape(N, STATE_DIM),
                dev.read(self.steps, N, np.int32))

    def reset(self, seed, episode):
        """Returns (obs, state) after env_reset."""
        self.device.launch("env_reset", (self.N,), None, self.obs, self.state, self.steps,
                           self.e.env_id, self.e.obs_dim, self.N, seed, STREAM_ENV_RESET,
                           episode)
        obs, _, _, _, state, steps = self.read()
        assert np.all(steps == 0)
        return obs, state

    def step(self, actions, state=None, steps=None):
        """env_step from STATE and STEPS (default: where the envs are); returns read()."""
        if state is not None:
            self.state = self.device.upload(np.asarray(state, F))
            self.steps = self.device.upload(np.asarray(steps, np.int32))
        self.device.launch("env_step", (self.N,), None, self.obs, self.rew, self.term,
                           self.trunc, self.state, self.steps,
                           self.device.upload(words(self.name, actions)), self.e.env_id,
                           self.e.obs_dim, self.e.max_episode_steps, self.N)
        return self.read()


def state_len(name) -> int:
    return 4 if name in ("CartPole-v1", "Acrobot-v1") else 2


def sample(name, rng, N):
    """States over the ranges the envs reach (not just the reset range), any actions; Box
    actions also beyond the bounds, to check the clipping."""
    lows, highs = {
        "CartPole-v1": ([-2.4, -4, -0.21, -4], [2.4, 4, 0.21, 4]),
        "Acrobot-v1": ([-np.pi, -np.pi, -4 * np.pi, -9 * np.pi],
                       [np.pi, np.pi, 4 * np.pi, 9 * np.pi]),
        "MountainCar-v0": ([-1.2, -0.07], [0.6, 0.07]),
        "MountainCarContinuous-v0": ([-1.2, -0.07], [0.6, 0.07]),
        "Pendulum-v1": ([-3 * np.pi, -8], [3 * np.pi, 8]),
    }[name]
    state = np.zeros((N, STATE_DIM), F)
    state[:, : len(lows)] = rng.uniform(lows, highs, (N, len(lows)))
    space = gym.make(name).action_space
    if DEVICE_ENVS[name].discrete:
        return state, rng.integers(0, space.n, N)
    return state, rng.uniform(1.5 * space.low[0], 1.5 * space.high[0], N).astype(F)


def gym_step(name, state, actions):
    """gymnasium's own step from each float32 STATE row (as float64): (next state, obs, reward,
    terminated). Box actions go in clipped to the space, as the host path sends them."""
    env = gym.make(name).unwrapped
    env.reset(seed=0)
    n = state_len(name)
    out_s, out_o = np.zeros((len(state), n)), np.zeros((len(state), DEVICE_ENVS[name].obs_dim))
    out_r, out_t = np.zeros(len(state)), np.zeros(len(state), bool)
    space = env.action_space
    for i, (s, a) in enumerate(zip(state, actions, strict=True)):
        env.state = s[:n].astype(np.float64)
        env.steps_beyond_terminated = None  # CartPole: every step is an episode's (autoreset)
        act = int(a) if DEVICE_ENVS[name].discrete else np.clip([a], space.low, space.high)
        out_o[i], out_r[i], out_t[i], _, _ = env.step(act)
        out_s[i] = np.asarray(env.state, np.float64)
    return out_s, out_o, out_r, out_t


def atol_rows(name, state) -> np.ndarray:
    """The absolute tolerance of each row stepped from STATE (Acrobot's by its speed)."""
    if name != "Acrobot-v1":
        return np.full(len(state), ATOL[name])
    speed = np.abs(state[:, 2]) / (4 * np.pi) + np.abs(state[:, 3]) / (9 * np.pi)
    return np.select([speed <= limit for limit, _ in ACROBOT_ATOL], [t for _, t in ACROBOT_ATOL])


def near_bound(name, s, atol) -> np.ndarray:
    """Rows whose (gymnasium) next state S lies within the state tolerance ATOL (per row) of a
    termination bound."""
    tol = atol + RTOL * 2.4  # RTOL of the largest bound
    if name == "CartPole-v1":
        d = np.minimum(np.abs(np.abs(s[:, 0]) - 2.4),
                       np.abs(np.abs(s[:, 2]) - 12 * 2 * np.pi / 360))
    elif name == "Acrobot-v1":  # the height moves at most 3x as far as the angles
        d, tol = np.abs(-np.cos(s[:, 0]) - np.cos(s[:, 1] + s[:, 0]) - 1.0), 3 * tol
    elif name.startswith("MountainCar"):
        p = ref.MOUNTAIN_CAR if name == "MountainCar-v0" else ref.MOUNTAIN_CAR_CONTINUOUS
        d = np.minimum(np.abs(s[:, 0] - float(p.goal_position)), np.abs(s[:, 1]))
    else:
        d = np.full(len(s), np.inf)  # Pendulum never terminates
    return d <= tol


def check_against_gym(name, state, actions) -> tuple[int, np.ndarray]:
    """Step the twin and gymnasium from STATE; assert the module docstring's tolerances.
    Returns (rows near a termination bound, gymnasium's terminated flags)."""
    e, n = DEVICE_ENVS[name], state_len(name)
    t_obs, t_rew, t_term, _, t_state, _ = ref.env_step(e.env_id, state, np.zeros(len(state)),
                                                       actions, e.max_episode_steps)
    g_state, g_obs, g_rew, g_term = gym_step(name, state, actions)
    atol = atol_rows(name, state)
    diff = t_state[:, :n] - g_state
    if name == "Acrobot-v1":  # the same angle either side of the wrap at +-pi
        diff[:, :2] = (diff[:, :2] + np.pi) % (2 * np.pi) - np.pi
    bad_state = np.abs(diff) > atol[:, None] + RTOL * np.abs(g_state)
    bad_obs = np.abs(t_obs - g_obs) > atol[:, None] + RTOL * np.abs(g_obs)
    bad_rew = np.abs(t_rew - g_rew) > atol + RTOL * np.abs(g_rew)
    near = near_bound(name, g_state, atol)
    flips = t_term != g_term
    assert not np.any(flips & ~near), f"{name}: termination differs away from a bound"
    if name.startswith("MountainCar"):  # min_position clipped on one side only: velocity 0
        p = ref.MOUNTAIN_CAR
        zeroed = (np.abs(g_state[:, 0] - float(p.min_position)) <= atol) & (
            (t_state[:, 1] == 0) | (g_state[:, 1] == 0))
        bad_state[zeroed, 1] = bad_obs[zeroed, 1] = False
    bad_rew &= ~flips  # MountainCarContinuous' +100 goes with the flag
    for what, bad in (("state", bad_state), ("obs", bad_obs), ("reward", bad_rew)):
        rows = np.flatnonzero(bad.reshape(len(state), -1).any(1))
        assert rows.size == 0, f"{name} {what} off at rows {rows[:5]}: {state[rows[:3]]}"
    return int(near.sum()), g_term


# -- the table ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_table_matches_gymnasium(name):
    e, env = DEVICE_ENVS[name], gym.make(name)
    assert e.obs_dim == env.observation_space.shape[0] <= MAX_OBS_DIM
    assert e.max_episode_steps == env.spec.max_episode_steps
    assert e.discrete == isinstance(env.action_space, gym.spaces.Discrete)
    if not e.discrete:
        assert env.action_space.shape == (1,)
    env.reset(seed=0)
    assert len(env.unwrapped.state) == state_len(name) <= STATE_DIM


def test_table_ids():
    assert sorted(e.env_id for e in DEVICE_ENVS.values()) == list(range(len(DEVICE_ENVS)))
    assert len({e.macro for e in DEVICE_ENVS.values()}) == len(DEVICE_ENVS)


def test_sincos_accuracy():
    """classic_sincos against numpy's float64 sin and cos (measured: 1.5 ulp, 7.7e-8)."""
    rng = np.random.default_rng(5)
    for lim, max_ulp, max_abs in ((4.0, 2.0, 1e-7), (1000.0, None, 1e-7)):
        x = rng.uniform(-lim, lim, 200_000).astype(F)
        for mine, exact in ((ref.sin(x), np.sin(x.astype(np.float64))),
                            (ref.cos(x), np.cos(x.astype(np.float64)))):
            err = np.abs(mine - exact)
            assert err.max() <= max_abs
            if max_ulp:
                assert np.max(err / np.spacing(np.abs(exact).astype(F))) <= max_ulp


# -- kernel vs twin -------------------------------------------------------------------------
def check_kernel_is_twin(device, name, state, steps, actions):
    e = DEVICE_ENVS[name]
    got = DeviceEnvs(device, name, len(state)).step(actions, state, steps)
    want = ref.env_step(e.env_id, state, steps, actions, e.max_episode_steps)
    for what, g, w in zip(("obs", "reward", "terminated", "truncated", "state", "steps"), got,
                          want, strict=True):
        np.testing.assert_array_equal(g, w, err_msg=f"{name} {what}")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("N", [1, 7, pytest.param(4096, marks=big)])
def test_step_matches_twin(device, rng, name, N):
    state, actions = sample(name, rng, N)
    steps = rng.integers(0, DEVICE_ENVS[name].max_episode_steps, N)  # some reach the limit
    check_kernel_is_twin(device, name, state, steps, actions)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("N", [1, 7, pytest.param(129, marks=big)])
def test_reset_matches_twin(device, name, N):
    e = DEVICE_ENVS[name]
    obs, state = DeviceEnvs(device, name, N).reset(seed=12345, episode=3)
    want_obs, want_state = ref.env_reset(e.env_id, N, 12345, STREAM_ENV_RESET, 3)
    np.testing.assert_array_equal(state, want_state)
    np.testing.assert_array_equal(obs, want_obs)


# -- twin vs gymnasium ----------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_twin_matches_gymnasium(rng, name):
    state, actions = sample(name, rng, 2000)
    _, g_term = check_against_gym(name, state, actions)
    if name != "Pendulum-v1":  # the samples include terminal transitions
        assert 0 < g_term.sum() < len(g_term)


def _gym_one(name):
    """float64 state row, action -> gymnasium's next state (float64)."""
    env = gym.make(name).unwrapped
    env.reset(seed=0)

    def step(s, a):
        env.state = np.array(s[: state_len(name)], np.float64)
        env.steps_beyond_terminated = None
        env.step(int(a) if DEVICE_ENVS[name].discrete else np.array([a], F))
        return np.asarray(env.state, np.float64)
    return env, step


def _edges(name):
    """(coordinate varied (-1: the action), interval, g(state, action) whose sign changes at
    the bound, base ranges {coordinate: (lo, hi)}, a termination bound?) for every bound."""
    env, nxt = _gym_one(name)
    pi = np.pi
    if name == "CartPole-v1":
        th = 12 * 2 * pi / 360
        base = {1: (-2, 2), 3: (-2, 2)}
        return [(0, (-3, 3), lambda s, a: nxt(s, a)[0] - 2.4, base, True),
                (0, (-3, 3), lambda s, a: nxt(s, a)[0] + 2.4, base, True),
                (2, (-0.3, 0.3), lambda s, a: nxt(s, a)[2] - th, base, True),
                (2, (-0.3, 0.3), lambda s, a: nxt(s, a)[2] + th, base, True)]
    if name == "Acrobot-v1":
        def raw(s, a):  # rk4's result before wrap() and bound()
            return acrobot.rk4(env._dsdt, np.append(s, env.AVAIL_TORQUE[a]), [0, env.dt])

        def height(s, a):
            n = nxt(s, a)
            return -np.cos(n[0]) - np.cos(n[1] + n[0]) - 1.0
        return [(0, (-pi, pi), height, {2: (-2, 2), 3: (-2, 2)}, True),
                (0, (1, pi), lambda s, a: raw(s, a)[0] - pi, {2: (2, 12)}, False),
                (1, (-pi, -1), lambda s, a: raw(s, a)[1] + pi, {3: (-20, -2)}, False),
                (2, (8, 4 * pi), lambda s, a: raw(s, a)[2] - 4 * pi, {}, False),
                (3, (-9 * pi, -20), lambda s, a: raw(s, a)[3] + 9 * pi, {}, False)]
    if name.startswith("MountainCar"):
        p = env

        def v_raw(s, a):  # the velocity before it is clipped
            if name == "MountainCar-v0":
                return s[1] + (a - 1) * p.force + np.cos(3 * s[0]) * -p.gravity
            return s[1] + np.clip(a, -1, 1) * p.power - 0.0025 * np.cos(3 * s[0])

        def v_pre(s, a):
            return np.clip(v_raw(s, a), -p.max_speed, p.max_speed)
        goal = p.goal_position
        return [(0, (0.3, 0.6), lambda s, a: nxt(s, a)[0] - goal, {1: (0.005, 0.07)}, True),
                (1, (-0.01, 0.01), lambda s, a: nxt(s, a)[1], {0: (goal + 0.02, 0.6)}, True),
                (0, (-1.2, -1.0), lambda s, a: s[0] + v_pre(s, a) + 1.2, {1: (-0.07, -0.02)},
                 False),
                (0, (0.4, 0.6), lambda s, a: s[0] + v_pre(s, a) - 0.6, {1: (0.02, 0.07)}, False),
                (1, (0.05, 0.07), lambda s, a: v_raw(s, a) - 0.07, {}, False),
                (1, (-0.07, -0.05), lambda s, a: v_raw(s, a) + 0.07, {}, False)] + (
            [] if name == "MountainCar-v0" else
            [(-1, (0.5, 1.5), lambda s, a: a - 1.0, {}, False),
             (-1, (-1.5, -0.5), lambda s, a: a + 1.0, {}, False)])

    def thdot_pre(s, a):
        return s[1] + (15 * np.sin(s[0]) + 3 * np.clip(a, -2, 2)) * 0.05
    return [(1, (5, 8), lambda s, a: thdot_pre(s, a) - 8, {}, False),
            (1, (-8, -5), lambda s, a: thdot_pre(s, a) + 8, {}, False),
            (0, (2.5, 3.5), lambda s, a: s[0] - pi, {}, False),
            (0, (8.9, 9.9), lambda s, a: s[0] - 3 * pi, {}, False),
            (0, (-3.5, -2.5), lambda s, a: s[0] + pi, {}, False),
            (-1, (1.5, 2.5), lambda s, a: a - 2.0, {}, False),
            (-1, (-2.5, -1.5), lambda s, a: a + 2.0, {}, False)]


def edge_cases(name, rng, bases=6, ulps=6):
    """Float32 inputs within ULPS ulps either side of every bound: for each of BASES random
    states, bisect the varied coordinate to where g > 0 changes, in float64, then take the
    float32 neighbours of that point. Yields (inputs, actions, termination bound?)."""
    for coord, (lo, hi), g, base, terminal in _edges(name):
        states, actions = sample(name, rng, bases)
        for c, (b_lo, b_hi) in base.items():
            states[:, c] = rng.uniform(b_lo, b_hi, bases)
        rows, acts = [], []
        for s, a in zip(states.astype(np.float64), actions, strict=True):
            def at(x, s=s, a=a, coord=coord, g=g):
                if coord < 0:
                    return g(s, x)
                t = s.copy()
                t[coord] = x
                return g(t, a)
            grid = np.linspace(lo, hi, 33)
            above = np.array([at(x) > 0 for x in grid])
            change = np.flatnonzero(above[:-1] != above[1:])
            if change.size == 0:
                continue
            x0, x1 = grid[change[0]], grid[change[0] + 1]
            for _ in range(60):
                mid = 0.5 * (x0 + x1)
                x0, x1 = (mid, x1) if (at(mid) > 0) == above[change[0]] else (x0, mid)
            root = F(x0)
            for k in range(-ulps, ulps + 1):
                x = root
                for _ in range(abs(k)):
                    x = np.nextafter(x, F(np.sign(k) * np.inf))
                rows.append(s.astype(F))
                acts.append(x if coord < 0 else a)
                if coord >= 0:
                    rows[-1][coord] = x
        assert rows, f"{name}: no base state crossed the bound of coordinate {coord}"
        yield np.array(rows, F), np.array(acts), terminal


@pytest.mark.parametrize("name", NAMES)
def test_edges(device, rng, name):
    for state, actions, terminal in edge_cases(name, rng):
        check_kernel_is_twin(device, name, state, np.zeros(len(state)), actions)
        near, g_term = check_against_gym(name, state, actions)
        if terminal:  # the cases straddle the bound, and flags may differ only there
            assert near > 0 and 0 < g_term.sum() < len(g_term)


# -- resets ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_resets_in_gymnasium_bounds(device, name):
    """Resets lie in gymnasium's reset ranges (float32-rounded) and spread over them (the
    twin's table of ranges is checked against gymnasium's own resets); every observation
    lies in the observation space."""
    bounds, n = np.array(ref.RESET_BOUNDS[DEVICE_ENVS[name].macro], np.float64), state_len(name)
    env = gym.make(name)

    def gym_reset(seed):
        env.reset(seed=seed)
        return np.asarray(env.unwrapped.state, np.float64)
    gym_states = np.array([gym_reset(seed) for seed in range(200)])
    ulp = 1e-7  # the table holds float32 ends (float32 pi > pi)
    assert np.all((gym_states >= bounds[:, 0] - ulp) & (gym_states <= bounds[:, 1] + ulp))
    reach = 0.05 * (bounds[:, 1] - bounds[:, 0]) + ulp  # 200 uniform draws come this close
    assert np.all((gym_states.min(0) <= bounds[:, 0] + reach)
                  & (gym_states.max(0) >= bounds[:, 1] - reach))
    N = 2000
    obs, state = DeviceEnvs(device, name, N).reset(seed=7, episode=0)
    assert np.all(state[:, n:] == 0)
    lo, hi = bounds[:, 0].astype(F), bounds[:, 1].astype(F)
    assert np.all((state[:, :n] >= lo) & (state[:, :n] <= hi))
    width = hi - lo
    assert np.all(state[:, :n].min(0) - lo <= 0.01 * width)  # uniform: 2000 draws reach
    assert np.all(hi - state[:, :n].max(0) <= 0.01 * width)  # within 1% of both ends
    assert all(env.observation_space.contains(o) for o in obs)


@pytest.mark.parametrize("name", NAMES)
def test_resets_follow_the_seed(device, name):
    """Same seed, env and episode: the same reset; another env index, episode or seed: a
    different one (the counter is (env, episode), the key (seed, STREAM_ENV_RESET))."""
    envs, n = DeviceEnvs(device, name, 7), state_len(name)

    def reset(seed, episode):
        return envs.reset(seed, episode)[1][:, :n]
    first = reset(1, 0)
    np.testing.assert_array_equal(reset(1, 0), first)
    assert len({row.tobytes() for row in first}) == 7
    for other in (reset(1, 1), reset(2, 0)):
        assert not np.any(np.all(other == first, axis=1))


# -- time limits ----------------------------------------------------------------------------
def keep_alive(name, obs) -> np.ndarray:
    """Actions that end no episode: CartPole balanced by a linear rule, the others idle."""
    if name == "CartPole-v1":
        return (obs[:, 2] + 0.5 * obs[:, 3] + 0.01 * obs[:, 0] + 0.1 * obs[:, 1] > 0)
    return np.full(len(obs), 1 if DEVICE_ENVS[name].discrete else 0.0)


@pytest.mark.parametrize("name", NAMES)
def test_time_limit_truncates_where_gymnasium_does(device, name):
    """Run 3 envs to the limit from their device resets, in the kernel and in gymnasium's
    TimeLimit (gym.make) started at the same states, each side choosing its actions from its
    own observations (CartPole is unstable, so replayed actions would drift apart): no episode
    terminates, and the first truncation comes at the same step, max_episode_steps."""
    e, N, n = DEVICE_ENVS[name], 3, state_len(name)
    kernel = DeviceEnvs(device, name, N)
    obs, start = kernel.reset(seed=99, episode=0)
    envs = [gym.make(name) for _ in range(N)]
    for env, s in zip(envs, start, strict=True):
        env.reset(seed=0)
        env.unwrapped.state = s[:n].astype(np.float64)
    g_obs = obs.copy()
    first_k, first_g = np.zeros(N, int), np.zeros(N, int)
    for t in range(1, e.max_episode_steps + 1):
        g_actions = keep_alive(name, g_obs)
        obs, _, terminated, truncated, _, _ = kernel.step(keep_alive(name, obs))
        assert not terminated.any()
        first_k[(first_k == 0) & truncated] = t
        for i, env in enumerate(envs):
            a = int(g_actions[i]) if e.discrete else np.array([g_actions[i]], F)
            g_obs[i], _, g_terminated, g_truncated, _ = env.step(a)
            assert not g_terminated
            if g_truncated and not first_g[i]:
                first_g[i] = t
    assert np.all(first_k == e.max_episode_steps) and np.all(first_g == e.max_episode_steps)


def test_termination_at_the_limit_also_truncates(device):
    """gymnasium's TimeLimit sets truncated on the last step even when the env terminates
    there; env_step does too (the rollout gives termination precedence)."""
    name, e = "CartPole-v1", DEVICE_ENVS["CartPole-v1"]
    state = np.array([[2.39, 2.0, 0.0, 0.0]], F)  # one step from x > 2.4
    got = DeviceEnvs(device, name, 1).step([1], state, [e.max_episode_steps - 1])
    env = gym.make(name)
    env.reset(seed=0)
    env.unwrapped.state = state[0].astype(np.float64)
    env._elapsed_steps = e.max_episode_steps - 1  # TimeLimit's counter
    _, _, terminated, truncated, _ = env.step(1)
    assert (got[2][0], got[3][0]) == (terminated, truncated) == (True, True)
