/* policy.cl: the fused rollout step of the actor-critic.
 *
 * policy_act: for each observation row r = out_off + n, run the actor MLP and the critic MLP
 *   on obs[r], then sample a ~ Categorical(softmax(logits)) by inverse CDF (or take the first
 *   argmax when greedy), writing actions[r], logp[r] = log softmax(logits)[a], values[r] = V.
 *
 * layers is the network's layer table, 4 ints per layer (w_off, b_off, in, out): the actor's
 * n_actor layers, then the critic's n_critic layers. Hidden layers use ACT, the last layer of
 * each net is linear. The per-layer arithmetic is exactly linear_forward's (same order), so a
 * log-prob recomputed in the update is bit-identical to the one stored here.
 *
 * Randomness: Philox4x32-10 (Random123, shipped with pyopencl), named explicitly so every
 * device uses the same generator. key = (seed, stream), counter = (n, step, iteration, 0).
 * u = (bits >> 8) * 2^-24 is exactly representable, so the numpy twin reproduces it.
 *
 * Launch: global (N * L), local L (a power of two); one work-group per observation.
 * ha, hb: local buffers of max layer width floats each.
 * Reference: rlcl/reference.py policy_act, philox4x32, uniform.
 */
#include "common.h"
#include <pyopencl-random123/philox.cl>

inline float philox_uniform(uint seed, uint stream, uint c0, uint c1, uint c2)
{
    philox4x32_key_t key = {{seed, stream}};
    philox4x32_ctr_t ctr = {{c0, c1, c2, 0u}};
    philox4x32_ctr_t bits = philox4x32(ctr, key);
    return (float)(bits.v[0] >> 8) * (1.0f / 16777216.0f);
}

/* One MLP on one input vector, held in local memory; returns the buffer with the output. */
inline __local float *mlp_forward_local(__global const float *x, __global const float *params,
                                        __global const int *layers, int first, int count,
                                        int act, __local float *ha, __local float *hb)
{
    const int lid = get_local_id(0), ls = get_local_size(0);
    for (int i = lid; i < layers[first * 4 + 2]; i += ls) ha[i] = x[i];
    barrier(CLK_LOCAL_MEM_FENCE);
    __local float *src = ha, *dst = hb;
    for (int l = first; l < first + count; l++) {
        const int w_off = layers[l * 4], b_off = layers[l * 4 + 1];
        const int IN = layers[l * 4 + 2], OUT = layers[l * 4 + 3];
        const int a = (l == first + count - 1) ? ACT_IDENTITY : act;
        for (int o = lid; o < OUT; o += ls) {
            float acc = 0.0f;
            for (int i = 0; i < IN; i++) acc += src[i] * params[w_off + i * OUT + o];
            dst[o] = activate(acc + params[b_off + o], a);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        __local float *t = src; src = dst; dst = t;
    }
    return src;
}

__kernel void policy_act(__global int *actions, __global float *logp, __global float *values,
                         int out_off, __global const float *obs, __global const float *params,
                         __global const int *layers, int n_actor, int n_critic, int act,
                         int N, uint seed, uint stream, uint step, uint iteration, int greedy,
                         __local float *ha, __local float *hb)
{
    const int n = get_group_id(0);
    if (n >= N) return;  /* whole work-groups only, so barriers stay uniform */
    const int obs_dim = layers[2], A = layers[(n_actor - 1) * 4 + 3];
    __global const float *x = obs + (out_off + n) * obs_dim;

    __local float *logits = mlp_forward_local(x, params, layers, 0, n_actor, act, ha, hb);
    if (get_local_id(0) == 0) {
        float m = logits[0];
        int best = 0;
        for (int j = 1; j < A; j++) if (logits[j] > m) { m = logits[j]; best = j; }
        float s = 0.0f;
        for (int j = 0; j < A; j++) s += exp(logits[j] - m);
        int a = best;
        if (!greedy) {
            const float threshold = philox_uniform(seed, stream, n, step, iteration) * s;
            float cum = 0.0f;
            a = A - 1;
            for (int j = 0; j < A; j++) {
                cum += exp(logits[j] - m);
                if (threshold < cum) { a = j; break; }
            }
        }
        actions[out_off + n] = a;
        logp[out_off + n] = logits[a] - m - log(s);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    __local float *v = mlp_forward_local(x, params, layers, n_actor, n_critic, act, ha, hb);
    if (get_local_id(0) == 0) values[out_off + n] = v[0];
}
