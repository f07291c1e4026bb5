"""Issue 4: smoothness figures from the optimizer kernel, policy churn, divergence figures,
the guard, and `python -m rlcl.diagnose`.

Tolerances: smoothness figures come from float32 partial sums added in float64; against a
float64 numpy computation over a few hundred coordinates they agree to 1e-5 relative.
"""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from rlcl.checkpoint import load_checkpoint
from rlcl.config import build_config, packaged_config, read_toml
from rlcl.diagnose import report
from rlcl.diagnostics import (DIAG_TAGS, EPISODE_WINDOW, LAYOUT, SMOOTH_TAGS, EpisodeWindow,
                              smoothness, smoothness_many)
from rlcl.divergence import DivergenceMonitor, Ema
from rlcl.logger import read_scalars
from rlcl.nn import SMOOTH_STATS, FlatParams
from rlcl.optim import Adam, Momentum
from rlcl.train import train

N = 300  # coordinates: two work-groups of 256


def step_and_sums(device, opt, flat, grads):
    """Run one optimizer step per gradient; return the per-step partial sums (float64)."""
    rows = []
    for g in grads:
        device.write(flat.grads, np.asarray(g, np.float32))
        opt.step()
        part = device.read(flat.partials, flat.step_groups * SMOOTH_STATS)
        rows.append(part.reshape(flat.step_groups, SMOOTH_STATS).astype(np.float64).sum(0))
    return np.array(rows)


def numpy_figures(thetas, grads, mu):
    """The same figures from the parameter trajectory (heavy ball: u_t = theta_t+1 - theta_t,
    v_t = -u_t / lr), in float64, averaged over steps 1.. as diagnostics.smoothness does."""
    u = np.diff(thetas, axis=0)
    cos = lambda a, b: (a @ b) / np.sqrt((a @ a) * (b @ b))
    vel = [np.zeros_like(u[0])] + [-x / 0.01 for x in u]
    return {
        "update_cos": np.mean([cos(u[t], u[t - 1]) for t in range(1, len(u))]),
        "grad_vel_cos": np.mean([cos(grads[t], vel[t]) for t in range(1, len(u))]),
        "vel_grad_ratio": np.mean([(1 - mu) * np.linalg.norm(vel[t + 1]) / np.linalg.norm(grads[t])
                                   for t in range(len(u))]),
        # like the cosine, a sign flip needs a previous update: step 0 has none (issue 10)
        "sign_flip_frac": np.mean([np.sum(u[t] * u[t - 1] < 0) / u.shape[1]
                                   for t in range(1, len(u))]),
        "update_ratio": np.mean([np.linalg.norm(u[t]) / np.linalg.norm(thetas[t])
                                 for t in range(len(u))]),
    }


def test_smoothness_matches_numpy_over_steps(device, rng):
    flat = FlatParams(device, rng.standard_normal(N))
    opt = Momentum(flat, lr=0.01, momentum=0.9)
    grads = [rng.standard_normal(N) + 0.5 for _ in range(6)]
    thetas = [flat.numpy().astype(np.float64)]
    rows = []
    for g in grads:
        rows.append(step_and_sums(device, opt, flat, [g])[0])
        thetas.append(flat.numpy().astype(np.float64))
    got = smoothness(np.array(rows), N, 0.9)
    want = numpy_figures(np.array(thetas), np.array(grads), 0.9)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    assert got["param_norm"] == pytest.approx(np.linalg.norm(thetas[-2]), rel=1e-5)


def test_constant_gradient_cos_and_ratio_tend_to_one(device, rng):
    flat = FlatParams(device, rng.standard_normal(N))
    opt = Momentum(flat, lr=1e-4, momentum=0.9)
    g = rng.standard_normal(N)
    rows = step_and_sums(device, opt, flat, [g] * 120)
    late = smoothness(rows[-20:], N, 0.9)
    assert late["update_cos"] == pytest.approx(1.0, abs=1e-6)
    assert late["grad_vel_cos"] == pytest.approx(1.0, abs=1e-6)
    assert late["vel_grad_ratio"] == pytest.approx(1.0, abs=1e-4)  # v -> g / (1 - mu)
    assert late["sign_flip_frac"] == 0.0


def test_alternating_gradient_cos_tends_to_minus_one(device, rng):
    flat = FlatParams(device, rng.standard_normal(N))
    opt = Momentum(flat, lr=1e-4, momentum=0.9)
    g = rng.standard_normal(N)
    rows = step_and_sums(device, opt, flat, [g if t % 2 == 0 else -g for t in range(100)])
    late = smoothness(rows[-20:], N, 0.9)
    assert late["update_cos"] == pytest.approx(-1.0, abs=1e-6)
    assert late["sign_flip_frac"] == pytest.approx(1.0)


@pytest.mark.parametrize("mu", [0.5, 0.9])
def test_pure_noise_cos_is_mu_and_flips_arccos_over_pi(device, rng, mu):
    n = 4096
    flat = FlatParams(device, rng.standard_normal(n))
    opt = Momentum(flat, lr=1e-5, momentum=mu)
    rows = step_and_sums(device, opt, flat, [rng.standard_normal(n) for _ in range(150)])
    late = smoothness(rows[60:], n, mu)  # after the velocity reached its stationary spread
    assert late["update_cos"] == pytest.approx(mu, abs=0.02)
    assert late["sign_flip_frac"] == pytest.approx(math.acos(mu) / math.pi, abs=0.02)
    assert late["grad_vel_cos"] == pytest.approx(0.0, abs=0.03)  # fresh noise vs the past


def test_adam_reports_the_figures_that_make_sense(device, rng):
    flat = FlatParams(device, rng.standard_normal(N))
    rows = step_and_sums(device, Adam(flat, lr=1e-3), flat, [rng.standard_normal(N) + 1.0
                                                                for _ in range(5)])
    figures = smoothness(rows, N, None)
    assert "vel_grad_ratio" not in figures
    assert all(math.isfinite(figures[k]) for k in ("update_cos", "grad_vel_cos", "update_ratio"))


def plain_smoothness(s, n_params, momentum, taken):
    """One agent's figures written out plainly, each mean over its chosen rows (the formulas
    of diagnostics.smoothness before populations summarised many agents at once)."""
    out = {"param_norm": float(np.sqrt(s[-1, 8])), "nonfinite_params": float(s[-1, 9])}
    s = s[taken]
    mean = lambda v, d: float(v[d].sum() / v[d].size) if v[d].size else None
    both, grad = (s[:, 1] != 0) & (s[:, 2] != 0), s[:, 4] != 0
    figures = {"update_cos": mean(s[:, 0] / np.sqrt(s[:, 1] * s[:, 2]), both),
               "grad_vel_cos": mean(s[:, 3] / np.sqrt(s[:, 4] * s[:, 5]), grad & (s[:, 5] != 0)),
               "sign_flip_frac": mean(s[:, 7] / n_params, both),
               "update_ratio": mean(np.sqrt(s[:, 1]) / np.sqrt(np.maximum(s[:, 8], 1e-30)),
                                    np.ones(len(s), bool))}
    if momentum:
        figures["vel_grad_ratio"] = mean((1 - momentum) * np.sqrt(s[:, 6] / s[:, 4]), grad)
    return {**out, **{k: v for k, v in figures.items() if v is not None}}


@pytest.mark.parametrize("updates", [1, 7, 12, 16, 40, 200])
def test_population_figures_have_each_agents_bits(rng, updates):
    """smoothness_many (a population's agents at once) gives each agent exactly the figures of
    its plain one-agent computation: agents with refused steps, none taken, no previous update,
    Adam (None) and no momentum among them."""
    agents = 9
    sums = rng.standard_normal((agents, updates, SMOOTH_STATS)) ** 2
    sums *= 10.0 ** rng.uniform(-6, 6, size=(agents, updates, 1))
    sums[1, 0, 2] = 0.0  # the run's first step: no previous update
    sums[2, :, 5] = 0.0  # no velocity yet
    taken = np.ones((agents, updates), bool)
    taken[3, ::2] = False  # refused steps
    taken[4] = False  # every step refused
    momenta = [0.9, 0.8, None, 0.5, 0.9, 0.0, 0.99, 0.9, 0.3]
    for mask in (taken, None):
        got = smoothness_many(sums, 1000, momenta, mask)
        for a in range(agents):
            with np.errstate(all="ignore"):  # the twin meets the same zero divisions
                want = plain_smoothness(sums[a], 1000, momenta[a],
                                        np.ones(updates, bool) if mask is None else mask[a])
            assert got[a] == want, a
            assert smoothness(sums[a], 1000, momenta[a], None if mask is None else mask[a]) == want


def test_ema_and_verdicts():
    ema = Ema(log=True)
    for _ in range(12):
        ema.update(2.0)
    assert ema.upper(6.0) == pytest.approx(2.0 * math.exp(3.0))  # 6 z at a 0.5 log-std floor
    monitor = DivergenceMonitor(z=6.0, max_skips=3, max_update_ratio=0.5)
    healthy = dict(grad_norm_preclip_max=1.0, loss=1.0, nonfinite_params=0, skipped_steps=0,
                   update_ratio=0.01)
    assert monitor.observe(healthy)[1].action == "ok"
    assert monitor.observe({**healthy, "skipped_steps": 1})[1].action == "skipped"
    for bad, reason in [({"skipped_steps": 3}, "skipped_steps"),
                        ({"nonfinite_params": 2}, "nonfinite_params"),
                        ({"loss": math.nan}, "loss"), ({"update_ratio": 0.9}, "update_ratio")]:
        verdict = monitor.observe({**healthy, **bad})[1]
        assert (verdict.action, verdict.reason) == ("rollback", reason)


# -- end to end ---------------------------------------------------------------------------
def short_cfg(tmp_path, **overrides):
    # 20 full-batch updates per iteration (issue 2's config), which the update numbers below
    # are counted in
    values = {**read_toml(packaged_config("ppo", "CartPole")), "total_timesteps": 4096,
              "update_epochs": 20, "num_minibatches": 1, "runs_dir": str(tmp_path), "progress": False, "eval_episodes": 2, **overrides}
    return build_config(values)


def test_every_tag_is_logged_and_finite_when_healthy(tmp_path):
    result = train(short_cfg(tmp_path))
    scalars = read_scalars(result.run_dir)
    for tag in [*SMOOTH_TAGS.values(), *DIAG_TAGS.values()]:
        if tag == "diag/grad_norm_preclip":
            continue
        assert tag in scalars, tag
        assert all(math.isfinite(v) for _, v in scalars[tag]), tag
    assert not (result.run_dir / "divergence.json").exists()
    events = b"".join(p.read_bytes() for p in result.run_dir.glob("events.out.tfevents.*"))
    assert b"custom_scalars" in events and all(t.encode() in events for t in LAYOUT)
    text = report(result.run_dir)
    assert "smooth/update_cos" in text and "no action" in text


def test_injected_nan_is_skipped_and_training_recovers(tmp_path):
    result = train(short_cfg(tmp_path, inject_nan_update=130))
    assert np.all(np.isfinite(result.final_params))
    report_ = json.loads((result.run_dir / "divergence.json").read_text())
    assert report_["first_bad_quantity"] == "grad_norm" and report_["rollbacks"] == 0
    assert report_["events"][0]["global_step"] == 256 * 7  # update 130 is in iteration 6
    scalars = read_scalars(result.run_dir)
    assert max(v for _, v in scalars["diag/skipped_steps"]) == 1


def test_repeated_nan_rolls_back_and_halves_lr(tmp_path):
    result = train(short_cfg(tmp_path, inject_nan_update=130, inject_nan_repeat=4))
    assert np.all(np.isfinite(result.final_params))
    report_ = json.loads((result.run_dir / "divergence.json").read_text())
    assert report_["rollbacks"] == 1 and report_["lr_scale"] == 0.5
    assert "rolled back" in report_["events"][0]["action"]
    lrs = dict(read_scalars(result.run_dir)["diag/lr_scale"])
    assert lrs[256 * 7] == 0.5 and min(lrs) == 256


@pytest.mark.parametrize("seed", [0, 3])
def test_absurd_learning_rate_never_ends_in_a_silent_nan_policy(tmp_path, seed):
    proc = subprocess.run([sys.executable, "-m", "rlcl.train", "ppo", "CartPole", "--seed",
                           str(seed), "--total-timesteps", "8192", "--runs-dir", str(tmp_path),
                           "--no-progress", "--set", "learning_rate=1000", "--set",
                           "eval_episodes=2"], capture_output=True, text=True, timeout=300)
    (run,) = tmp_path.iterdir()
    assert (run / "divergence.json").is_file()
    if proc.returncode == 3:
        assert len(proc.stderr.strip().splitlines()) == 1 and "diverged" in proc.stderr
        ckpt = load_checkpoint(run / "checkpoints" / "last_good.npz")
        assert np.all(np.isfinite(ckpt["params"]))
    else:
        assert proc.returncode == 0, proc.stderr
        params = load_checkpoint(run / "checkpoints" / "final.npz")["params"]
        assert np.all(np.isfinite(params))


def test_unrecoverable_run_exits_3_and_keeps_last_good(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "rlcl.train", "ppo", "CartPole",
                           "--total-timesteps", "4096", "--runs-dir", str(tmp_path),
                           "--no-progress", "--set", "update_epochs=20", "--set",
                           "num_minibatches=1", "--set", "inject_nan_update=60", "--set",
                           "inject_nan_repeat=1000", "--set", "guard_max_rollbacks=2"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3
    assert len(proc.stderr.strip().splitlines()) == 1 and "diverged" in proc.stderr
    (run,) = tmp_path.iterdir()
    ckpt = load_checkpoint(run / "checkpoints" / "last_good.npz")
    assert np.all(np.isfinite(ckpt["params"])) and ckpt["meta"]["iteration"] == 3
    assert json.loads((run / "divergence.json").read_text())["rollbacks"] == 3
    out = subprocess.run([sys.executable, "-m", "rlcl.diagnose", str(run)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "rolled back" in out.stdout


def test_diagnose_bad_folder_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "rlcl.diagnose", str(tmp_path / "nope")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("rlcl: error: ")
    assert "nope is not an rlcl run folder" in proc.stderr and len(proc.stderr.splitlines()) == 1


@pytest.mark.parametrize("algo, update", [("ppo", 39), ("a2c", 5)])
def test_refused_nan_at_an_iterations_last_update_is_only_skipped(tmp_path, algo, update):
    """Issue 10: a NaN step refused as the LAST update of an iteration (PPO: update 39 of 20
    per iteration; A2C: every update is the last) used to read as non-finite parameters and
    roll back with a halved lr; it must be skipped like any other refused step."""
    extra = {"update_epochs": 1, "num_steps": 8} if algo == "a2c" else {}
    result = train(short_cfg(tmp_path, algo=algo, inject_nan_update=update, **extra))
    report_ = json.loads((result.run_dir / "divergence.json").read_text())
    assert report_["first_bad_quantity"] == "grad_norm" and report_["rollbacks"] == 0
    assert report_["lr_scale"] == 1.0 and "skipped" in report_["events"][0]["action"]


def test_undefined_smoothness_figures_are_not_logged_as_nan(tmp_path):
    """Issue 10: with one update per iteration (A2C) update_cos has no previous update on the
    first iteration, and with momentum 0 grad_vel_cos never has a velocity: such a figure is
    left out, never logged as NaN."""
    result = train(short_cfg(tmp_path, algo="a2c", update_epochs=1, num_steps=8, momentum=0.0))
    scalars = read_scalars(result.run_dir)
    assert "smooth/grad_vel_cos" not in scalars
    first_step = 8 * 8
    assert first_step not in dict(scalars["smooth/update_cos"])
    for tag, series in scalars.items():
        assert all(math.isfinite(v) for _, v in series), tag


def test_rollback_keeps_the_schedule_position(tmp_path):
    """Issue 10: after a rollback the cosine goes on from the iteration, so its last lr is
    lr_scale * the closed form at the last iteration (the snapshot's position lagged)."""
    from rlcl.optim import SGD
    from rlcl.optim.lr_scheduler import CosineAnnealingLR

    cfg = short_cfg(tmp_path, inject_nan_update=130, inject_nan_repeat=4, lr_min=0.003)
    result = train(cfg)
    assert json.loads((result.run_dir / "divergence.json").read_text())["rollbacks"] == 1
    lrs = sorted(read_scalars(result.run_dir)["train/learning_rate"])
    assert [s for s, _ in lrs] == [256 * (i + 1) for i in range(cfg.num_iterations)]
    schedule = CosineAnnealingLR(SGD([], lr=cfg.learning_rate), cfg.num_iterations, cfg.lr_min)
    for i, (_, lr) in enumerate(lrs):
        scale = 1.0 if i <= 6 else 0.5  # the rollback came after iteration 6
        assert lr == pytest.approx(scale * schedule.lr_at(i, cfg.learning_rate), rel=1e-6), i


def test_episode_window_means_are_fsums_of_the_window(rng):
    """The logged ep_rew_mean / ep_len_mean, kept up to date episode by episode, equal the
    correctly rounded fsum over the last EPISODE_WINDOW episodes divided by their count, to the
    bit: for float32 returns, for doubles of wildly different magnitudes (where a running float
    sum would drift), for negative ones, and through a non-finite return entering and leaving."""
    returns = np.concatenate([
        rng.normal(200, 150, 250).astype(np.float32).astype(np.float64),
        rng.normal(0, 1, 120) * 10.0 ** rng.integers(-300, 300, 120),
        [np.nan, -np.inf], -rng.random(130) * 1e-3])
    episodes = [(100 * k, float(r), int(rng.integers(1, 500))) for k, r in enumerate(returns)]
    window = EpisodeWindow()
    assert window.means() is None
    for k, episode in enumerate(episodes):
        window.add(episode)
        last = episodes[max(0, k + 1 - EPISODE_WINDOW):k + 1]
        want = (math.fsum(r for _, r, _ in last) / len(last),
                math.fsum(n for _, _, n in last) / len(last))
        got = window.means()
        assert np.array_equal(got, want, equal_nan=True), k
        assert [math.copysign(1, x) for x in got] == [math.copysign(1, x) for x in want] or \
            any(map(math.isnan, want))
    resumed = EpisodeWindow(episodes[:300])  # a resume starts from the episodes file's rows
    assert resumed.means() == EpisodeWindow(episodes[200:300]).means()
    huge = EpisodeWindow([(0, 1e308, 1), (1, 1e308, 1)])  # fsum raised OverflowError here
    assert huge.means() == (math.inf, 1.0)
    huge.add((2, -1e308, 1))  # the exact sum is back in range
    assert huge.means() == (1e308 / 3, 1.0)
