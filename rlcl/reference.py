"""numpy float64 twins of every rlcl kernel: the executable specification.

Each function has its kernel's name and takes the kernel's inputs in the kernel's order
(sizes are read from the arrays); outputs are returned instead of written. Tests compare
each kernel with its twin, and each twin's gradient with finite differences.
"""

from __future__ import annotations

import numpy as np

from rlcl.kernel_constants import ACT_IDENTITY, ACT_RELU, ACT_TANH, NUM_LOSS_STATS  # noqa: F401

# explained_variance treats Var(returns) <= this * mean^2 as zero: float32 rounding of a constant
# (e.g. seven 0.1f) leaves a variance of ~1e-17, not 0 (rollout.cl).
CONSTANT_VAR_REL = 1e-10


def activate(x: np.ndarray, act: int) -> np.ndarray:
    if act == ACT_TANH:
        return np.tanh(x)
    if act == ACT_RELU:
        return np.maximum(x, 0.0)
    return x


# common.h tanh8's coefficients: x P(x^2) / Q(x^2), highest power first
TANH_P = np.float32([float.fromhex(c) for c in (
    "-0x1.7e4ccep-44", "0x1.d0416ep-35", "-0x1.5b77c8p-26", "0x1.7646f2p-17", "0x1.96d78ep-9",
    "0x1.0bf5e8p-3", "1.0")])
TANH_Q = np.float32([float.fromhex(c) for c in
                     ("0x1.0afba4p-12", "0x1.915442p-6", "0x1.db5044p-2", "1.0")])


def tanh32(x: np.ndarray) -> np.ndarray:
    """common.h tanh8 in float32, the same operations in the same order: its bits, where
    division is correctly rounded (the kernels' tanh; activate keeps the true one)."""
    x = np.asarray(x, np.float32)
    x2 = x * x
    p, q = np.full_like(x, TANH_P[0]), np.full_like(x, TANH_Q[0])
    for c in TANH_P[1:]:
        p = p * x2 + c
    for c in TANH_Q[1:]:
        q = q * x2 + c
    with np.errstate(over="ignore", invalid="ignore"):  # |x| >= 9 takes the other branch
        r = (x * p) / q
    return np.where(np.abs(x) >= np.float32(9.0), np.copysign(np.float32(1.0), x), r)


def activate_grad(y: np.ndarray, act: int) -> np.ndarray:
    """Derivative in terms of the activation's output y (common.h activate_grad)."""
    if act == ACT_TANH:
        return 1.0 - y * y
    if act == ACT_RELU:
        return (y > 0).astype(np.float64)
    return np.ones_like(y)


def _weights(params, w_off, b_off, n_in, n_out):
    p = np.asarray(params, np.float64)
    return p[w_off : w_off + n_in * n_out].reshape(n_in, n_out), p[b_off : b_off + n_out]


# -- linear.cl ------------------------------------------------------------------------------
def linear_forward(inp, params, w_off, b_off, n_out, act):
    inp = np.asarray(inp, np.float64)
    w, b = _weights(params, w_off, b_off, inp.shape[1], n_out)
    return activate(inp @ w + b, act)


def linear_backward_input(dout, inp, params, w_off, in_act):
    dout, inp = np.asarray(dout, np.float64), np.asarray(inp, np.float64)
    w, _ = _weights(params, w_off, 0, inp.shape[1], dout.shape[1])
    return (dout @ w.T) * activate_grad(inp, in_act)


def linear_backward_params(dout, inp):
    """Returns (dW with shape IN x OUT, dbias)."""
    dout, inp = np.asarray(dout, np.float64), np.asarray(inp, np.float64)
    return inp.T @ dout, dout.sum(axis=0)


def mlp_forward(x, params, layers, first, count, act):
    """All activations of one MLP: [input, hidden..., output] (composes linear_forward)."""
    acts = [np.asarray(x, np.float64)]
    for l in range(first, first + count):
        w_off, b_off, _, n_out = layers[l]
        a = ACT_IDENTITY if l == first + count - 1 else act
        acts.append(linear_forward(acts[-1], params, w_off, b_off, n_out, a))
    return acts


def mlp_backward(dout, acts, params, layers, first, count, act):
    """Gradient of sum(dout * output) w.r.t. the flat params (composes the backward twins)."""
    grads = np.zeros(len(params))
    for k, l in enumerate(reversed(range(first, first + count))):
        w_off, b_off, n_in, n_out = layers[l]
        inp = acts[count - 1 - k]
        dw, db = linear_backward_params(dout, inp)
        grads[w_off : w_off + n_in * n_out] = dw.ravel()
        grads[b_off : b_off + n_out] = db
        in_act = ACT_IDENTITY if l == first else act
        dout = linear_backward_input(dout, inp, params, w_off, in_act)
    return grads


# -- policy.cl ------------------------------------------------------------------------------
_M0, _M1, _W0, _W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85
_U32 = 0xFFFFFFFF


def philox4x32(ctr, key, rounds: int = 10) -> list[int]:
    """Philox4x32-10 (Salmon et al. 2011, Random123) on Python ints."""
    c, k = [int(x) & _U32 for x in ctr], [int(x) & _U32 for x in key]
    for r in range(rounds):
        if r:
            k = [(k[0] + _W0) & _U32, (k[1] + _W1) & _U32]
        p0, p1 = _M0 * c[0], _M1 * c[2]
        c = [((p1 >> 32) ^ c[1] ^ k[0]) & _U32, p1 & _U32, ((p0 >> 32) ^ c[3] ^ k[1]) & _U32, p0 & _U32]
    return c


def philox_uniform(seed, stream, c0, c1, c2) -> float:
    return (philox4x32([c0, c1, c2, 0], [seed, stream])[0] >> 8) / 16777216.0


def policy_act(obs, params, layers, n_actor, n_critic, act, seed, stream, step, iteration, greedy):
    """Returns (actions, logp, values) for each row of OBS."""
    logits = mlp_forward(obs, params, layers, 0, n_actor, act)[-1]
    values = mlp_forward(obs, params, layers, n_actor, n_critic, act)[-1][:, 0]
    logp_all = logits - logits.max(axis=1, keepdims=True)
    logp_all -= np.log(np.exp(logp_all).sum(axis=1, keepdims=True))
    if greedy:
        actions = logits.argmax(axis=1)
    else:
        cdf = np.cumsum(np.exp(logp_all), axis=1)
        u = np.array([philox_uniform(seed, stream, n, step, iteration) for n in range(len(obs))])
        actions = np.minimum((cdf <= u[:, None]).sum(axis=1), logits.shape[1] - 1)
    return actions, logp_all[np.arange(len(obs)), actions], values


# -- gaussian.cl ----------------------------------------------------------------------------
HALF_LOG_2PI = 0.5 * np.log(2 * np.pi)


def philox_normal4(seed, stream, n, step, iteration, k) -> np.ndarray:
    """Four N(0, 1) draws by Box-Muller from one Philox block (gaussian.cl philox_normal4)."""
    x, y, z, w = philox4x32([n, step, iteration, k], [seed, stream])
    u1, u3 = ((x >> 9) + 0.5) / 8388608.0, ((z >> 9) + 0.5) / 8388608.0
    u2, u4 = (y >> 8) / 16777216.0, (w >> 8) / 16777216.0
    r1, r2 = np.sqrt(-2 * np.log(u1)), np.sqrt(-2 * np.log(u3))
    return np.array([r1 * np.cos(2 * np.pi * u2), r1 * np.sin(2 * np.pi * u2),
                     r2 * np.cos(2 * np.pi * u4), r2 * np.sin(2 * np.pi * u4)])


def gaussian_logp(actions, mean, log_std) -> np.ndarray:
    z = (np.asarray(actions, np.float64) - mean) / np.exp(log_std)
    return (-0.5 * z * z - log_std - HALF_LOG_2PI).sum(axis=1)


def policy_act_gaussian(obs, params, layers, n_actor, n_critic, act, log_std_off, seed, stream,
                        step, iteration, greedy):
    """Returns (actions (N, A), logp, values)."""
    mean = mlp_forward(obs, params, layers, 0, n_actor, act)[-1]
    values = mlp_forward(obs, params, layers, n_actor, n_critic, act)[-1][:, 0]
    N, A = mean.shape
    log_std = np.asarray(params, np.float64)[log_std_off : log_std_off + A]
    if greedy:
        actions = mean.copy()
    else:
        eps = np.array([np.concatenate([philox_normal4(seed, stream, n, step, iteration, k)
                                        for k in range((A + 3) // 4)])[:A] for n in range(N)])
        actions = mean + np.exp(log_std) * eps
    return actions, gaussian_logp(actions, mean, log_std), values


def ppo_loss_gaussian(mean, values, params, log_std_off, actions, old_logp, advantages,
                      returns, old_values, clip_coef, clip_vloss, ent_coef, vf_coef, norm_adv,
                      pg_mode=0):
    """Returns (loss, dmean, dvalues, dlog_std per sample, stats) as gaussian.cl defines them;
    the policy and value terms are ppo_loss's."""
    mean = np.asarray(mean, np.float64)
    M, A = mean.shape
    log_std = np.asarray(params, np.float64)[log_std_off : log_std_off + A]
    std = np.exp(log_std)
    z = (np.asarray(actions, np.float64) - mean) / std
    lp = gaussian_logp(actions, mean, log_std)
    H = np.full(M, (0.5 + HALF_LOG_2PI + log_std).sum())
    g_lp, pg_stats = _policy_term(lp, old_logp, advantages, clip_coef, norm_adv, pg_mode)
    dmean = g_lp[:, None] * z / std / M
    dlog_std = (g_lp[:, None] * (z * z - 1) - ent_coef) / M
    v_loss, dvalues = _value_term(values, returns, old_values, clip_coef, clip_vloss, vf_coef)
    stats = np.array([pg_stats[0], v_loss.mean(), H.mean(), *pg_stats[1:]])
    loss = stats[0] - ent_coef * stats[2] + vf_coef * stats[1]
    return loss, dmean, dvalues, dlog_std, stats


def column_sum(x) -> np.ndarray:
    return np.asarray(x, np.float64).sum(axis=0)


def policy_churn(old_logits, new_logits) -> tuple[float, float]:
    """(fraction of rows whose first argmax changed, mean total variation distance)."""
    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    old, new = np.asarray(old_logits, np.float64), np.asarray(new_logits, np.float64)
    changed = np.mean(old.argmax(axis=1) != new.argmax(axis=1))
    return float(changed), float(np.mean(0.5 * np.abs(softmax(old) - softmax(new)).sum(axis=1)))


# -- loss.cl --------------------------------------------------------------------------------
def _policy_term(lp, old_logp, advantages, clip_coef, norm_adv, pg_mode):
    """(d pg / d lp per sample, [mean pg, mean kl, clip fraction, max kl, max/min ratio])."""
    M = len(lp)
    logratio = lp - old_logp
    ratio = np.exp(logratio)
    adv = np.asarray(advantages, np.float64)
    if norm_adv:
        adv = (adv - adv.mean()) / ((adv.std(ddof=1) if M > 1 else 0.0) + 1e-8)
    clipped = np.clip(ratio, 1 - clip_coef, 1 + clip_coef)
    pg_u, pg_c = -adv * ratio, -adv * clipped
    g_lp = np.where((pg_u >= pg_c) | (clipped == ratio), -adv * ratio, 0.0)
    pg = np.maximum(pg_u, pg_c)
    if pg_mode:
        g_lp, pg = -adv, -adv * lp
    kl = (ratio - 1) - logratio
    return g_lp, [pg.mean(), kl.mean(), (np.abs(ratio - 1) > clip_coef).mean(), kl.max(),
                  ratio.max(), ratio.min()]


def _value_term(values, returns, old_values, clip_coef, clip_vloss, vf_coef):
    """(value loss per sample, d loss / d values)."""
    v, R = np.asarray(values, np.float64), np.asarray(returns, np.float64)
    v_loss, dv = 0.5 * (v - R) ** 2, v - R
    if clip_vloss:
        vc = old_values + np.clip(v - old_values, -clip_coef, clip_coef)
        v_loss_c = 0.5 * (vc - R) ** 2
        use_c = v_loss_c > v_loss
        inside = np.abs(v - old_values) <= clip_coef  # not vc == v: see loss.h
        dv = np.where(use_c, np.where(inside, vc - R, 0.0), dv)
        v_loss = np.maximum(v_loss, v_loss_c)
    return v_loss, vf_coef * dv / len(v)


def ppo_loss(logits, values, actions, old_logp, advantages, returns, old_values, clip_coef,
             clip_vloss, ent_coef, vf_coef, norm_adv, pg_mode=0):
    """Returns (loss, dlogits, dvalues, stats) as loss.cl defines them (pg_mode 1: A2C)."""
    z = np.asarray(logits, np.float64)
    M = len(z)
    logp_all = z - z.max(axis=1, keepdims=True)
    logp_all -= np.log(np.exp(logp_all).sum(axis=1, keepdims=True))
    p = np.exp(logp_all)
    H = -(p * logp_all).sum(axis=1)
    lp = logp_all[np.arange(M), actions]
    g_lp, pg_stats = _policy_term(lp, old_logp, advantages, clip_coef, norm_adv, pg_mode)
    onehot = np.eye(z.shape[1])[actions]
    dlogits = (g_lp[:, None] * (onehot - p) + ent_coef * p * (logp_all + H[:, None])) / M
    v_loss, dvalues = _value_term(values, returns, old_values, clip_coef, clip_vloss, vf_coef)
    stats = np.array([pg_stats[0], v_loss.mean(), H.mean(), *pg_stats[1:]])
    loss = stats[0] - ent_coef * stats[2] + vf_coef * stats[1]
    return loss, dlogits, dvalues, stats


# -- rollout.cl -----------------------------------------------------------------------------
def gae(rewards, values, ends, trunc_values, gamma, lam):
    """Returns (advantages, returns), both (T, N); VALUES has T + 1 rows."""
    T, N = rewards.shape
    adv = np.zeros((T, N))
    next_adv = np.zeros(N)
    for t in reversed(range(T)):
        live = (ends[t] == 0).astype(np.float64)
        boot = np.where(ends[t] == 2, trunc_values[t], 0.0)
        delta = rewards[t] + gamma * boot + gamma * live * values[t + 1] - values[t]
        next_adv = delta + gamma * lam * live * next_adv
        adv[t] = next_adv
    return adv, adv + values[:T]


def gather_minibatch(idx, idx_off, m, obs, actions, logp, advantages, returns, values):
    rows = np.asarray(idx)[idx_off : idx_off + m]
    return tuple(np.asarray(a)[rows] for a in (obs, actions, logp, advantages, returns, values))


def explained_variance(values, returns):
    """Returns (explained variance, Var(returns)), population variances as in SB3."""
    values, returns = np.asarray(values, np.float64), np.asarray(returns, np.float64)
    var_r = returns.var()
    constant = var_r <= CONSTANT_VAR_REL * returns.mean() ** 2
    return (np.nan if constant else 1 - (returns - values).var() / var_r), var_r


# -- optim.cl -------------------------------------------------------------------------------
def sum_squares(x) -> float:
    """The kernel's name; its result is the norm sqrt(sum x^2)."""
    return float(np.sqrt(np.sum(np.asarray(x, np.float64) ** 2)))


def clip_scale(norm, max_norm):
    return min(1.0, max_norm / (norm + 1e-6)) if max_norm > 0 else 1.0


def smoothness_partials(g, v_old, v, u, u_prev, theta, theta_new) -> np.ndarray:
    """The 10 sums optim.cl writes per work-group, here over all coordinates."""
    return np.array([u @ u_prev, u @ u, u_prev @ u_prev, g @ v_old, g @ g, v_old @ v_old, v @ v,
                     np.sum(u * u_prev < 0), theta @ theta, np.sum(~np.isfinite(theta_new))])


def _skip(norm, skip_above) -> bool:
    return skip_above >= 0 and not norm <= skip_above


def sgd_step(params, grads, velocity, prev_update, norm, max_norm, skip_above, lr, momentum,
             dampening, weight_decay, nesterov, first):
    """Returns (params, velocity, prev_update, smoothness partial sums)."""
    p = np.asarray(params, np.float64)
    g = np.asarray(grads, np.float64) * clip_scale(norm, max_norm) + weight_decay * p
    v_old = np.zeros_like(p) if first or momentum == 0 else np.asarray(velocity, np.float64)
    v, d = g, g
    if momentum != 0:
        v = g if first else momentum * v_old + (1 - dampening) * g
        d = g + momentum * v if nesterov else v
    u = -lr * d
    u_prev = np.asarray(prev_update, np.float64)
    if _skip(norm, skip_above):  # nothing written, and the sums say so
        sums = smoothness_partials(g, v_old, v_old, 0 * u, u_prev, p, p)
        return p, velocity, prev_update, sums
    sums = smoothness_partials(g, v_old, v, u, u_prev, p, p + u)
    return p + u, (v if momentum != 0 else velocity), u, sums


def adam_step(params, grads, exp_avg, exp_avg_sq, prev_update, norm, max_norm, skip_above,
              step_size, beta1, beta2, eps, bc2_sqrt, weight_decay):
    """Returns (params, exp_avg, exp_avg_sq, prev_update, smoothness partial sums)."""
    p = np.asarray(params, np.float64)
    g = np.asarray(grads, np.float64) * clip_scale(norm, max_norm) + weight_decay * p
    m_old = np.asarray(exp_avg, np.float64)
    m = beta1 * m_old + (1 - beta1) * g
    s = beta2 * np.asarray(exp_avg_sq, np.float64) + (1 - beta2) * g * g
    u = -step_size * m / (np.sqrt(s) / bc2_sqrt + eps)
    u_prev = np.asarray(prev_update, np.float64)
    if _skip(norm, skip_above):  # nothing written, and the sums say so
        sums = smoothness_partials(g, m_old, m_old, 0 * u, u_prev, p, p)
        return p, exp_avg, exp_avg_sq, prev_update, sums
    sums = smoothness_partials(g, m_old, m, u, u_prev, p, p + u)
    return p + u, m, s, u, sums
