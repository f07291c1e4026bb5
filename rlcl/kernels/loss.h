/* loss.h: the parts of the PPO / A2C loss shared by the categorical and Gaussian heads.
 * The head-specific kernels (loss.cl ppo_loss, gaussian.cl ppo_loss_gaussian) compute the
 * log-prob lp of the taken action and the entropy H per sample; everything else is here.
 * Formulas: see the comment at the top of loss.cl.
 */
#ifndef RLCL_LOSS_H
#define RLCL_LOSS_H
#include "common.h"

#ifndef NUM_LOSS_STATS
#error "NUM_LOSS_STATS undefined: build through rlcl.device.Device (rlcl/kernel_constants.py)"
#endif

/* Minibatch advantage mean and 1 / (std + 1e-8) (unbiased std), or (0, 1) without norm_adv.
 * The reductions run unconditionally: barriers stay outside any branch. */
inline float2 advantage_norm(__global const float *advantages, int M, int norm_adv,
                             __local float *scratch)
{
    const int lid = get_local_id(0), L = get_local_size(0);
    float s = 0.0f;
    for (int b = lid; b < M; b += L) s += advantages[b];
    const float mean = group_sum(s, scratch) / M;
    float ss = 0.0f;
    for (int b = lid; b < M; b += L) {
        const float d = advantages[b] - mean;
        ss += d * d;
    }
    const float var = group_sum(ss, scratch) / (M > 1 ? M - 1 : 1);
    if (!norm_adv) return (float2)(0.0f, 1.0f);
    return (float2)(mean, 1.0f / (sqrt(M > 1 ? var : 0.0f) + 1e-8f));
}

/* The policy term for one sample: returns d(pg)/d(lp) and adds pg, approx_kl and the clip
 * indicator to the running statistics. */
typedef struct { float pg, v, h, kl, clip, kl_max, r_max, r_min; } loss_stats;

inline loss_stats loss_stats_init(void)
{
    loss_stats s = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, -INFINITY, -INFINITY, INFINITY};
    return s;
}

inline float policy_term(float adv, float lp, float old_lp, float clip_coef, int pg_mode,
                         loss_stats *st)
{
    const float logratio = lp - old_lp, ratio = exp(logratio);
    const float clipped = clamp(ratio, 1.0f - clip_coef, 1.0f + clip_coef);
    const float pg_unclipped = -adv * ratio, pg_clipped = -adv * clipped;
    const bool unclipped_active = pg_unclipped >= pg_clipped || clipped == ratio;
    const float kl = (ratio - 1.0f) - logratio;
    st->pg += pg_mode ? -adv * lp : fmax(pg_unclipped, pg_clipped);
    st->kl += kl;
    st->clip += fabs(ratio - 1.0f) > clip_coef ? 1.0f : 0.0f;
    st->kl_max = fmax(st->kl_max, kl);
    st->r_max = fmax(st->r_max, ratio);
    st->r_min = fmin(st->r_min, ratio);
    return pg_mode ? -adv : (unclipped_active ? -adv * ratio : 0.0f);
}

/* The value term for one sample: returns d(v_loss)/dv and adds v_loss to the statistics. */
inline float value_term(float v, float R, float old_v, float clip_coef, int clip_vloss,
                        loss_stats *st)
{
    float v_loss = 0.5f * (v - R) * (v - R), dv = v - R;
    if (clip_vloss) {
        const float vc = old_v + clamp(v - old_v, -clip_coef, clip_coef);
        const float v_loss_clipped = 0.5f * (vc - R) * (vc - R);
        if (v_loss_clipped > v_loss) {
            v_loss = v_loss_clipped;
            /* A clipped delta is constant in v. Test the delta, not vc == v: old_v +
             * (v - old_v) need not round back to v. */
            dv = fabs(v - old_v) <= clip_coef ? vc - R : 0.0f;
        }
    }
    st->v += v_loss;
    return dv;
}

/* All eight statistics in one fixed-order tree (sums for 0-4, max for 5-6, min for 7) into
 * stats[row * 8 ...]; one barrier loop, not eight: PoCL compiles many barrier loops very
 * slowly. scratch: 8 * L floats. */
inline void write_loss_stats(loss_stats st, __global float *stats, int row, int M,
                             __local float *r)
{
    const int lid = get_local_id(0), L = get_local_size(0);
    r[0 * L + lid] = st.pg;  r[1 * L + lid] = st.v;    r[2 * L + lid] = st.h;
    r[3 * L + lid] = st.kl;  r[4 * L + lid] = st.clip; r[5 * L + lid] = st.kl_max;
    r[6 * L + lid] = st.r_max; r[7 * L + lid] = st.r_min;
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
#endif
