"""The kernels of a batched population (issue 13), prepared once and launched for every agent
at once by rlcl/batched.py: the rollout, the GAE, the explained variance, the update and the
churn. Their buffers are the arena's whole buffers (rlcl/arena.py) with each agent's stride, so
a launch finds every agent's slice; the per-agent scalars are two tables of 32-bit words
(kernel_constants.AGENT_COLUMNS): ``hp``, set once (seed, gamma, lambda), and ``hp_steps``, a
row per (update, agent), written once an iteration (on PoCL pthread a copy waits for the
launches before it: one per launch serialised the host and the device).
"""

from __future__ import annotations

import numpy as np

from rlcl.arena import Arena, Pinned, agent_words
from rlcl.kernel_constants import AGENT_COLUMNS
from rlcl.policy import STREAM_ENV_RESET, STREAM_ROLLOUT


class PopulationKernels:
    """RUNS: the population's Run per agent index, every one built in ARENA."""

    def __init__(self, device, arena: Arena, runs: list):
        self.device, self.P = device, len(runs)
        P, r0 = len(runs), runs[0]
        agent, rollout, policy, envs = r0.agent, r0.rollout, r0.policy, r0.state.envs
        flat = policy.flat
        self.velocity, self.prev_update = Pinned(device, P, flat.n), Pinned(device, P, flat.n)
        fixed = np.zeros((P, len(AGENT_COLUMNS)), np.uint32)
        fixed[[run.index for run in runs]] = agent_words(
            [{"seed": run.cfg.seed, "gamma": run.cfg.gamma, "gae_lambda": run.cfg.gae_lambda}
             for run in runs])
        self.hp = device.upload(fixed)
        self.hp_steps = device.zeros(agent.num_updates * P * len(AGENT_COLUMNS), np.uint32)
        self.L, self.updates, self.items, self.N = (agent.reduce_size, agent.num_updates,
                                                     rollout.items, rollout.N)
        self.batch_size = r0.cfg.batch_size

        def pop(name, buffers, *rest):  # the whole buffers, their strides, then REST
            wholes, strides = arena.strides(buffers)
            return device.prepare(name, *wholes, device.upload(strides), *rest)

        self.rollout = pop("rollout_classic_pop", rollout.buffers(envs, policy), self.hp,
                           *rollout.sizes(envs, policy), rollout.T, rollout.N, STREAM_ROLLOUT,
                           STREAM_ENV_RESET, 0, int(envs.norm_obs), int(envs.norm_reward),
                           rollout.width, rollout.per_item, rollout.scratch, rollout.batch)
        ro = rollout
        self.gae = pop("gae_pop", [ro.advantages, ro.returns, ro.rewards, ro.values, ro.ends,
                                   ro.trunc_values], self.hp, ro.T, ro.N)
        self.batch_stats, self.batch_stride = arena.whole(agent.batch_stats)
        self.explained = device.prepare(
            "explained_variance_pop", self.batch_stats, 0,
            arena.whole(ro.values)[0], arena.whole(ro.returns)[0],
            device.upload(arena.strides([agent.batch_stats, ro.values, ro.returns])[1]),
            r0.cfg.batch_size, agent.scratch)
        wholes, strides = arena.strides([flat.params, flat.grads])
        norms, norm_stride = arena.whole(flat.norms)
        partials, partial_stride = arena.whole(flat.partials)
        step_buffers = (self.velocity.whole, self.prev_update.whole, norms, partials,
                        device.upload(np.array([*strides, self.velocity.stride,
                                                self.prev_update.stride, norm_stride,
                                                partial_stride], np.int32)))
        if device.update_per_agent:  # the whole iteration's update in one launch
            self.update = pop("ppo_update_pop", agent.minibatch_buffers(), self.hp_steps,
                              *agent.minibatch_sizes(), agent.num_updates, agent.PG_MODE,
                              *step_buffers, flat.n, agent.norm_lanes, flat.step_groups,
                              agent.fused_scratch)
        else:  # per minibatch: its two networks' groups, then the step
            self.update = None
            self.minibatch = pop("ppo_minibatch_pop", agent.minibatch_buffers(), self.hp_steps,
                                 *agent.minibatch_sizes(), 0, agent.PG_MODE, agent.fused_scratch)
            self.step = device.prepare("ppo_step_pop", *wholes, *step_buffers, self.hp_steps,
                                       flat.n, 0, agent.norm_lanes, flat.step_groups,
                                       agent.fused_scratch)
        self.churn = None
        if agent.churn:  # the actor on every stored state after the update, then the churn
            self.forward = pop("ac_forward_pop", [policy.hidden, policy.outputs, policy.values,
                                                  ro.obs, flat.params, policy.ac_table_buf],
                               len(policy.actor.layers), r0.cfg.batch_size)
            wholes, strides = arena.strides([agent.batch_stats, ro.outputs, policy.outputs])
            self.churn = device.prepare("policy_churn_pop", wholes[0], 2, wholes[1], wholes[2],
                                        device.upload(strides), r0.cfg.batch_size,
                                        policy.n_outputs, agent.scratch)
        # what a rollout carries to the next (the envs and their statistics), and a copy to
        # take a rollout that ran ahead back (rlcl/batched.py, _run_ahead)
        self.carried = []
        for buffer in envs.buffers.values():
            whole, stride = arena.whole(buffer)
            self.carried.append((whole, device.empty(P * stride), P * stride))

    def launch_rollout(self, iteration: int) -> None:
        """Every agent's whole rollout of ITERATION."""
        self.rollout.launch((self.items, self.P), (self.items, 1), iteration=iteration)

    def launch_update(self) -> None:
        """GAE, the explained variance, then on a CPU ppo_update_pop, else per minibatch
        ppo_minibatch_pop and ppo_step_pop, for every agent."""
        P, L = self.P, self.L
        self.gae.launch((self.N, P), None)
        self.explained.launch((L, P), (L, 1))
        W = self.device.lane_items(L)
        if self.update is not None:
            self.update.launch((W, P), (W, 1))
        else:
            for u in range(self.updates):
                self.minibatch.launch((2 * W, P), (W, 1), u=u)
                # one group per agent: the agents fill the cores, and each group computes the
                # whole gradient norm before its share of the step (ppo_update.cl)
                self.step.launch((L, P), (L, 1), u=u)

    def launch_churn(self) -> None:
        """The actor on every stored state after the update, then the churn (issue 4)."""
        if self.churn is not None:
            P, L, B = self.P, self.L, self.batch_size
            self.forward.launch((-(-B // 4), 1, P), None)  # the actor alone, as _rollout_outputs
            self.churn.launch((L, P), (L, 1))

    def back_up_envs(self) -> None:
        """A copy of every agent's envs and their statistics, before a rollout runs ahead."""
        for whole, backup, count in self.carried:
            self.device.copy(backup, whole, count)

    def restore_envs(self) -> None:
        """The envs as ``back_up_envs`` found them: a rollout that ran ahead taken back."""
        for whole, backup, count in self.carried:
            self.device.copy(whole, backup, count)
