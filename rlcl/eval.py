"""Greedy (or sampled) evaluation episodes of a policy on the device, and
``python -m rlcl.eval RUN_DIR [--episodes N] [--seed N] [--stochastic] [--video DIR]``.

One copy of gymnasium's env per episode, each copy's first episode counted
(eval_pool.FirstEpisodes). Actions come from the same fused ``policy_act`` kernel as the
rollout, with ``greedy`` set. Observation normalisation, if the run used it, applies the
training statistics, frozen. A batched population evaluates all its agents together
(``evaluate_agents``): the same returns, with one launch a step for all, and from
POOL_MIN_AGENTS agents on, their envs stepped by worker processes (rlcl/eval_pool.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np

from rlcl.envs import EVAL_SEED_OFFSET, normalization_state, normalize_obs
from rlcl.eval_pool import POOL_MIN_AGENTS, eval_envs, pooled_first_returns, step_running
from rlcl.policy import STREAM_EVAL, ActorCritic


def evaluate_policy(policy: ActorCritic, env_id: str, episodes: int, seed: int,
                    norm_state: dict | None = None, greedy: bool = True) -> np.ndarray:
    """Returns of EPISODES episodes, in sub-env order. NORM_STATE (envs.normalization_state of
    the training envs) normalises observations with the training statistics, frozen."""
    if episodes <= 0:
        return np.zeros(0)
    dev = policy.device
    obs_buf = dev.empty(episodes * policy.obs_dim)
    actions = dev.empty(episodes * policy.act_dim, np.int32)
    logp, values = dev.empty(episodes), dev.empty(episodes)
    actions_host = np.zeros(episodes * policy.act_dim, policy.action_dtype)

    def act(obs: np.ndarray, step: int) -> list:
        dev.write(obs_buf, obs)
        policy.act(obs_buf, episodes, actions, logp, values, 0, seed, STREAM_EVAL, step, 0,
                   greedy=greedy)
        dev.read_into(actions_host, actions)
        return [policy.env_actions(actions_host)]

    return first_returns([eval_envs(env_id, episodes, norm_state)], [seed], act)[0]


def evaluate_agents(runs: list, agents: int, params, params_stride: int, hp,
                    episodes: int) -> list[np.ndarray]:
    """evaluate_policy for each of RUNS, agents of a population (rlcl/batched.py) whose
    parameters lie PARAMS_STRIDE floats apart in PARAMS and whose seeds are in HP (the agent
    table, AGENTS rows): their envs stepped in lockstep, one policy_act_pop launch, one write
    and one read a step for all, where each run alone makes three commands a step (each a
    round trip to PoCL pthread's worker threads). The same returns as evaluate_policy's."""
    if episodes <= 0:
        return [np.zeros(0) for _ in runs]
    policy = runs[0].policy
    dev, P = policy.device, agents
    obs_host = np.zeros((P, episodes, policy.obs_dim), np.float32)
    actions_host = np.zeros((P, episodes * policy.act_dim), policy.action_dtype)
    obs = dev.empty(obs_host.size)
    actions = dev.empty(actions_host.size, policy.action_dtype)
    L, local = policy.local_size, policy.act_local_bytes
    kernel = dev.prepare(
        "policy_act_gaussian_pop" if policy.continuous else "policy_act_pop", actions,
        dev.empty(P * episodes), dev.empty(P * episodes), obs, params, params_stride, hp,
        policy.layers_buf, len(policy.actor.layers), len(policy.critic.layers), policy.act_id,
        *((policy.log_std_off,) if policy.continuous else ()), episodes, STREAM_EVAL, 0, 0, 1,
        dev.local(local), dev.local(local))
    rows = [run.index for run in runs]  # the other agents' rows are computed and ignored

    def act(observations: np.ndarray, step: int) -> list:
        obs_host[rows] = observations
        dev.write(obs, obs_host)
        kernel.launch((episodes * L, P), (L, 1), env_step=step)
        dev.read_into(actions_host, actions)
        return [run.policy.env_actions(actions_host[run.index]) for run in runs]

    specs = [(run.cfg.env_id, episodes, normalization_state(run.state.envs)) for run in runs]
    seeds = [run.cfg.seed for run in runs]
    workers = min(os.cpu_count() or 1, len(runs))
    if len(runs) >= POOL_MIN_AGENTS and workers > 1:  # the envs' Python on every core
        try:
            return list(pooled_first_returns(specs, seeds, act, workers))
        except OSError:  # no processes to be had here: in this one, as below
            pass
    return list(first_returns([eval_envs(*spec) for spec in specs], seeds, act))


def first_returns(envs: list, seeds: list[int], act) -> np.ndarray:
    """The return of each env's first episode, for each eval_pool.FirstEpisodes of ENVS (reset
    with its seed of SEEDS), stepped in lockstep: ACT(observations (len(ENVS), episodes,
    obs_dim) float32, step) gives each one's actions. One whose episodes are all over steps no
    more (a population evaluates its agents so, one launch per step: rlcl/batched.py)."""
    obs = [envs_k.reset(seed + EVAL_SEED_OFFSET) for envs_k, seed in zip(envs, seeds)]
    step = 0
    while not all(envs_k.done for envs_k in envs):
        actions = act(np.ascontiguousarray(obs, np.float32), step)
        step_running(envs, obs, actions)
        step += 1
    for envs_k in envs:
        envs_k.close()
    return np.array([envs_k.returns for envs_k in envs])


def load_run_policy(run_dir: Path, device_spec: str | None = None):
    """(config, policy with the run's final or latest parameters, normalisation state)."""
    from rlcl.checkpoint import (check_compatible, load_checkpoint, run_config_path,
                                 trained_checkpoint)
    from rlcl.config import build_config, read_toml
    from rlcl.device import Device

    cfg = build_config(read_toml(run_config_path(run_dir)))
    path = trained_checkpoint(run_dir)
    ckpt = load_checkpoint(path)
    env = gym.make(cfg.env_id)
    obs_dim = int(np.prod(env.observation_space.shape))
    policy = ActorCritic(Device(device_spec or cfg.device), obs_dim, env.action_space,
                         list(cfg.hidden_sizes), cfg.activation, cfg.seed, max_batch=1)
    env.close()
    check_compatible(ckpt, path, env_id=cfg.env_id, n_params=policy.flat.n, obs_dim=obs_dim,
                     act_dim=policy.act_dim)
    policy.flat.load(ckpt["params"])
    return cfg, policy, ckpt["meta"].get("normalization", {})


def record_videos(policy: ActorCritic, env_id: str, episodes: int, seed: int, norm_state: dict,
                  greedy: bool, video_dir: Path) -> None:
    """EPISODES episodes, one at a time, filmed by gymnasium's RecordVideo (needs moviepy)."""
    from gymnasium.wrappers import RecordVideo

    from rlcl.errors import ConfigError

    try:
        import moviepy  # noqa: F401  (RecordVideo's encoder)
    except ImportError:
        raise ConfigError("--video needs moviepy: pip install 'rlcl[video]'") from None
    env = RecordVideo(gym.make(env_id, render_mode="rgb_array"), str(video_dir),
                      episode_trigger=lambda _: True, disable_logger=True)
    dev = policy.device
    obs_buf, actions = dev.empty(policy.obs_dim), dev.empty(policy.act_dim, np.int32)
    logp, values = dev.empty(1), dev.empty(1)
    host = np.zeros(policy.act_dim, policy.action_dtype)
    rms = norm_state.get("obs")
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + EVAL_SEED_OFFSET + episode)
        done, step = False, 0
        while not done:
            x = normalize_obs(obs, rms["mean"], rms["var"]) if rms else obs
            dev.write(obs_buf, np.asarray(x, np.float32))
            policy.act(obs_buf, 1, actions, logp, values, 0, seed, STREAM_EVAL, step, episode,
                       greedy=greedy)
            dev.read_into(host, actions)
            action = policy.env_actions(host)[0] if policy.continuous else int(
                policy.env_actions(host)[0])
            obs, _, terminated, truncated, _ = env.step(action)
            done, step = terminated or truncated, step + 1
    env.close()


def main(argv: list[str] | None = None) -> int:
    from rlcl.errors import ConfigError, RlclError

    class Parser(argparse.ArgumentParser):
        def error(self, message):
            raise ConfigError(f"{message} (see python -m rlcl.eval --help)")

    p = Parser(prog="python -m rlcl.eval", description="Evaluate a trained rlcl run.")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed", type=int, help="evaluation seed (default: the run's seed)")
    p.add_argument("--stochastic", action="store_true", help="sample actions, not greedy")
    p.add_argument("--video", type=Path, metavar="DIR", help="record videos into DIR")
    p.add_argument("--device", help="OpenCL device (default: the run's)")
    try:
        args = p.parse_args(argv)
        if args.episodes <= 0:
            raise ConfigError("--episodes must be > 0")
        cfg, policy, norm = load_run_policy(args.run_dir, args.device)
        seed = cfg.seed if args.seed is None else args.seed
        if args.video is not None:
            record_videos(policy, cfg.env_id, args.episodes, seed, norm, not args.stochastic,
                          args.video)
        returns = evaluate_policy(policy, cfg.env_id, args.episodes, seed, norm,
                                  greedy=not args.stochastic)
    except RlclError as exc:
        print(f"rlcl: error: {exc}", file=sys.stderr)
        return exc.exit_code
    mode = "sampled" if args.stochastic else "greedy"
    print(f"{cfg.env_id}: {args.episodes} {mode} episodes, seed {seed}: mean {returns.mean():.2f} "
          f"std {returns.std():.2f} min {returns.min():.2f} max {returns.max():.2f}")
    if args.video is not None:
        print(f"videos in {args.video}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
