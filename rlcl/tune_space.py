"""The search spaces of ``python -m rlcl.tune`` (issue 14): what a trial may change in the base
config, and how Optuna samples it.

A space maps config keys to distributions, written in TOML (``--space FILE``)::

    [learning_rate]            # a float range; log = true samples log-uniformly
    low = 0.001
    high = 0.3
    log = true
    [update_epochs]            # an int range (low and high are ints), optional step
    low = 5
    high = 20
    [hidden_sizes]             # a list of choices (lists too: network sizes)
    choices = [[16, 16], [64, 64]]

Every value a distribution can give is checked against the config's own rules before the
first trial (both ends of a range, every choice), so a bad space fails in one line, not in
trial 37. The default spaces sample heavy-ball momentum with a cosine schedule (rlcl's
default optimizer), in the spirit of rl-zoo's hyperparams_opt.py: the rollout shape, the
epochs, the discount, the loss coefficients and the network as small choice lists, the
learning rate log-uniformly. lr_min is a choice of absolute floors no larger than the smallest
learning rate, so every sample is a valid config.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rlcl.config import FIELDS, build_config, check_key, read_toml
from rlcl.errors import ConfigError

# Keys a study does not search: the run's identity and plumbing, and the test switches.
NOT_TUNABLE = ("algo", "env_id", "seed", "device", "runs_dir", "progress", "profile",
               "eval_episodes", "checkpoint_every", "total_timesteps", "inject_nan_update",
               "inject_nan_repeat")

_COMMON = {
    "learning_rate": {"low": 1e-3, "high": 0.3, "log": True},
    "momentum": {"choices": [0.8, 0.9, 0.95, 0.98]},
    "nesterov": {"choices": [False, True]},
    "weight_decay": {"choices": [0.0, 1e-5, 1e-4, 1e-3]},
    "lr_min": {"choices": [0.0, 1e-4, 1e-3]},
    "gamma": {"choices": [0.9, 0.95, 0.98, 0.99, 0.995, 0.999]},
    "gae_lambda": {"choices": [0.8, 0.9, 0.95, 0.98, 1.0]},
    "ent_coef": {"choices": [0.0, 1e-4, 1e-3, 1e-2]},
    "vf_coef": {"choices": [0.25, 0.5, 1.0]},
    "hidden_sizes": {"choices": [[16, 16], [32, 32], [64, 64]]},
}
DEFAULT_SPACES = {
    "ppo": {**_COMMON,
            "num_envs": {"choices": [4, 8, 16]},
            "num_steps": {"choices": [16, 32, 64, 128, 256]},
            "update_epochs": {"choices": [5, 10, 20]},
            "num_minibatches": {"choices": [1, 2, 4, 8]},
            "clip_coef": {"choices": [0.1, 0.2, 0.3]}},
    # A2C makes one pass over the rollout (config.validate): no epochs, minibatches or clip
    "a2c": {**_COMMON,
            "num_envs": {"choices": [4, 8, 16]},
            "num_steps": {"choices": [5, 8, 16, 32]}},
}


@dataclass(frozen=True)
class Dimension:
    """One key's distribution: a range (LOW, HIGH, LOG, STEP) or CHOICES."""

    key: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple | None = None

    def suggest(self, trial):
        """This key's value for TRIAL (an optuna.Trial). Optuna's categorical choices are
        scalars, so list choices (network sizes) travel as JSON text."""
        if self.choices is not None:
            encoded = [json.dumps(c) if isinstance(c, list) else c for c in self.choices]
            value = trial.suggest_categorical(self.key, encoded)
            return json.loads(value) if isinstance(value, str) and value.startswith("[") \
                else value
        if isinstance(self.low, int):
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1,
                                     log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def extremes(self) -> list:
        """The values that bound what suggest can give: both ends, or every choice."""
        return list(self.choices) if self.choices is not None else [self.low, self.high]


def parse_dimension(key: str, spec) -> Dimension:
    where = f"search space key {key!r}"
    if key in NOT_TUNABLE:
        raise ConfigError(f"{where} cannot be tuned (it is fixed per study: set it with --set "
                          f"or the command's own flags)")
    check_key(key)  # an unknown key: its one-line message with a suggestion
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} needs a table: low/high[/log/step] or choices")
    unknown = set(spec) - {"low", "high", "log", "step", "choices"}
    if unknown:
        raise ConfigError(f"{where} has unknown field(s) {', '.join(sorted(unknown))}; a "
                          "distribution is low/high[/log/step] or choices")
    if "choices" in spec:
        choices = spec["choices"]
        if set(spec) != {"choices"}:
            raise ConfigError(f"{where}: give either choices or low/high, not both")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: choices must be a non-empty list")
        if len({json.dumps(c) for c in choices}) != len(choices):
            raise ConfigError(f"{where}: choices lists a value twice")
        return Dimension(key, choices=tuple(choices))
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"{where} needs low and high (or choices)")
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    numbers = [v for v in (low, high, step) if v is not None]
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in numbers):
        raise ConfigError(f"{where}: low, high and step must be numbers")
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false")
    if FIELDS[key].type not in ("int", "float"):
        raise ConfigError(f"{where} is of type {FIELDS[key].type}: give its choices")
    if FIELDS[key].type == "int" and not all(isinstance(v, int) for v in numbers):
        raise ConfigError(f"{where} is an integer key: low, high and step must be integers")
    if FIELDS[key].type == "float":
        low, high, step = float(low), float(high), None if step is None else float(step)
    if not low < high:
        raise ConfigError(f"{where} has an empty range: low ({low}) must be below high ({high})")
    if log and (low <= 0 or step is not None):
        raise ConfigError(f"{where}: a log range needs low > 0 and no step")
    if step is not None and step <= 0:
        raise ConfigError(f"{where}: step must be > 0")
    return Dimension(key, low, high, log, step)


def parse_space(values: dict) -> list[Dimension]:
    if not values:
        raise ConfigError("the search space is empty: give at least one key")
    return [parse_dimension(key, spec) for key, spec in values.items()]


def load_space(algo: str, path: Path | None) -> list[Dimension]:
    """The --space FILE's dimensions, or the algorithm's default space."""
    return parse_space(read_toml(path) if path is not None else DEFAULT_SPACES[algo])


def check_space(base: dict, space: list[Dimension]) -> None:
    """Every value at the edge of the space makes a valid config on its own (the others at
    the base's values): a wrong type or range fails now, in one line, naming the key."""
    for dim in space:
        for value in dim.extremes():
            try:
                build_config({**base, dim.key: value})
            except ConfigError as exc:
                raise ConfigError(f"search space key {dim.key!r}: the value {value!r} is not "
                                  f"valid here ({exc})") from None
