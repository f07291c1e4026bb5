/* linear_tiles.h: the tiles of linear.cl's three operations that the fast kernels are made of
 * (linear_x4.cl, one layer per launch; actor_critic.cl, whole networks per launch).
 *
 * A tile is 4 rows x 4 or TILE_COLS columns: independent sums in float4 / floatw registers, so
 * the CPU's vector units stay busy (linear.cl's one sum per work-item is a chain of dependent
 * adds) and each loaded value is used four times. TILE_COLS (4, 8 or 16) comes from rlcl/device.py,
 * which reads it off the device's preferred float vector width; rlcl/nn.py sizes the launches
 * from the same value. On AVX-512 a float16 is one register and PoCL runs the 16-wide tiles about
 * 1.7x faster than the 4-wide ones (issue 6). Every output is summed in the same order as in
 * linear.cl, with the same float operations (FP_CONTRACT OFF: no fused multiply-add in either),
 * so every tile of every width gives linear.cl's results to the bit; tests/test_linear.py checks
 * each width. Parts that do not fill a tile take linear.cl's scalar loop.
 *
 * Layout and formulas: linear.cl. out/dinp/inp/dout are row-major with B rows.
 */
#ifndef RLCL_LINEAR_TILES_H
#define RLCL_LINEAR_TILES_H
#include "common.h"

/* floatw, the TILE_COLS-wide vector, is loaded and stored one float at a time (the compiler
 * merges them into vector loads and stores) and never passed by value to a function: passing a
 * float8/16 by value changes the x86-64 calling convention unless the compiler targets AVX
 * (float8) or AVX-512 (float16), and clang warned at each vload16/vstore16 call of every build
 * where PoCL compiles for an AVX2 CPU model. That happens on CPUs LLVM 14 does not know (Zen 4
 * becomes znver3) while the device still reports 16-wide vectors, and there those calls also
 * crashed PoCL's code generator (issue 10). Not in float4 pieces either: Oclgrind 21.10's
 * uninitialised-value checker crashes on a float16 put together from float4s and flags .hi.lo
 * style swizzles. So STOREW stores the sums, then activates them in place a float8 at a time
 * (ACTIVATE_W) with activate8, the tanh of every other kernel. Macros, not functions, for the
 * ABI. */
#define STOREW(v, act, p)                                                                    \
    do {                                                                                     \
        const floatw v_ = (v);                                                               \
        __global float *p_ = (p);                                                            \
        STORE_RAW(v_, p_);                                                                   \
        if ((act) != ACT_IDENTITY) ACTIVATE_W(p_, act);                                      \
    } while (0)
/* Four rows of two tiles' values, the rows STRIDE floats apart from P: A0..A3 at P, C0..C3
 * TILE_COLS further on (the 4 x 2 TILE_COLS tiles: forward_tilew2 and its twins). */
#define STORE_4X2W(p, stride, a0, a1, a2, a3, c0, c1, c2, c3)                                 \
    do {                                                                                     \
        __global float *q_ = (p);                                                            \
        STOREW(a0, ACT_IDENTITY, q_); STOREW(c0, ACT_IDENTITY, q_ + TILE_COLS);              \
        q_ += (stride);                                                                      \
        STOREW(a1, ACT_IDENTITY, q_); STOREW(c1, ACT_IDENTITY, q_ + TILE_COLS);              \
        q_ += (stride);                                                                      \
        STOREW(a2, ACT_IDENTITY, q_); STOREW(c2, ACT_IDENTITY, q_ + TILE_COLS);              \
        q_ += (stride);                                                                      \
        STOREW(a3, ACT_IDENTITY, q_); STOREW(c3, ACT_IDENTITY, q_ + TILE_COLS);              \
    } while (0)
/* Activate the TILE_COLS floats at P in place, eight at a time where the tile allows
 * (activate8: the float8 tanh costs half the float4's per value). */
#if TILE_COLS >= 8
#define ACTIVATE_W(p, act)                                                                   \
    for (int q8_ = 0; q8_ < TILE_COLS; q8_ += 8) {                                           \
        const float8 a8_ = activate8((float8)(LOAD8(p, q8_)), act);                          \
        STORE8(a8_, p, q8_, s0, s1, s2, s3, s4, s5, s6, s7);                                 \
    }
#else
#define ACTIVATE_W(p, act) vstore4(activate4(vload4(0, p), act), 0, p)
#endif
#if TILE_COLS == 16
typedef float16 floatw;
#define LOADW(p) ((float16)(LOAD8(p, 0), LOAD8(p, 8)))
#define STORE_RAW(v, p)                                         \
    STORE8(v, p, 0, s0, s1, s2, s3, s4, s5, s6, s7);            \
    STORE8(v, p, 8, s8, s9, sa, sb, sc, sd, se, sf)
#elif TILE_COLS == 8
typedef float8 floatw;
#define LOADW(p) ((float8)(LOAD8(p, 0)))
#define STORE_RAW(v, p) STORE8(v, p, 0, s0, s1, s2, s3, s4, s5, s6, s7)
#elif TILE_COLS == 4
typedef float4 floatw;
#define LOADW(p) vload4(0, p)
#define STORE_RAW(v, p) vstore4(v, 0, p)
#else
#error "TILE_COLS must be 4, 8 or 16: build through rlcl.device.Device"
#endif

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

/* The same for columns o .. o + TILE_COLS - 1 (o + TILE_COLS <= OUT). */
inline void forward_tilew(__global float *out, __global const float *inp,
                          __global const float *params, int w_off, int b_off, int b, int o,
                          int IN, int OUT, int act)
{
    floatw a0 = (floatw)(0.0f), a1 = a0, a2 = a0, a3 = a0;
    for (int i = 0; i < IN; i++) {
        const floatw w = LOADW(params + w_off + i * OUT + o);
        a0 += inp[b * IN + i] * w;
        a1 += inp[(b + 1) * IN + i] * w;
        a2 += inp[(b + 2) * IN + i] * w;
        a3 += inp[(b + 3) * IN + i] * w;
    }
    const floatw bias = LOADW(params + b_off + o);
    STOREW(a0 + bias, act, out + b * OUT + o);
    STOREW(a1 + bias, act, out + (b + 1) * OUT + o);
    STOREW(a2 + bias, act, out + (b + 2) * OUT + o);
    STOREW(a3 + bias, act, out + (b + 3) * OUT + o);
}

/* Columns o .. o + 2 TILE_COLS - 1 (o + 2 TILE_COLS <= OUT), the raw sums: forward_tilew's two
 * tiles in one loop. A tile's four sums take one add a step each, so a loop of one tile waits
 * on the add's latency; two tiles keep eight in flight (issue 13: ppo_minibatch_pop 0.96x at
 * 16x16 with this alone, paired). Each sum runs over i in order: the same bits. */
inline void forward_tilew2(__global float *out, __global const float *inp,
                           __global const float *params, int w_off, int b_off, int b, int o,
                           int IN, int OUT)
{
    floatw a0 = (floatw)(0.0f), a1 = a0, a2 = a0, a3 = a0, c0 = a0, c1 = a0, c2 = a0, c3 = a0;
    for (int i = 0; i < IN; i++) {
        const floatw w = LOADW(params + w_off + i * OUT + o);
        const floatw v = LOADW(params + w_off + i * OUT + o + TILE_COLS);
        const float x0 = inp[b * IN + i], x1 = inp[(b + 1) * IN + i];
        const float x2 = inp[(b + 2) * IN + i], x3 = inp[(b + 3) * IN + i];
        a0 += x0 * w; c0 += x0 * v;
        a1 += x1 * w; c1 += x1 * v;
        a2 += x2 * w; c2 += x2 * v;
        a3 += x3 * w; c3 += x3 * v;
    }
    const floatw bias = LOADW(params + b_off + o), bias2 = LOADW(params + b_off + o + TILE_COLS);
    STORE_4X2W(out + b * OUT + o, OUT, a0 + bias, a1 + bias, a2 + bias, a3 + bias, c0 + bias2,
               c1 + bias2, c2 + bias2, c3 + bias2);
}

/* Columns o and o + 1 (two: o + 1 < OUT; else o alone) of the four rows b .. b + 3, the rows
 * in a float4: the narrow layers' tile (a policy head of 1-3 outputs, a value head). Each lane
 * sums over i in forward_one's order, so the bits are its bits; the rows' inputs are a stride
 * apart, a gather, but one chain of dependent adds now serves four (or eight) outputs. */
inline void forward_rows4_narrow(__global float *out, __global const float *inp,
                                 __global const float *params, int w_off, int b_off, int b,
                                 int o, int IN, int OUT, int act, int two)
{
    float4 a0 = (float4)(0.0f), a1 = a0;
    __global const float *x = inp + b * IN;
    for (int i = 0; i < IN; i++) {
        const float4 xi = (float4)(x[i], x[IN + i], x[2 * IN + i], x[3 * IN + i]);
        a0 += xi * params[w_off + i * OUT + o];
        if (two) a1 += xi * params[w_off + i * OUT + o + 1];
    }
    const float4 y0 = activate4(a0 + params[b_off + o], act);
    out[b * OUT + o] = y0.x; out[(b + 1) * OUT + o] = y0.y;
    out[(b + 2) * OUT + o] = y0.z; out[(b + 3) * OUT + o] = y0.w;
    if (two) {
        const float4 y1 = activate4(a1 + params[b_off + o + 1], act);
        out[b * OUT + o + 1] = y1.x; out[(b + 1) * OUT + o + 1] = y1.y;
        out[(b + 2) * OUT + o + 1] = y1.z; out[(b + 3) * OUT + o + 1] = y1.w;
    }
}

/* All OUT outputs of rows b .. b + nr - 1 (nr <= 4), widest tiles first. */
inline void forward_rows(__global float *out, __global const float *inp,
                         __global const float *params, int w_off, int b_off, int b, int nr,
                         int IN, int OUT, int act)
{
    int o = 0;
    if (nr == 4) {
        for (; o + 2 * TILE_COLS <= OUT; o += 2 * TILE_COLS)
            forward_tilew2(out, inp, params, w_off, b_off, b, o, IN, OUT);
        for (; o + TILE_COLS <= OUT; o += TILE_COLS)
            forward_tilew(out, inp, params, w_off, b_off, b, o, IN, OUT, ACT_IDENTITY);
        /* then their activations, the four rows' float8s at a time (or float4s): four
         * independent tanh8 chains in one block, which the compiler interleaves; one at a
         * time, each waited on its own multiplies and divide (issues 12 and 13: the fused
         * update 0.93x at 16x16, 0.97x at 64x64, paired). Same bits: tanh8 is lane-wise. */
        if (act != ACT_IDENTITY) {
            __global float *y0 = out + b * OUT, *y1 = y0 + OUT, *y2 = y1 + OUT, *y3 = y2 + OUT;
            int k = 0;
            for (; k + 8 <= o; k += 8) {  /* not vload8/vstore8: PoCL calls them */
                const float8 v0 = (float8)(LOAD8(y0, k)), v1 = (float8)(LOAD8(y1, k));
                const float8 v2 = (float8)(LOAD8(y2, k)), v3 = (float8)(LOAD8(y3, k));
                float8 a0, a1, a2, a3;
                if (act == ACT_TANH) {  /* the branch once, so the chains share a block */
                    a0 = tanh8(v0); a1 = tanh8(v1); a2 = tanh8(v2); a3 = tanh8(v3);
                } else {
                    a0 = activate8(v0, act); a1 = activate8(v1, act);
                    a2 = activate8(v2, act); a3 = activate8(v3, act);
                }
                STORE8(a0, y0, k, s0, s1, s2, s3, s4, s5, s6, s7);
                STORE8(a1, y1, k, s0, s1, s2, s3, s4, s5, s6, s7);
                STORE8(a2, y2, k, s0, s1, s2, s3, s4, s5, s6, s7);
                STORE8(a3, y3, k, s0, s1, s2, s3, s4, s5, s6, s7);
            }
            for (; k < o; k += 4) {
                vstore4(activate4(vload4(0, y0 + k), act), 0, y0 + k);
                vstore4(activate4(vload4(0, y1 + k), act), 0, y1 + k);
                vstore4(activate4(vload4(0, y2 + k), act), 0, y2 + k);
                vstore4(activate4(vload4(0, y3 + k), act), 0, y3 + k);
            }
        }
        for (; o + 4 <= OUT; o += 4)
            forward_tile4(out, inp, params, w_off, b_off, b, o, IN, OUT, act);
        for (; o < OUT; o += 2)
            forward_rows4_narrow(out, inp, params, w_off, b_off, b, o, IN, OUT, act,
                                 o + 1 < OUT);
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

/* The same from WT, W transposed (OUT x IN, row-major, wt[o * IN + i] = W[i, o]): the sums
 * run over o in the same order, but TILE_COLS or 4 inputs at a time read contiguous rows of WT
 * instead of a column of W (ppo_update.cl transposes W once per minibatch). The raw sums are
 * stored, then multiplied by act'(inp) one by one, as backward_input_one does. */
inline void backward_input_rows_t(__global float *dinp, __global const float *dout,
                                  __global const float *inp, __global const float *wt, int b,
                                  int nr, int IN, int OUT, int in_act)
{
    int i = 0;
    if (nr == 4) {
        /* tanh's derivative 1 - y^2 multiplies the sums in registers before the one store
         * (per value activate_grad's operations: the same bits); relu's after the stores, as
         * backward_input_one does. Storing the sums and then scaling them in place cost
         * about a quarter of this function at 16x16 (perf, issue 13). */
        const int tanh_in = in_act == ACT_TANH;
        __global const float *y = inp + b * IN;
        /* two tiles a loop where they fit, eight sums in flight (as forward_tilew2) */
        for (; i + 2 * TILE_COLS <= IN; i += 2 * TILE_COLS) {
            floatw a0 = (floatw)(0.0f), a1 = a0, a2 = a0, a3 = a0, c0 = a0, c1 = a0, c2 = a0,
                   c3 = a0;
            for (int o = 0; o < OUT; o++) {
                const floatw w = LOADW(wt + o * IN + i), v = LOADW(wt + o * IN + i + TILE_COLS);
                const float d0 = dout[b * OUT + o], d1 = dout[(b + 1) * OUT + o];
                const float d2 = dout[(b + 2) * OUT + o], d3 = dout[(b + 3) * OUT + o];
                a0 += d0 * w; c0 += d0 * v;
                a1 += d1 * w; c1 += d1 * v;
                a2 += d2 * w; c2 += d2 * v;
                a3 += d3 * w; c3 += d3 * v;
            }
            if (tanh_in) {
                const floatw y0 = LOADW(y + i), y1 = LOADW(y + IN + i);
                const floatw y2 = LOADW(y + 2 * IN + i), y3 = LOADW(y + 3 * IN + i);
                a0 *= 1.0f - y0 * y0; a1 *= 1.0f - y1 * y1;
                a2 *= 1.0f - y2 * y2; a3 *= 1.0f - y3 * y3;
                const floatw z0 = LOADW(y + i + TILE_COLS), z1 = LOADW(y + IN + i + TILE_COLS);
                const floatw z2 = LOADW(y + 2 * IN + i + TILE_COLS);
                const floatw z3 = LOADW(y + 3 * IN + i + TILE_COLS);
                c0 *= 1.0f - z0 * z0; c1 *= 1.0f - z1 * z1;
                c2 *= 1.0f - z2 * z2; c3 *= 1.0f - z3 * z3;
            }
            STORE_4X2W(dinp + b * IN + i, IN, a0, a1, a2, a3, c0, c1, c2, c3);
        }
        for (; i + TILE_COLS <= IN; i += TILE_COLS) {
            floatw a0 = (floatw)(0.0f), a1 = a0, a2 = a0, a3 = a0;
            for (int o = 0; o < OUT; o++) {
                const floatw w = LOADW(wt + o * IN + i);
                a0 += dout[b * OUT + o] * w;
                a1 += dout[(b + 1) * OUT + o] * w;
                a2 += dout[(b + 2) * OUT + o] * w;
                a3 += dout[(b + 3) * OUT + o] * w;
            }
            if (tanh_in) {
                const floatw y0 = LOADW(y + i), y1 = LOADW(y + IN + i);
                const floatw y2 = LOADW(y + 2 * IN + i), y3 = LOADW(y + 3 * IN + i);
                a0 *= 1.0f - y0 * y0; a1 *= 1.0f - y1 * y1;
                a2 *= 1.0f - y2 * y2; a3 *= 1.0f - y3 * y3;
            }
            STOREW(a0, ACT_IDENTITY, dinp + b * IN + i);
            STOREW(a1, ACT_IDENTITY, dinp + (b + 1) * IN + i);
            STOREW(a2, ACT_IDENTITY, dinp + (b + 2) * IN + i);
            STOREW(a3, ACT_IDENTITY, dinp + (b + 3) * IN + i);
        }
        for (; i + 4 <= IN; i += 4) {
            float4 a0 = (float4)(0.0f), a1 = a0, a2 = a0, a3 = a0;
            for (int o = 0; o < OUT; o++) {
                const float4 w = vload4(0, wt + o * IN + i);
                a0 += dout[b * OUT + o] * w;
                a1 += dout[(b + 1) * OUT + o] * w;
                a2 += dout[(b + 2) * OUT + o] * w;
                a3 += dout[(b + 3) * OUT + o] * w;
            }
            if (tanh_in) {
                const float4 y0 = vload4(0, y + i), y1 = vload4(0, y + IN + i);
                const float4 y2 = vload4(0, y + 2 * IN + i), y3 = vload4(0, y + 3 * IN + i);
                a0 *= 1.0f - y0 * y0; a1 *= 1.0f - y1 * y1;
                a2 *= 1.0f - y2 * y2; a3 *= 1.0f - y3 * y3;
            }
            vstore4(a0, 0, dinp + b * IN + i);
            vstore4(a1, 0, dinp + (b + 1) * IN + i);
            vstore4(a2, 0, dinp + (b + 2) * IN + i);
            vstore4(a3, 0, dinp + (b + 3) * IN + i);
        }
        if (in_act == ACT_RELU)  /* identity: a factor of 1 changes no bit */
            for (int r = b; r < b + 4; r++)
                for (int k = 0; k < i; k++)
                    dinp[r * IN + k] *= activate_grad(inp[r * IN + k], in_act);
    }
    for (int r = b; r < b + nr; r++)
        for (int k = i; k < IN; k++) {
            float acc = 0.0f;
            for (int o = 0; o < OUT; o++) acc += dout[r * OUT + o] * wt[o * IN + k];
            dinp[r * IN + k] = acc * activate_grad(inp[r * IN + k], in_act);
        }
}

/* -- backward params: dW[i,o] = sum_b inp[b,i] dout[b,o], dbias[o] = sum_b dout[b,o] -------- */
/* One element: row I of [W; bias] (row IN is the bias), column K, summed over b in order. */
inline void backward_param_one(__global float *grads, __global const float *dout,
                               __global const float *inp, int w_off, int b_off, int i, int k,
                               int B, int IN, int OUT)
{
    float acc = 0.0f;
    if (i < IN) {
        for (int b = 0; b < B; b++) acc += inp[b * IN + i] * dout[b * OUT + k];
        grads[w_off + i * OUT + k] = acc;
    } else {
        for (int b = 0; b < B; b++) acc += dout[b * OUT + k];
        grads[b_off + k] = acc;
    }
}

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
    if (j + 4 <= IN) {
        /* fewer than 4 columns (a narrow layer): the 4 weight rows in a float4 instead, two
         * columns a pass; each lane sums over b in the scalar loop's order below */
        for (int k = o; k < min(o + 4, OUT); k += 2) {
            const int two = k + 1 < min(o + 4, OUT);
            float4 a0 = (float4)(0.0f), a1 = a0;
            for (int b = 0; b < B; b++) {
                const float4 x = vload4(0, inp + b * IN + j);
                a0 += x * dout[b * OUT + k];
                if (two) a1 += x * dout[b * OUT + k + 1];
            }
            __global float *g = grads + w_off + j * OUT + k;
            g[0] = a0.x; g[OUT] = a0.y; g[2 * OUT] = a0.z; g[3 * OUT] = a0.w;
            if (two) {
                g[1] = a1.x; g[OUT + 1] = a1.y; g[2 * OUT + 1] = a1.z; g[3 * OUT + 1] = a1.w;
            }
        }
        return;
    }
    for (int i = j; i <= min(j + 3, IN); i++)
        for (int k = o; k < min(o + 4, OUT); k++)
            backward_param_one(grads, dout, inp, w_off, b_off, i, k, B, IN, OUT);
}

/* Rows j .. j + 15 of [W; bias] (row IN is the bias) and all OUT < 4 columns: a narrow layer
 * (a policy or value head), whose 4 x 4 tiles hold one or two sums each, each a chain of B
 * dependent adds. Here sixteen sums run side by side (four float4s of weight rows), a column
 * at a time; every sum still runs over b in order, so the bits are the 4 x 4 tiles'. */
inline void backward_params_narrow(__global float *grads, __global const float *dout,
                                   __global const float *inp, int w_off, int b_off, int j,
                                   int B, int IN, int OUT)
{
    const int blocks = clamp((IN - j) / 4, 0, 4);  /* float4 blocks of rows inside W */
    for (int k = 0; k < OUT; k++) {
        __global float *g = grads + w_off + j * OUT + k;
        if (blocks == 4) {
            float4 a0 = (float4)(0.0f), a1 = a0, a2 = a0, a3 = a0;
            for (int b = 0; b < B; b++) {
                __global const float *x = inp + b * IN + j;
                const float d = dout[b * OUT + k];
                a0 += (float4)(x[0], x[1], x[2], x[3]) * d;
                a1 += (float4)(x[4], x[5], x[6], x[7]) * d;
                a2 += (float4)(x[8], x[9], x[10], x[11]) * d;
                a3 += (float4)(x[12], x[13], x[14], x[15]) * d;
            }
            const float4 acc[4] = {a0, a1, a2, a3};
            for (int q = 0; q < 4; q++) {
                g[4 * q * OUT] = acc[q].x; g[(4 * q + 1) * OUT] = acc[q].y;
                g[(4 * q + 2) * OUT] = acc[q].z; g[(4 * q + 3) * OUT] = acc[q].w;
            }
        } else {
            for (int q = 0; q < blocks; q++) {
                float4 a = (float4)(0.0f);
                for (int b = 0; b < B; b++) {
                    __global const float *x = inp + b * IN + j + 4 * q;
                    a += (float4)(x[0], x[1], x[2], x[3]) * dout[b * OUT + k];
                }
                g[4 * q * OUT] = a.x; g[(4 * q + 1) * OUT] = a.y;
                g[(4 * q + 2) * OUT] = a.z; g[(4 * q + 3) * OUT] = a.w;
            }
        }
        for (int i = j + 4 * blocks; i < min(j + 16, IN + 1); i++)  /* the rest, the bias */
            backward_param_one(grads, dout, inp, w_off, b_off, i, k, B, IN, OUT);
    }
}

/* The same for columns o .. o + TILE_COLS - 1 (o + TILE_COLS <= OUT). */
inline void backward_params_tilew(__global float *grads, __global const float *dout,
                                  __global const float *inp, int w_off, int b_off, int j, int o,
                                  int B, int IN, int OUT)
{
    if (j + 4 <= IN) {
        floatw a0 = (floatw)(0.0f), a1 = a0, a2 = a0, a3 = a0;
        for (int b = 0; b < B; b++) {
            const floatw d = LOADW(dout + b * OUT + o);
            a0 += inp[b * IN + j] * d;
            a1 += inp[b * IN + j + 1] * d;
            a2 += inp[b * IN + j + 2] * d;
            a3 += inp[b * IN + j + 3] * d;
        }
        STOREW(a0, ACT_IDENTITY, grads + w_off + j * OUT + o);
        STOREW(a1, ACT_IDENTITY, grads + w_off + (j + 1) * OUT + o);
        STOREW(a2, ACT_IDENTITY, grads + w_off + (j + 2) * OUT + o);
        STOREW(a3, ACT_IDENTITY, grads + w_off + (j + 3) * OUT + o);
        return;
    }
    for (int i = j; i < min(j + 4, IN); i++) {
        floatw acc = (floatw)(0.0f);
        for (int b = 0; b < B; b++) acc += inp[b * IN + i] * LOADW(dout + b * OUT + o);
        STOREW(acc, ACT_IDENTITY, grads + w_off + i * OUT + o);
    }
    if (j + 4 > IN) {  /* these rows include row IN: the bias */
        floatw acc = (floatw)(0.0f);
        for (int b = 0; b < B; b++) acc += LOADW(dout + b * OUT + o);
        STOREW(acc, ACT_IDENTITY, grads + b_off + o);
    }
}
/* The same for columns o .. o + 2 TILE_COLS - 1 (o + 2 TILE_COLS <= OUT): two tiles in one loop
 * over the rows, eight sums in flight (as forward_tilew2; rlcl/nn.py backward_param_tiles). */
inline void backward_params_tilew2(__global float *grads, __global const float *dout,
                                   __global const float *inp, int w_off, int b_off, int j,
                                   int o, int B, int IN, int OUT)
{
    if (j + 4 > IN) {  /* rows past the last full quad, and the bias: a tile at a time */
        backward_params_tilew(grads, dout, inp, w_off, b_off, j, o, B, IN, OUT);
        backward_params_tilew(grads, dout, inp, w_off, b_off, j, o + TILE_COLS, B, IN, OUT);
        return;
    }
    floatw a0 = (floatw)(0.0f), a1 = a0, a2 = a0, a3 = a0, c0 = a0, c1 = a0, c2 = a0, c3 = a0;
    for (int b = 0; b < B; b++) {
        const floatw d = LOADW(dout + b * OUT + o), e = LOADW(dout + b * OUT + o + TILE_COLS);
        const float x0 = inp[b * IN + j], x1 = inp[b * IN + j + 1];
        const float x2 = inp[b * IN + j + 2], x3 = inp[b * IN + j + 3];
        a0 += x0 * d; c0 += x0 * e;
        a1 += x1 * d; c1 += x1 * e;
        a2 += x2 * d; c2 += x2 * e;
        a3 += x3 * d; c3 += x3 * e;
    }
    STORE_4X2W(grads + w_off + j * OUT + o, OUT, a0, a1, a2, a3, c0, c1, c2, c3);
}
#endif
