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
