"""Turns the device's per-iteration statistics into TensorBoard scalars.

This module owns every tag name. The standard tags keep Stable-Baselines3's names so that
existing dashboards and habits carry over (DESIGN.md section 4).
"""

from __future__ import annotations

import math

import numpy as np

# stats key (agents/ppo.py _summarise) -> TensorBoard tag, per algorithm, as SB3 names them
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
DIAG_TAGS = {
    "approx_kl_max": "diag/approx_kl_max",
    "ratio_max": "diag/ratio_max",
    "ratio_min": "diag/ratio_min",
    "grad_norm": "diag/grad_norm_preclip",
    "grad_norm_max": "diag/grad_norm_preclip_max",
}
EP_REW_MEAN, EP_LEN_MEAN = "rollout/ep_rew_mean", "rollout/ep_len_mean"
FPS, LEARNING_RATE, ENTROPY_LOSS = "time/fps", "train/learning_rate", "train/entropy_loss"
EVAL_MEAN = "eval/mean_return"
EPISODE_WINDOW = 100  # SB3's ep_info_buffer length


def iteration_scalars(algo: str, stats: dict, lr: float, fps: float,
                      recent: list[tuple[float, int]]) -> dict:
    """Every scalar logged at the end of an iteration, keyed by tag."""
    tags = {**TRAIN_TAGS[algo], **DIAG_TAGS}
    out = {tag: stats[key] for key, tag in tags.items() if key in stats}
    out[ENTROPY_LOSS] = -stats["entropy"]  # SB3 logs the entropy loss, i.e. -H
    out[LEARNING_RATE] = lr
    out[FPS] = fps
    if recent:
        window = np.array(recent[-EPISODE_WINDOW:], np.float64)
        out[EP_REW_MEAN] = float(window[:, 0].mean())
        out[EP_LEN_MEAN] = float(window[:, 1].mean())
    # explained variance is undefined (NaN) for constant returns: skip it rather than log NaN
    return {tag: float(v) for tag, v in out.items()
            if not (tag == EXPLAINED_VARIANCE and math.isnan(v))}
