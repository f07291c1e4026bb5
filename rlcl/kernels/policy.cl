/* policy.cl: the fused rollout step of the actor-critic.
 *
 * policy_act: for each observation row r = out_off + n, run the actor MLP and the critic MLP
 *   on obs[r], then sample a ~ Categorical(softmax(logits)) by inverse CDF (or take the first
 *   argmax when greedy), writing actions[r], logp[r] = log softmax(logits)[a], values[r] = V.
 *
 * layers is the network's layer table (mlp.h LAYER, one row per layer): the actor's
 * n_actor layers, then the critic's n_critic layers. Hidden layers use ACT, the last layer of
 * each net is linear. The per-layer arithmetic is exactly linear_forward's (same order), so a
 * log-prob recomputed in the update is bit-identical to the one stored here.
 *
 * Randomness: one philox_uniform (mlp.h) with counter (n, step, iteration, 0).
 *
 * Launch: global (N * L), local L (a power of two); one work-group per observation.
 * policy_act_pop: the same for every agent of a population at once (below).
 * ha, hb: local buffers of max layer width floats each.
 * Reference: rlcl/reference.py policy_act, philox4x32, uniform.
 */
#include "mlp.h"

inline void policy_act_row(__global int *actions, __global float *logp,
                           __global float *values, int r, int n, __global const float *obs,
                           __global const float *params, __global const int *layers,
                           int n_actor, int n_critic, int act, uint seed, uint stream, uint step,
                           uint iteration, int greedy, __local float *ha, __local float *hb)
{
    const int obs_dim = LAYER(layers, 0, COL_N_IN), A = LAYER(layers, n_actor - 1, COL_N_OUT);
    __global const float *x = obs + r * obs_dim;

    __local float *logits = mlp_forward_local(x, params, layers, 0, n_actor, act, ha, hb);
    if (get_local_id(0) == 0) {
        float m = logits[0];
        int best = 0;
        for (int j = 1; j < A; j++) if (logits[j] > m) { m = logits[j]; best = j; }
        const float s = softmax_sum(logits, A, m);
        const int a = greedy ? best
                             : softmax_draw(logits, A, m,
                                            philox_uniform(seed, stream, n, step, iteration) * s);
        actions[r] = a;
        logp[r] = logits[a] - m - log_lane(s);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    __local float *v = mlp_forward_local(x, params, layers, n_actor, n_critic, act, ha, hb);
    if (get_local_id(0) == 0) values[r] = v[0];
}

__kernel void policy_act(__global int *actions, __global float *logp, __global float *values,
                         int out_off, __global const float *obs, __global const float *params,
                         __global const int *layers, int n_actor, int n_critic, int act,
                         int N, uint seed, uint stream, uint step, uint iteration, int greedy,
                         __local float *ha, __local float *hb)
{
    const int n = get_group_id(0);
    if (n >= N) return;  /* whole work-groups only, so barriers stay uniform */
    policy_act_row(actions, logp, values, out_off + n, n, obs, params, layers, n_actor,
                   n_critic, act, seed, stream, step, iteration, greedy, ha, hb);
}

/* Every agent's (issue 13; a population's greedy evaluation, eval.py): work-group (n, a) is
 * observation n of agent a, whose N rows lie after agent a-1's in actions, logp, values and obs
 * and whose parameters lie params_stride floats after; its seed is row a of hp (AGENT_HP words,
 * as rollout_classic_pop's). Launch: global (N * L, P), local (L, 1). */
__kernel void policy_act_pop(__global int *actions, __global float *logp, __global float *values,
                             __global const float *obs, __global const float *params,
                             int params_stride, __global const uint *hp,
                             __global const int *layers, int n_actor, int n_critic, int act,
                             int N, uint stream, uint env_step, uint iteration, int greedy,
                             __local float *ha, __local float *hb)
{
    const int n = get_group_id(0), a = get_group_id(1);
    const int obs_dim = LAYER(layers, 0, COL_N_IN);
    policy_act_row(actions + a * N, logp + a * N, values + a * N, n, n, obs + a * N * obs_dim,
                   params + a * params_stride, layers, n_actor, n_critic, act,
                   hp[a * AGENT_HP + HP_SEED], stream, env_step, iteration, greedy, ha, hb);
}

/* policy_churn (issue 4): how much an update changed a Categorical policy on the rollout's
 * states. old and new hold B x A logits from before and after the update:
 *   out[slot]     = fraction of rows whose greedy action (first argmax) changed
 *   out[slot + 1] = mean over rows of the total variation 0.5 * sum_j |p_old,j - p_new,j|
 * ONE work-group of L work-items (L a power of two), fixed-order sums; scratch L floats.
 * Reference: rlcl/reference.py policy_churn.
 */
inline int first_argmax(__global const float *z, int A)
{
    int best = 0;
    for (int j = 1; j < A; j++) if (z[j] > z[best]) best = j;
    return best;
}

inline void policy_churn_body(__global float *out, int slot, __global const float *old,
                              __global const float *new, int B, int A, __local float *scratch)
{
    const int lid = get_local_id(0), L = get_local_size(0);
    float changed = 0.0f;
    float8 tv = (float8)(0.0f);
    for (int b = 8 * lid; b < B; b += 8 * L) {  /* rows b .. b + 7 in the lanes (common.h) */
        for (int r = b; r < min(b + 8, B); r++)
            changed += first_argmax(old + r * A, A) != first_argmax(new + r * A, A) ? 1.0f : 0.0f;
        float8 mo = rows8(old, b, B, A, 0), mn = rows8(new, b, B, A, 0);
        for (int j = 1; j < A; j++) {
            mo = fmax(mo, rows8(old, b, B, A, j));
            mn = fmax(mn, rows8(new, b, B, A, j));
        }
        float8 so = (float8)(0.0f), sn = so, d = so;
        for (int j = 0; j < A; j++) {
            so += exp(rows8(old, b, B, A, j) - mo);
            sn += exp(rows8(new, b, B, A, j) - mn);
        }
        for (int j = 0; j < A; j++)
            d += fabs(exp(rows8(old, b, B, A, j) - mo) / so -
                      exp(rows8(new, b, B, A, j) - mn) / sn);
        tv += select((float8)(0.0f), 0.5f * d, rows_live(b, B));
    }
    const float total_changed = group_sum(changed, scratch);
    const float total_tv = group_sum(fold_sum8(tv), scratch);
    if (lid == 0) {
        out[slot] = total_changed / B;
        out[slot + 1] = total_tv / B;
    }
}

__kernel void policy_churn(__global float *out, int slot, __global const float *old,
                           __global const float *new, int B, int A, __local float *scratch)
{
    policy_churn_body(out, slot, old, new, B, A, scratch);
}

/* Every agent's: work-group (0, a) is agent a's (stride: out, old, new). */
__kernel void policy_churn_pop(__global float *out, int slot, __global const float *old,
                               __global const float *new, __global const int *stride, int B,
                               int A, __local float *scratch)
{
    const int a = get_group_id(1);
    policy_churn_body(out + a * stride[0], slot, old + a * stride[1], new + a * stride[2], B, A,
                      scratch);
}
