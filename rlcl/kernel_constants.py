"""The constants that the host and the kernels must agree on, each written once, here.

:func:`defines` turns them into ``-D NAME=value`` build options, and rlcl.device passes them to
every kernel build. The kernels do not repeat the values: each file checks with ``#ifndef`` /
``#error`` that the names it uses were defined, so a build without them fails at once instead
of reading a table with the wrong layout. The values are part of the build options, so
pyopencl's program cache still tells one build from another.
"""

from __future__ import annotations

from rlcl import device_envs

# Activation ids (common.h activate4 / activate_grad; nn.MLP stores one per network).
ACTIVATIONS = {"identity": 0, "tanh": 1, "relu": 2}
ACT_IDENTITY, ACT_TANH, ACT_RELU = (ACTIVATIONS[name] for name in ("identity", "tanh", "relu"))

# Floats in the statistics row of one loss kernel launch (loss.h; agents/ppo.py reads them).
NUM_LOSS_STATS = 8
# Smoothness partial sums per work-group row of an optimizer step (optim.cl NUM_SMOOTH).
SMOOTH_STATS = 10
# The optimizer steps' layout (optim.cl): work-group g takes the STEP_CHUNK coordinates from
# g * STEP_CHUNK, its STEP_LANES work-items each every STEP_LANES-th of them.
STEP_LANES, STEP_CHUNK = 8, 256

# The most envs one work-item of the device rollout steps (device_rollout.cl): a CPU gives a
# work-item this many, four at a time through the networks; a GPU gives it one.
ROLLOUT_ITEM_ENVS = 8

# How step t of env n ended, ends[t, n] of the rollout (rollout.cl gae).
RUNNING, TERMINATED, TRUNCATED = 0, 1, 2

# Layer tables, one row of ints per layer. The rollout kernels (policy.cl, gaussian.cl, mlp.h)
# read LAYER_COLUMNS; actor_critic.cl reads AC_COLUMNS, which begin with the same four.
# The names are nn.Layer's fields, then what actor_critic.cl's header comment describes.
LAYER_COLUMNS = ("w_off", "b_off", "n_in", "n_out")
# A population's per-agent scalars (issue 13): one row of AGENT_HP 32-bit words per agent, read
# by the *_pop kernels (ppo_update.cl, device_rollout.cl) where the single launches take
# arguments of the same names; floats as their bits, the rest as ints.
AGENT_COLUMNS = ("clip_coef", "clip_vloss", "ent_coef", "vf_coef", "norm_adv", "inject_nan",
                 "max_norm", "skip_above", "lr", "momentum", "dampening", "weight_decay",
                 "nesterov", "first", "seed", "gamma", "gae_lambda")
AGENT_FLOATS = ("clip_coef", "ent_coef", "vf_coef", "max_norm", "skip_above", "lr", "momentum",
                "dampening", "weight_decay", "gamma", "gae_lambda")
AC_COLUMNS = (*LAYER_COLUMNS, "in_off", "out_off", "dout_off", "din_off", "tile_start", "act")


def defines() -> dict[str, int]:
    """Kernel macro name -> value, for every constant above."""
    table = {
        "ACT_IDENTITY": ACT_IDENTITY,
        "ACT_TANH": ACT_TANH,
        "ACT_RELU": ACT_RELU,
        "NUM_LOSS_STATS": NUM_LOSS_STATS,
        "NUM_SMOOTH": SMOOTH_STATS,
        "STEP_LANES": STEP_LANES,
        "STEP_CHUNK": STEP_CHUNK,
        "END_RUNNING": RUNNING,
        "END_TERMINATED": TERMINATED,
        "END_TRUNCATED": TRUNCATED,
        "LAYER_COLS": len(LAYER_COLUMNS),
        "AC_COLS": len(AC_COLUMNS),
        "AGENT_HP": len(AGENT_COLUMNS),
        "ROLLOUT_ITEM_ENVS": ROLLOUT_ITEM_ENVS,
    }
    table.update({f"HP_{name.upper()}": k for k, name in enumerate(AGENT_COLUMNS)})
    # COL_W_OFF .. COL_ACT: valid in both tables, since AC_COLUMNS extends LAYER_COLUMNS.
    table.update({f"COL_{name.upper()}": k for k, name in enumerate(AC_COLUMNS)})
    table.update(device_envs.defines())
    return table
