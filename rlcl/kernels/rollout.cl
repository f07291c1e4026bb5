/* rollout.cl: advantages and minibatch gathering over the (T, N) rollout storage.
 *
 * gae (Schulman et al. 2016, "High-Dimensional Continuous Control Using GAE"), per env n,
 * for t = T-1 .. 0, with ends[t,n] = END_RUNNING, END_TERMINATED or END_TRUNCATED:
 *   live_t  = ends[t,n] == END_RUNNING
 *   boot_t  = ends[t,n] == END_TRUNCATED ? trunc_values[t,n] : 0
 *             V(final_obs) at a time-limit end, so truncation is not treated as failure
 *             (SB3 issue 633; Pardo et al. 2018)
 *   delta_t = r[t,n] + gamma * boot_t + gamma * live_t * V[t+1,n] - V[t,n]
 *   A_t     = delta_t + gamma * lambda * live_t * A_{t+1},   returns = A + V
 * values has T + 1 rows: row T is V of the observation after the last step.
 * Launch: global (N). Reference: rlcl/reference.py gae.
 *
 * gather_minibatch: row m of every mb_* output is row idx[idx_off + m] of the flattened (T*N)
 * storage (idx holds all of an iteration's permutations, uploaded once). An action is act_dim
 * 32-bit words, copied as bits: an int for Discrete spaces, act_dim floats for Box spaces.
 * Launch: global (M). Reference: rlcl/reference.py gather_minibatch.
 *
 * explained_variance: out[slot] = 1 - Var(returns - values) / Var(returns) over n samples
 *   (SB3's explained_variance; NaN when Var(returns) <= 1e-10 mean^2), also writing Var(returns) to
 *   out[slot + 1]. ONE work-group of L work-items, fixed-order sums.
 *   Reference: rlcl/reference.py explained_variance.
 */
#include "rollout.h"

#if !defined(END_RUNNING) || !defined(END_TERMINATED) || !defined(END_TRUNCATED)
#error "END_* undefined: build through rlcl.device.Device (rlcl/kernel_constants.py)"
#endif

inline void gae_env(__global float *advantages, __global float *returns,
                    __global const float *rewards, __global const float *values,
                    __global const int *ends, __global const float *trunc_values,
                    int T, int N, float gamma, float lam, int n)
{
    float next_adv = 0.0f;
    for (int t = T - 1; t >= 0; t--) {
        const int k = t * N + n;
        const float live = ends[k] == END_RUNNING ? 1.0f : 0.0f;
        const float boot = ends[k] == END_TRUNCATED ? trunc_values[k] : 0.0f;
        const float delta = rewards[k] + gamma * boot + gamma * live * values[k + N] - values[k];
        next_adv = delta + gamma * lam * live * next_adv;
        advantages[k] = next_adv;
        returns[k] = next_adv + values[k];
    }
}

__kernel void gae(__global float *advantages, __global float *returns,
                  __global const float *rewards, __global const float *values,
                  __global const int *ends, __global const float *trunc_values,
                  int T, int N, float gamma, float lam)
{
    const int n = get_global_id(0);
    if (n < N) gae_env(advantages, returns, rewards, values, ends, trunc_values, T, N, gamma, lam, n);
}

/* A population's (ppo_update.cl's *_pop convention: stride, hp): env n of agent
 * get_global_id(1), with its gamma and gae_lambda. */
__kernel void gae_pop(__global float *advantages, __global float *returns,
                      __global const float *rewards, __global const float *values,
                      __global const int *ends, __global const float *trunc_values,
                      __global const int *stride, __global const uint *hp, int T, int N)
{
    const int n = get_global_id(0), a = get_global_id(1);
    __global const uint *h = hp + a * AGENT_HP;
    if (n < N)
        gae_env(advantages + a * stride[0], returns + a * stride[1], rewards + a * stride[2],
                values + a * stride[3], ends + a * stride[4], trunc_values + a * stride[5], T, N,
                as_float(h[HP_GAMMA]), as_float(h[HP_GAE_LAMBDA]), n);
}

__kernel void gather_minibatch(__global float *mb_obs, __global uint *mb_actions,
                               __global float *mb_logp, __global float *mb_adv,
                               __global float *mb_ret, __global float *mb_val,
                               __global const int *idx, int idx_off, __global const float *obs,
                               __global const uint *actions, __global const float *logp,
                               __global const float *advantages, __global const float *returns,
                               __global const float *values, int M, int obs_dim, int act_dim)
{
    const int m = get_global_id(0);
    if (m >= M) return;
    gather_row(mb_obs, mb_actions, mb_logp, mb_adv, mb_ret, mb_val, idx[idx_off + m], m, obs,
               actions, logp, advantages, returns, values, obs_dim, act_dim, LOSS_BOTH);
}

inline void explained_variance_body(__global float *out, int slot, __global const float *values,
                                    __global const float *returns, int n, __local float *scratch)
{
    const int lid = get_local_id(0), L = get_local_size(0);
    float s_r = 0.0f, s_d = 0.0f;
    for (int i = lid; i < n; i += L) { s_r += returns[i]; s_d += returns[i] - values[i]; }
    const float mean_r = group_sum(s_r, scratch) / n, mean_d = group_sum(s_d, scratch) / n;
    float q_r = 0.0f, q_d = 0.0f;
    for (int i = lid; i < n; i += L) {
        const float r = returns[i] - mean_r, d = returns[i] - values[i] - mean_d;
        q_r += r * r;
        q_d += d * d;
    }
    const float var_r = group_sum(q_r, scratch) / n, var_d = group_sum(q_d, scratch) / n;
    if (lid == 0) {
        /* Constant returns give NaN, as in SB3; float32 rounding of a constant leaves a
         * variance of ~1e-17 rather than 0, hence the relative test. */
        out[slot] = var_r <= 1e-10f * mean_r * mean_r ? NAN : 1.0f - var_d / var_r;
        out[slot + 1] = var_r;
    }
}

__kernel void explained_variance(__global float *out, int slot, __global const float *values,
                                 __global const float *returns, int n, __local float *scratch)
{
    explained_variance_body(out, slot, values, returns, n, scratch);
}

/* Every agent's: work-group (0, a) is agent a's (stride: out, values, returns). */
__kernel void explained_variance_pop(__global float *out, int slot, __global const float *values,
                                     __global const float *returns,
                                     __global const int *stride, int n, __local float *scratch)
{
    const int a = get_group_id(1);
    explained_variance_body(out + a * stride[0], slot, values + a * stride[1],
                            returns + a * stride[2], n, scratch);
}
