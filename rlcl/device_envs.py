"""The classic-control envs that run on the device (kernels/classic_envs.h): their ids and sizes.

This table is the one place that numbers the device envs. The kernels see it through build
options (:func:`defines`, through rlcl/kernel_constants.py: ``-D CLASSIC_CARTPOLE=0`` ...) and kernel arguments (obs_dim,
max_episode_steps); tests/test_env_kernels.py checks every row against gymnasium's own spec
and spaces, so it cannot drift from gymnasium 1.4.

Every env keeps its state in ``STATE_DIM`` floats (unused slots stay 0) and takes one 32-bit
action word, the rollout storage's layout: an int for Discrete spaces, a float for Box ones.
"""

from __future__ import annotations

from dataclasses import dataclass

STATE_DIM = 4  # floats of state per env: the widest state (CartPole, Acrobot)


@dataclass(frozen=True)
class DeviceEnv:
    env_id: int  # the case of the kernels' switch (classic_envs.h)
    macro: str  # its build-option name, CLASSIC_<macro>
    obs_dim: int
    discrete: bool  # Discrete(n) actions (an int word) or Box(1) actions (a float word)
    max_episode_steps: int  # gymnasium's TimeLimit


DEVICE_ENVS: dict[str, DeviceEnv] = {
    "CartPole-v1": DeviceEnv(0, "CARTPOLE", 4, True, 500),
    "Acrobot-v1": DeviceEnv(1, "ACROBOT", 6, True, 500),
    "MountainCar-v0": DeviceEnv(2, "MOUNTAIN_CAR", 2, True, 200),
    "MountainCarContinuous-v0": DeviceEnv(3, "MOUNTAIN_CAR_CONTINUOUS", 2, False, 999),
    "Pendulum-v1": DeviceEnv(4, "PENDULUM", 3, False, 200),
}
MAX_OBS_DIM = max(e.obs_dim for e in DEVICE_ENVS.values())


def defines() -> dict[str, int]:
    """Kernel macro name -> value: what classic_envs.h knows of this table (every build gets
    them through rlcl/kernel_constants.py)."""
    table = {f"CLASSIC_{e.macro}": e.env_id for e in DEVICE_ENVS.values()}
    return {**table, "CLASSIC_STATE_DIM": STATE_DIM, "CLASSIC_MAX_OBS_DIM": MAX_OBS_DIM}
