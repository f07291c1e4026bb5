"""Turns the device's per-iteration statistics into TensorBoard scalars (the divergence
guard's decisions on them: rlcl/divergence.py; rlcl/guard.py carries them out).

This module owns every tag name. The standard tags keep Stable-Baselines3's names so that
existing dashboards and habits carry over; ``smooth/*`` and ``diag/*`` are rlcl's own
(docs/architecture.md, "Diagnostics and the divergence guard", says what their values mean).
"""

from __future__ import annotations

import math
from collections import deque
from operator import itemgetter

import numpy as np

# stats key (agents/ppo.py summarise) -> TensorBoard tag, per algorithm, as SB3 names them
TRAIN_TAGS = {
    "ppo": {
        "policy_loss": "train/policy_gradient_loss",
        "value_loss": "train/value_loss",
        "loss": "train/loss",
        "approx_kl": "train/approx_kl",
        "clip_fraction": "train/clip_fraction",
        "explained_variance": "train/explained_variance",
    },
    "a2c": {
        "policy_loss": "train/policy_loss",
        "value_loss": "train/value_loss",
        "explained_variance": "train/explained_variance",
    },
}
EXPLAINED_VARIANCE = "train/explained_variance"
for _tags in TRAIN_TAGS.values():
    _tags["std"] = "train/std"  # Gaussian heads only: the mean of exp(log_std)
SMOOTH_TAGS = {k: f"smooth/{k}" for k in (
    "update_cos", "grad_vel_cos", "vel_grad_ratio", "sign_flip_frac", "update_ratio",
    "policy_churn", "policy_tv")}
DIAG_TAGS = {k: f"diag/{k}" for k in (
    "approx_kl_max", "ratio_max", "ratio_min", "grad_norm_preclip", "grad_norm_preclip_max",
    "grad_norm_postclip", "grad_norm_z", "loss_z", "value_loss_norm", "entropy_norm",
    "param_norm", "nonfinite", "lr_scale", "skipped_steps", "rollbacks")}
EP_REW_MEAN, EP_LEN_MEAN = "rollout/ep_rew_mean", "rollout/ep_len_mean"
FPS, LEARNING_RATE, ENTROPY_LOSS = "time/fps", "train/learning_rate", "train/entropy_loss"
EVAL_MEAN = "eval/mean_return"
EPISODE_WINDOW = 100  # SB3's ep_info_buffer length

# TensorBoard's custom-scalars dashboard: chart title -> tags (regexes allowed)
LAYOUT = {
    "Returns": {"episode return": ["Multiline", [EP_REW_MEAN, EVAL_MEAN]],
                "episode length": ["Multiline", [EP_LEN_MEAN]]},
    "Losses": {"losses": ["Multiline", [r"train/.*loss"]],
               "kl and clipping": ["Multiline", ["train/approx_kl", "train/clip_fraction"]]},
    "Momentum smoothness": {"cosines": ["Multiline", ["smooth/update_cos", "smooth/grad_vel_cos"]],
                            "ratios": ["Multiline", ["smooth/vel_grad_ratio",
                                                     "smooth/update_ratio"]],
                            "flips and churn": ["Multiline", ["smooth/sign_flip_frac",
                                                              "smooth/policy_churn",
                                                              "smooth/policy_tv"]]},
    "Divergence": {"gradient norm": ["Multiline", [r"diag/grad_norm_(pre|post)clip.*"]],
                   "z-scores": ["Multiline", ["diag/grad_norm_z", "diag/loss_z"]],
                   "ratio and kl": ["Multiline", ["diag/ratio_max", "diag/ratio_min",
                                                  "diag/approx_kl_max"]],
                   "guard": ["Multiline", ["diag/nonfinite", "diag/lr_scale",
                                           "diag/skipped_steps", "diag/rollbacks"]]},
}


def _means(values: np.ndarray, defined: np.ndarray) -> list[float | None]:
    """Per row of VALUES (agents x updates), the mean over the updates where a figure is
    DEFINED, None where it is nowhere defined. A non-finite value counts as defined, so a
    diverging run still shows NaN or inf. A row defined throughout is summed in one numpy
    reduction for all agents, which adds each row as a sum of that row alone would (pairwise,
    in the same order: tests/test_diagnostics.py), so an agent's figure has the same bits in a
    population as alone; other rows sum the chosen values."""
    count = values.shape[1]
    # the full rows' means in one division (the same float64 division per element as a
    # scalar one), and Python floats from one tolist: numpy scalars per agent were a tenth
    # of a population's summary
    means = (values.sum(axis=1) / max(count, 1)).tolist()
    full = defined.all(axis=1).tolist() if count else [False] * len(values)
    out = []
    for a, whole in enumerate(full):
        if whole:
            out.append(means[a])
        else:
            chosen = values[a][defined[a]]
            out.append(float(chosen.sum() / chosen.size) if chosen.size else None)
    return out


def smoothness(sums: np.ndarray, n_params: int, momentum: float | None,
               taken: np.ndarray | None = None) -> dict:
    """Smoothness figures from the optimizer kernel's partial sums (optim.cl; one row of 10 per
    update, groups already added in float64), averaged over the iteration's updates.
    MOMENTUM is None for Adam, whose velocity (exp_avg) has no (1 - mu) scale.

    The figures describe the steps taken (TAKEN, a bool per row; all by default): a step the
    guard refused moved nothing. A figure is left out where it is undefined rather than logged
    as NaN, which would read as a divergence (issue 10): the cosines and the sign flips need a
    previous update (none on a run's first step, nor after a lone update per iteration, as in
    A2C), grad_vel_cos needs a velocity (none with momentum 0), and no figure but the
    parameters' own exists in an iteration whose every step was refused."""
    return smoothness_many(np.asarray(sums)[None], n_params, [momentum],
                           None if taken is None else np.asarray(taken)[None])[0]


def smoothness_many(sums: np.ndarray, n_params: int, momenta: list,
                    taken: np.ndarray | None = None) -> list[dict]:
    """smoothness() of many agents at once (a population, rlcl/batched.py): SUMS agents x
    updates x 10, MOMENTA and TAKEN one per agent. The arithmetic runs on all agents' rows
    together, element by element as for one, so agent a's figures are smoothness(sums[a],
    n_params, momenta[a], taken[a]) to the bit; an agent with refused steps is figured from its
    taken rows alone."""
    s = np.asarray(sums, np.float64)
    with np.errstate(all="ignore"):  # a diverged run has inf and NaN sums: they show as such
        outs = [{"param_norm": float(x), "nonfinite_params": float(y)}
                for x, y in zip(np.sqrt(s[:, -1, 8]), s[:, -1, 9])]
        partial = ([] if taken is None else
                   np.flatnonzero(~np.asarray(taken, bool).all(axis=1)).tolist())
        for a in partial:
            rows = s[a][np.asarray(taken[a], bool)]
            outs[a].update(_figures(rows[None], n_params, [momenta[a]])[0])
        whole = [a for a in range(len(s)) if a not in partial] if partial else range(len(s))
        if whole:
            figures = _figures(s if not partial else s[whole], n_params,
                               [momenta[a] for a in whole])
            for a, figs in zip(whole, figures):
                outs[a].update(figs)
    return outs


def _figures(s: np.ndarray, n_params: int, momenta: list) -> list[dict]:
    """The figures of agents x updates x 10 sums whose every row counts."""
    moved, had_prev, grad = s[..., 1] != 0, s[..., 2] != 0, s[..., 4] != 0
    both = moved & had_prev
    figures = {
        "update_cos": _means(s[..., 0] / np.sqrt(s[..., 1] * s[..., 2]), both),  # cos(u, u-1)
        "grad_vel_cos": _means(s[..., 3] / np.sqrt(s[..., 4] * s[..., 5]),  # cos(g_t, v_t-1)
                               grad & (s[..., 5] != 0)),
        "sign_flip_frac": _means(s[..., 7] / n_params, both),
        "update_ratio": _means(np.sqrt(s[..., 1]) / np.sqrt(np.maximum(s[..., 8], 1e-30)),
                               np.ones(s.shape[:2], bool)),
    }
    # (1 - mu) ||v|| / ||g||: 1 for a constant gradient (v -> g / (1 - mu)); not for Adam
    # (None), whose velocity has no (1 - mu) scale, nor without momentum
    scale = np.array([[1 - mu if mu else np.nan] for mu in momenta], np.float64)
    figures["vel_grad_ratio"] = [ratio if mu else None for ratio, mu in zip(
        _means(scale * np.sqrt(s[..., 6] / s[..., 4]), grad), momenta)]
    return [{name: values[a] for name, values in figures.items() if values[a] is not None}
            for a in range(len(s))]


ITERATION_TAGS = {algo: list({**tags, **SMOOTH_TAGS, **DIAG_TAGS}.items())
                  for algo, tags in TRAIN_TAGS.items()}


class EpisodeWindow:
    """SB3's rollout/ep_rew_mean and ep_len_mean: the means of the last EPISODE_WINDOW
    episodes' returns and lengths, as math.fsum over the window gives them (correctly rounded
    sums) but kept up to date as episodes come and go: each finite return is an exact integer
    multiple of 2**-1074, so the window's sum is an exact integer, and Python's int division
    rounds it correctly. Two fsums over 100 episodes per iteration were a tenth of a
    population's host time (issue 13)."""

    def __init__(self, episodes: list[tuple[int, float, int]] = ()):
        self.window: deque = deque()  # (return, its exact scaled integer or None, length)
        self.ret_sum, self.len_sum, self.nonfinite = 0, 0, 0
        for episode in episodes[-EPISODE_WINDOW:]:
            self.add(episode)

    def add(self, episode: tuple[int, float, int]) -> None:
        _, ret, length = episode
        scaled = _scaled(ret)
        self.window.append((ret, scaled, length))
        self._count(scaled, length, 1)
        if len(self.window) > EPISODE_WINDOW:
            _, scaled, length = self.window.popleft()
            self._count(scaled, length, -1)

    def _count(self, scaled: int | None, length: int, sign: int) -> None:
        if scaled is None:
            self.nonfinite += sign
        else:
            self.ret_sum += sign * scaled
        self.len_sum += sign * length

    def means(self) -> tuple[float, float] | None:
        """(return mean, length mean), None before the first episode."""
        n = len(self.window)
        if not n:
            return None
        if self.nonfinite:
            ret = math.fsum(r for r, _, _ in self.window)
        else:
            try:
                ret = self.ret_sum / _SCALE
            except OverflowError:  # beyond the largest double: what a float sum would give
                ret = math.inf if self.ret_sum > 0 else -math.inf
        return ret / n, float(self.len_sum) / n


_SCALE = 1 << 1074  # 2**-1074, the smallest subnormal double, divides every finite double


def _scaled(x: float) -> int | None:
    """X * 2**1074 (an integer) for a finite X, else None."""
    if not math.isfinite(x):
        return None
    num, den = float(x).as_integer_ratio()
    return num * (_SCALE // den)


def iteration_values(algo: str, stats: dict, lr: float, fps: float,
                     means: tuple[float, float] | None) -> tuple[tuple, list]:
    """Every scalar logged at the end of an iteration: (their tags, their values in that
    order), the form the logger writes (rlcl/logger.py write_scalar_rows; a population's
    agents share one tuple of tags). MEANS: EpisodeWindow.means of the training episodes so
    far."""
    # which of the tags STATS has, looked up once per set of keys (a run sees a handful):
    # filtering ~35 tags in Python per iteration was a fifth of a population agent's logging
    # explained variance is undefined (NaN) for constant returns: left out rather than NaN
    no_ev = math.isnan(stats.get("explained_variance", 0.0))
    keys = (algo, means is None, no_ev, *stats)
    tags, pick = _LAYOUTS.get(keys) or _layout(keys, algo, stats, means is None, no_ev)
    values = [*pick(stats), -stats["entropy"], lr, fps]  # SB3 logs the entropy loss, i.e. -H
    if means is not None:
        values += means
    return tags, values


# (algo, no means, no explained variance, *stats keys) -> (tags, the getter of their values)
_LAYOUTS: dict[tuple, tuple] = {}


def _layout(keys: tuple, algo: str, stats: dict, no_means: bool, no_ev: bool) -> tuple:
    present = [(tag, key) for key, tag in ITERATION_TAGS[algo]
               if key in stats and not (no_ev and tag == EXPLAINED_VARIANCE)]
    picked = [key for _, key in present]
    tags = (*(tag for tag, _ in present), ENTROPY_LOSS, LEARNING_RATE, FPS,
            *(() if no_means else (EP_REW_MEAN, EP_LEN_MEAN)))
    pick = itemgetter(*picked) if len(picked) > 1 else (lambda s: (s[picked[0]],))
    _LAYOUTS[keys] = tags, pick
    return _LAYOUTS[keys]


# Where a divergence signal counts as crossed, for `python -m rlcl.diagnose` (tag: (op, level)).
# The smoothness bounds follow docs/architecture.md (diagnostics): under pure noise update_cos ~ mu, so a
# negative value means the updates zig-zag.
THRESHOLDS = {
    "diag/nonfinite": (">", 0.0),
    "diag/skipped_steps": (">", 0.0),
    "diag/rollbacks": (">", 0.0),
    "diag/grad_norm_z": (">", 6.0),
    "diag/loss_z": (">", 6.0),
    "diag/approx_kl_max": (">", 0.5),
    "diag/ratio_max": (">", 3.0),
    "diag/ratio_min": ("<", 0.33),
    "diag/value_loss_norm": (">", 2.0),
    "diag/entropy_norm": ("<", 0.05),
    "smooth/update_cos": ("<", 0.0),
    "smooth/update_ratio": (">", 0.1),
}
