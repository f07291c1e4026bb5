"""One launch for all agents of a population (issue 13): the iteration of rlcl/run.py's Run,
for every agent at once, where its big launches run the whole population.

Per iteration: one ``rollout_classic_pop`` (every agent's whole rollout) and one readback of
every agent's finished episodes; on a CPU one ``ppo_update_pop`` (every agent's every
minibatch), on a GPU per minibatch one ``ppo_minibatch_pop`` and one ``ppo_step_pop``
(kernels/ppo_update.cl), where each agent alone made two launches a minibatch. Each
agent keeps the rest of its iteration (GAE, the statistics, the guard, the logs) through its
Run's phases. The buffers are the arena's (rlcl/arena.py), so the kernels find every agent's
slice; the per-agent scalars (seed, gamma, the loss coefficients, the optimizer's step
scalars) go in one table written per launch row (the kernels: rlcl/batched_kernels.py). The
host books each phase while the device runs the one before, and the next iteration's rollout
runs while the host summarises this one (``_run_ahead``), with the update's churn before it and
the next minibatch orders drawn during the update (docs/architecture.md, Populations).

Where it applies (``applies``): device envs and the fused update (SGD family, no target_kl
early stop, which ends epochs per agent). Agent k's arithmetic is the single launches', so
a population trained here equals one trained agent by agent (tests/test_population.py).
"""

from __future__ import annotations

import time

import numpy as np

from rlcl.agents.ppo import PPO, summarise
from rlcl.arena import Arena, Pinned, ReadThrough, agent_words
from rlcl.batched_kernels import PopulationKernels
from rlcl.checkpoint import LATEST, SyncBatch
from rlcl.config import Config
from rlcl.device_rollout import finished_episodes
from rlcl.eval import evaluate_agents
from rlcl.guard import DivergenceError
from rlcl.kernel_constants import AGENT_COLUMNS
from rlcl.run import write_logs


def applies(cfg: Config, agents: int) -> bool:
    return (agents > 1 and cfg.env_backend == "device" and cfg.optimizer != "adam"
            and cfg.target_kl == 0 and PPO.FUSE)


class Batched:
    """RUNS: the population's Run per agent index, every one built in ARENA."""

    def __init__(self, device, arena: Arena, runs: list):
        self.device, self.arena, self.runs = device, arena, runs
        self.keep: list = []  # host arrays whose copies may still be in flight
        self.kernels = k = PopulationKernels(device, arena, runs)
        self.n, self.snapshots = runs[0].policy.flat.n, {}  # the guards' snapshot regions
        self.velocity, self.prev_update = k.velocity, k.prev_update
        self.indices, self.index_stride = arena.whole(runs[0].rollout.indices)
        self.ep_log, self.ep_stride = arena.whole(runs[0].rollout.ep_log)
        # (agent index, its iteration stats) whose churn runs behind the rollout ahead and is
        # read back with the next episodes (_resolve_churn)
        self.churn_behind: list = []
        # agent index -> (its next minibatch order, its rollbacks then, its RNG state before)
        self.orders_ahead: dict = {}
        self.ahead: int | None = None  # the iteration whose rollout was launched ahead
        self.booked: tuple | None = None  # (iteration, agents) whose update is booked ahead
        self.committing = None  # the last checkpoint's SyncBatch while it commits (_save)

    def iterate(self, live: list) -> list:
        """One iteration of the LIVE runs, all at the same iteration. The launches run every
        agent: a stopped (failed) one's slices are computed and ignored, for a kernel may not
        return before its barriers on PoCL 3.0 (an early return for such agents made it
        miscompile the gradients to zeros; Oclgrind ran it right). Returns (run,
        DivergenceError) for each run whose guard gave up, for the caller to stop.

        The host books each phase while the device runs the one before it: the update's
        scalars while the rollout runs, the episodes while the update runs, and the statistics,
        the guard and the logs while the next iteration's rollout runs (``_run_ahead``)."""
        dev, P, r0 = self.device, len(self.runs), live[0]
        # ROLLOUT: every agent's, one launch (unless it ran ahead); its episodes, one readback
        if self.ahead != r0.iteration:
            self.kernels.launch_rollout(r0.iteration)
        self.ahead = None
        (ep_log, *churns), episodes_read = dev.read_later(
            (self.ep_log, P * self.ep_stride),
            *([(self.kernels.batch_stats, P * self.kernels.batch_stride)]
              if self.churn_behind else []))
        # ADVANTAGE and UPDATE, booked (unless the last iteration did) and launched before the
        # episodes are back; the last iteration's scalars logged while the device runs them
        if self.booked != self._booking(live, r0.iteration):
            self._book_update(live)
        self.booked = None
        self.kernels.launch_update()
        run_ahead = self._may_run_ahead(live)
        if not run_ahead:
            self.kernels.launch_churn()
        if churns:  # the last iteration's churn, behind its rollout ahead, before its log
            episodes_read.wait()
            self._resolve_churn(churns[0])
        write_logs(live)
        if run_ahead:
            self._draw_orders_ahead(live)
        t0 = time.perf_counter()
        episodes_read.wait()
        self._book_episodes(live, ep_log, (time.perf_counter() - t0) / len(live))
        # every agent's statistics in one read per kind, then each agent's summary
        updates = r0.agent.num_updates
        wholes = [(self.arena.whole(buffer), count)
                  for buffer, count in r0.agent.summary_reads(updates)]
        reads, summary_read = dev.read_later(*((whole, P * stride)
                                               for (whole, stride), _ in wholes))
        # (on PoCL pthread these enqueues return only once the update is done, measured: the
        # rollout ahead follows it at once)
        if run_ahead:
            self._run_ahead(live)
        summary_read.wait()
        self.keep.clear()  # every copy before the reads is done
        rows = [run.index for run in live]
        summaries = summarise([run.agent for run in live], updates,
                              *(read.reshape(P, stride)[rows, :count]
                                for read, ((_, stride), count) in zip(reads, wholes)))
        if run_ahead and self.kernels.churn is not None:  # their churn comes with the next episodes
            self.churn_behind = list(zip(rows, summaries))
        failed, rollbacks, due = [], [run.guard.rollbacks for run in live], []
        for run in live:  # the guards' snapshot copies made together, after every guard
            run.guard.copy_later = True
        try:
            for run, stats in zip(live, summaries):
                try:
                    if run.end_update(updates, stats, defer_log=True):
                        due.append(run)
                except DivergenceError as exc:  # that agent alone: the caller stops it
                    failed.append((run, exc))
        finally:
            self._copy_snapshots(live)
            for run in live:
                run.guard.rng_ahead = None
        self._save(due)
        if self.ahead is not None and (failed or rollbacks != [r.guard.rollbacks for r in live]):
            self._take_back()
        if self.ahead is not None:  # the next iteration's update booked while its rollout runs
            self._book_update(live)
            self.booked = self._booking(live, self.ahead)
        if failed:  # the caller stops them: their checkpoints' files settled first
            self.settle()
        return failed

    def _save(self, due: list) -> None:
        """The checkpoints DUE, as each run would save it at the end of its end_update (no
        device state has changed since: the guards acted, no launch followed). Their device
        reads come from one read of each arena buffer (arena.ReadThrough): nine blocking reads
        an agent, each a round trip to PoCL pthread's workers, made a checkpoint of 64 agents
        cost ~60 ms. Their files are written, fsynced and renamed together
        (checkpoint.SyncBatch), in the background while training goes on: ~20 ms of np.savez
        and ~60 ms of waiting on the disk per checkpoint of 64 agents (stop 29, idle device),
        which the device used to sit idle through. The next checkpoint, a failure or the end
        of the training waits for them first (``settle``)."""
        if not due:
            return
        self.settle()  # the next checkpoint reuses the temporary files' names
        regions = {**self.arena.regions(), **self.velocity.regions(),
                   **self.prev_update.regions()}
        self.device.read_through = ReadThrough(self.device, regions)
        sync = SyncBatch()
        try:
            for run in due:
                run.save(LATEST, sync)
        finally:
            self.device.read_through = None
        sync.commit_in_background()
        self.committing = sync

    def settle(self) -> None:
        """Every run as its single run would stand, for what happens outside ``iterate``:
        the minibatch orders drawn ahead undrawn (each RNG back to its state before them),
        the churn figures behind read into the stats, and the last checkpoint's fsyncs and
        renames waited for (their error raised)."""
        for index, (_, rollbacks, state) in self.orders_ahead.items():  # undrawn, as if never
            run = self.runs[index]
            if rollbacks == run.guard.rollbacks:
                run.rng.bit_generator.state = state
        self.orders_ahead = {}
        if self.churn_behind:  # the logs are about to be read or written outside iterate
            k = self.kernels
            self._resolve_churn(self.device.read(k.batch_stats, k.P * k.batch_stride))
        if self.committing is not None:
            committing, self.committing = self.committing, None
            committing.wait()

    def _copy_snapshots(self, live: list) -> None:
        """The device copies of the snapshots the LIVE runs' guards took this iteration: when
        every agent of the population took one, one copy per kind of buffer (parameters,
        velocity, last update) from the arena into the population's snapshot regions; else
        each guard its own (three copies an agent, each a round trip on PoCL pthread)."""
        due = [run for run in live if run.guard.copies_due]
        for run in live:
            run.guard.copy_later = False
        sources = self._snapshot_sources()
        if len(due) < len(self.runs) or any(
                run.guard.snapshot["copies"].keys() != sources.keys() for run in due):
            for run in due:
                run.guard.copy_snapshot()
            return
        for name, (whole, stride) in sources.items():
            if name not in self.snapshots:
                self.snapshots[name] = Pinned(self.device, len(self.runs), self.n, stride)
            region = self.snapshots[name]
            for run in due:  # each snapshot buffer into the region once (Pinned.pin)
                region.pin(run.guard.snapshot["copies"], name, run.index)
            self.device.copy(region.whole, whole, len(self.runs) * stride)
        for run in due:
            run.guard.copies_due = False

    def _snapshot_sources(self) -> dict:
        """What a guard snapshots (guard.Guard._buffers), as (whole buffer, stride) of every
        agent's: the parameters in the arena, the optimizer's buffers where they are pinned."""
        sources = {"params": self.arena.whole(self.runs[0].policy.flat.params)}
        state = self.runs[0].optimizer.state[self.runs[0].policy.flat]
        for key, pinned in (("momentum_buffer", self.velocity), ("prev_update", self.prev_update)):
            if key in state:
                sources[f"0/{key}"] = (pinned.whole, pinned.stride)
        return sources

    @staticmethod
    def _booking(live: list, iteration: int) -> tuple:
        return iteration, tuple(run.index for run in live)

    def _book_update(self, live: list) -> None:
        """Each agent's update booked as its single run books it (the schedule's lr, the
        guard's threshold, the epochs' orders, every update's scalars, update by update), and
        the orders and the scalars written at once. The host may do this while the device
        runs the update's rollout (``iterate``): neither reads what the other writes."""
        dev, P = self.device, len(self.runs)
        orders = np.zeros((P, self.index_stride), np.int32)
        drawn, self.orders_ahead = self.orders_ahead, {}
        for run in live:
            run.begin_update(launch=False)
            order, rollbacks, _ = drawn.get(run.index, (None, None, None))
            if rollbacks != run.guard.rollbacks:  # none drawn, or a rollback reset the RNG
                order = run.agent.minibatch_order(run.rng)
            orders[run.index, :order.size] = order
        # a row per (update, agent); an agent that is not live keeps zeros (its slices are
        # computed and ignored: ``iterate``)
        updates = live[0].agent.num_updates
        words = np.zeros((updates, P, len(AGENT_COLUMNS)), np.uint32)
        rows, injects, firsts = zip(*(run.agent.book_updates(updates) for run in live))
        for run in live:
            state = run.optimizer.state[run.policy.flat]
            self.velocity.pin(state, "momentum_buffer", run.index)
            self.prev_update.pin(state, "prev_update", run.index)
        slots = [run.index for run in live]
        words[:, slots] = agent_words(rows)
        words[:, slots, AGENT_COLUMNS.index("inject_nan")] = np.array(injects).T
        words[:, slots, AGENT_COLUMNS.index("first")] = np.array(firsts).T
        # both writes last: on PoCL pthread a write returns only once the launches before it
        # (the rollout) are done, and the device waits for the update from then on
        # (x64: 1.65 ms of idle device an iteration with the orders written first)
        self.keep += [orders, words]
        dev.write(self.indices, orders)
        dev.write(self.kernels.hp_steps, words)

    def _draw_orders_ahead(self, live: list) -> None:
        """The next iteration's minibatch orders, drawn while the device runs this update
        rather than between the guards and the next launch, when the device waits on the host
        (x64: ~0.75 ms an iteration). Nothing else draws from a run's RNG meanwhile; its guard
        snapshots the state from before the draw (Guard.rng_ahead), and a rollback, which
        resets the RNG to a snapshot's state, has ``_book_update`` draw that agent's anew.
        Only when the rollout runs ahead: a checkpoint saves the RNG as the iteration left it."""
        self.orders_ahead = {}
        for run in live:
            run.guard.rng_ahead = run.rng.bit_generator.state
            self.orders_ahead[run.index] = (run.agent.minibatch_order(run.rng),
                                            run.guard.rollbacks, run.guard.rng_ahead)

    def _book_episodes(self, live: list, ep_log: np.ndarray, seconds: float) -> None:
        """The rollout's finished episodes into each agent's logs (after_rollout; the GAE
        was launched for all)."""
        T, N = live[0].rollout.T, live[0].rollout.N
        logs = ep_log.reshape(len(self.runs), self.ep_stride)[:, :2 * T * N]
        episodes = finished_episodes(logs[[run.index for run in live]].reshape(-1, T, N, 2),
                                     [run.global_step for run in live])
        for run, finished in zip(live, episodes):
            run.rollout.readback_seconds += seconds
            run.after_rollout(finished, gae=False)

    def _resolve_churn(self, batch: np.ndarray) -> None:
        """The churn figures of ``churn_behind`` from BATCH (every agent's batch_stats: the
        explained variance, the returns' variance, the churn, its TV), as summarise takes them."""
        figures = batch.reshape(self.kernels.P, -1)[:, 2:4].astype(np.float64)
        for index, stats in self.churn_behind:
            if "policy_churn" in stats:
                stats["policy_churn"], stats["policy_tv"] = figures[index].tolist()
        self.churn_behind = []

    @staticmethod
    def _may_run_ahead(live: list) -> bool:
        """Whether the next iteration's rollout may run ahead (``_run_ahead``): not before a
        checkpoint (it saves the envs as this iteration leaves them), nor after the last
        iteration."""
        nxt = live[0].iteration + 1
        return not any(nxt >= run.cfg.num_iterations
                       or (run.cfg.checkpoint_every and nxt % run.cfg.checkpoint_every == 0)
                       for run in live)

    def _run_ahead(self, live: list) -> None:
        """Launch the next iteration's rollout now, so the device runs it while the host
        summarises this one. It reads the parameters this update leaves, which stand unless a
        guard rolls its agent back or an agent fails: then ``_take_back`` restores the envs and
        the next iteration runs its rollout afresh, as the single runs do.

        The update's churn runs first, after the summary's reads: the host starts on the
        summary ~1 ms sooner (x64), while the device runs the churn and then the rollout. The
        guard does not read the churn; the logs get it with the next episodes
        (``_resolve_churn``), before they are written."""
        self.kernels.back_up_envs()
        self.kernels.launch_churn()
        self.ahead = live[0].iteration + 1
        self.kernels.launch_rollout(self.ahead)

    def evaluate(self, live: list, episodes: int) -> list:
        """The LIVE runs' final greedy evaluations, one launch a step for all (eval.py)."""
        params, stride = self.arena.whole(live[0].policy.flat.params)
        return evaluate_agents(live, len(self.runs), params, stride, self.kernels.hp, episodes)

    def _take_back(self) -> None:
        """Undo the rollout that ran ahead: every agent's envs as this iteration left them."""
        self.kernels.restore_envs()
        self.ahead = None
