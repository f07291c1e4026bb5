/* loss.h: the parts of the PPO / A2C loss shared by the categorical and Gaussian heads.
 * The head-specific kernels (loss.cl ppo_loss, gaussian.cl ppo_loss_gaussian) compute the
 * log-prob lp of the taken action and the entropy H per sample; everything else is here.
 * Formulas: see the comment at the top of loss.cl.
 */
#ifndef RLCL_LOSS_H
#define RLCL_LOSS_H
#include "gaussian.h"

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
 * stats[row * 8 ...], with no barrier loop: PoCL compiles many barrier loops very slowly.
 * scratch: 8 * L floats. */
inline void write_loss_stats(loss_stats st, __global float *stats, int row, int M, int part,
                             __local float *r)
{
    const int lid = get_local_id(0), L = get_local_size(0);
    r[0 * L + lid] = st.pg;  r[1 * L + lid] = st.v;    r[2 * L + lid] = st.h;
    r[3 * L + lid] = st.kl;  r[4 * L + lid] = st.clip; r[5 * L + lid] = st.kl_max;
    r[6 * L + lid] = st.r_max; r[7 * L + lid] = st.r_min;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid == 0) {  /* common.h tree_sum's order, by one work-item (no barrier loop) */
        for (int stride = L / 2; stride > 0; stride /= 2)
            for (int i = 0; i < stride; i++) {
                for (int k = 0; k < 5; k++) r[k * L + i] += r[k * L + i + stride];
                r[5 * L + i] = fmax(r[5 * L + i], r[5 * L + i + stride]);
                r[6 * L + i] = fmax(r[6 * L + i], r[6 * L + i + stride]);
                r[7 * L + i] = fmin(r[7 * L + i], r[7 * L + i + stride]);
            }
        for (int k = 0; k < NUM_LOSS_STATS; k++)  /* part: common.h LOSS_BOTH .. */
            if (part == LOSS_BOTH || (part == LOSS_VALUE) == (k == 1))
                stats[row * NUM_LOSS_STATS + k] = k < 5 ? r[k * L] / M : r[k * L];
    }
    barrier(CLK_LOCAL_MEM_FENCE);  /* r is reused by the next call */
}
/* The heads' losses for one minibatch of M samples, run by the whole work-group (the kernels
 * loss.cl ppo_loss and gaussian.cl ppo_loss_gaussian, and the fused ppo_update.cl). */
inline void categorical_loss(__global float *dlogits, __global float *dvalues, __global float *stats,
                             int row, __global const float *logits, __global const float *values,
                             __global const int *actions, __global const float *old_logp,
                             __global const float *advantages, __global const float *returns,
                             __global const float *old_values, int M, int A, float clip_coef,
                             int clip_vloss, float ent_coef, float vf_coef, int norm_adv,
                             int pg_mode, int part, __local float *scratch)
{
    const int lid = get_local_id(0), L = get_local_size(0);
    const float2 norm = advantage_norm(advantages, M, norm_adv, scratch);
    loss_stats st = loss_stats_init();
    for (int b = lid; b < M; b += L) {
        if (part != LOSS_POLICY) {
            const float dv = value_term(values[b], returns[b], old_values[b], clip_coef,
                                        clip_vloss, &st);
            dvalues[b] = vf_coef * dv / M;
        }
        if (part == LOSS_VALUE) continue;
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
        const float adv = (advantages[b] - norm.x) * norm.y;
        const float g_lp = policy_term(adv, z[a] - m - log_s, old_logp[b], clip_coef, pg_mode, &st);
        for (int j = 0; j < A; j++) {
            const float lpj = z[j] - m - log_s, pj = exp(lpj);
            const float onehot = j == a ? 1.0f : 0.0f;
            dlogits[b * A + j] = (g_lp * (onehot - pj) + ent_coef * pj * (lpj + H)) / M;
        }
        st.h += H;
    }
    write_loss_stats(st, stats, row, M, part, scratch);
}

inline void gaussian_loss(__global float *dmean, __global float *dvalues,
                          __global float *dlog_std, __global float *stats, int row,
                          __global const float *mean, __global const float *values,
                          __global const float *params, int log_std_off,
                          __global const float *actions, __global const float *old_logp,
                          __global const float *advantages,
                          __global const float *returns, __global const float *old_values,
                          int M, int A, float clip_coef, int clip_vloss, float ent_coef,
                          float vf_coef, int norm_adv, int pg_mode, int part,
                          __local float *scratch)
{
    const int lid = get_local_id(0), L = get_local_size(0);
    const float2 norm = advantage_norm(advantages, M, norm_adv, scratch);
    float H = 0.0f;
    for (int j = 0; j < A; j++) H += 0.5f + HALF_LOG_2PI + params[log_std_off + j];
    loss_stats st = loss_stats_init();
    for (int b = lid; b < M; b += L) {
        if (part != LOSS_POLICY) {
            const float dv = value_term(values[b], returns[b], old_values[b], clip_coef,
                                        clip_vloss, &st);
            dvalues[b] = vf_coef * dv / M;
        }
        if (part == LOSS_VALUE) continue;
        float lp = 0.0f;
        for (int j = 0; j < A; j++)
            lp += gaussian_lp_term(actions[b * A + j], mean[b * A + j], params[log_std_off + j]);
        const float adv = (advantages[b] - norm.x) * norm.y;
        const float g_lp = policy_term(adv, lp, old_logp[b], clip_coef, pg_mode, &st);
        for (int j = 0; j < A; j++) {
            const float std = exp(params[log_std_off + j]);
            const float z = (actions[b * A + j] - mean[b * A + j]) / std;
            dmean[b * A + j] = g_lp * z / std / M;
            dlog_std[b * A + j] = (g_lp * (z * z - 1.0f) - ent_coef) / M;
        }
        st.h += H;
    }
    write_loss_stats(st, stats, row, M, part, scratch);
}

#endif
