/* optim.cl: global-norm clipping and the fused optimizer updates over the flat buffer.
 *
 * sum_squares: norms[slot] = sqrt(sum_i x_i^2). ONE work-group of L work-items (L a power
 *   of two), strided partial sums then group_sum: a fixed order, so deterministic.
 *
 * Clipping (torch.nn.utils.clip_grad_norm_): with max_norm > 0 the step scales the gradient
 *   by min(1, max_norm / (norms[slot] + 1e-6)) before using it; max_norm <= 0 means no clip.
 * Skipping (the divergence guard): with skip_above >= 0, a step whose norms[slot] is not
 *   <= skip_above (a spike, or NaN) changes nothing. skip_above < 0 never skips.
 *
 * sgd_step (torch.optim.SGD semantics), per coordinate:
 *   g = clip_scale * grad + weight_decay * theta             (coupled weight decay)
 *   v = first ? g : momentum * v + (1 - dampening) * g        (skipped when momentum == 0)
 *   d = nesterov ? g + momentum * v : v;  u = -lr * d;  theta += u;  prev_update = u
 * (prev_update starts as zeros: it feeds only the smoothness figures)
 * rlcl.optim.Momentum is this kernel with momentum 0.9 and no dampening.
 *
 * adam_step (torch.optim.Adam, coupled weight decay), with step_size = lr / (1 - b1^t) and
 *   bc2_sqrt = sqrt(1 - b2^t) computed on the host in float64 ("v" below is exp_avg m):
 *   m = b1 m + (1 - b1) g;  s = b2 s + (1 - b2) g^2;  u = -step_size * m / (sqrt(s) / bc2_sqrt + eps)
 *   t counts only the steps taken (issue 10): bias[2k], bias[2k + 1] are (step_size,
 *   bc2_sqrt) for t = t0 + k + 1, and k is the number of steps at slots run_start .. slot - 1
 *   that were not refused (rlcl/optim/adam.py keeps t0 and the table).
 *
 * A refused step writes nothing, and its partial sums say so: u = 0, v and theta unchanged
 *   (so the non-finite count and update_ratio describe the parameters as they are, issue 10).
 *
 * Both steps also write the update-smoothness partial sums of their work-group (issue 4), in
 * the same pass, since they already read g, the old velocity and the previous update:
 *   partials[(row * groups + group) * 10 + k], k = 0 u.u_prev, 1 u.u, 2 u_prev.u_prev,
 *   3 g.v_old, 4 g.g, 5 v_old.v_old, 6 v.v, 7 #(u * u_prev < 0), 8 theta.theta (before),
 *   9 #non-finite theta after. Summed in a fixed order (each work-item over its coordinates,
 *   then work-item 0 over the group), so deterministic; the host adds the groups' rows in
 *   order (rlcl/diagnostics.py).
 *
 * Launch: sum_squares (L) with local L; the steps (groups * STEP_LANES) with local STEP_LANES,
 * scratch 10 * STEP_LANES: group g takes the STEP_CHUNK coordinates from g * STEP_CHUNK, its
 * work-item k every STEP_LANES-th of them from the k-th (optim.h step_first_coord), so a group
 * is one contiguous block that the fused update (ppo_update.cl) can run as one work-item.
 * Reference: rlcl/reference.py sum_squares, sgd_step, adam_step, smoothness_partials.
 */
#include "optim.h"

__kernel void sum_squares(__global float *norms, int slot, __global const float *x, int n,
                          __local float *scratch)
{
    const int lid = get_local_id(0), L = get_local_size(0);
    const float total = group_sum(lane_squares(x, n, lid, L), scratch);
    if (lid == 0) norms[slot] = sqrt(total);
}

/* One row of partial sums per work-group: one barrier, then work-item 0 adds the L values of
 * each sum in index order (a fixed order; cheaper on CPU devices than a tree of barriers). */
inline void write_partials(const float *s, __global float *partials, int row,
                           __local float *r)
{
    const int lid = get_local_id(0), L = get_local_size(0);
    for (int k = 0; k < NUM_SMOOTH; k++) r[k * L + lid] = s[k];
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid == 0) {
        __global float *out = partials + (row * get_num_groups(0) + get_group_id(0)) * NUM_SMOOTH;
        for (int k = 0; k < NUM_SMOOTH; k++) {
            float acc = 0.0f;
            for (int j = 0; j < L; j++) acc += r[k * L + j];
            out[k] = acc;
        }
    }
}

__kernel void sgd_step(__global float *params, __global const float *grads,
                       __global float *velocity, __global float *prev_update,
                       __global const float *norms, int slot, float max_norm, float skip_above,
                       int n, float lr, float momentum, float dampening, float weight_decay,
                       int nesterov, int first, __global float *partials,
                       __local float *scratch)
{
    float s[NUM_SMOOTH] = {0};
    const float norm = norms[slot];
    const bool skip = skip_step(norm, skip_above);
    for (int i = step_first_coord(); i < step_end_coord(n); i += STEP_LANES)
        sgd_coord(params, grads, velocity, prev_update, i, norm, max_norm, skip, lr, momentum,
                  dampening, weight_decay, nesterov, first, s);
    write_partials(s, partials, slot, scratch);
}

__kernel void adam_step(__global float *params, __global const float *grads,
                        __global float *exp_avg, __global float *exp_avg_sq,
                        __global float *prev_update, __global const float *norms, int slot,
                        float max_norm, float skip_above, int n, __global const float *bias,
                        int run_start, float beta1, float beta2, float eps, float weight_decay,
                        __global float *partials, __local float *scratch)
{
    float s[NUM_SMOOTH] = {0};
    const float norm = norms[slot];
    const bool skip = skip_step(norm, skip_above);
    /* t counts the steps taken, as torch's does: the host cannot know which steps since
     * run_start the guard refused, so its table holds the corrections for every possible t */
    int taken = 0;
    for (int j = run_start; j < slot; j++) taken += skip_step(norms[j], skip_above) ? 0 : 1;
    const float step_size = bias[2 * taken], bc2_sqrt = bias[2 * taken + 1];
    for (int i = step_first_coord(); i < step_end_coord(n); i += STEP_LANES) {
        const float theta = params[i];
        const float g = grads[i] * clip_scale(norm, max_norm) + weight_decay * theta;
        const float m_old = exp_avg[i];
        const float m = beta1 * m_old + (1.0f - beta1) * g;
        const float sq = beta2 * exp_avg_sq[i] + (1.0f - beta2) * g * g;
        const float u = -step_size * m / (sqrt(sq) / bc2_sqrt + eps);
        const float u_prev = prev_update[i];
        const float theta_new = theta + u;
        if (!skip) {
            exp_avg[i] = m;
            exp_avg_sq[i] = sq;
            params[i] = theta_new;
            prev_update[i] = u;
        }
        accumulate(s, g, m_old, skip ? m_old : m, skip ? 0.0f : u, u_prev, theta,
                   skip ? theta : theta_new);
    }
    write_partials(s, partials, slot, scratch);
}
