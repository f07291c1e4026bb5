/* mlp.h: what the fused rollout kernels share (policy.cl, gaussian.cl): Philox draws and an
 * MLP forward pass for one observation held in local memory.
 *
 * Randomness: Philox4x32-10 (Random123, shipped with pyopencl), named explicitly so every
 * device uses the same generator. key = (seed, stream), counter = (n, step, iteration, k).
 * u = (bits >> 8) * 2^-24 is exactly representable, so the numpy twin reproduces it.
 */
#ifndef RLCL_MLP_H
#define RLCL_MLP_H
#include "common.h"
#include <pyopencl-random123/philox.cl>

/* The layer table: LAYER_COLS ints per layer, columns COL_W_OFF, COL_B_OFF, COL_N_IN,
 * COL_N_OUT (rlcl/kernel_constants.py LAYER_COLUMNS). */
#if !defined(LAYER_COLS) || !defined(COL_W_OFF) || !defined(COL_B_OFF) || \
    !defined(COL_N_IN) || !defined(COL_N_OUT)
#error "layer table columns undefined: build through rlcl.device.Device (rlcl/kernel_constants.py)"
#endif
#define LAYER(table, l, col) ((table)[(l) * LAYER_COLS + (col)])

inline uint4 philox_bits(uint seed, uint stream, uint c0, uint c1, uint c2, uint c3)
{
    philox4x32_key_t key = {{seed, stream}};
    philox4x32_ctr_t ctr = {{c0, c1, c2, c3}};
    philox4x32_ctr_t bits = philox4x32(ctr, key);
    return (uint4)(bits.v[0], bits.v[1], bits.v[2], bits.v[3]);
}

inline float philox_uniform(uint seed, uint stream, uint c0, uint c1, uint c2)
{
    return (float)(philox_bits(seed, stream, c0, c1, c2, 0u).x >> 8) * (1.0f / 16777216.0f);
}

/* A categorical head's softmax for ONE row of A logits Z (local memory) with maximum M: every
 * exp and log a float8's, lane by lane (issue 13). PoCL's scalar exp and log cost about ten
 * times the float8's per value on x86 and differ from them in the last bit on about 1 % of
 * inputs (measured, PoCL 3.0), and the loss (loss.h) computes eight rows at once in the lanes;
 * here the row's logits sit in the lanes (exp_chunk) and a single value in all (log_lane),
 * so the rollout's log-probabilities keep the bits the update recomputes. A lane's result
 * depends on its own input alone. */
inline float8 exp_chunk(__local const float *z, int j0, int A, float m)
{
#define Z_(k) (j0 + (k) < A ? z[j0 + (k)] : m)
    return exp((float8)(Z_(0), Z_(1), Z_(2), Z_(3), Z_(4), Z_(5), Z_(6), Z_(7)) - m);
#undef Z_
}

inline float log_lane(float x)
{
    return log((float8)(x)).s0;
}

/* sum_j exp(z_j - m), j in order */
inline float softmax_sum(__local const float *z, int A, float m)
{
    float s = 0.0f, e[8];
    for (int j0 = 0; j0 < A; j0 += 8) {
        const float8 v = exp_chunk(z, j0, A, m);
        STORE8(v, e, 0, s0, s1, s2, s3, s4, s5, s6, s7);
        for (int k = 0; k < 8 && j0 + k < A; k++) s += e[k];
    }
    return s;
}

/* Inverse CDF: the first j with threshold < exp(z_0 - m) + .. + exp(z_j - m), else A - 1. */
inline int softmax_draw(__local const float *z, int A, float m, float threshold)
{
    float cum = 0.0f, e[8];
    for (int j0 = 0; j0 < A; j0 += 8) {
        const float8 v = exp_chunk(z, j0, A, m);
        STORE8(v, e, 0, s0, s1, s2, s3, s4, s5, s6, s7);
        for (int k = 0; k < 8 && j0 + k < A; k++) {
            cum += e[k];
            if (threshold < cum) return j0 + k;
        }
    }
    return A - 1;
}

/* One MLP on one input vector, held in local memory; returns the buffer with the output. */
inline __local float *mlp_forward_local(__global const float *x, __global const float *params,
                                        __global const int *layers, int first, int count,
                                        int act, __local float *ha, __local float *hb)
{
    const int lid = get_local_id(0), ls = get_local_size(0);
    for (int i = lid; i < LAYER(layers, first, COL_N_IN); i += ls) ha[i] = x[i];
    barrier(CLK_LOCAL_MEM_FENCE);
    __local float *src = ha, *dst = hb;
    for (int l = first; l < first + count; l++) {
        const int w_off = LAYER(layers, l, COL_W_OFF), b_off = LAYER(layers, l, COL_B_OFF);
        const int IN = LAYER(layers, l, COL_N_IN), OUT = LAYER(layers, l, COL_N_OUT);
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
#endif
