"""A population's final evaluation with its gymnasium envs spread over worker processes.

Every agent of a population ends with greedy episodes on gymnasium's own env (rlcl/eval.py),
``eval_episodes`` copies per agent (FirstEpisodes), stepped in lockstep with one policy
launch a step for all. Those env steps are pure Python (about 20 us each for CartPole), and
for 64 agents they took longer than the training itself on one core. Here each of WORKERS
processes builds, resets and steps a share of the agents' envs exactly as
eval.first_returns would, while this process acts for all of them on the device: the same
returns, the envs' Python on every core. Workers are fresh interpreters (``python -m
rlcl.eval_pool``; not forked: the parent holds an OpenCL context and its threads) that import
only gymnasium and rlcl.envs, and exchange pickles with this process over their stdin and
stdout.
"""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np

from rlcl.envs import EVAL_SEED_OFFSET, make_env, normalize_obs

# From this many agents on: starting the workers takes ~0.4 s (fresh interpreters importing
# gymnasium), and 16 trained CartPole agents' 20 episodes take ~4 s of stepping on one core.
POOL_MIN_AGENTS = 16


class FirstEpisodes:
    """EPISODES copies of gymnasium's own env ENV_ID (``gym.make``: its time limit and checks)
    for an evaluation that counts each copy's first episode: copy i reset with seed + i, as a
    vector env seeds its sub-envs, its observations normalised with NORM_STATE's frozen
    statistics (envs.normalize_obs, what envs.NormalizeObservation applies), its rewards summed
    in float64 as RecordEpisodeStatistics sums them. A copy steps until its first episode ends,
    then no more (the policy's actions for it are ignored; each env's actions depend on its own
    observation and its own random stream only). A SyncVectorEnv with those wrappers gave the
    same returns (tests/test_envs.py) in ~10 % more time: its per-env info merging, and the
    autoreset of envs whose first episode was over (issue 13)."""

    def __init__(self, env_id: str, episodes: int, norm_state: dict | None):
        self.envs = [make_env(env_id) for _ in range(episodes)]
        space = self.envs[0].observation_space
        self.obs = np.zeros((episodes, *space.shape), space.dtype)  # as a vector env's batch
        self.sums = np.zeros(episodes)
        self.returns = np.full(episodes, np.nan)  # each copy's first return, NaN until then
        self.rms = (norm_state or {}).get("obs")

    def reset(self, seed: int) -> np.ndarray:
        for i, env in enumerate(self.envs):
            self.obs[i] = env.reset(seed=seed + i)[0]
        return self.observations()

    def step(self, actions) -> np.ndarray:
        """ACTIONS, one per copy, to the copies still in their first episode."""
        for i in np.flatnonzero(np.isnan(self.returns)):
            obs, reward, terminated, truncated, _ = self.envs[i].step(actions[i])
            self.obs[i] = obs
            self.sums[i] += reward
            if terminated or truncated:
                self.returns[i] = self.sums[i]
        return self.observations()

    def observations(self) -> np.ndarray:
        if self.rms is None:
            return self.obs
        return normalize_obs(self.obs, self.rms["mean"], self.rms["var"])

    @property
    def done(self) -> bool:
        return not np.isnan(self.returns).any()

    def close(self) -> None:
        for env in self.envs:
            env.close()


def eval_envs(env_id: str, episodes: int, norm_state: dict | None) -> FirstEpisodes:
    """The envs of one agent's evaluation (see FirstEpisodes)."""
    return FirstEpisodes(env_id, episodes, norm_state)


def step_running(envs: list, obs: list, actions: list) -> None:
    """Step each FirstEpisodes of ENVS still running with its ACTIONS, its observations into
    OBS: eval.first_returns' step, shared with the workers."""
    for k, envs_k in enumerate(envs):
        if not envs_k.done:
            obs[k] = envs_k.step(actions[k])


def _serve(inbox, outbox) -> None:
    """A worker: its share of the envs, SPECS (eval_envs arguments) and SEEDS per agent, first;
    then it sends the first observations, and after each list of actions received the
    observations and the first returns; None ends it. An exception is sent back, for the
    parent to raise."""
    envs = []
    try:
        specs, seeds = pickle.load(inbox)
        envs = [eval_envs(*spec) for spec in specs]
        obs = [e.reset(seed + EVAL_SEED_OFFSET) for e, seed in zip(envs, seeds)]
        _send(outbox, np.asarray(obs, np.float32))
        while (actions := pickle.load(inbox)) is not None:
            step_running(envs, obs, actions)
            _send(outbox, (np.asarray(obs, np.float32), np.array([e.returns for e in envs])))
    except Exception as exc:  # noqa: BLE001 - any failure goes to the parent
        _send(outbox, exc)
    finally:
        for e in envs:
            e.close()


def _send(stream, message) -> None:
    pickle.dump(message, stream, protocol=pickle.HIGHEST_PROTOCOL)
    stream.flush()


def _receive(proc: subprocess.Popen):
    try:
        message = pickle.load(proc.stdout)
    except EOFError:
        raise RuntimeError(f"an evaluation worker exited (code {proc.wait()}); see the error "
                           "above") from None
    if isinstance(message, Exception):
        raise message
    return message


def pooled_first_returns(specs: list, seeds: list[int], act, workers: int) -> np.ndarray:
    """eval.first_returns for the vector envs that eval_envs(*spec) builds, one per SPECS
    entry (reset with its seed of SEEDS), stepped by WORKERS processes: agents x sub-envs
    first-episode returns."""
    shares = [share for share in np.array_split(np.arange(len(specs)), workers) if share.size]
    procs = []
    try:
        for share in shares:
            # a fresh interpreter running this module, talking pickles over its stdin and
            # stdout: multiprocessing's spawn would run the caller's main script again
            proc = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE)
            procs.append(proc)
            _send(proc.stdin, ([specs[k] for k in share], [seeds[k] for k in share]))
        obs = np.concatenate([_receive(proc) for proc in procs])
        returns = np.full((len(specs), obs.shape[1]), np.nan)
        step = 0
        while np.isnan(returns).any():
            actions = act(obs, step)
            for proc, share in zip(procs, shares):
                _send(proc.stdin, [actions[k] for k in share])
            for proc, share in zip(procs, shares):
                obs[share], returns[share] = _receive(proc)
            step += 1
        return returns
    finally:
        for proc in procs:
            try:
                _send(proc.stdin, None)
                proc.stdin.close()
            except OSError:  # that worker is gone already
                pass
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            proc.stdout.close()


if __name__ == "__main__":
    protocol = sys.stdout.buffer
    sys.stdout = sys.stderr  # a print anywhere in the envs must not corrupt the pickles
    _serve(sys.stdin.buffer, protocol)
