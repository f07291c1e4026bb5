/* optim.h: the per-coordinate pieces of optim.cl's kernels, shared with the fused update
 * (ppo_update.cl) so both do the same arithmetic. Formulas: optim.cl.
 */
#ifndef RLCL_OPTIM_H
#define RLCL_OPTIM_H
#include "common.h"

#if !defined(NUM_SMOOTH) || !defined(STEP_LANES) || !defined(STEP_CHUNK)
#error "NUM_SMOOTH, STEP_* undefined: build through rlcl.device.Device (rlcl/kernel_constants.py)"
#endif

/* A step's coordinates (optim.cl): work-group g takes the STEP_CHUNK from g * STEP_CHUNK, and
 * its work-item k every STEP_LANES-th of them from the chunk's k-th, in order. */
inline int step_first_coord(void)
{
    return get_group_id(0) * STEP_CHUNK + get_local_id(0);
}

inline int step_end_coord(int n)
{
    return min(n, (int)(get_group_id(0) + 1) * STEP_CHUNK);
}

/* sum_squares' share of work-item LANE of LANES: x_i^2 summed over i = LANE, LANE + LANES.. */
inline float lane_squares(__global const float *x, int n, int lane, int lanes)
{
    float acc = 0.0f;
    for (int i = lane; i < n; i += lanes) acc += x[i] * x[i];
    return acc;
}

/* lane_squares of the eight lanes LANE .. LANE + 7 at once, in a float8 (LANES a multiple of
 * 8): lane c's terms in lane_squares' order; past N a lane adds +0.0, which leaves its sum (a
 * sum of squares from +0.0) as it was, so each lane's bits are lane_squares'. PoCL runs the
 * scalar loop one lane at a time; this takes contiguous loads (ppo_update.cl's step). */
inline float8 lane_squares8(__global const float *x, int n, int lane, int lanes)
{
    float8 acc = (float8)(0.0f);
    for (int i = lane; i < n; i += lanes) {
        float8 v;
        if (i + 8 <= n) {
            v = (float8)(LOAD8(x, i));
        } else {
            float t[8] = {0};
            for (int c = 0; i + c < n; c++) t[c] = x[i + c];
            v = vload8(0, t);
        }
        acc += v * v;
    }
    return acc;
}

inline float clip_scale(float norm, float max_norm)
{
    return max_norm > 0.0f ? fmin(1.0f, max_norm / (norm + 1e-6f)) : 1.0f;
}

inline bool skip_step(float norm, float skip_above)
{
    return skip_above >= 0.0f && !(norm <= skip_above);
}

inline void accumulate(float *s, float g, float v_old, float v, float u, float u_prev,
                       float theta, float theta_new)
{
    s[0] += u * u_prev; s[1] += u * u; s[2] += u_prev * u_prev; s[3] += g * v_old;
    s[4] += g * g; s[5] += v_old * v_old; s[6] += v * v; s[7] += u * u_prev < 0.0f ? 1.0f : 0.0f;
    s[8] += theta * theta; s[9] += isfinite(theta_new) ? 0.0f : 1.0f;
}

/* sgd_step on coordinate I, adding its smoothness terms to S. */
inline void sgd_coord(__global float *params, __global const float *grads,
                      __global float *velocity, __global float *prev_update, int i, float norm,
                      float max_norm, bool skip, float lr, float momentum, float dampening,
                      float weight_decay, int nesterov, int first, float *s)
{
    const float theta = params[i];
    const float g = grads[i] * clip_scale(norm, max_norm) + weight_decay * theta;
    const float v_old = (first || momentum == 0.0f) ? 0.0f : velocity[i];
    float v = g, d = g;
    if (momentum != 0.0f) {
        v = first ? g : momentum * v_old + (1.0f - dampening) * g;
        d = nesterov ? g + momentum * v : v;
    }
    const float u = -lr * d, u_prev = prev_update[i];  /* zeros before the first step */
    const float theta_new = theta + u;
    if (!skip) {
        params[i] = theta_new;
        if (momentum != 0.0f) velocity[i] = v;
        prev_update[i] = u;
    }
    accumulate(s, g, v_old, skip ? v_old : v, skip ? 0.0f : u, u_prev, theta,
               skip ? theta : theta_new);
}

#if STEP_LANES != 8
#error "sgd_group8 runs the STEP_LANES lanes as one float8"
#endif

/* sgd_step's work-group G (optim.cl) run by ONE work-item, its STEP_LANES (8) lanes as one
 * float8: lane c does exactly what work-item c does (its coordinates in order, the same float
 * operations; !isfinite as !(|x| <= FLT_MAX), the same answer), then the group's partial sums
 * over the lanes in order (write_partials). Explicit float8: PoCL vectorises neither the
 * lane-by-lane loop nor sgd_coord's ten running sums by itself (2.5x slower, issue 11). */
inline void sgd_group8(__global float *params, __global const float *grads,
                      __global float *velocity, __global float *prev_update, int g, int n,
                      float norm, float max_norm, bool skip, float lr, float momentum,
                      float dampening, float weight_decay, int nesterov, int first,
                      __global float *partial_row)
{
    const float scale = clip_scale(norm, max_norm);
    const int start = g * STEP_CHUNK, end = min(n, start + STEP_CHUNK);
    const bool has_v = !first && momentum != 0.0f;
    float8 a0 = (float8)(0.0f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0,
           a7 = a0, a8 = a0, a9 = a0;
    for (int i = start; i < end; i += STEP_LANES) {
        const int full = i + 8 <= end;
        float8 theta, grad, v_old = (float8)(0.0f), u_prev;
        if (full) {
            theta = (float8)(LOAD8(params, i)); grad = (float8)(LOAD8(grads, i));
            u_prev = (float8)(LOAD8(prev_update, i));
            if (has_v) v_old = (float8)(LOAD8(velocity, i));
        } else {  /* past `end` a lane adds +0.0: a sum from +0.0 stays as it was */
            float t[8] = {0}, gs[8] = {0}, vs[8] = {0}, ps[8] = {0};
            for (int c = 0; i + c < end; c++) {
                t[c] = params[i + c]; gs[c] = grads[i + c]; ps[c] = prev_update[i + c];
                if (has_v) vs[c] = velocity[i + c];
            }
            theta = vload8(0, t); grad = vload8(0, gs); v_old = vload8(0, vs);
            u_prev = vload8(0, ps);
        }
        const float8 gr = grad * scale + weight_decay * theta;
        float8 v = gr, d = gr;
        if (momentum != 0.0f) {
            v = first ? gr : momentum * v_old + (1.0f - dampening) * gr;
            d = nesterov ? gr + momentum * v : v;
        }
        const float8 u = -lr * d, theta_new = theta + u;
        if (!skip) {
            if (full) {
                STORE8(theta_new, params, i, s0, s1, s2, s3, s4, s5, s6, s7);
                if (momentum != 0.0f) { STORE8(v, velocity, i, s0, s1, s2, s3, s4, s5, s6, s7); }
                STORE8(u, prev_update, i, s0, s1, s2, s3, s4, s5, s6, s7);
            } else {
                float t[8], vs[8], us[8];
                vstore8(theta_new, 0, t); vstore8(v, 0, vs); vstore8(u, 0, us);
                for (int c = 0; i + c < end; c++) {
                    params[i + c] = t[c];
                    if (momentum != 0.0f) velocity[i + c] = vs[c];
                    prev_update[i + c] = us[c];
                }
            }
        }
        const float8 uu = skip ? (float8)(0.0f) : u, vv = skip ? v_old : v;
        const float8 tn = skip ? theta : theta_new;
        a0 += uu * u_prev; a1 += uu * uu; a2 += u_prev * u_prev; a3 += gr * v_old;
        a4 += gr * gr; a5 += v_old * v_old; a6 += vv * vv;
        /* 1.0f where a comparison holds, as bits: PoCL calls select() and fabs() out of line */
        const int8 one = as_int8((float8)(1.0f));
        a7 += as_float8(one & (uu * u_prev < 0.0f));
        a8 += theta * theta;
        a9 += as_float8(one & ~(as_float8(as_uint8(tn) & 0x7fffffffu) <= FLT_MAX));  /* !isfinite */
    }
    const float8 a[NUM_SMOOTH] = {a0, a1, a2, a3, a4, a5, a6, a7, a8, a9};
    for (int j = 0; j < NUM_SMOOTH; j++) {  /* write_partials' order */
        float lanes[8];
        vstore8(a[j], 0, lanes);
        float acc = 0.0f;
        for (int c = 0; c < 8; c++) acc += lanes[c];
        partial_row[j] = acc;
    }
}
#endif
