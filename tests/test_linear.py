"""kernels/linear.cl against its float64 twins, and the twins' gradients against finite
differences.

Each kernel runs on awkward sizes (B, IN, OUT drawn from 1, 7, 64, 129) for every activation,
with the weights and the bias at nonzero offsets inside a larger flat buffer (bias first, with
padding around both). Output buffers carry a sentinel tail, and the gradient buffer a sentinel
everywhere, so a write outside its slice is caught.

Tolerances:
* kernel (float32) vs twin (float64 on the same float32-rounded inputs): a float32 sum of n
  terms is off by about sqrt(n) ulps of its largest partial sum, not of its (possibly
  cancelled) result, so the absolute part scales with S = max(1, max |ref|) (see
  assert_close). TOL allows |err| <= 1e-5 * S + 1e-5 * |ref| (about 100 ulps of S).
* MLP (three layers, errors compound through the activations): MLP_TOL,
  |err| <= 1e-5 * S + 1e-4 * |ref|.
* twin vs central differences, all float64 with h = 1e-6: truncation is O(h^2) and roundoff
  O(1e-16 / h), so FD_TOL allows 1e-8 + 1e-6 * |ref|.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from conftest import ON_OCLGRIND, _keep_buffers_alive
from helpers import FD_TOL, SENTINEL, big, central_difference, f32, guarded, read_guarded

from rlcl import reference as ref
from rlcl.device import TILE_WIDTHS, Device
from rlcl.nn import MLP
from rlcl.policy import ActorCritic

TOL = dict(rtol=1e-5, atol=1e-5)
MLP_TOL = dict(rtol=1e-4, atol=1e-5)

ACTS = {"identity": ref.ACT_IDENTITY, "tanh": ref.ACT_TANH, "relu": ref.ACT_RELU}
# (B, IN, OUT): every size in every position; any shape with 129 is skipped on Oclgrind.
SHAPES = [
    (1, 1, 1), (7, 1, 64), (64, 7, 1), (1, 64, 7), (7, 7, 7), (64, 64, 64),
    pytest.param((129, 7, 64), marks=big), pytest.param((7, 129, 1), marks=big),
    pytest.param((1, 64, 129), marks=big), pytest.param((129, 129, 129), marks=big),
]


def flat_layout(rng, n_in, n_out):
    """A flat parameter buffer holding one layer: 3 pad, bias, 5 pad, W (IN x OUT), 4 pad.
    Returns (params as float32, w_off, b_off)."""
    b_off = 3
    w_off = b_off + n_out + 5
    params = rng.standard_normal(w_off + n_in * n_out + 4)
    params[w_off : w_off + n_in * n_out] /= np.sqrt(n_in)
    return f32(params), w_off, b_off


def assert_close(got, want, tol, **kwargs):
    """assert_allclose whose atol is relative to S = max(1, max |want|)."""
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=tol["rtol"], atol=tol["atol"] * scale, **kwargs)


# -- kernels vs twins -----------------------------------------------------------------------
def test_kernel_tanh_is_its_float32_twin_and_within_6_ulp(device, rng):
    """common.h tanh8 through a 1 x 1 layer (weight 1, bias 0: out = tanh(x) exactly) on
    values across tanh's whole range, including |x| >= 9 and tiny x: the bits of
    reference.tanh32, and at most 6 ulp from the true tanh; a NaN stays NaN (its payload is
    the device's: IEEE leaves it open, NVIDIA's H200 gives 0x7fffffff, numpy 0x7fc00000)."""
    n = 512 if ON_OCLGRIND else 65536
    x = np.concatenate([rng.standard_normal(n // 2) * 3, rng.uniform(-12, 12, n // 4),
                        np.exp(rng.uniform(-80, 0, n // 4)) * rng.choice([-1, 1], n // 4)])
    x = np.append(f32(x), np.float32([9.0, -9.0, 8.999999, 1e-30, np.nan]))
    params = np.float32([0.0, 1.0])  # bias, then W
    out = device.empty(x.size)
    device.launch("linear_forward", (1, x.size), None, out, device.upload(x),
                  device.upload(params), 1, 0, x.size, 1, 1, ref.ACT_TANH)
    got = device.read(out, x.size)
    assert np.array_equal(got[:-1].view(np.uint32), ref.tanh32(x[:-1]).view(np.uint32))
    true = np.tanh(x[:-1].astype(np.float64))
    ulp = np.spacing(np.abs(true).astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got[:-1] - true) / ulp) <= 6.0
    assert np.isnan(got[-1])


@pytest.mark.parametrize("act", ACTS.values(), ids=ACTS.keys())
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B%d-IN%d-OUT%d" % s)
def test_linear_forward_matches_twin(device, rng, shape, act):
    B, IN, OUT = shape
    params, w_off, b_off = flat_layout(rng, IN, OUT)
    x = f32(rng.standard_normal((B, IN)))
    out = guarded(device, B * OUT)
    device.launch("linear_forward", (OUT, B), None, out, device.upload(x), device.upload(params),
                  w_off, b_off, B, IN, OUT, act)
    got = read_guarded(device, out, B * OUT).reshape(B, OUT)
    assert_close(got, ref.linear_forward(x, params, w_off, b_off, OUT, act), TOL)


@pytest.mark.parametrize("act", ACTS.values(), ids=ACTS.keys())
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B%d-IN%d-OUT%d" % s)
def test_linear_backward_input_matches_twin(device, rng, shape, act):
    B, IN, OUT = shape
    params, w_off, _ = flat_layout(rng, IN, OUT)
    # inp is the previous layer's activated output (relu gives exact zeros, tanh |y| < 1)
    inp = f32(ref.activate(rng.standard_normal((B, IN)), act))
    dout = f32(rng.standard_normal((B, OUT)))
    dinp = guarded(device, B * IN)
    device.launch("linear_backward_input", (IN, B), None, dinp, device.upload(dout),
                  device.upload(inp), device.upload(params), w_off, B, IN, OUT, act)
    got = read_guarded(device, dinp, B * IN).reshape(B, IN)
    assert_close(got, ref.linear_backward_input(dout, inp, params, w_off, act), TOL)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B%d-IN%d-OUT%d" % s)
def test_linear_backward_params_writes_only_its_slices(device, rng, shape):
    B, IN, OUT = shape
    params, w_off, b_off = flat_layout(rng, IN, OUT)
    inp, dout = f32(rng.standard_normal((B, IN))), f32(rng.standard_normal((B, OUT)))
    grads = device.upload(np.full(params.size, SENTINEL, np.float32))
    device.launch("linear_backward_params", (OUT, IN + 1), None, grads, device.upload(dout),
                  device.upload(inp), w_off, b_off, B, IN, OUT)
    got = device.read(grads, params.size)
    dw, db = ref.linear_backward_params(dout, inp)
    assert_close(got[w_off : w_off + IN * OUT], dw.ravel(), TOL)
    assert_close(got[b_off : b_off + OUT], db, TOL)
    untouched = np.ones(params.size, bool)
    untouched[w_off : w_off + IN * OUT] = untouched[b_off : b_off + OUT] = False
    assert np.all(got[untouched] == SENTINEL)


# -- twins vs finite differences (float64 only) ---------------------------------------------
@pytest.mark.parametrize("act", ACTS.values(), ids=ACTS.keys())
def test_twin_param_gradient_is_the_derivative(rng, act):
    """d/dparams of sum(c * linear_forward) = linear_backward_params(c * act'(y), x), and zero
    on the padding around the layer."""
    B, IN, OUT = 3, 4, 5
    params, w_off, b_off = flat_layout(rng, IN, OUT)
    params = params.astype(np.float64)
    x, c = rng.standard_normal((B, IN)), rng.standard_normal((B, OUT))
    y = ref.linear_forward(x, params, w_off, b_off, OUT, act)
    dw, db = ref.linear_backward_params(c * ref.activate_grad(y, act), x)
    analytic = np.zeros_like(params)
    analytic[w_off : w_off + IN * OUT], analytic[b_off : b_off + OUT] = dw.ravel(), db
    numeric = central_difference(
        lambda p: np.sum(c * ref.linear_forward(x, p, w_off, b_off, OUT, act)), params)
    np.testing.assert_allclose(analytic, numeric, **FD_TOL)
    assert np.abs(analytic).max() > 0.1  # the check is not vacuous


@pytest.mark.parametrize("in_act", ACTS.values(), ids=ACTS.keys())
@pytest.mark.parametrize("act", ACTS.values(), ids=ACTS.keys())
def test_twin_input_gradient_is_the_derivative(rng, act, in_act):
    """linear_backward_input(dz, act_in(z_prev)) is d/dz_prev of sum(c * forward(act_in(z_prev)))
    where dz = c * act'(y): it also runs the previous layer's activation backward."""
    B, IN, OUT = 3, 4, 5
    params, w_off, b_off = flat_layout(rng, IN, OUT)
    params = params.astype(np.float64)
    z_prev, c = rng.standard_normal((B, IN)), rng.standard_normal((B, OUT))

    def f(z):
        return np.sum(c * ref.linear_forward(ref.activate(z, in_act), params, w_off, b_off, OUT,
                                             act))

    inp = ref.activate(z_prev, in_act)
    y = ref.linear_forward(inp, params, w_off, b_off, OUT, act)
    analytic = ref.linear_backward_input(c * ref.activate_grad(y, act), inp, params, w_off,
                                         in_act)
    np.testing.assert_allclose(analytic, central_difference(f, z_prev), **FD_TOL)
    assert np.abs(analytic).max() > 0.1


# -- MLP: rlcl.nn.MLP on the device vs the composed twins ------------------------------------
def layer_table(mlp: MLP):
    return [(l.w_off, l.b_off, l.n_in, l.n_out) for l in mlp.layers]


@pytest.mark.parametrize("activation", ACTS.keys())
@pytest.mark.parametrize("batch", [1, 7, 64, pytest.param(129, marks=big)])
def test_mlp_forward_backward_match_twins(device, rng, activation, batch):
    first = 11  # the MLP starts inside the flat buffer, as the critic does
    mlp = MLP([5, 7, 64, 3], activation, first=first)
    n = mlp.end + 6
    host = f32(rng.standard_normal(n) * 0.5)
    params = device.upload(host)
    grads = device.upload(np.full(n, SENTINEL, np.float32))
    acts, scratch = mlp.alloc(device, batch), mlp.alloc_grads(device, batch)
    x = f32(rng.standard_normal((batch, 5)))
    device.write(acts[0], x)
    mlp.forward(device, params, acts, batch)
    table, count = layer_table(mlp), len(mlp.layers)
    ref_acts = ref.mlp_forward(x, host, table, 0, count, mlp.act)
    for k in range(1, len(acts)):
        got = device.read(acts[k], batch * mlp.sizes[k]).reshape(batch, -1)
        assert_close(got, ref_acts[k], MLP_TOL, err_msg=f"activation {k}")

    dout = f32(rng.standard_normal((batch, 3)))
    mlp.backward(device, params, grads, acts, device.upload(dout), scratch, batch)
    got = device.read(grads, n)
    want = ref.mlp_backward(dout, ref_acts, host, table, 0, count, mlp.act)
    assert_close(got[first : mlp.end], want[first : mlp.end], MLP_TOL)
    assert np.all(got[:first] == SENTINEL) and np.all(got[mlp.end :] == SENTINEL)


@pytest.mark.parametrize("activation", ACTS.keys())
def test_twin_mlp_backward_is_the_derivative(rng, activation):
    mlp = MLP([3, 4, 5, 2], activation, first=2)
    table, count, act = layer_table(mlp), len(mlp.layers), mlp.act
    params = rng.standard_normal(mlp.end + 3)
    x, c = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    acts = ref.mlp_forward(x, params, table, 0, count, act)
    analytic = ref.mlp_backward(c, acts, params, table, 0, count, act)
    numeric = central_difference(
        lambda p: np.sum(c * ref.mlp_forward(x, p, table, 0, count, act)[-1]), params)
    np.testing.assert_allclose(analytic, numeric, **FD_TOL)
    assert np.abs(analytic).max() > 0.1


# -- linear_x4.cl, actor_critic.cl: the faster kernels are bit-identical to the simple ones ---
@pytest.fixture(scope="module", params=TILE_WIDTHS, ids=[f"cols{w}" for w in TILE_WIDTHS])
def tiled_device(request, device) -> Device:
    """The session device, and the same device built with each other tile width, so every
    width is proven bit-identical here whichever one the device prefers."""
    if request.param == device.tile_cols:
        return device
    other = Device(tile_cols=request.param)
    if ON_OCLGRIND:
        _keep_buffers_alive(other)  # as conftest does for the session device
    return other


@pytest.mark.parametrize("act", [0, 1, 2], ids=["identity", "tanh", "relu"])
@pytest.mark.parametrize("B, IN, OUT", [(1, 1, 1), (7, 7, 7), (7, 64, 129), (129, 7, 64),
                                        (64, 64, 64), (5, 3, 6), (4, 1, 16), (8, 7, 32),
                                        (256, 64, 64), (12, 4, 48), (4, 3, 16), (4, 5, 8),
                                        (8, 9, 24)])
def test_tiled_kernels_are_bit_identical_to_simple(tiled_device, rng, B, IN, OUT, act):
    """The 4 x 4 kernels on every shape; the 4 x TILE_COLS ones where MLP uses them
    (TILE_COLS divides OUT, and B % 4 == 0 for the forward)."""
    device, cols = tiled_device, tiled_device.tile_cols
    params = np.float32(rng.standard_normal(IN * OUT + OUT + 3))
    w_off, b_off = 3, 3 + IN * OUT
    x = np.float32(rng.standard_normal((B, IN)))
    dout = np.float32(rng.standard_normal((B, OUT)))
    p, xb, db = device.upload(params), device.upload(x), device.upload(dout)
    q, wide = -(-OUT // 4), OUT % cols == 0

    def run(name, shape, size, *args):
        out = device.upload(np.full(size, np.nan, np.float32))
        device.launch(name, shape, None, out, *args)
        return device.read(out, size)

    simple = run("linear_forward", (OUT, B), B * OUT, xb, p, w_off, b_off, B, IN, OUT, act)
    fast = run("linear_forward_x4", (q, -(-B // 4)), B * OUT, xb, p, w_off, b_off, B, IN, OUT,
               act)
    assert np.array_equal(simple, fast)
    if wide and B % 4 == 0:
        fast = run("linear_forward_wide", (OUT // cols, B // 4), B * OUT, xb, p, w_off, b_off,
                   B, IN, OUT, act)
        assert np.array_equal(simple, fast)
    y = device.upload(np.tanh(x))  # an activated input, as the backward pass sees
    simple = run("linear_backward_input", (IN, B), B * IN, db, y, p, w_off, B, IN, OUT, act)
    fast = run("linear_backward_input_x4", (-(-IN // 4), -(-B // 4)), B * IN, db, y, p, w_off,
               B, IN, OUT, act)
    assert np.array_equal(simple, fast)
    n = IN * OUT + OUT + 3
    simple = run("linear_backward_params", (OUT, IN + 1), n, db, xb, w_off, b_off, B, IN, OUT)
    fast = run("linear_backward_params_x4", (q, -(-(IN + 1) // 4)), n, db, xb, w_off, b_off, B,
               IN, OUT)
    assert np.array_equal(simple[3:], fast[3:]) and np.all(np.isnan(fast[:3]))
    if wide:
        fast = run("linear_backward_params_wide", (OUT // cols, -(-(IN + 1) // 4)), n, db, xb,
                   w_off, b_off, B, IN, OUT)
        assert np.array_equal(simple[3:], fast[3:]) and np.all(np.isnan(fast[:3]))


def simple_mlp(device, params, mlp: MLP, x, dout):
    """Forward and backward of MLP with linear.cl's one-output-per-work-item kernels: the
    activations per layer and the gradient of MLP's slice."""
    B, layers = len(x), mlp.layers
    acts = [device.upload(x)] + [device.empty(B * n) for n in mlp.sizes[1:]]
    for k, l in enumerate(layers):
        act = 0 if k == len(layers) - 1 else mlp.act
        device.launch("linear_forward", (l.n_out, B), None, acts[k + 1], acts[k], params,
                      l.w_off, l.b_off, B, l.n_in, l.n_out, act)
    grads, delta = device.zeros(mlp.end), device.upload(dout)
    for k in reversed(range(len(layers))):
        l = layers[k]
        device.launch("linear_backward_params", (l.n_out, l.n_in + 1), None, grads, delta,
                      acts[k], l.w_off, l.b_off, B, l.n_in, l.n_out)
        if k:
            below = device.empty(B * l.n_in)
            device.launch("linear_backward_input", (l.n_in, B), None, below, delta, acts[k],
                          params, l.w_off, B, l.n_in, l.n_out, mlp.act)
            delta = below
    outs = [device.read(a, B * n) for a, n in zip(acts[1:], mlp.sizes[1:])]
    return outs, device.read(grads, mlp.end)[mlp.layers[0].w_off :]


@pytest.mark.parametrize("hidden", [[16, 5, 32], [8, 24], [7]])
@pytest.mark.parametrize("n", [1, 7, 64])
def test_whole_network_kernels_are_bit_identical_to_simple(tiled_device, rng, hidden, n):
    """actor_critic.cl's three launches against linear.cl layer by layer, at every tile width
    (the layer widths mix multiples of 4, 8 and 16 with others)."""
    device = tiled_device
    policy = ActorCritic(device, 5, gym.spaces.Discrete(3), hidden, "tanh", seed=0,
                         max_batch=n + 3)
    policy.flat.load(policy.flat.numpy() + np.float32(rng.normal(0, 0.3, policy.flat.n)))
    obs = np.float32(rng.standard_normal((n, 5)))
    d_out, d_val = np.float32(rng.standard_normal((n, 3))), np.float32(rng.standard_normal(n))
    device.write(policy.obs_buffer, obs)
    device.write(policy.d_outputs, d_out)
    device.write(policy.d_values, d_val)
    policy.evaluate(n)
    policy.backward(n)
    grads = policy.flat.grad_numpy()
    for net, (mlp, own, dout) in enumerate(((policy.actor, policy.outputs, d_out),
                                            (policy.critic, policy.values, d_val))):
        outs, want = simple_mlp(device, policy.flat.params, mlp, obs, dout)
        for k, (size, got) in enumerate(zip(mlp.sizes[1:], outs)):
            fused = (device.read(own, n * size) if k == len(outs) - 1 else device.read(
                policy.hidden, n * size, offset=policy.hidden_offsets[net][k][0]))
            assert np.array_equal(fused, got), f"network {net}, layer {k}"
        assert np.array_equal(grads[mlp.layers[0].w_off : mlp.end], want), f"network {net}"
