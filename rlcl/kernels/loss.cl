/* loss.cl: the PPO / A2C loss and its gradient with respect to the network outputs, in one pass.
 *
 * Per sample b (CleanRL ppo.py; Schulman et al. 2017, eq. 7 and 9):
 *   lp     = log softmax(logits_b)[a_b],  ratio = exp(lp - old_logp_b)
 *   adv    = norm_adv ? (adv_b - mean) / (std + 1e-8) : adv_b     (std unbiased, per minibatch)
 *   pg     = max(-adv * ratio, -adv * clip(ratio, 1 - c, 1 + c))     pg_mode 0 (PPO)
 *   pg     = -adv * lp                                               pg_mode 1 (A2C, Mnih et
 *            al. 2016; the gradient equals PPO's at ratio 1, the value is SB3's policy_loss)
 *   v_loss = 0.5 * (v_b - R_b)^2, or with clip_vloss
 *            0.5 * max((v_b - R_b)^2, (old_v_b + clip(v_b - old_v_b, -c, c) - R_b)^2)
 *   H      = -sum_j p_j log p_j
 *   loss   = mean(pg) - ent_coef * mean(H) + vf_coef * mean(v_loss)
 * Gradients written for the backward pass (M = minibatch size):
 *   dlogits[b,j] = (g_lp * ([j == a] - p_j) + ent_coef * p_j * (log p_j + H)) / M
 *                  with g_lp = -adv * ratio where the unclipped term is the active one, else 0
 *                  (pg_mode 1: g_lp = -adv)
 *   dvalues[b]   = vf_coef * (v_b - R_b) / M where the active value term depends on v_b, else 0
 * stats[row * 8 + k]: means over the minibatch of pg, v_loss, H, approx_kl = (ratio-1) - log
 *   ratio, clip fraction; then max approx_kl, max ratio, min ratio.
 *
 * Launch: ONE work-group of L work-items (L a power of two); each work-item strides over
 * samples and every reduction is group_sum in a fixed order, so the result is deterministic.
 * scratch: 8 * L local floats. Reference: rlcl/reference.py ppo_loss.
 */
#include "common.h"

#define NUM_LOSS_STATS 8

__kernel void ppo_loss(__global float *dlogits, __global float *dvalues, __global float *stats,
                       int row, __global const float *logits, __global const float *values,
                       __global const int *actions, __global const float *old_logp,
                       __global const float *advantages, __global const float *returns,
                       __global const float *old_values, int M, int A, float clip_coef,
                       int clip_vloss, float ent_coef, float vf_coef, int norm_adv,
                       int pg_mode, __local float *scratch)
{
    const int lid = get_local_id(0), L = get_local_size(0);
    /* The reductions run unconditionally: barriers stay outside any branch. */
    float s = 0.0f;
    for (int b = lid; b < M; b += L) s += advantages[b];
    const float mean = group_sum(s, scratch) / M;
    float ss = 0.0f;
    for (int b = lid; b < M; b += L) {
        const float d = advantages[b] - mean;
        ss += d * d;
    }
    const float var = group_sum(ss, scratch) / (M > 1 ? M - 1 : 1);
    const float adv_mean = norm_adv ? mean : 0.0f;
    const float adv_scale = norm_adv ? 1.0f / (sqrt(M > 1 ? var : 0.0f) + 1e-8f) : 1.0f;
    float pg_sum = 0.0f, v_sum = 0.0f, h_sum = 0.0f, kl_sum = 0.0f, clip_sum = 0.0f;
    float kl_max = -INFINITY, r_max = -INFINITY, r_min = INFINITY;
    for (int b = lid; b < M; b += L) {
        __global const float *z = logits + b * A;
        float m = z[0];
        for (int j = 1; j < A; j++) m = fmax(m, z[j]);
        float s = 0.0f;
        for (int j = 0; j < A; j++) s += exp(z[j] - m);
        const float log_s = log(s);
        float H = 0.0f;
        for (int j = 0; j < A; j++) {
            const float lpj = z[j] - m - log_s;
            H -= exp(lpj) * lpj;
        }
        const int a = actions[b];
        const float logratio = (z[a] - m - log_s) - old_logp[b];
        const float ratio = exp(logratio);
        const float adv = (advantages[b] - adv_mean) * adv_scale;
        const float clipped = clamp(ratio, 1.0f - clip_coef, 1.0f + clip_coef);
        const float pg_unclipped = -adv * ratio, pg_clipped = -adv * clipped;
        const bool unclipped_active = pg_unclipped >= pg_clipped || clipped == ratio;
        const float lp = z[a] - m - log_s;
        const float g_lp = pg_mode ? -adv : (unclipped_active ? -adv * ratio : 0.0f);
        for (int j = 0; j < A; j++) {
            const float lpj = z[j] - m - log_s, pj = exp(lpj);
            const float onehot = j == a ? 1.0f : 0.0f;
            dlogits[b * A + j] = (g_lp * (onehot - pj) + ent_coef * pj * (lpj + H)) / M;
        }
        const float v = values[b], R = returns[b];
        float v_loss = 0.5f * (v - R) * (v - R), dv = v - R;
        if (clip_vloss) {
            const float delta = clamp(v - old_values[b], -clip_coef, clip_coef);
            const float vc = old_values[b] + delta;
            const float v_loss_clipped = 0.5f * (vc - R) * (vc - R);
            if (v_loss_clipped > v_loss) {
                v_loss = v_loss_clipped;
                /* A clipped delta is constant in v. Test the delta, not vc == v: old_v +
                 * (v - old_v) need not round back to v. */
                dv = fabs(v - old_values[b]) <= clip_coef ? vc - R : 0.0f;
            }
        }
        dvalues[b] = vf_coef * dv / M;
        const float kl = (ratio - 1.0f) - logratio;
        pg_sum += pg_mode ? -adv * lp : fmax(pg_unclipped, pg_clipped);
        v_sum += v_loss;
        h_sum += H;
        kl_sum += kl;
        clip_sum += fabs(ratio - 1.0f) > clip_coef ? 1.0f : 0.0f;
        kl_max = fmax(kl_max, kl);
        r_max = fmax(r_max, ratio);
        r_min = fmin(r_min, ratio);
    }
    /* All eight statistics in one fixed-order tree: sums for 0-4, max for 5-6, min for 7.
     * (One barrier loop, not eight: PoCL compiles many barrier loops very slowly.) */
    __local float *r = scratch;
    r[0 * L + lid] = pg_sum;  r[1 * L + lid] = v_sum;   r[2 * L + lid] = h_sum;
    r[3 * L + lid] = kl_sum;  r[4 * L + lid] = clip_sum; r[5 * L + lid] = kl_max;
    r[6 * L + lid] = r_max;   r[7 * L + lid] = r_min;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = L / 2; stride > 0; stride /= 2) {
        if (lid < stride) {
            for (int k = 0; k < 5; k++) r[k * L + lid] += r[k * L + lid + stride];
            r[5 * L + lid] = fmax(r[5 * L + lid], r[5 * L + lid + stride]);
            r[6 * L + lid] = fmax(r[6 * L + lid], r[6 * L + lid + stride]);
            r[7 * L + lid] = fmin(r[7 * L + lid], r[7 * L + lid + stride]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0)
        for (int k = 0; k < NUM_LOSS_STATS; k++)
            stats[row * NUM_LOSS_STATS + k] = k < 5 ? r[k * L] / M : r[k * L];
}
