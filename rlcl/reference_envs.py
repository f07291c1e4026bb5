"""numpy float32 twins of kernels/classic_envs.h and classic_envs.cl: the device envs' spec.

Each twin evaluates its kernel's expressions in the kernel's order, in float32, one env per
row (``state`` is [N, STATE_DIM]), and uses the kernels' own sin and cos (classic_sincos, made
of + - * only), so kernel and twin agree bit for bit. The twins take every physical constant
from gymnasium's own env objects, rounded to float32, so the kernels' literals are checked
against gymnasium through them. Equations are written as gymnasium's, with ``x**2`` as
``x * x`` (one rounding, as numpy squares). tests/test_env_kernels.py compares the twins with
gymnasium's float64 envs and states the tolerances.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from gymnasium.envs.classic_control import acrobot, cartpole, pendulum
from gymnasium.envs.classic_control.continuous_mountain_car import Continuous_MountainCarEnv
from gymnasium.envs.classic_control.mountain_car import MountainCarEnv

from rlcl.device_envs import DEVICE_ENVS, STATE_DIM
from rlcl.reference import philox4x32

F = np.float32
PI = F(np.pi)  # M_PI_F


def _params(env, *names: str) -> SimpleNamespace:
    return SimpleNamespace(**{name: F(getattr(env, name)) for name in names})


CARTPOLE = _params(cartpole.CartPoleEnv(), "gravity", "masspole", "total_mass", "length",
                   "polemass_length", "force_mag", "tau", "theta_threshold_radians",
                   "x_threshold")
ACROBOT = _params(acrobot.AcrobotEnv, "dt", "LINK_LENGTH_1", "LINK_MASS_1", "LINK_MASS_2",
                  "LINK_COM_POS_1", "LINK_COM_POS_2", "LINK_MOI", "MAX_VEL_1", "MAX_VEL_2")
_MC = ("min_position", "max_position", "max_speed", "goal_position", "goal_velocity")
MOUNTAIN_CAR = _params(MountainCarEnv(), *_MC, "force", "gravity")
MOUNTAIN_CAR_CONTINUOUS = _params(Continuous_MountainCarEnv(), *_MC, "min_action", "max_action",
                                  "power")
PENDULUM = _params(pendulum.PendulumEnv(), "max_speed", "max_torque", "dt", "g", "m", "l")
ACROBOT_G = F(9.8)  # a local of AcrobotEnv._dsdt, not an attribute


def sincos(x, want_cos: bool):
    """classic_sincos: Cody-Waite reduction by pi/4 and Cephes' minimax polynomials."""
    ax = np.abs(x)
    j = (ax * F(1.27323954473516)).astype(np.int32)
    y = j.astype(F)
    odd = (j & 1) == 1
    j, y = np.where(odd, j + 1, j) & 7, np.where(odd, y + F(1), y)
    sign = np.where((x < 0) & (not want_cos), F(-1), F(1))
    sign, j = np.where(j > 3, -sign, sign), np.where(j > 3, j - 4, j)
    if want_cos:
        sign = np.where(j > 1, -sign, sign)
    r = ((ax - y * F(0.78515625)) - y * F(2.4187564849853515625e-4)) - y * F(3.77489497744594108e-8)
    z = r * r
    s = ((F(-1.9515295891e-4) * z + F(8.3321608736e-3)) * z - F(1.6666654611e-1)) * z * r + r
    c = ((F(2.443315711809948e-5) * z - F(1.388731625493765e-3)) * z
         + F(4.166664568298827e-2)) * z * z - F(0.5) * z + F(1)
    return sign * np.where(((j == 1) | (j == 2)) != want_cos, c, s)


def sin(x):
    return sincos(np.asarray(x, F), False)


def cos(x):
    return sincos(np.asarray(x, F), True)


def uniform(bits, low, high):
    """classic_uniform: low + (high - low) * u, u = (bits >> 8) * 2^-24."""
    u = (np.asarray(bits, np.uint32) >> 8).astype(F) * F(1.0 / 16777216.0)
    return F(low) + (F(high) - F(low)) * u


# -- CartPole-v1 ----------------------------------------------------------------------------
def cartpole_step(state, action):
    p = CARTPOLE
    x, x_dot, theta, theta_dot = (state[:, i] for i in range(4))
    force = np.where(action == 1, p.force_mag, -p.force_mag)
    costheta, sintheta = cos(theta), sin(theta)
    temp = (force + p.polemass_length * (theta_dot * theta_dot) * sintheta) / p.total_mass
    thetaacc = (p.gravity * sintheta - costheta * temp) / (
        p.length * (F(4.0) / F(3.0) - p.masspole * (costheta * costheta) / p.total_mass))
    xacc = temp - p.polemass_length * thetaacc * costheta / p.total_mass
    x, x_dot = x + p.tau * x_dot, x_dot + p.tau * xacc
    theta, theta_dot = theta + p.tau * theta_dot, theta_dot + p.tau * thetaacc
    terminated = ((x < -p.x_threshold) | (x > p.x_threshold)
                  | (theta < -p.theta_threshold_radians) | (theta > p.theta_threshold_radians))
    return np.stack([x, x_dot, theta, theta_dot], 1), np.ones_like(x), terminated


# -- Acrobot-v1 -----------------------------------------------------------------------------
def acrobot_dsdt(s, a):
    p = ACROBOT
    m1, m2, l1 = p.LINK_MASS_1, p.LINK_MASS_2, p.LINK_LENGTH_1
    lc1, lc2, I1, I2, g = p.LINK_COM_POS_1, p.LINK_COM_POS_2, p.LINK_MOI, p.LINK_MOI, ACROBOT_G
    theta1, theta2, dtheta1, dtheta2 = (s[:, i] for i in range(4))
    d1 = m1 * (lc1 * lc1) + m2 * ((l1 * l1) + (lc2 * lc2) + F(2) * l1 * lc2 * cos(theta2)) + I1 + I2
    d2 = m2 * ((lc2 * lc2) + l1 * lc2 * cos(theta2)) + I2
    phi2 = m2 * lc2 * g * cos(theta1 + theta2 - PI / F(2))
    phi1 = (-m2 * l1 * lc2 * (dtheta2 * dtheta2) * sin(theta2)
            - F(2) * m2 * l1 * lc2 * dtheta2 * dtheta1 * sin(theta2)
            + (m1 * lc1 + m2 * l1) * g * cos(theta1 - PI / F(2)) + phi2)
    ddtheta2 = ((a + d2 / d1 * phi1 - m2 * l1 * lc2 * (dtheta1 * dtheta1) * sin(theta2) - phi2)
                / (m2 * (lc2 * lc2) + I2 - (d2 * d2) / d1))
    ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
    return np.stack([dtheta1, dtheta2, ddtheta1, ddtheta2], 1)


def acrobot_wrap(x, m, M):
    x, diff = x.copy(), M - m
    while np.any(big := (x > M) & np.isfinite(x)):
        x[big] = x[big] - diff
    while np.any(small := (x < m) & np.isfinite(x)):
        x[small] = x[small] + diff
    return x


def acrobot_step(s, action):
    p = ACROBOT
    torque = np.array([-1.0, 0.0, 1.0], F)[action]  # AVAIL_TORQUE
    dt = p.dt
    dt2 = dt / F(2)
    k1 = acrobot_dsdt(s, torque)
    k2 = acrobot_dsdt(s + dt2 * k1, torque)
    k3 = acrobot_dsdt(s + dt2 * k2, torque)
    k4 = acrobot_dsdt(s + dt * k3, torque)
    ns = s + dt / F(6) * (k1 + F(2) * k2 + F(2) * k3 + k4)
    ns[:, 0] = acrobot_wrap(ns[:, 0], -PI, PI)
    ns[:, 1] = acrobot_wrap(ns[:, 1], -PI, PI)
    ns[:, 2] = np.minimum(np.maximum(ns[:, 2], -p.MAX_VEL_1), p.MAX_VEL_1)
    ns[:, 3] = np.minimum(np.maximum(ns[:, 3], -p.MAX_VEL_2), p.MAX_VEL_2)
    terminated = -cos(ns[:, 0]) - cos(ns[:, 1] + ns[:, 0]) > F(1)
    return ns, np.where(terminated, F(0), F(-1)), terminated


# -- MountainCar-v0 and MountainCarContinuous-v0 ---------------------------------------------
def _with(state, *columns):
    """STATE with its first columns replaced (the kernels leave unused slots as they are)."""
    out = state.copy()
    for i, column in enumerate(columns):
        out[:, i] = column
    return out


def _mountain_car_bounds(p, state, position, velocity):
    position = position + velocity
    position = np.minimum(np.maximum(position, p.min_position), p.max_position)
    velocity = np.where((position == p.min_position) & (velocity < 0), F(0), velocity)
    terminated = (position >= p.goal_position) & (velocity >= p.goal_velocity)
    return _with(state, position, velocity), terminated


def mountain_car_step(state, action):
    p = MOUNTAIN_CAR
    position, velocity = state[:, 0], state[:, 1]
    velocity = velocity + ((action - 1).astype(F) * p.force + cos(F(3) * position) * -p.gravity)
    velocity = np.minimum(np.maximum(velocity, -p.max_speed), p.max_speed)
    state, terminated = _mountain_car_bounds(p, state, position, velocity)
    return state, np.full(len(state), F(-1)), terminated


def mountain_car_continuous_step(state, action):
    """ACTION unclipped: gymnasium clips it for the force, squares the raw value for the reward."""
    p = MOUNTAIN_CAR_CONTINUOUS
    position, velocity = state[:, 0], state[:, 1]
    force = np.minimum(np.maximum(action, p.min_action), p.max_action)
    velocity = velocity + (force * p.power - F(0.0025) * cos(F(3) * position))
    velocity = np.minimum(np.maximum(velocity, -p.max_speed), p.max_speed)
    state, terminated = _mountain_car_bounds(p, state, position, velocity)
    return state, np.where(terminated, F(100), F(0)) - (action * action) * F(0.1), terminated


# -- Pendulum-v1 ----------------------------------------------------------------------------
def pendulum_angle_normalize(x):
    return np.remainder(x + PI, F(2) * PI) - PI  # np.remainder: Python's %, in float32


def pendulum_step(state, u):
    p = PENDULUM
    th, thdot, g, m, l, dt = state[:, 0], state[:, 1], p.g, p.m, p.l, p.dt
    u = np.minimum(np.maximum(u, -p.max_torque), p.max_torque)
    an = pendulum_angle_normalize(th)
    costs = an * an + F(0.1) * (thdot * thdot) + F(0.001) * (u * u)
    newthdot = thdot + (F(3) * g / (F(2) * l) * sin(th) + F(3) / (m * (l * l)) * u) * dt
    newthdot = np.minimum(np.maximum(newthdot, -p.max_speed), p.max_speed)
    return _with(state, th + newthdot * dt, newthdot), -costs, np.zeros(len(th), bool)


# -- classic_envs.cl ------------------------------------------------------------------------
def _env(env_id: int):
    return next(e for e in DEVICE_ENVS.values() if e.env_id == env_id)


def env_obs(env_id: int, state) -> np.ndarray:
    """classic_obs for every row of STATE."""
    macro = _env(env_id).macro
    if macro == "ACROBOT":
        return np.stack([cos(state[:, 0]), sin(state[:, 0]), cos(state[:, 1]), sin(state[:, 1]),
                         state[:, 2], state[:, 3]], 1)
    if macro == "PENDULUM":
        return np.stack([cos(state[:, 0]), sin(state[:, 0]), state[:, 1]], 1)
    return state[:, : _env(env_id).obs_dim].copy()


# gymnasium's reset ranges (each env's reset()), one (low, high) per state slot drawn; the
# kernels draw state[i] from Philox word i. MountainCar's velocity starts at 0 = 0 + 0 * u.
RESET_BOUNDS = {"CARTPOLE": [(-0.05, 0.05)] * 4, "ACROBOT": [(-0.1, 0.1)] * 4,
                "MOUNTAIN_CAR": [(-0.6, -0.4), (0.0, 0.0)],
                "MOUNTAIN_CAR_CONTINUOUS": [(-0.6, -0.4), (0.0, 0.0)],
                "PENDULUM": [(-PI, PI), (-1.0, 1.0)]}  # DEFAULT_X, DEFAULT_Y


def env_reset(env_id, N, seed, stream, episode) -> tuple[np.ndarray, np.ndarray]:
    """Returns (obs, state) of envs 0 .. N-1, as the env_reset kernel draws them."""
    bits = np.array([philox4x32([n, episode, 0, 0], [seed, stream]) for n in range(N)],
                    np.uint32).reshape(N, 4)
    state = np.zeros((N, STATE_DIM), F)
    for i, (low, high) in enumerate(RESET_BOUNDS[_env(env_id).macro]):
        state[:, i] = uniform(bits[:, i], low, high)
    return env_obs(env_id, state), state


STEPS = {"CARTPOLE": cartpole_step, "ACROBOT": acrobot_step, "MOUNTAIN_CAR": mountain_car_step,
         "MOUNTAIN_CAR_CONTINUOUS": mountain_car_continuous_step, "PENDULUM": pendulum_step}
BOX_BOUNDS = {"MOUNTAIN_CAR_CONTINUOUS": (MOUNTAIN_CAR_CONTINUOUS.min_action,
                                          MOUNTAIN_CAR_CONTINUOUS.max_action),
              "PENDULUM": (-PENDULUM.max_torque, PENDULUM.max_torque)}


def env_step(env_id, state, steps, actions, max_steps):
    """Returns (obs, rewards, terminated, truncated, state, steps) after one env_step launch.
    ACTIONS: ints for Discrete envs, floats (clipped here to the action space) for Box ones."""
    macro = _env(env_id).macro
    state = np.asarray(state, F)
    if macro in BOX_BOUNDS:
        low, high = BOX_BOUNDS[macro]
        actions = np.minimum(np.maximum(np.asarray(actions, F), low), high)
    else:
        actions = np.asarray(actions, np.int32)
    state, rewards, terminated = STEPS[macro](state, actions)
    steps = np.asarray(steps) + 1
    return env_obs(env_id, state), rewards, terminated, steps >= max_steps, state, steps
