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
#endif
