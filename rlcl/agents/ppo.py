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
from rlcl.diagnostics import smoothness
from rlcl.nn import SMOOTH_STATS
from rlcl.optim import clip_grad_norm_
from rlcl.optim.optimizer import REDUCE_LOCAL_SIZE
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
        first = cfg.inject_nan_update
        self.inject_at = range(first, first + cfg.inject_nan_repeat) if first >= 0 else range(0)
        L = dev.group_size(min(256, cfg.minibatch_size))  # a group no wider than the data
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

    def end_update(self, done: int, read: list | None = None) -> dict:
        """What comes after DONE minibatches: the policy's churn, the iteration's stats.
        READ: what summary_reads names, already read (a population reads every agent's at
        once after making the churn launches for all: rlcl/batched.py)."""
        dev, policy, L = self.device, self.policy, self.reduce_size
        if read is None:
            if self.churn:
                self._rollout_outputs(None)
                dev.launch("policy_churn", (L,), (L,), self.batch_stats, 2, self.old_outputs,
                           policy.outputs, self.cfg.batch_size, policy.n_outputs, self.scratch)
            read = dev.read_many(*self.summary_reads(done))
        return self._summarise(done, read)

    def summary_reads(self, done: int) -> list[tuple]:
        """(buffer, count) of what an iteration's summary reads back after DONE updates."""
        flat = self.policy.flat
        return [(self.stats, done * NUM_LOSS_STATS), (flat.norms, done),
                (flat.partials, done * flat.step_groups * SMOOTH_STATS), (self.batch_stats, 4)]

    def agent_row(self, u: int) -> tuple[dict, object, object]:
        """Book update U as update_minibatches and _minibatch_fused do, for a population's
        ppo_minibatch_pop and ppo_step_pop launch (rlcl/batched.py): (this agent's row of the
        agent table, its velocity buffer, its prev_update buffer)."""
        cfg = self.cfg
        inject = self.total_updates in self.inject_at
        self.total_updates += 1
        velocity, prev_update, max_norm, skip_above, lr, momentum, dampening, weight_decay, \
            nesterov, first = self.optimizer.fused_step(self.policy.flat, cfg.max_grad_norm, u)
        row = dict(clip_coef=cfg.clip_coef, clip_vloss=int(cfg.clip_vloss),
                   ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef, norm_adv=int(cfg.norm_adv),
                   inject_nan=int(inject), max_norm=max_norm, skip_above=skip_above, lr=lr,
                   momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                   nesterov=nesterov, first=first)
        return row, velocity, prev_update

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
        grads.launch((2 * L,), (L,), u=u, inject_nan=int(inject))  # a work-group per network
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
        """ppo_minibatch's size arguments after the buffers: lpn .. M."""
        policy = self.policy
        return [len(policy.actor.layers), policy.n_param_tiles, policy.obs_dim, policy.act_dim,
                policy.n_outputs, policy.log_std_off if policy.continuous else -1,
                self.cfg.minibatch_size]

    def _rollout_outputs(self, copy_to) -> None:
        """Actor outputs on all rollout states (policy.outputs), copied to COPY_TO if given."""
        dev, policy, B = self.device, self.policy, self.cfg.batch_size
        dev.copy(policy.obs_buffer, self.rollout.obs, B * policy.obs_dim)
        policy.evaluate(B, critic=False)  # the churn reads only the actor's outputs
        if copy_to is not None:
            dev.copy(copy_to, policy.outputs, B * policy.n_outputs)

    def minibatch_order(self, rng: np.random.Generator) -> np.ndarray:
        """A fresh permutation of the batch per epoch, from the seeded host RNG."""
        B = self.cfg.batch_size
        # one call: the same numbers as a permutation() per epoch, in half the time
        return rng.permuted(np.tile(np.arange(B), (self.cfg.update_epochs, 1)), axis=1).ravel()

    def _epoch_kl(self, done: int) -> float:
        n = self.cfg.num_minibatches
        rows = self.device.read(self.stats, n * NUM_LOSS_STATS, offset=(done - n) * NUM_LOSS_STATS)
        return float(rows.reshape(n, NUM_LOSS_STATS)[:, 3].mean())

    def _summarise(self, done: int, read: list) -> dict:
        """Means over all minibatches of the iteration (not the last one), in float64, plus the
        smoothness and divergence figures (rlcl/diagnostics.py). READ: summary_reads' arrays."""
        flat, c = self.policy.flat, self.cfg
        rows, norms, sums, batch = read
        rows = rows.reshape(done, NUM_LOSS_STATS).astype(np.float64)
        norms32, norms = norms, norms.astype(np.float64)
        sums = sums.reshape(done, flat.step_groups, SMOOTH_STATS).astype(np.float64).sum(axis=1)
        ev, var_returns, churn, tv = batch.astype(np.float64)
        # one reduction per statistic kind, not one np.mean per column: numpy's per-call cost
        # is most of the host time of an A2C iteration (12,500 of them in a run)
        means, maxs = (rows.sum(axis=0) / done).tolist(), rows.max(axis=0).tolist()
        out = dict(zip(LOSS_STATS[:5], means))
        # which steps the guard refused on the device, one bool per update; and the step
        # counts are exact at the iteration's end (Adam's t)
        refused = self.optimizer.settle({flat: norms32})
        skipped = int(refused.sum())
        postclip = np.minimum(norms, c.max_grad_norm) if c.max_grad_norm > 0 else norms
        out.update(approx_kl_max=maxs[5], ratio_max=maxs[6], ratio_min=float(rows[:, 7].min()),
                   grad_norm_preclip=float(norms.sum() / done),
                   grad_norm_preclip_max=float(norms.max()),
                   grad_norm_postclip=float(postclip.sum() / done), explained_variance=float(ev),
                   var_returns=float(var_returns), updates=done, skipped_steps=skipped)
        out.update(smoothness(sums, flat.n, self.momentum, taken=~refused))
        out["loss"] = out["policy_loss"] - c.ent_coef * out["entropy"] + c.vf_coef * out["value_loss"]
        if var_returns > 0:  # undefined for constant returns: not logged (issue 10)
            out["value_loss_norm"] = out["value_loss"] / var_returns
        out["nonfinite"] = float(np.count_nonzero(~np.isfinite(rows))
                                 + np.count_nonzero(~np.isfinite(norms)) + out["nonfinite_params"])
        if self.churn:
            out.update(policy_churn=float(churn), policy_tv=float(tv))
            if self.policy.n_outputs > 1:  # H / ln|A|: 1 for a uniform policy
                out["entropy_norm"] = out["entropy"] / math.log(self.policy.n_outputs)
        std = self.policy.std()
        if std is not None:
            out["std"] = float(std.mean())
        return out
