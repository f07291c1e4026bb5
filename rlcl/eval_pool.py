"""A population's final evaluation with its gymnasium envs spread over worker processes.

Every agent of a population ends with greedy episodes on gymnasium's own env (rlcl/eval.py),
one vector env of ``eval_episodes`` sub-envs per agent, stepped in lockstep with one policy
launch a step for all. Those sub-env steps are pure Python (about 20 us each for CartPole),
and for 64 agents they took longer than the training itself on one core. Here each of
WORKERS processes builds, resets and steps a share of the agents' vector envs exactly as
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

from rlcl.envs import EVAL_SEED_OFFSET, load_normalization, make_vec_env

# From this many agents on: starting the workers takes ~0.4 s (fresh interpreters importing
# gymnasium), and 16 trained CartPole agents' 20 episodes take ~4 s of stepping on one core.
POOL_MIN_AGENTS = 16


def eval_envs(env_id: str, episodes: int, norm_state: dict | None):
    """A vector env of EPISODES sub-envs that normalises observations as NORM_STATE says."""
    norm_state = norm_state or {}
    envs = make_vec_env(env_id, episodes, norm_obs="obs" in norm_state)
    load_normalization(envs, norm_state, update=False)
    return envs


def step_running(envs: list, obs: list, returns: np.ndarray, actions: list, running) -> None:
    """Step the vector envs of ENVS whose index is in RUNNING with their ACTIONS, in place:
    their observations into OBS, each sub-env's first episode return into RETURNS (NaN until
    then). eval.first_returns' step, shared with the workers."""
    for k in running:
        obs[k], _, _, _, infos = envs[k].step(actions[k])
        if "_episode" in infos:
            for i in np.flatnonzero(infos["_episode"]):
                if np.isnan(returns[k, i]):
                    returns[k, i] = infos["episode"]["r"][i]


def _serve(inbox, outbox) -> None:
    """A worker: its share of the envs, SPECS (eval_envs arguments) and SEEDS per agent, first;
    then it sends the first observations, and after each list of actions received the
    observations and the first returns; None ends it. An exception is sent back, for the
    parent to raise."""
    envs = []
    try:
        specs, seeds = pickle.load(inbox)
        envs = [eval_envs(*spec) for spec in specs]
        obs = [e.reset(seed=seed + EVAL_SEED_OFFSET)[0] for e, seed in zip(envs, seeds)]
        returns = np.full((len(envs), envs[0].num_envs), np.nan)
        _send(outbox, np.asarray(obs, np.float32))
        while (actions := pickle.load(inbox)) is not None:
            step_running(envs, obs, returns, actions,
                         np.flatnonzero(np.isnan(returns).any(axis=1)))
            _send(outbox, (np.asarray(obs, np.float32), returns))
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
