"""Hyperparameters: a frozen dataclass loaded from a packaged or user TOML file.

``load_config(algo, env, path, overrides)`` starts from the dataclass defaults, applies the
packaged ``rlcl/configs/<algo>_<alias>.toml`` (or the user's ``--config FILE``), then each
``--set key=value``; it rejects unknown keys and bad values with a :class:`ConfigError` that
says what to do. Names follow CleanRL's ppo.py where one exists.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from rlcl.device_envs import DEVICE_ENVS
from rlcl.errors import ConfigError

ALGOS = ("ppo", "a2c")


@dataclass(frozen=True)
class Config:
    algo: str = "ppo"
    """the algorithm: ppo or a2c"""
    env_id: str = "CartPole-v1"
    """the gymnasium id of the environment"""
    seed: int = 0
    """the run seed: parameters, env resets, sampling and minibatches all derive from it"""
    total_timesteps: int = 100_000
    """total env steps of training (rounded down to whole iterations)"""
    learning_rate: float = 0.03
    """the initial learning rate of the optimizer"""
    num_envs: int = 8
    """the number of parallel environments"""
    num_steps: int = 32
    """the number of steps per environment per rollout"""
    gamma: float = 0.98
    """the discount factor"""
    gae_lambda: float = 0.8
    """the lambda of generalised advantage estimation"""
    num_minibatches: int = 1
    """the number of minibatches per epoch; must divide num_envs * num_steps"""
    update_epochs: int = 20
    """the number of passes over each rollout"""
    norm_adv: bool = True
    """normalise advantages per minibatch"""
    clip_coef: float = 0.2
    """the surrogate clipping coefficient (also the value clip range)"""
    clip_vloss: bool = False
    """clip the value loss as in PPO2 / CleanRL"""
    ent_coef: float = 0.0
    """the entropy bonus coefficient"""
    vf_coef: float = 0.5
    """the value loss coefficient. rlcl's value loss is 0.5 * MSE (CleanRL's and PureJaxRL's
    convention); SB3's is the plain MSE, so SB3's vf_coef c is rlcl's 2c (SB3's default 0.5
    is rlcl's 1.0)"""
    max_grad_norm: float = 0.5
    """the global gradient-norm clip (0 switches clipping off)"""
    target_kl: float = 0.0
    """stop the epochs of an iteration once approx_kl exceeds this (0 switches it off)"""
    optimizer: str = "momentum"
    """momentum (heavy ball), sgd or adam"""
    momentum: float = 0.9
    """the momentum coefficient mu of momentum/sgd"""
    nesterov: bool = False
    """use Nesterov momentum"""
    weight_decay: float = 0.0
    """coupled L2 weight decay"""
    lr_schedule: str = "cosine"
    """cosine (annealed to lr_min over the run) or constant"""
    lr_min: float = 0.0
    """the final learning rate of the cosine schedule"""
    norm_obs: bool = False
    """normalise observations by their running mean and std, clipped to +-10 (SB3 VecNormalize)"""
    norm_reward: bool = False
    """divide rewards by the running std of the discounted return (SB3 VecNormalize)"""
    env_backend: str = "gymnasium"
    """where the env steps: "gymnasium" on the host (any env), or "device": CartPole-v1,
    Acrobot-v1, MountainCar-v0, MountainCarContinuous-v0 and Pendulum-v1 as OpenCL code, the
    whole rollout in one launch per iteration (issue 11); evaluation always runs gymnasium's
    env"""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """hidden layer widths of both the actor and the critic"""
    activation: str = "tanh"
    """the hidden activation: tanh or relu"""
    guard: bool = True
    """the divergence guard: refuse NaN or spiking steps, roll back repeated trouble"""
    guard_z: float = 6.0
    """the z-score (against the run's EMA) of a gradient norm or loss that counts as a spike"""
    guard_max_skips: int = 3
    """refused steps in one iteration that call for a rollback"""
    guard_max_update_ratio: float = 0.5
    """an update larger than this fraction of the parameter norm calls for a rollback"""
    guard_max_rollbacks: int = 5
    """rollbacks before the run stops with exit code 3"""
    inject_nan_update: int = -1
    """fault injection for tests: put a NaN into the gradient at this update (-1: never)"""
    inject_nan_repeat: int = 1
    """... and at this many updates in a row"""
    checkpoint_every: int = 50
    """write checkpoints/latest.npz every this many iterations, for --resume (0: only at the
    end). Each costs a few fsyncs (about 12 ms here): every 10 iterations was a quarter of a
    default CartPole run's time (issue 11)"""
    eval_episodes: int = 20
    """greedy evaluation episodes at the end of training (0 skips it)"""
    device: str = ""
    """the OpenCL device spec (empty: RLCL_DEVICE or the default rule)"""
    runs_dir: str = "runs"
    """where run folders are created"""
    progress: bool = True
    """show a progress bar on a terminal"""
    profile: bool = False
    """print where the time went at the end (per-kernel device times from OpenCL events);
    also switched on by RLCL_PROFILE=1"""

    # -- derived sizes ------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_iterations(self) -> int:
        return self.total_timesteps // self.batch_size

    def hyperparameters(self) -> dict:
        """What shapes learning: the config without where and how the run is shown, nor the
        fault-injection switches (for TensorBoard's HParams view)."""
        skip = {"device", "runs_dir", "progress", "eval_episodes", "checkpoint_every",
                "inject_nan_update", "inject_nan_repeat"}
        return {k: v for k, v in self.to_dict().items() if k not in skip}

    def to_dict(self) -> dict:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}


FIELDS = {f.name: f for f in dataclasses.fields(Config)}
CHOICES = {"algo": ALGOS, "optimizer": ("momentum", "sgd", "adam"),
           "env_backend": ("gymnasium", "device"),
           "lr_schedule": ("cosine", "constant"), "activation": ("tanh", "relu")}
POSITIVE = ("total_timesteps", "num_envs", "num_steps", "num_minibatches", "update_epochs",
            "guard_z", "guard_max_update_ratio")
NON_NEGATIVE = ("learning_rate", "clip_coef", "ent_coef", "vf_coef", "max_grad_norm",
                "target_kl", "weight_decay", "lr_min", "eval_episodes", "seed",
                "guard_max_skips", "guard_max_rollbacks", "inject_nan_repeat", "checkpoint_every")
UNIT_INTERVAL = ("gamma", "gae_lambda")
# What may differ between the agents of a population (``--grid``, issue 13): per-agent scalars
# of the loss, the optimizer, the schedule, the advantage and the guard. Every other key fixes
# the shapes, the kernels or the run's plumbing that all agents share.
PER_AGENT_KEYS = ("learning_rate", "momentum", "nesterov", "weight_decay", "lr_schedule",
                  "lr_min", "clip_coef", "clip_vloss", "vf_coef", "ent_coef", "max_grad_norm",
                  "norm_adv", "gamma", "gae_lambda", "guard", "guard_z", "guard_max_skips",
                  "guard_max_update_ratio", "guard_max_rollbacks", "inject_nan_update",
                  "inject_nan_repeat")


def _coerce(key: str, value):
    """Check VALUE against the field's type; ints are accepted where floats are expected."""
    kind = FIELDS[key].type
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        try:
            value = float(value) if ok else value
        except OverflowError:  # an int too large for a float (TOML ints are unbounded)
            raise ConfigError(f"config key {key!r} must be a finite number, got {value}") from None
    elif kind == "str":
        ok = isinstance(value, str)
    else:  # tuple[int, ...]
        ok = isinstance(value, (list, tuple)) and len(value) > 0 and all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
        value = tuple(value) if ok else value
    if not ok:
        raise ConfigError(f"config key {key!r} must be of type {kind}, got {value!r}")
    return value


RETIRED = {"vector_env": "env_backend = \"device\" replaced it (issue 11): delete the key, or "
                          "set env_backend = \"device\" for CartPole-v1"}


def check_key(key: str) -> None:
    if key in RETIRED:
        raise ConfigError(f"config key {key!r} was removed: {RETIRED[key]}")
    if key not in FIELDS:
        close = difflib.get_close_matches(key, FIELDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown config key {key!r}{hint}; see the keys in "
                          "rlcl/configs/ppo_cartpole.toml")


def validate(cfg: Config) -> Config:
    """Every value in its range; shapes and env checks that need gymnasium are make_vec_env's
    (envs.py), which runs before a run folder exists."""
    for key, field in FIELDS.items():  # TOML and --set accept nan and inf: no float key does
        if field.type == "float" and not math.isfinite(getattr(cfg, key)):
            raise ConfigError(f"{key} must be a finite number, got {getattr(cfg, key)}")
    for key, choices in CHOICES.items():
        if getattr(cfg, key) not in choices:
            raise ConfigError(f"{key} must be one of {', '.join(choices)}, got {getattr(cfg, key)!r}")
    for key in POSITIVE:
        if getattr(cfg, key) <= 0:
            raise ConfigError(f"{key} must be > 0, got {getattr(cfg, key)}")
    for key in NON_NEGATIVE:
        if getattr(cfg, key) < 0:
            raise ConfigError(f"{key} must be >= 0, got {getattr(cfg, key)}")
    for key in UNIT_INTERVAL:
        if not 0 <= getattr(cfg, key) <= 1:
            raise ConfigError(f"{key} must be in [0, 1], got {getattr(cfg, key)}")
    if not 0 <= cfg.momentum < 1:
        raise ConfigError(f"momentum must be in [0, 1), got {cfg.momentum}")
    if cfg.batch_size % cfg.num_minibatches:
        raise ConfigError(f"num_minibatches ({cfg.num_minibatches}) must divide the batch "
                          f"num_envs * num_steps = {cfg.batch_size}")
    if cfg.num_iterations < 1:
        raise ConfigError(f"total_timesteps ({cfg.total_timesteps}) must be at least one batch "
                          f"(num_envs * num_steps = {cfg.batch_size})")
    if cfg.algo == "a2c" and (cfg.update_epochs != 1 or cfg.num_minibatches != 1):
        raise ConfigError("a2c makes one pass over the whole rollout: set update_epochs = 1 "
                          "and num_minibatches = 1")
    if cfg.nesterov and (cfg.optimizer == "adam" or cfg.momentum == 0):
        raise ConfigError("nesterov needs optimizer momentum or sgd with momentum > 0")
    if cfg.env_backend == "device" and cfg.env_id not in DEVICE_ENVS:
        raise ConfigError(f"env_backend = \"device\" runs {', '.join(DEVICE_ENVS)}; set "
                          f"env_backend = \"gymnasium\" for {cfg.env_id}")
    if cfg.lr_min > cfg.learning_rate:
        raise ConfigError(f"lr_min ({cfg.lr_min}) must not exceed learning_rate ({cfg.learning_rate})")
    return cfg


def parse_override(text: str) -> tuple[str, object]:
    """``key=value`` with a TOML value (``lr=0.1``, ``hidden_sizes=[32,32]``); bare words are
    strings (``optimizer=adam``)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set takes KEY=VALUE, got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key, value


def packaged_config(algo: str, alias: str) -> Path | None:
    path = resources.files("rlcl") / "configs" / f"{algo}_{alias.lower()}.toml"
    return Path(str(path)) if path.is_file() else None


def read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def build_config(values: dict) -> Config:
    """A validated Config from a flat mapping of keys (unknown keys rejected)."""
    clean = {}
    for key, value in values.items():
        check_key(key)
        clean[key] = _coerce(key, value)
    return validate(Config(**clean))


def to_toml(values: dict) -> str:
    """The resolved config as TOML (flat keys: str, bool, int, float and lists of ints)."""
    def fmt(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(fmt(x) for x in v) + "]"
        return repr(v)

    return "".join(f"{k} = {fmt(v)}\n" for k, v in values.items())
