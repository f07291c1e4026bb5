/* linear_tiles.h: the tiles of linear.cl's three operations that the fast kernels are made of
 * (linear_x4.cl, one layer per launch; actor_critic.cl, whole networks per launch).
 *
 * A tile is 4 rows x 4 or 16 columns: independent sums in float4 / float16 registers, so the
 * CPU's vector units stay busy (linear.cl's one sum per work-item is a chain of dependent
 * adds) and each loaded value is used four times. On AVX-512 a float16 is one register and
 * PoCL runs the 16-wide tiles about 1.7x faster than the 4-wide ones (issue 6). Every output
 * is summed in the same order as in linear.cl, with the same float operations (FP_CONTRACT OFF:
 * no fused multiply-add in either), so every tile gives linear.cl's results to the bit;
 * tests/test_linear.py checks that. Parts that do not fill a tile take linear.cl's scalar loop.
 *
 * Layout and formulas: linear.cl. out/dinp/inp/dout are row-major with B rows.
 */
#ifndef RLCL_LINEAR_TILES_H
#define RLCL_LINEAR_TILES_H
#include "common.h"

/* Store V activated with activate4, the same float4 tanh as every other kernel (common.h).
 * The sums are stored first and activated in place, a float4 at a time, rather than taken
 * apart with .s0123-style swizzles, which Oclgrind 21.10 reports as uninitialised values. */
inline void store_activated16(float16 v, int act, __global float *dst)
{
    vstore16(v, 0, dst);
    if (act == ACT_IDENTITY) return;
    for (int q = 0; q < 4; q++) vstore4(activate4(vload4(q, dst), act), q, dst);
}

/* -- forward: out[b,o] = act(bias[o] + sum_i inp[b,i] W[i,o]) ------------------------------ */
inline void forward_one(__global float *out, __global const float *inp,
                        __global const float *params, int w_off, int b_off, int r, int k,
                        int IN, int OUT, int act)
{
    float acc = 0.0f;
    for (int i = 0; i < IN; i++) acc += inp[r * IN + i] * params[w_off + i * OUT + k];
    out[r * OUT + k] = activate(acc + params[b_off + k], act);
}

inline void forward_tile4(__global float *out, __global const float *inp,
                          __global const float *params, int w_off, int b_off, int b, int o,
                          int IN, int OUT, int act)
{
    float4 a0 = (float4)(0.0f), a1 = a0, a2 = a0, a3 = a0;
    for (int i = 0; i < IN; i++) {
        const float4 w = vload4(0, params + w_off + i * OUT + o);
        a0 += inp[b * IN + i] * w;
        a1 += inp[(b + 1) * IN + i] * w;
        a2 += inp[(b + 2) * IN + i] * w;
        a3 += inp[(b + 3) * IN + i] * w;
    }
    const float4 bias = vload4(0, params + b_off + o);
    vstore4(activate4(a0 + bias, act), 0, out + b * OUT + o);
    vstore4(activate4(a1 + bias, act), 0, out + (b + 1) * OUT + o);
    vstore4(activate4(a2 + bias, act), 0, out + (b + 2) * OUT + o);
    vstore4(activate4(a3 + bias, act), 0, out + (b + 3) * OUT + o);
}

inline void forward_tile16(__global float *out, __global const float *inp,
                           __global const float *params, int w_off, int b_off, int b, int o,
                           int IN, int OUT, int act)
{
    float16 a0 = (float16)(0.0f), a1 = a0, a2 = a0, a3 = a0;
    for (int i = 0; i < IN; i++) {
        const float16 w = vload16(0, params + w_off + i * OUT + o);
        a0 += inp[b * IN + i] * w;
        a1 += inp[(b + 1) * IN + i] * w;
        a2 += inp[(b + 2) * IN + i] * w;
        a3 += inp[(b + 3) * IN + i] * w;
    }
    const float16 bias = vload16(0, params + b_off + o);
    store_activated16(a0 + bias, act, out + b * OUT + o);
    store_activated16(a1 + bias, act, out + (b + 1) * OUT + o);
    store_activated16(a2 + bias, act, out + (b + 2) * OUT + o);
    store_activated16(a3 + bias, act, out + (b + 3) * OUT + o);
}

/* All OUT outputs of rows b .. b + nr - 1 (nr <= 4), widest tiles first. */
inline void forward_rows(__global float *out, __global const float *inp,
                         __global const float *params, int w_off, int b_off, int b, int nr,
                         int IN, int OUT, int act)
{
    int o = 0;
    if (nr == 4) {
        for (; o + 16 <= OUT; o += 16)
            forward_tile16(out, inp, params, w_off, b_off, b, o, IN, OUT, act);
        for (; o + 4 <= OUT; o += 4)
            forward_tile4(out, inp, params, w_off, b_off, b, o, IN, OUT, act);
    }
    for (int r = b; r < b + nr; r++)
        for (int k = o; k < OUT; k++)
            forward_one(out, inp, params, w_off, b_off, r, k, IN, OUT, act);
}

/* -- backward input: dinp[b,i] = act'(inp[b,i]) * sum_o dout[b,o] W[i,o] ------------------- */
inline void backward_input_one(__global float *dinp, __global const float *dout,
                               __global const float *inp, __global const float *w, int r,
                               int k, int IN, int OUT, int in_act)
{
    float acc = 0.0f;
    for (int o = 0; o < OUT; o++) acc += dout[r * OUT + o] * w[k * OUT + o];
    dinp[r * IN + k] = acc * activate_grad(inp[r * IN + k], in_act);
}

inline void backward_input_tile4(__global float *dinp, __global const float *dout,
                                 __global const float *inp, __global const float *w, int b,
                                 int i, int IN, int OUT, int in_act)
{
    float4 a0 = (float4)(0.0f), a1 = a0, a2 = a0, a3 = a0;
    for (int o = 0; o < OUT; o++) {
        const float4 wc = (float4)(w[i * OUT + o], w[(i + 1) * OUT + o], w[(i + 2) * OUT + o],
                                   w[(i + 3) * OUT + o]);
        a0 += dout[b * OUT + o] * wc;
        a1 += dout[(b + 1) * OUT + o] * wc;
        a2 += dout[(b + 2) * OUT + o] * wc;
        a3 += dout[(b + 3) * OUT + o] * wc;
    }
    const float4 acc[4] = {a0, a1, a2, a3};
    for (int r = 0; r < 4; r++) {
        const float4 y = vload4(0, inp + (b + r) * IN + i);
        const float4 g = (float4)(activate_grad(y.x, in_act), activate_grad(y.y, in_act),
                                  activate_grad(y.z, in_act), activate_grad(y.w, in_act));
        vstore4(acc[r] * g, 0, dinp + (b + r) * IN + i);
    }
}

/* All IN input gradients of rows b .. b + nr - 1 (nr <= 4). */
inline void backward_input_rows(__global float *dinp, __global const float *dout,
                                __global const float *inp, __global const float *w, int b,
                                int nr, int IN, int OUT, int in_act)
{
    int i = 0;
    if (nr == 4)
        for (; i + 4 <= IN; i += 4)
            backward_input_tile4(dinp, dout, inp, w, b, i, IN, OUT, in_act);
    for (int r = b; r < b + nr; r++)
        for (int k = i; k < IN; k++)
            backward_input_one(dinp, dout, inp, w, r, k, IN, OUT, in_act);
}

/* -- backward params: dW[i,o] = sum_b inp[b,i] dout[b,o], dbias[o] = sum_b dout[b,o] -------- */
/* The tile of rows j .. j + 3 of [W; bias] (row IN is the bias) and columns o .. o + 3. */
inline void backward_params_tile4(__global float *grads, __global const float *dout,
                                  __global const float *inp, int w_off, int b_off, int j, int o,
                                  int B, int IN, int OUT)
{
    if (o + 4 <= OUT && j + 4 <= IN) {
        float4 a0 = (float4)(0.0f), a1 = a0, a2 = a0, a3 = a0;
        for (int b = 0; b < B; b++) {
            const float4 d = vload4(0, dout + b * OUT + o);
            a0 += inp[b * IN + j] * d;
            a1 += inp[b * IN + j + 1] * d;
            a2 += inp[b * IN + j + 2] * d;
            a3 += inp[b * IN + j + 3] * d;
        }
        vstore4(a0, 0, grads + w_off + j * OUT + o);
        vstore4(a1, 0, grads + w_off + (j + 1) * OUT + o);
        vstore4(a2, 0, grads + w_off + (j + 2) * OUT + o);
        vstore4(a3, 0, grads + w_off + (j + 3) * OUT + o);
        return;
    }
    for (int i = j; i <= min(j + 3, IN); i++)
        for (int k = o; k < min(o + 4, OUT); k++) {
            float acc = 0.0f;
            if (i < IN) {
                for (int b = 0; b < B; b++) acc += inp[b * IN + i] * dout[b * OUT + k];
                grads[w_off + i * OUT + k] = acc;
            } else {
                for (int b = 0; b < B; b++) acc += dout[b * OUT + k];
                grads[b_off + k] = acc;
            }
        }
}

/* The same for columns o .. o + 15 (o + 16 <= OUT). */
inline void backward_params_tile16(__global float *grads, __global const float *dout,
                                   __global const float *inp, int w_off, int b_off, int j,
                                   int o, int B, int IN, int OUT)
{
    if (j + 4 <= IN) {
        float16 a0 = (float16)(0.0f), a1 = a0, a2 = a0, a3 = a0;
        for (int b = 0; b < B; b++) {
            const float16 d = vload16(0, dout + b * OUT + o);
            a0 += inp[b * IN + j] * d;
            a1 += inp[b * IN + j + 1] * d;
            a2 += inp[b * IN + j + 2] * d;
            a3 += inp[b * IN + j + 3] * d;
        }
        vstore16(a0, 0, grads + w_off + j * OUT + o);
        vstore16(a1, 0, grads + w_off + (j + 1) * OUT + o);
        vstore16(a2, 0, grads + w_off + (j + 2) * OUT + o);
        vstore16(a3, 0, grads + w_off + (j + 3) * OUT + o);
        return;
    }
    for (int i = j; i < min(j + 4, IN); i++) {
        float16 acc = (float16)(0.0f);
        for (int b = 0; b < B; b++) acc += inp[b * IN + i] * vload16(0, dout + b * OUT + o);
        vstore16(acc, 0, grads + w_off + i * OUT + o);
    }
    if (j + 4 > IN) {  /* these rows include row IN: the bias */
        float16 acc = (float16)(0.0f);
        for (int b = 0; b < B; b++) acc += vload16(0, dout + b * OUT + o);
        vstore16(acc, 0, grads + b_off + o);
    }
}
#endif
