"""PPO's update (Schulman et al. 2017), following CleanRL's ppo.py.

Per iteration: ``update_epochs`` passes over the rollout, each split into ``num_minibatches``
random minibatches (permutations from the host RNG, uploaded once). Per minibatch: gather,
forward with cached activations, the fused loss-and-gradient kernel, backward, global-norm
clip, one optimizer launch. The per-minibatch statistics stay on the device and are read back
once per iteration (or once per epoch when target_kl needs them).
"""

from __future__ import annotations

import math

import numpy as np

from rlcl.config import Config
from rlcl.diagnostics import smoothness_many
from rlcl.nn import SMOOTH_STATS
from rlcl.optim import clip_grad_norm_
from rlcl.optim.optimizer import REDUCE_LOCAL_SIZE, settle_many
from rlcl.policy import NUM_LOSS_STATS, ActorCritic
from rlcl.rollout import Rollout

LOSS_STATS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction",
              "approx_kl_max", "ratio_max", "ratio_min")


class PPO:
    PG_MODE = 0  # loss.cl: the clipped surrogate
    FUSE = True  # the fused launches (ppo_update.cl) where they apply (tests: off, to compare)

    def __init__(self, cfg: Config, policy: ActorCritic, rollout: Rollout, optimizer):
        self.cfg, self.policy, self.rollout, self.optimizer = cfg, policy, rollout, optimizer
        dev = policy.device
        self.device = dev
        self.num_updates = cfg.update_epochs * cfg.num_minibatches
        self.stats = dev.zeros(self.num_updates * NUM_LOSS_STATS)
        self.batch_stats = dev.zeros(4)  # explained variance, Var(returns), churn, TV
        # logits on the whole rollout before and after the update, for smooth/policy_churn
        B = cfg.batch_size
        self.churn = not policy.continuous
        # the device rollout stores them; the host path's are computed before each update
        self.forward_before = self.churn and rollout.outputs is None
        self.old_outputs = (dev.empty(B * policy.n_outputs) if self.forward_before
                            else rollout.outputs)
        self.momentum = None if cfg.optimizer == "adam" else cfg.momentum
        self.total_updates = 0  # over the run, for fault injection
        self._epoch_rows = None  # minibatch_order's unshuffled rows
        first = cfg.inject_nan_update
        self.inject_at = range(first, first + cfg.inject_nan_repeat) if first >= 0 else range(0)
        L = dev.minibatch_group(cfg.minibatch_size)
        self.reduce_size = L
        self.scratch = dev.local(4 * L)
        # Two launches per minibatch (kernels/ppo_update.cl: the gradients, one work-group
        # per network, then the step) for the SGD family; Adam keeps the separate launches.
        self.fused = self.FUSE and cfg.optimizer != "adam"
        if self.fused:
            self.norm_lanes = dev.group_size(REDUCE_LOCAL_SIZE)  # clip_grad_norm_'s group
            self.fused_scratch = dev.local(4 * max(NUM_LOSS_STATS * L, self.norm_lanes))
            self.prepared = None  # the two launches, prepared at the first update
            self.critic_obs = dev.empty(cfg.minibatch_size * policy.obs_dim)

    def update(self, rng: np.random.Generator) -> dict:
        """Run the epochs over the current rollout; return host-side means of the stats."""
        self.begin_update(rng)
        return self.end_update(self.update_minibatches())

    def begin_update(self, rng: np.random.Generator) -> None:
        """What comes before the minibatches: the epochs' orders, the explained variance."""
        cfg, dev, ro, L = self.cfg, self.device, self.rollout, self.reduce_size
        ro.upload_indices(self.minibatch_order(rng))
        dev.launch("explained_variance", (L,), (L,), self.batch_stats, 0, ro.values,
                   ro.returns, cfg.batch_size, self.scratch)
        if self.forward_before:
            self._rollout_outputs(self.old_outputs)

    def end_update(self, done: int) -> dict:
        """What comes after DONE minibatches: the policy's churn, the iteration's stats (a
        population makes the churn launches and the reads for all its agents at once, then
        ``summarise``s them together: rlcl/batched.py)."""
        dev, policy, L = self.device, self.policy, self.reduce_size
        if self.churn:
            self._rollout_outputs(None)
            dev.launch("policy_churn", (L,), (L,), self.batch_stats, 2, self.old_outputs,
                       policy.outputs, self.cfg.batch_size, policy.n_outputs, self.scratch)
        read = dev.read_many(*self.summary_reads(done))
        return summarise([self], done, *(x[None] for x in read))[0]

    def summary_reads(self, done: int) -> list[tuple]:
        """(buffer, count) of what an iteration's summary reads back after DONE updates."""
        flat = self.policy.flat
        return [(self.stats, done * NUM_LOSS_STATS), (flat.norms, done),
                (flat.partials, done * flat.step_groups * SMOOTH_STATS), (self.batch_stats, 4)]

    def book_updates(self, updates: int) -> tuple[dict, list, list]:
        """Book this iteration's UPDATES as update_minibatches and _minibatch_fused do, for a
        population's ppo_minibatch_pop and ppo_step_pop launches (rlcl/batched.py): this
        agent's columns of the agent table (kernel_constants.AGENT_COLUMNS) common to the
        updates, and per update its ``inject_nan`` and ``first``."""
        cfg = self.cfg
        injects = ([int(self.total_updates + u in self.inject_at) for u in range(updates)]
                   if self.inject_at else [0] * updates)
        self.total_updates += updates
        _, _, max_norm, skip_above, lr, momentum, dampening, weight_decay, nesterov, firsts = \
            self.optimizer.fused_steps(self.policy.flat, cfg.max_grad_norm, range(updates))
        row = dict(clip_coef=cfg.clip_coef, clip_vloss=int(cfg.clip_vloss),
                   ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef, norm_adv=int(cfg.norm_adv),
                   max_norm=max_norm, skip_above=skip_above, lr=lr, momentum=momentum,
                   dampening=dampening, weight_decay=weight_decay, nesterov=nesterov)
        return row, injects, firsts

    def update_minibatches(self) -> int:
        """Epochs x minibatches; returns the number of updates made."""
        cfg = self.cfg
        done = 0
        for epoch in range(cfg.update_epochs):
            for k in range(cfg.num_minibatches):
                inject = self.total_updates in self.inject_at  # issue 4: prove the guard works
                self.total_updates += 1
                if self.fused:
                    self._minibatch_fused(done, inject)
                else:
                    self._minibatch_launches(done, inject)
                done += 1
            if cfg.target_kl > 0 and self._epoch_kl(done) > cfg.target_kl:
                break  # CleanRL's early stop: checked after each full epoch
        return done

    def _minibatch_launches(self, u: int, inject: bool) -> None:
        """Update U (minibatch rows indices[u M ..]) as separate launches: the reference for
        the fused one."""
        cfg, dev, policy, ro = self.cfg, self.device, self.policy, self.rollout
        M = cfg.minibatch_size
        ro.gather(policy, u * M, M)
        policy.evaluate(M)
        policy.loss(self.stats, u, ro.mb_actions, ro.mb_logp, ro.mb_adv, ro.mb_ret, ro.mb_val,
                    M, cfg.clip_coef, cfg.clip_vloss, cfg.ent_coef, cfg.vf_coef, cfg.norm_adv,
                    self.PG_MODE, self.reduce_size)
        policy.backward(M)
        if inject:
            dev.write(policy.flat.grads, np.float32([np.nan]))
        clip_grad_norm_(policy.flat, cfg.max_grad_norm, slot=u)
        self.optimizer.step()

    def _minibatch_fused(self, u: int, inject: bool) -> None:
        """Update U in two launches (ppo_minibatch, ppo_step): the same arithmetic, bit for
        bit."""
        cfg, policy, L = self.cfg, self.policy, self.reduce_size
        velocity, prev_update, max_norm, skip_above, lr, momentum, dampening, weight_decay, \
            nesterov, first = self.optimizer.fused_step(policy.flat, cfg.max_grad_norm, u)
        if self.prepared is None:  # the buffers and sizes, set once
            self.prepared = self._prepare_fused(max_norm)
        grads, step = self.prepared
        W = self.device.lane_items(L)
        grads.launch((2 * W,), (W,), u=u, inject_nan=int(inject))  # a work-group per network
        # the step's arguments: the launch sets only those that changed (Device.prepare);
        # velocity and prev_update are buffers a rollback may replace. Two work-groups, each
        # its half of the parameters (both compute the norm: ppo_update.cl)
        step.launch((2 * L,), (L,), u=u, skip_above=skip_above, lr=lr, first=first,
                    velocity=velocity, prev_update=prev_update, momentum=momentum,
                    dampening=dampening, weight_decay=weight_decay, nesterov=nesterov)

    def _prepare_fused(self, max_norm: float):
        cfg, dev, flat = self.cfg, self.device, self.policy.flat
        grads = dev.prepare(
            "ppo_minibatch", *self.minibatch_buffers(), *self.minibatch_sizes(), 0,
            cfg.clip_coef, int(cfg.clip_vloss), cfg.ent_coef, cfg.vf_coef, int(cfg.norm_adv),
            self.PG_MODE, 0, self.fused_scratch)
        step = dev.prepare(
            "ppo_step", flat.params, flat.grads, flat.grads, flat.grads, flat.norms,
            flat.partials, flat.n, 0, max_norm, self.norm_lanes, -1.0, 0.0, 0.0, 0.0, 0.0, 0, 1,
            flat.step_groups, self.fused_scratch)
        return grads, step

    def minibatch_buffers(self) -> list:
        """ppo_minibatch's buffer arguments, in order (ppo_minibatch_pop's too)."""
        policy, ro, flat = self.policy, self.rollout, self.policy.flat
        return [flat.grads, flat.params, self.stats, policy.weights_t, policy.hidden,
                policy.obs_buffer, self.critic_obs, policy.outputs, policy.values,
                policy.d_outputs, policy.d_values,
                policy.d_log_std if policy.continuous else policy.d_values, ro.mb_actions,
                ro.mb_logp, ro.mb_adv, ro.mb_ret, ro.mb_val, ro.indices, ro.obs, ro.actions,
                ro.logp, ro.advantages, ro.returns, ro.values, policy.ac_table_buf]

    def minibatch_sizes(self) -> list:
        """ppo_minibatch's size arguments after the buffers: lpn .. M, lanes (the loss's
        reduction lanes, the separate loss kernel's group size: the same bits)."""
        policy = self.policy
        return [len(policy.actor.layers), policy.n_param_tiles, policy.obs_dim, policy.act_dim,
                policy.n_outputs, policy.log_std_off if policy.continuous else -1,
                self.cfg.minibatch_size, self.reduce_size]

    def _rollout_outputs(self, copy_to) -> None:
        """Actor outputs on all rollout states (policy.outputs), copied to COPY_TO if given."""
        dev, policy, B = self.device, self.policy, self.cfg.batch_size
        dev.copy(policy.obs_buffer, self.rollout.obs, B * policy.obs_dim)
        policy.evaluate(B, critic=False)  # the churn reads only the actor's outputs
        if copy_to is not None:
            dev.copy(copy_to, policy.outputs, B * policy.n_outputs)

    def minibatch_order(self, rng: np.random.Generator) -> np.ndarray:
        """A fresh permutation of the batch per epoch, from the seeded host RNG."""
        # one call: the same numbers as a permutation() per epoch, in half the time; permuted
        # returns a shuffled copy, so the tiled range is built once
        if self._epoch_rows is None:
            B = self.cfg.batch_size
            self._epoch_rows = np.tile(np.arange(B), (self.cfg.update_epochs, 1))
        return rng.permuted(self._epoch_rows, axis=1).ravel()

    def _epoch_kl(self, done: int) -> float:
        n = self.cfg.num_minibatches
        rows = self.device.read(self.stats, n * NUM_LOSS_STATS, offset=(done - n) * NUM_LOSS_STATS)
        return float(rows.reshape(n, NUM_LOSS_STATS)[:, 3].mean())


_MEAN_STATS = LOSS_STATS[:5]  # the loss statistics summarise averages over the updates


def summarise(agents: list, done: int, rows: np.ndarray, norms: np.ndarray, sums: np.ndarray,
              batch: np.ndarray) -> list[dict]:
    """Each agent's iteration figures: means over all DONE minibatches (not the last one), in
    float64, plus the smoothness and divergence figures (rlcl/diagnostics.py). The arrays hold
    a row per agent of what summary_reads names (a population reads every agent's at once:
    rlcl/batched.py). The arithmetic runs on all rows together, element by element and row by
    row as for one agent, so each agent's figures have the bits its single run's have."""
    P, flat = len(agents), agents[0].policy.flat
    rows = rows.reshape(P, done, NUM_LOSS_STATS).astype(np.float64)
    norms32, norms = norms.reshape(P, done), norms.reshape(P, done).astype(np.float64)
    sums = sums.reshape(P, done, flat.step_groups, SMOOTH_STATS).astype(np.float64).sum(axis=2)
    batch = batch.reshape(P, 4).astype(np.float64)
    # one reduction per statistic kind for all agents, not one np.mean per column and agent:
    # numpy's per-call cost is most of the host time of an A2C iteration and of a population
    means, maxs = (rows.sum(axis=1) / done).tolist(), rows.max(axis=1).tolist()
    mins = rows[:, :, 7].min(axis=1).tolist()
    max_norm = np.array([[a.cfg.max_grad_norm] for a in agents], np.float64)
    postclip = np.where(max_norm > 0, np.minimum(norms, max_norm), norms)
    preclip_mean = (norms.sum(axis=1) / done).tolist()
    postclip_mean = (postclip.sum(axis=1) / done).tolist()
    preclip_max = norms.max(axis=1).tolist()
    nonfinite = (np.count_nonzero(~np.isfinite(rows), axis=(1, 2))
                 + np.count_nonzero(~np.isfinite(norms), axis=1)).tolist()
    # which steps the guard refused on the device, one bool per update; and the step counts
    # are exact at the iteration's end (Adam's t). Adam settles a step it launched without a
    # threshold at once (none was refused): then nothing is left to settle here.
    refused = settle_many([a.optimizer for a in agents], [a.policy.flat for a in agents],
                          norms32)
    smooth = smoothness_many(sums, flat.n, [a.momentum for a in agents], taken=~refused)
    skipped = np.count_nonzero(refused, axis=1).tolist()
    outs, batch_rows = [], batch.tolist()
    for k, agent in enumerate(agents):
        c, (ev, var_returns, churn, tv) = agent.cfg, batch_rows[k]
        out = dict(zip(_MEAN_STATS, means[k]))
        out.update(approx_kl_max=maxs[k][5], ratio_max=maxs[k][6], ratio_min=mins[k],
                   grad_norm_preclip=preclip_mean[k], grad_norm_preclip_max=preclip_max[k],
                   grad_norm_postclip=postclip_mean[k], explained_variance=ev,
                   var_returns=var_returns, updates=done, skipped_steps=skipped[k])
        out.update(smooth[k])
        out["loss"] = (out["policy_loss"] - c.ent_coef * out["entropy"]
                       + c.vf_coef * out["value_loss"])
        if var_returns > 0:  # undefined for constant returns: not logged (issue 10)
            out["value_loss_norm"] = out["value_loss"] / var_returns
        out["nonfinite"] = float(nonfinite[k] + out["nonfinite_params"])
        if agent.churn:
            out.update(policy_churn=churn, policy_tv=tv)
            if agent.policy.n_outputs > 1:  # H / ln|A|: 1 for a uniform policy
                out["entropy_norm"] = out["entropy"] / math.log(agent.policy.n_outputs)
        std = agent.policy.std()
        if std is not None:
            out["std"] = float(std.mean())
        outs.append(out)
    return outs
