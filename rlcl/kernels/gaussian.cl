/* gaussian.cl: the diagonal Gaussian head for Box action spaces.
 *
 * The actor MLP outputs the mean mu (A values); log_std is a state-independent parameter of
 * A floats at params[log_std_off] (SB3's and CleanRL's continuous PPO). std = exp(log_std).
 *   log-prob: lp = sum_j -z_j^2 / 2 - log_std_j - log(2 pi) / 2,  z_j = (a_j - mu_j) / std_j
 *   entropy:  H  = sum_j 1/2 + log(2 pi) / 2 + log_std_j
 *
 * policy_act_gaussian: the rollout step (as policy.cl's policy_act): for observation row
 *   r = out_off + n, a = mu + std * eps with eps ~ N(0, 1) by Box-Muller from Philox (counter
 *   (n, step, iteration, j / 4); draws (x, y) give eps_4k, eps_4k+1, (z, w) the next two), or
 *   a = mu when greedy. Writes actions[r * A + j] (unclipped), logp[r], values[r]. lp uses the
 *   same expression as the loss, so the first epoch's ratio is exactly 1.
 *   Launch: global (N * L), local L. ha, hb: local buffers of max layer width floats.
 *   policy_act_gaussian_pop: every agent's at once, as policy.cl's policy_act_pop.
 *
 * ppo_loss_gaussian: loss.cl's loss with this head (ONE work-group of L, scratch 8 * L floats):
 *   dmean[b, j]    = g_lp * z_j / std_j / M
 *   dlog_std[b, j] = (g_lp * (z_j^2 - 1) - ent_coef) / M     (per sample; column_sum adds
 *                    them into the gradient buffer in a fixed order)
 *
 * column_sum: out[out_off + j] = sum_r x[r * cols + j], r in order. Launch: global (cols).
 *
 * Reference: rlcl/reference.py policy_act_gaussian, ppo_loss_gaussian, column_sum.
 */
#include "gaussian.h"
#include "loss.h"

inline void policy_act_gaussian_row(__global float *actions, __global float *logp,
                                    __global float *values, int r, int n,
                                    __global const float *obs, __global const float *params,
                                    __global const int *layers, int n_actor, int n_critic,
                                    int act, int log_std_off, uint seed, uint stream, uint step,
                                    uint iteration, int greedy, __local float *ha,
                                    __local float *hb)
{
    const int obs_dim = LAYER(layers, 0, COL_N_IN), A = LAYER(layers, n_actor - 1, COL_N_OUT);
    __global const float *x = obs + r * obs_dim;
    __local float *mu = mlp_forward_local(x, params, layers, 0, n_actor, act, ha, hb);
    if (get_local_id(0) == 0) {
        float lp = 0.0f;
        float eps[4];  /* an array, not a float4 lane choice: Oclgrind 21.10 mis-runs the
                        * switch clang makes of `j % 4 == 0 ? e.x : ...` */
        for (int j = 0; j < A; j++) {
            if (j % 4 == 0) vstore4(philox_normal4(seed, stream, n, step, iteration, j / 4), 0, eps);
            const float e = eps[j % 4];
            const float log_std = params[log_std_off + j];
            const float a = greedy ? mu[j] : mu[j] + exp(log_std) * e;
            actions[r * A + j] = a;
            lp += gaussian_lp_term(a, mu[j], log_std);
        }
        logp[r] = lp;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    __local float *v = mlp_forward_local(x, params, layers, n_actor, n_critic, act, ha, hb);
    if (get_local_id(0) == 0) values[r] = v[0];
}

__kernel void policy_act_gaussian(__global float *actions, __global float *logp,
                                  __global float *values, int out_off,
                                  __global const float *obs, __global const float *params,
                                  __global const int *layers, int n_actor, int n_critic, int act,
                                  int log_std_off, int N, uint seed, uint stream, uint step,
                                  uint iteration, int greedy, __local float *ha,
                                  __local float *hb)
{
    const int n = get_group_id(0);
    if (n >= N) return;
    policy_act_gaussian_row(actions, logp, values, out_off + n, n, obs, params, layers, n_actor,
                            n_critic, act, log_std_off, seed, stream, step, iteration, greedy,
                            ha, hb);
}

/* Every agent's: as policy.cl's policy_act_pop, with this head. */
__kernel void policy_act_gaussian_pop(__global float *actions, __global float *logp,
                                      __global float *values, __global const float *obs,
                                      __global const float *params, int params_stride,
                                      __global const uint *hp, __global const int *layers,
                                      int n_actor, int n_critic, int act, int log_std_off, int N,
                                      uint stream, uint env_step, uint iteration, int greedy,
                                      __local float *ha, __local float *hb)
{
    const int n = get_group_id(0), a = get_group_id(1);
    const int obs_dim = LAYER(layers, 0, COL_N_IN), A = LAYER(layers, n_actor - 1, COL_N_OUT);
    policy_act_gaussian_row(actions + a * N * A, logp + a * N, values + a * N, n, n,
                            obs + a * N * obs_dim, params + a * params_stride, layers, n_actor,
                            n_critic, act, log_std_off, hp[a * AGENT_HP + HP_SEED], stream,
                            env_step, iteration, greedy, ha, hb);
}

__kernel void ppo_loss_gaussian(__global float *dmean, __global float *dvalues,
                                __global float *dlog_std, __global float *stats, int row,
                                __global const float *mean, __global const float *values,
                                __global const float *params, int log_std_off,
                                __global const float *actions, __global const float *old_logp,
                                __global const float *advantages,
                                __global const float *returns, __global const float *old_values,
                                int M, int A, float clip_coef, int clip_vloss, float ent_coef,
                                float vf_coef, int norm_adv, int pg_mode, __local float *scratch)
{
    gaussian_loss(dmean, dvalues, dlog_std, stats, row, mean, values, params, log_std_off,
                  actions, old_logp, advantages, returns, old_values, M, A, clip_coef,
                  clip_vloss, ent_coef, vf_coef, norm_adv, pg_mode, LOSS_BOTH,
                     get_local_size(0), scratch);
}

__kernel void column_sum(__global float *out, int out_off, __global const float *x, int rows,
                         int cols)
{
    const int j = get_global_id(0);
    if (j >= cols) return;
    float acc = 0.0f;
    for (int r = 0; r < rows; r++) acc += x[r * cols + j];
    out[out_off + j] = acc;
}
