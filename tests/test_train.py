"""End to end: a short PPO run through train(cfg) and through the command line."""

import csv
import json
import math
import subprocess
import sys
import tomllib

import numpy as np
import pytest

from rlcl.logger import read_scalars
from rlcl.checkpoint import load_checkpoint
from rlcl.config import build_config, packaged_config, read_toml
from rlcl.errors import ConfigError
from rlcl.device_envs import DEVICE_ENVS
from rlcl.train import main
from rlcl.train import train

SB3_TAGS = ["rollout/ep_rew_mean", "rollout/ep_len_mean", "time/fps", "train/learning_rate",
            "train/policy_gradient_loss", "train/value_loss", "train/entropy_loss", "train/loss",
            "train/approx_kl", "train/clip_fraction", "train/explained_variance"]


def short_config(tmp_path, algo="ppo", **overrides):
    values = {**read_toml(packaged_config(algo, "CartPole")), "algo": algo,
              "total_timesteps": 4096, "runs_dir": str(tmp_path), "progress": False,
              "eval_episodes": 3, **overrides}
    if values.get("env_id", "CartPole-v1") not in DEVICE_ENVS:
        values["env_backend"] = "gymnasium"  # the CartPole config's device env is not for it
    return build_config(values)


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    return train(short_config(tmp_path_factory.mktemp("runs")))


def test_run_folder(short_run):
    run = short_run.run_dir
    assert run.name.startswith("CartPole-v1__ppo__0__")
    for name in ("config.toml", "episodes.csv", "summary.json", "checkpoints/final.npz"):
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    for key in ("algo", "env_id", "seed", "total_timesteps", "wall_seconds", "fps",
                "eval_mean_return", "eval_std_return", "eval_episodes", "device"):
        assert key in summary, key
    assert summary["total_timesteps"] == 4096 and summary["eval_episodes"] == 3
    resolved = tomllib.loads((run / "config.toml").read_text())
    assert resolved["total_timesteps"] == 4096 and resolved["optimizer"] == "momentum"
    with open(run / "episodes.csv") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["global_step", "time_s", "return", "length"]
    assert len(rows) - 1 == len(short_run.episodes) > 50
    assert all(float(r[2]) == float(r[3]) for r in rows[1:])  # CartPole: return = length


def test_sb3_tags_logged_with_finite_values(short_run):
    scalars = read_scalars(short_run.run_dir)
    for tag in SB3_TAGS:
        assert tag in scalars, tag
        assert all(math.isfinite(v) for _, v in scalars[tag]), tag
    lrs = [v for _, v in scalars["train/learning_rate"]]
    assert lrs[0] == pytest.approx(0.03) and lrs == sorted(lrs, reverse=True)  # cosine decay


def test_learns_something_in_a_few_thousand_steps(short_run):
    returns = short_run.returns
    assert np.mean(returns[-20:]) > 1.5 * np.mean(returns[:20])


def test_same_seed_same_episodes(short_run, tmp_path):
    again = train(short_config(tmp_path))
    assert again.episodes == short_run.episodes
    assert np.array_equal(again.final_params, short_run.final_params)


def test_a2c_short_run_logs_sb3_a2c_tags(tmp_path):
    result = train(short_config(tmp_path, algo="a2c", total_timesteps=20000))
    assert result.run_dir.name.startswith("CartPole-v1__a2c__0__")
    scalars = read_scalars(result.run_dir)
    for tag in ["train/policy_loss", "train/value_loss", "train/entropy_loss",
                "train/explained_variance", "train/learning_rate", "rollout/ep_rew_mean",
                "time/fps"]:
        assert tag in scalars and all(math.isfinite(v) for _, v in scalars[tag]), tag
    assert "train/approx_kl" not in scalars and "train/clip_fraction" not in scalars
    assert len(scalars["train/policy_loss"]) == 20000 // 40  # one update per 8 x 5 rollout
    returns = result.returns
    assert np.mean(returns[-20:]) > 1.5 * np.mean(returns[:20])


def test_a2c_rejects_several_epochs(tmp_path):
    with pytest.raises(ConfigError, match="a2c makes one pass"):
        short_config(tmp_path, algo="a2c", update_epochs=4)


def test_box_actions_train_with_normalisation(tmp_path):
    result = train(short_config(tmp_path, env_id="Pendulum-v1", total_timesteps=2048,
                                norm_obs=True, norm_reward=True))
    scalars = read_scalars(result.run_dir)
    stds = [v for _, v in scalars["train/std"]]
    assert len(stds) == 8 and all(math.isfinite(v) and v > 0 for v in stds)
    assert stds[0] != 1.0  # log_std is trained
    ckpt = load_checkpoint(result.run_dir / "checkpoints" / "final.npz")
    assert set(ckpt["meta"]["normalization"]) == {"obs", "return"}
    assert len(ckpt["meta"]["normalization"]["obs"]["mean"]) == 3
    assert result.summary["eval_episodes"] == 3 and result.summary["eval_mean_return"] < 0


def test_cli_runs_and_prints_summary(tmp_path, capsys):
    code = main(["ppo", "CartPole-v1", "--total-timesteps", "512", "--runs-dir", str(tmp_path),
                 "--no-progress", "--set", "eval_episodes=2", "--seed", "3"])
    out = capsys.readouterr().out
    assert code == 0
    assert "run folder:" in out and "greedy evaluation over 2 episodes" in out
    (run,) = tmp_path.iterdir()
    assert run.name.startswith("CartPole-v1__ppo__3__")


BAD_INPUTS = [
    (["dqn", "CartPole"], "unknown algorithm"),
    (["ppo", "CartPolo"], "unknown environment"),
    (["ppo", "CartPole", "--set", "learnin_rate=0.1"], "unknown config key"),
    (["ppo", "CartPole", "--set", "num_envs=eight"], "must be of type int"),
    (["ppo", "CartPole", "--set", "learning_rate=-0.1"], "learning_rate must be >= 0"),
    (["ppo", "CartPole", "--set", "num_minibatches=3"], "must divide the batch"),
    (["ppo", "CartPole", "--set", "optimizer=rmsprop"], "optimizer must be one of"),
    (["ppo", "CartPole", "--device", "no-such-device"], "no OpenCL device matches"),
    (["ppo", "CartPole", "--config", "missing.toml"], "does not exist"),
    (["ppo"], "give an algorithm and an environment"),
    (["ppo", "CartPole", "--seed", "x"], "invalid int value"),
    (["ppo", "Blackjack-v1"], "Tuple observation space"),
    # issue 10: TOML and --set accept nan and inf, which used to train and end in exit 3
    (["ppo", "CartPole", "--set", "learning_rate=nan"], "learning_rate must be a finite"),
    (["ppo", "CartPole", "--set", "gamma=inf"], "gamma must be a finite"),
    (["a2c", "CartPole", "--set", "guard_z=-inf"], "guard_z must be a finite"),
    (["ppo", "CartPole", "--set", "vector_env=true"], "'vector_env' was removed"),
    (["ppo", "LunarLander", "--set", "env_backend=device"], "env_backend = \"device\" runs"),
]


@pytest.mark.parametrize("argv, message", BAD_INPUTS)
def test_bad_input_is_one_line_and_exit_2(tmp_path, argv, message):
    proc = subprocess.run([sys.executable, "-m", "rlcl.train", *argv, "--runs-dir",
                           str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = [l for l in proc.stderr.strip().splitlines() if not l.startswith("rlcl: note:")]
    assert len(lines) == 1 and lines[0].startswith("rlcl: error:"), proc.stderr
    assert message in lines[0]
    assert not any(tmp_path.iterdir())  # nothing half-made is left behind


def test_device_list(capsys):
    assert main(["--device", "list"]) == 0
    assert "0:0" in capsys.readouterr().out


@pytest.mark.parametrize("overrides", [{}, {"hidden_sizes": [64, 64], "num_minibatches": 1,
                                       "update_epochs": 4}], ids=["shipped", "64x64-M256"])
def test_default_pocl_device_by_update_size_and_both_match(tmp_path, monkeypatch, overrides):
    """Issues 6 and 12: without a GPU the default is PoCL's basic device for small updates,
    pthread from PARALLEL_MIN_FLOP on (train.update_flop); both give bit-identical results, with
    the update's two work-groups run side by side on pthread."""
    import pyopencl as cl

    from rlcl.device_choice import PARALLEL_MIN_FLOP, _devices, choose_device
    from rlcl.run import train_device
    from rlcl.train import update_flop

    names = [dev.name for _, _, dev in _devices()]
    has_gpu = any(dev.type & cl.device_type.GPU and "oclgrind" not in dev.platform.name.lower()
                  for _, _, dev in _devices())
    if has_gpu or not any(n.startswith("basic") for n in names) or not any(
            n.startswith("pthread") for n in names):
        pytest.skip("needs PoCL's basic and pthread devices and no GPU")
    monkeypatch.delenv("RLCL_DEVICE", raising=False)
    assert choose_device().name.startswith("basic")
    assert choose_device(work=PARALLEL_MIN_FLOP - 1).name.startswith("basic")
    assert choose_device(work=PARALLEL_MIN_FLOP).name.startswith("pthread")
    zoo = short_config(tmp_path, hidden_sizes=[64, 64], num_envs=8, num_steps=32,
                       num_minibatches=1)
    assert update_flop(zoo) >= PARALLEL_MIN_FLOP > update_flop(short_config(tmp_path))
    # a batched population of the small config: pthread, whose worker threads let the host
    # book and log while the kernels run (run.train_device, issue 13)
    small = short_config(tmp_path)
    assert train_device(small).device.name.startswith("basic")
    assert train_device(small, batched=True).device.name.startswith("pthread")
    runs = [train(short_config(tmp_path / d, total_timesteps=2048, device=d, eval_episodes=0,
                               **overrides))
            for d in ("basic", "pthread")]
    assert runs[0].episodes == runs[1].episodes and len(runs[0].episodes) > 20
    assert runs[0].summary["params_sha256"] == runs[1].summary["params_sha256"]


def test_list_names_algorithms_aliases_and_tuned_configs(capsys):
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "algorithms: ppo, a2c" in out and "CartPole = CartPole-v1" in out
    assert "  ppo CartPole (CartPole-v1)" in out and "  a2c CartPole (CartPole-v1)" in out


def test_untuned_env_uses_generic_config_with_a_note(tmp_path, capsys):
    code = main(["a2c", "MountainCarContinuous-v0", "--total-timesteps", "1024", "--runs-dir",
                 str(tmp_path), "--no-progress", "--set", "eval_episodes=1",
                 "--set", "num_steps=16"])
    assert code == 0
    assert "no tuned config for a2c on MountainCarContinuous-v0" in capsys.readouterr().err


def test_profile_prints_where_the_time_went(tmp_path, capsys):
    code = main(["ppo", "CartPole", "--total-timesteps", "512", "--runs-dir", str(tmp_path),
                 "--no-progress", "--profile", "--set", "eval_episodes=1"])
    err = capsys.readouterr().err
    assert code == 0 and "profile:" in err and "env stepping" in err
    for kernel in ("policy_act", "rollout_classic", "ac_forward", "ppo_minibatch", "gae"):
        assert kernel in err, kernel


def test_target_kl_stops_the_epochs_early(tmp_path, monkeypatch):
    """CleanRL's early stop: with a tiny target_kl every iteration stops after its first
    epoch (approx_kl > 0 once the policy has moved), so 4 minibatch updates, not 4 x 20."""
    from rlcl.agents.ppo import PPO

    seen = []
    original = PPO.end_update

    def spy(self, done):
        stats = original(self, done)
        seen.append(stats["updates"])
        return stats

    monkeypatch.setattr(PPO, "end_update", spy)
    train(short_config(tmp_path, total_timesteps=2048, num_minibatches=4, update_epochs=20,
                       target_kl=1e-9))
    assert seen and all(n == 4 for n in seen[1:])
    seen.clear()
    train(short_config(tmp_path, total_timesteps=2048, num_minibatches=4, update_epochs=20))
    assert all(n == 80 for n in seen)
