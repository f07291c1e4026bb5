/* env_forward.h: the device rollout's forward passes (device_rollout.cl): a network's layers
 * for one env (forward_env) or four (forward_env4) by a single work-item, the input and each
 * layer's output in local memory.
 *
 * The forward pass is mlp.h's mlp_forward_local run by a single work-item, with outputs taken
 * TILE_COLS or 4 at a time in a vector: each output is still acc += in_i * W_io over i in
 * order, then activate(acc + bias), so a log-prob stored here equals the one the update
 * recomputes (actor_critic.cl), bit for bit.
 */
#ifndef RLCL_ENV_FORWARD_H
#define RLCL_ENV_FORWARD_H
#include "linear_tiles.h"

/* Layers first .. first + count - 1 of the table on the input held in ha; the buffers
 * ping-pong, and the one holding the output is returned. */
inline __local float *forward_env(__global const float *params, __global const int *layers,
                                  int first, int count, int act, __local float *ha,
                                  __local float *hb)
{
    __local float *src = ha, *dst = hb;
    for (int l = first; l < first + count; l++) {
        const int w_off = layers[l * 4], b_off = layers[l * 4 + 1];
        const int IN = layers[l * 4 + 2], OUT = layers[l * 4 + 3];
        const int a = (l == first + count - 1) ? ACT_IDENTITY : act;
        int o = 0;
        /* TILE_COLS, then 4 outputs at a time: independent sums in one vector, each still
         * summed over i in order (the scalar loop's bits), instead of one chain of dependent
         * adds per output, which left the CPU waiting on each add's latency. Wide layers take
         * four or two tiles per pass, as many chains in flight (issue 13: the 64x64 rollout
         * took 0.62x the time of one chain at a time, paired). */
        for (; o + 4 * TILE_COLS <= OUT; o += 4 * TILE_COLS) {
            floatw acc0 = (floatw)(0.0f), acc1 = acc0, acc2 = acc0, acc3 = acc0;
            for (int i = 0; i < IN; i++) {
                const float x = src[i];
                __global const float *w = params + w_off + i * OUT + o;
                acc0 += x * LOADW(w);
                acc1 += x * LOADW(w + TILE_COLS);
                acc2 += x * LOADW(w + 2 * TILE_COLS);
                acc3 += x * LOADW(w + 3 * TILE_COLS);
            }
            __global const float *bias = params + b_off + o;
            const floatw y0 = acc0 + LOADW(bias), y1 = acc1 + LOADW(bias + TILE_COLS);
            const floatw y2 = acc2 + LOADW(bias + 2 * TILE_COLS);
            const floatw y3 = acc3 + LOADW(bias + 3 * TILE_COLS);
            __local float *d0 = dst + o, *d1 = d0 + TILE_COLS, *d2 = d1 + TILE_COLS;
            __local float *d3 = d2 + TILE_COLS;
            STORE_RAW(y0, d0);
            STORE_RAW(y1, d1);
            STORE_RAW(y2, d2);
            STORE_RAW(y3, d3);
            if (a != ACT_IDENTITY) {
                ACTIVATE_W(d0, a);
                ACTIVATE_W(d1, a);
                ACTIVATE_W(d2, a);
                ACTIVATE_W(d3, a);
            }
        }
        for (; o + 2 * TILE_COLS <= OUT; o += 2 * TILE_COLS) {
            floatw acc0 = (floatw)(0.0f), acc1 = acc0;
            for (int i = 0; i < IN; i++) {
                const float x = src[i];
                acc0 += x * LOADW(params + w_off + i * OUT + o);
                acc1 += x * LOADW(params + w_off + i * OUT + o + TILE_COLS);
            }
            const floatw y0 = acc0 + LOADW(params + b_off + o);
            const floatw y1 = acc1 + LOADW(params + b_off + o + TILE_COLS);
            __local float *d0 = dst + o, *d1 = dst + o + TILE_COLS;
            STORE_RAW(y0, d0);
            STORE_RAW(y1, d1);
            if (a != ACT_IDENTITY) {
                ACTIVATE_W(d0, a);
                ACTIVATE_W(d1, a);
            }
        }
        for (; o + TILE_COLS <= OUT; o += TILE_COLS) {
            floatw acc = (floatw)(0.0f);
            for (int i = 0; i < IN; i++) acc += src[i] * LOADW(params + w_off + i * OUT + o);
            const floatw y = acc + LOADW(params + b_off + o);
            __local float *d = dst + o;
            STORE_RAW(y, d);
            if (a != ACT_IDENTITY) ACTIVATE_W(d, a);
        }
        for (; o + 4 <= OUT; o += 4) {
            float4 acc = (float4)(0.0f);
            for (int i = 0; i < IN; i++) acc += src[i] * vload4(0, params + w_off + i * OUT + o);
            vstore4(activate4(acc + vload4(0, params + b_off + o), a), 0, dst + o);
        }
        for (; o + 2 <= OUT; o += 2) {  /* a narrow head: two outputs' chains at once */
            float acc0 = 0.0f, acc1 = 0.0f;
            for (int i = 0; i < IN; i++) {
                acc0 += src[i] * params[w_off + i * OUT + o];
                acc1 += src[i] * params[w_off + i * OUT + o + 1];
            }
            dst[o] = activate(acc0 + params[b_off + o], a);
            dst[o + 1] = activate(acc1 + params[b_off + o + 1], a);
        }
        for (; o < OUT; o++) {
            float acc = 0.0f;
            for (int i = 0; i < IN; i++) acc += src[i] * params[w_off + i * OUT + o];
            dst[o] = activate(acc + params[b_off + o], a);
        }
        __local float *t = src; src = dst; dst = t;
    }
    return src;
}

/* forward_env for four envs at once: row r of the input at ha + r STRIDE, of each layer's
 * output at hb + r STRIDE (the buffers ping-pong; the one holding the output rows is returned).
 * Each output of each row is forward_env's sum over i in the same order, plus the bias, then
 * the activation (lane-wise tanh8), so a row gets forward_env's bits; four rows give the adds
 * four to eight independent chains where one env's matrix-vector product gave the CPU two
 * (issue 13: forward_env was 43 % of the default rollout's samples, waiting on the adds). */
inline __local float *forward_env4(__global const float *params, __global const int *layers,
                                   int first, int count, int act, __local float *ha,
                                   __local float *hb, int stride)
{
    __local float *src = ha, *dst = hb;
    for (int l = first; l < first + count; l++) {
        const int w_off = layers[l * 4], b_off = layers[l * 4 + 1];
        const int IN = layers[l * 4 + 2], OUT = layers[l * 4 + 3];
        const int a = (l == first + count - 1) ? ACT_IDENTITY : act;
        __local const float *x0 = src, *x1 = x0 + stride, *x2 = x1 + stride, *x3 = x2 + stride;
        __local float *y0 = dst, *y1 = y0 + stride, *y2 = y1 + stride, *y3 = y2 + stride;
        int o = 0;
        for (; o + 2 * TILE_COLS <= OUT; o += 2 * TILE_COLS) {  /* 4 rows x 2 tiles */
            floatw a0 = (floatw)(0.0f), a1 = a0, a2 = a0, a3 = a0, c0 = a0, c1 = a0, c2 = a0,
                   c3 = a0;
            for (int i = 0; i < IN; i++) {
                __global const float *w = params + w_off + i * OUT + o;
                const floatw w0 = LOADW(w), w1 = LOADW(w + TILE_COLS);
                a0 += x0[i] * w0; c0 += x0[i] * w1;
                a1 += x1[i] * w0; c1 += x1[i] * w1;
                a2 += x2[i] * w0; c2 += x2[i] * w1;
                a3 += x3[i] * w0; c3 += x3[i] * w1;
            }
            const floatw b0 = LOADW(params + b_off + o), b1 = LOADW(params + b_off + o + TILE_COLS);
            a0 += b0; a1 += b0; a2 += b0; a3 += b0; c0 += b1; c1 += b1; c2 += b1; c3 += b1;
            __local float *d = y0 + o;
            STORE_RAW(a0, d); d += TILE_COLS; STORE_RAW(c0, d); d = y1 + o;
            STORE_RAW(a1, d); d += TILE_COLS; STORE_RAW(c1, d); d = y2 + o;
            STORE_RAW(a2, d); d += TILE_COLS; STORE_RAW(c2, d); d = y3 + o;
            STORE_RAW(a3, d); d += TILE_COLS; STORE_RAW(c3, d);
        }
        for (; o + TILE_COLS <= OUT; o += TILE_COLS) {
            floatw a0 = (floatw)(0.0f), a1 = a0, a2 = a0, a3 = a0;
            for (int i = 0; i < IN; i++) {
                const floatw w = LOADW(params + w_off + i * OUT + o);
                a0 += x0[i] * w; a1 += x1[i] * w; a2 += x2[i] * w; a3 += x3[i] * w;
            }
            const floatw b = LOADW(params + b_off + o);
            a0 += b; a1 += b; a2 += b; a3 += b;
            __local float *d = y0 + o;
            STORE_RAW(a0, d); d = y1 + o; STORE_RAW(a1, d); d = y2 + o; STORE_RAW(a2, d);
            d = y3 + o; STORE_RAW(a3, d);
        }
        if (a != ACT_IDENTITY)  /* the wide tiles' activations, in place */
            for (int k = 0; k < o; k += TILE_COLS) {
                __local float *d = y0 + k;
                ACTIVATE_W(d, a); d = y1 + k; ACTIVATE_W(d, a); d = y2 + k; ACTIVATE_W(d, a);
                d = y3 + k; ACTIVATE_W(d, a);
            }
        for (; o + 4 <= OUT; o += 4) {
            float4 a0 = (float4)(0.0f), a1 = a0, a2 = a0, a3 = a0;
            for (int i = 0; i < IN; i++) {
                const float4 w = vload4(0, params + w_off + i * OUT + o);
                a0 += x0[i] * w; a1 += x1[i] * w; a2 += x2[i] * w; a3 += x3[i] * w;
            }
            const float4 b = vload4(0, params + b_off + o);
            vstore4(activate4(a0 + b, a), 0, y0 + o); vstore4(activate4(a1 + b, a), 0, y1 + o);
            vstore4(activate4(a2 + b, a), 0, y2 + o); vstore4(activate4(a3 + b, a), 0, y3 + o);
        }
        for (; o < OUT; o += 2) {  /* a narrow head: the four rows in a float4's lanes */
            const int two = o + 1 < OUT;
            float4 s0 = (float4)(0.0f), s1 = s0;
            for (int i = 0; i < IN; i++) {
                const float4 xi = (float4)(x0[i], x1[i], x2[i], x3[i]);
                s0 += xi * params[w_off + i * OUT + o];
                if (two) s1 += xi * params[w_off + i * OUT + o + 1];
            }
            const float4 v0 = activate4(s0 + params[b_off + o], a);
            y0[o] = v0.x; y1[o] = v0.y; y2[o] = v0.z; y3[o] = v0.w;
            if (two) {
                const float4 v1 = activate4(s1 + params[b_off + o + 1], a);
                y0[o + 1] = v1.x; y1[o + 1] = v1.y; y2[o + 1] = v1.z; y3[o + 1] = v1.w;
            }
        }
        __local float *t = src; src = dst; dst = t;
    }
    return src;
}
#endif
