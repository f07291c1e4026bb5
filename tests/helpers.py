"""What the test files share: constants, sentinel-guarded buffers, central differences, the two
action heads and the harness around ActorCritic.act. Nothing here is a test.

(rlcl.testing is something else: the golden-file regression helper rlcl offers its users.)
pyproject.toml puts tests/ on sys.path, so a test file says ``from helpers import ...``.

A head (CATEGORICAL for Discrete spaces, GAUSSIAN for Box) knows what differs between the two:
its space, how to draw actions and score them, its twin loss, and which rows of a kernel-vs-twin
comparison may round the other way. Tests of what both heads do are parametrised over HEADS.
"""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from rlcl import reference as ref
from rlcl.policy import STREAM_EVAL, STREAM_ROLLOUT, ActorCritic

SENTINEL = np.float32(-7.25)  # in float buffers around what a kernel may write
INT_SENTINEL = np.int32(-7)  # the same in int32 buffers (actions, indices)
PAD = 4  # sentinel entries after an output
OUT_OFF = 3  # act() puts the batch at this row; the observation rows before it are NaN
FD_H = 1e-6  # central differences of the float64 twins: truncation O(h^2), roundoff O(1e-16/h)
FD_TOL = dict(rtol=1e-6, atol=1e-8)
ACT_TOL = dict(rtol=1e-4, atol=1e-5)  # policy_act*: a few MLP layers of float32 sums
SGD_TOL = dict(rtol=2e-6, atol=2e-6)  # sgd_step, a few steps: a few float32 ulps per step
ADAM_TOL = dict(rtol=1e-5, atol=1e-5)  # adam_step, a few steps: one divide and sqrt per step
BOUNDARY = 1e-5  # a float64 CDF or logit gap this narrow may round the other way in float32
CLIP, VF = 0.2, 0.5  # clip_coef and vf_coef of the loss tests
NUM_STATS = ref.NUM_LOSS_STATS
NETS = {"tanh-64x64": ([64, 64], "tanh"), "relu-7": ([7], "relu")}
COUNTERS = [  # (seed, stream, step, iteration), including values past 2^31
    (0, STREAM_ROLLOUT, 0, 0),
    (1234, STREAM_ROLLOUT, 5, 17),
    (0xDEADBEEF, STREAM_EVAL, 2**31 + 5, 0xFFFFFFFF),
]

big = pytest.mark.big  # a size >= 129: skipped on Oclgrind (see conftest.py)


def f32(a) -> np.ndarray:
    return np.ascontiguousarray(a, np.float32)


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def central_difference(f, x: np.ndarray) -> np.ndarray:
    """d f / d x of the scalar function F, one entry of X at a time (float64, step FD_H)."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = FD_H
        grad[i] = (f(x + e) - f(x - e)) / (2 * FD_H)
    return grad


# -- buffers a kernel may write only part of ------------------------------------------------
def _sentinel(dtype):
    return INT_SENTINEL if np.dtype(dtype) == np.int32 else SENTINEL


def guarded(device, n, before=0, after=PAD, dtype=np.float32):
    """A buffer of BEFORE + N + AFTER sentinels, for a kernel that writes entries
    [before, before + n) only; read it back with read_guarded."""
    return device.upload(np.full(before + n + after, _sentinel(dtype), dtype))


def read_guarded(device, buf, n, before=0, dtype=np.float32):
    """Entries [before, before + n) of a guarded buffer, after checking that every other
    entry still holds the sentinel."""
    got = device.read(buf, buf.size // np.dtype(dtype).itemsize, dtype)
    outside = np.ones(len(got), bool)
    outside[before : before + n] = False
    assert np.all(got[outside] == _sentinel(dtype)), "written outside its entries"
    return got[before : before + n]


# -- the two action heads -------------------------------------------------------------------
def uniforms(seed, stream, step, iteration, n):
    """The twin's Philox uniform of each of N rows (policy_act's sampling draw)."""
    return np.array([ref.philox_uniform(seed, stream, k, step, iteration) for k in range(n)])


class Head:
    """The two heads below share only their name in the test ids."""

    name = ""

    def __repr__(self):
        return self.name


class Categorical(Head):
    """Discrete actions: the actor outputs logits (policy.cl policy_act, loss.cl ppo_loss)."""

    name, continuous, loss_kernel = "categorical", False, "ppo_loss"

    @staticmethod
    def space(A):
        return gym.spaces.Discrete(A)

    @staticmethod
    def sample(rng, out, log_std):
        """Random actions for the rows of OUT, as the loss kernel reads them."""
        return rng.integers(0, out.shape[1], len(out)).astype(np.int32)

    @staticmethod
    def logp(actions, out, log_std):
        return log_softmax(out)[np.arange(len(out)), actions]

    @staticmethod
    def mode(out):
        return out.argmax(axis=1)  # the first argmax, as policy_act's greedy branch

    @staticmethod
    def in_space(actions, A):
        return (actions >= 0) & (actions < A)

    @staticmethod
    def sampled_rows(out, counters):
        """Rows whose uniform is not within BOUNDARY of a boundary of the float64 CDF: only
        there must the kernel pick the twin's action."""
        cdf = np.cumsum(np.exp(log_softmax(out)), axis=1)[:, :-1]
        u = uniforms(*counters, len(out))
        return ~(np.abs(cdf - u[:, None]) < BOUNDARY).any(axis=1)

    @staticmethod
    def greedy_rows(out):
        """Rows whose top two logits are more than BOUNDARY apart."""
        if out.shape[1] == 1:
            return np.ones(len(out), bool)
        top2 = np.sort(out, axis=1)[:, -2:]
        return top2[:, 1] - top2[:, 0] > BOUNDARY

    @staticmethod
    def loss_twin(out, values, params, log_std_off, rest, coefs):
        """(loss, (dlogits, dvalues), stats); REST = (actions, old_logp, advantages, returns,
        old_values), COEFS as loss_coefs."""
        loss, dlogits, dvalues, stats = ref.ppo_loss(out, values, *rest, *coefs)
        return loss, (dlogits, dvalues), stats


class Gaussian(Head):
    """Box actions: the actor outputs the mean of a diagonal Gaussian whose log-std sits in the
    parameters (gaussian.cl policy_act_gaussian and ppo_loss_gaussian)."""

    name, continuous, loss_kernel = "gaussian", True, "ppo_loss_gaussian"

    @staticmethod
    def space(A):
        return gym.spaces.Box(-1.0, 1.0, (A,), np.float32)

    @staticmethod
    def sample(rng, out, log_std):
        return (out + np.exp(log_std) * rng.standard_normal(out.shape)).astype(np.float32)

    @staticmethod
    def logp(actions, out, log_std):
        return ref.gaussian_logp(actions, out, log_std)

    @staticmethod
    def mode(out):
        return out

    @staticmethod
    def in_space(actions, A):
        return np.isfinite(actions)  # unbounded: the env clips (ActorCritic.env_actions)

    @staticmethod
    def sampled_rows(out, counters):
        return np.ones(len(out), bool)  # continuous: no action can flip to a neighbour

    @staticmethod
    def greedy_rows(out):
        return np.ones(len(out), bool)

    @staticmethod
    def loss_twin(out, values, params, log_std_off, rest, coefs):
        """(loss, (dmean, dvalues, dlog_std per sample), stats)."""
        loss, dmean, dvalues, dlog_std, stats = ref.ppo_loss_gaussian(
            out, values, params, log_std_off, *rest, *coefs)
        return loss, (dmean, dvalues, dlog_std), stats


CATEGORICAL, GAUSSIAN = Categorical(), Gaussian()
HEADS = [CATEGORICAL, GAUSSIAN]


def head_cases(cases: dict, fmt: str) -> list:
    """pytest params (head, case) from {head: [case, ...]}, for tests whose sizes differ per
    head; a case with a size >= 129 is marked big."""
    return [pytest.param(head, case, id=f"{head.name}-{fmt % case}",
                         marks=big if np.max(case) >= 129 else ())
            for head, head_list in cases.items() for case in head_list]


def loss_coefs(clip_vloss, ent_coef, norm_adv, pg_mode):
    """The loss kernels' and twins' trailing arguments, in their order."""
    return CLIP, int(clip_vloss), ent_coef, VF, int(norm_adv), pg_mode


def assert_actions_close(got, want):
    """Discrete actions exactly, Box actions within ACT_TOL."""
    if np.issubdtype(np.asarray(got).dtype, np.integer):
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, **ACT_TOL)


# -- ActorCritic: policies, act and its twin ------------------------------------------------
def make_policy(device, rng, obs_dim, space, net, n, noise=0.3):
    """An ActorCritic for SPACE whose parameters are perturbed by N(0, NOISE) so the output
    layers matter (a Box's log_std drawn from [-1, 0.5]); returns it with its float32
    parameters as float64. NET: a key of NETS or (hidden sizes, activation)."""
    hidden, activation = NETS[net] if isinstance(net, str) else net
    policy = ActorCritic(device, obs_dim, space, hidden, activation, seed=0, max_batch=n)
    host = policy.flat.numpy().astype(np.float64) + rng.normal(0, noise, policy.flat.n)
    if policy.continuous:
        host[policy.log_std_off :] = rng.uniform(-1.0, 0.5, policy.act_dim)
    policy.flat.load(host)
    return policy, policy.flat.numpy().astype(np.float64)


def set_head(policy, bias, log_std=None):
    """Actor output weights 0 and bias BIAS, so the logits or the mean are BIAS for every
    observation (and a Box's log_std LOG_STD); returns the parameters as float64."""
    w_off, b_off, n_in, n_out = policy.layer_table[len(policy.actor.layers) - 1]
    host = policy.flat.numpy()
    host[w_off : w_off + n_in * n_out] = 0.0
    host[b_off : b_off + n_out] = bias
    if log_std is not None:
        host[policy.log_std_off :] = log_std
    policy.flat.load(host)
    return host.astype(np.float64)


def act(device, policy, obs, seed, stream, step, iteration, greedy=False):
    """ActorCritic.act on OBS at row offset OUT_OFF, checking that nothing outside its rows
    changed. Returns (actions: (n,) ints or (n, A) floats, logp, values)."""
    n, width, dtype = len(obs), policy.act_dim, policy.action_dtype
    padded = np.full((OUT_OFF + n + PAD, policy.obs_dim), np.nan, np.float32)
    padded[OUT_OFF : OUT_OFF + n] = obs
    actions = guarded(device, n * width, OUT_OFF * width, PAD * width, dtype)
    logp, values = guarded(device, n, OUT_OFF), guarded(device, n, OUT_OFF)
    policy.act(device.upload(padded), n, actions, logp, values, OUT_OFF, seed, stream, step,
               iteration, greedy)
    a = read_guarded(device, actions, n * width, OUT_OFF * width, dtype)
    return (a.reshape(n, width) if policy.continuous else a,
            read_guarded(device, logp, n, OUT_OFF), read_guarded(device, values, n, OUT_OFF))


def twin_act(policy, host, obs, seed, stream, step, iteration, greedy=False):
    """reference.policy_act or policy_act_gaussian: (actions, logp, values)."""
    net = (obs, host, policy.layer_table, len(policy.actor.layers), len(policy.critic.layers),
           policy.act_id, *((policy.log_std_off,) if policy.continuous else ()))
    twin = ref.policy_act_gaussian if policy.continuous else ref.policy_act
    return twin(*net, seed, stream, step, iteration, int(greedy))


def twin_outputs(policy, host, obs):
    """The actor's float64 outputs: logits or Gaussian means."""
    return ref.mlp_forward(obs, host, policy.layer_table, 0, len(policy.actor.layers),
                           policy.act_id)[-1]


# -- the command line, in a subprocess ----------------------------------------------------------
def run_cli(*args, timeout=600, module="rlcl.train"):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def start_cli(*args, module="rlcl.train", stderr=subprocess.DEVNULL):
    return subprocess.Popen([sys.executable, "-m", module, *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=stderr, text=True)


def episodes(run: Path) -> list[list[str]]:
    """A run folder's episodes.csv rows without time_s (wall-clock: the only column that may
    differ between bit-identical runs)."""
    with open(run / "episodes.csv") as fh:
        return [[r[0], r[2], r[3]] for r in csv.reader(fh)]


# -- a PostgreSQL server of the test's own (rlcl.tune's shared storage, issue 14) ---------------
def postgres_bin() -> Path | None:
    """The folder of initdb and pg_ctl: on PATH, or Debian's /usr/lib/postgresql/N/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return debian[-1].parent if debian else None


@contextlib.contextmanager
def postgres_server():
    """A throwaway server on a Unix socket; yields its URL for SQLAlchemy. PostgreSQL refuses
    to run as root, so under root it runs as the postgres user (Debian's package makes one)."""
    bin_dir = postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="rlcl-pg-", dir="/tmp"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        root.chmod(0o755)
        shutil.chown(sock, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
        data.mkdir()
        shutil.chown(data, "postgres")
    run = lambda *cmd: subprocess.run([*as_user, *map(str, cmd)], check=True,  # noqa: E731
                                      capture_output=True, text=True)
    run(bin_dir / "initdb", "-D", data, "-U", "rlcl", "--auth=trust")
    port = 55432 + os.getpid() % 1000
    run(bin_dir / "pg_ctl", "-D", data, "-l", data / "server.log", "-w", "-o",
        f"-k {sock} -p {port} -c listen_addresses=''", "start")
    try:
        run(bin_dir / "createdb", "-h", sock, "-p", port, "-U", "rlcl", "tune")
        yield f"postgresql://rlcl@/tune?host={sock}&port={port}"
    finally:
        run(bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)
