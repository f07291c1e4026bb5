/* loss.h: the parts of the PPO / A2C loss shared by the categorical and Gaussian heads.
 * The head-specific kernels (loss.cl ppo_loss, gaussian.cl ppo_loss_gaussian) compute the
 * log-prob lp of the taken action and the entropy H per sample; everything else is here.
 * Formulas: see the comment at the top of loss.cl.
 *
 * Each work-item takes eight rows at a time, a row per float8 lane (common.h rows8), so every
 * exp and log is a float8's (issue 13): PoCL's scalar exp and log cost about ten times the
 * float8's per value on x86 (25 against 2.6 ns for an exp and a log, measured; the fused
 * update at 16x16 took 0.86x the time with the lanes). The rollout computes its log-probs
 * through the same float8 builtins (mlp.h softmax_sum, log_lane), so the update's recomputed
 * log-prob keeps their bits.
 *
 * Lanes (issue 13): the reductions run over V virtual lanes, V a power of two, whatever the
 * work-group's size W (a divisor of V): work-item lid takes lanes lid, lid + W, .., lane v the
 * rows 8v .. 8v + 7, 8(v + V) .., and lane v's partial sums go to scratch[v] for one tree
 * over the V lanes. So V alone fixes the bits: the separate loss kernels run W = V, the fused
 * update on a CPU W = 1 (rlcl/device.py lane_items: PoCL runs a work-group as loops over its
 * work-items between barriers, and ppo_minibatch_pop took 0.88x the time with one).
 */
#ifndef RLCL_LOSS_H
#define RLCL_LOSS_H
#include "gaussian.h"

#ifndef NUM_LOSS_STATS
#error "NUM_LOSS_STATS undefined: build through rlcl.device.Device (rlcl/kernel_constants.py)"
#endif

/* How many of a categorical head's outputs categorical_loss keeps per eight rows. */
#define LOSS_KEPT 8

/* Minibatch advantage mean and 1 / (std + 1e-8) (unbiased std), or (0, 1) without norm_adv,
 * over V lanes. The reductions run unconditionally: barriers stay outside any branch. */
inline float2 advantage_norm(__global const float *advantages, int M, int norm_adv, int V,
                             __local float *scratch)
{
    const int lid = get_local_id(0), W = get_local_size(0);
    for (int v = lid; v < V; v += W) {
        float s = 0.0f;
        for (int b = v; b < M; b += V) s += advantages[b];
        scratch[v] = s;
    }
    const float mean = lanes_total(scratch, V) / M;
    for (int v = lid; v < V; v += W) {
        float ss = 0.0f;
        for (int b = v; b < M; b += V) {
            const float d = advantages[b] - mean;
            ss += d * d;
        }
        scratch[v] = ss;
    }
    const float var = lanes_total(scratch, V) / (M > 1 ? M - 1 : 1);
    if (!norm_adv) return (float2)(0.0f, 1.0f);
    return (float2)(mean, 1.0f / (sqrt(M > 1 ? var : 0.0f) + 1e-8f));
}

/* The statistics, one accumulator per lane (the lanes are rows: see categorical_loss). */
typedef struct { float8 pg, v, h, kl, clip, kl_max, r_max, r_min; } loss_stats;

inline loss_stats loss_stats_init(void)
{
    const float8 zero = (float8)(0.0f);
    loss_stats s = {zero, zero, zero, zero, zero, (float8)(-INFINITY), (float8)(-INFINITY),
                    (float8)(INFINITY)};
    return s;
}

/* The policy term for eight samples (lanes; LIVE: the lanes that hold one): returns d(pg)/d(lp)
 * and adds pg, approx_kl and the clip indicator to the running statistics. */
inline float8 policy_term(float8 adv, float8 lp, float8 old_lp, float clip_coef, int pg_mode,
                          int8 live, loss_stats *st)
{
    const float8 zero = (float8)(0.0f), logratio = lp - old_lp, ratio = exp(logratio);
    const float8 clipped = clamp(ratio, 1.0f - clip_coef, 1.0f + clip_coef);
    const float8 pg_unclipped = -adv * ratio, pg_clipped = -adv * clipped;
    const int8 unclipped_active = (pg_unclipped >= pg_clipped) | (clipped == ratio);
    const float8 kl = (ratio - 1.0f) - logratio;
    st->pg += select(zero, pg_mode ? -adv * lp : fmax(pg_unclipped, pg_clipped), live);
    st->kl += select(zero, kl, live);
    st->clip += select(zero, (float8)(1.0f), live & (fabs(ratio - 1.0f) > clip_coef));
    st->kl_max = select(st->kl_max, fmax(st->kl_max, kl), live);
    st->r_max = select(st->r_max, fmax(st->r_max, ratio), live);
    st->r_min = select(st->r_min, fmin(st->r_min, ratio), live);
    return pg_mode ? -adv : select(zero, -adv * ratio, unclipped_active);
}

/* The value term for eight samples: returns d(v_loss)/dv and adds v_loss to the statistics. */
inline float8 value_term(float8 v, float8 R, float8 old_v, float clip_coef, int clip_vloss,
                         int8 live, loss_stats *st)
{
    float8 v_loss = 0.5f * (v - R) * (v - R), dv = v - R;
    if (clip_vloss) {
        const float8 vc = old_v + clamp(v - old_v, -clip_coef, clip_coef);
        const float8 v_loss_clipped = 0.5f * (vc - R) * (vc - R);
        const int8 worse = v_loss_clipped > v_loss;
        v_loss = select(v_loss, v_loss_clipped, worse);
        /* A clipped delta is constant in v. Test the delta, not vc == v: old_v +
         * (v - old_v) need not round back to v. */
        dv = select(dv, select((float8)(0.0f), vc - R, fabs(v - old_v) <= clip_coef), worse);
    }
    st->v += select((float8)(0.0f), v_loss, live);
    return dv;
}

/* The value half of both heads for rows b .. b + 7: dvalues and the value statistic. */
inline void value_rows(__global float *dvalues, __global const float *values,
                       __global const float *returns, __global const float *old_values, int b,
                       int M, float clip_coef, int clip_vloss, float vf_coef, int8 live,
                       loss_stats *st)
{
    const float8 dv = value_term(rows8(values, b, M, 1, 0), rows8(returns, b, M, 1, 0),
                                 rows8(old_values, b, M, 1, 0), clip_coef, clip_vloss, live, st);
    store_rows8(dvalues, vf_coef * dv / M, b, M, 1, 0);
}

/* Lane v's eight statistics, its float8's lanes folded in a fixed order, into r[k V + v]. */
inline void store_lane_stats(loss_stats st, __local float *r, int v, int V)
{
    r[0 * V + v] = fold_sum8(st.pg);  r[1 * V + v] = fold_sum8(st.v);
    r[2 * V + v] = fold_sum8(st.h);   r[3 * V + v] = fold_sum8(st.kl);
    r[4 * V + v] = fold_sum8(st.clip); r[5 * V + v] = fold_max8(st.kl_max);
    r[6 * V + v] = fold_max8(st.r_max); r[7 * V + v] = fold_min8(st.r_min);
}

/* All eight statistics of the V lanes in one fixed-order tree (sums for 0-4, max for 5-6, min
 * for 7) into stats[row * 8 ...], with no barrier loop: PoCL compiles many barrier loops very
 * slowly. scratch: 8 V floats. */
inline void write_loss_stats(__global float *stats, int row, int M, int part, int V,
                             __local float *r)
{
    barrier(CLK_LOCAL_MEM_FENCE);
    if (get_local_id(0) == 0) {  /* common.h tree_sum's order, by one work-item */
        for (int stride = V / 2; stride > 0; stride /= 2)
            for (int i = 0; i < stride; i++) {
                for (int k = 0; k < 5; k++) r[k * V + i] += r[k * V + i + stride];
                r[5 * V + i] = fmax(r[5 * V + i], r[5 * V + i + stride]);
                r[6 * V + i] = fmax(r[6 * V + i], r[6 * V + i + stride]);
                r[7 * V + i] = fmin(r[7 * V + i], r[7 * V + i + stride]);
            }
        for (int k = 0; k < NUM_LOSS_STATS; k++)  /* part: common.h LOSS_BOTH .. */
            if (part == LOSS_BOTH || (part == LOSS_VALUE) == (k == 1))
                stats[row * NUM_LOSS_STATS + k] = k < 5 ? r[k * V] / M : r[k * V];
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
                             int pg_mode, int part, int V, __local float *scratch)
{
    const int lid = get_local_id(0), W = get_local_size(0);
    const float2 norm = advantage_norm(advantages, M, norm_adv, V, scratch);
    for (int v = lid; v < V; v += W) {
        loss_stats st = loss_stats_init();
        for (int b = 8 * v; b < M; b += 8 * V) {  /* rows b .. b + 7 in the float8 lanes */
            const int8 live = rows_live(b, M);
            if (part != LOSS_POLICY)
                value_rows(dvalues, values, returns, old_values, b, M, clip_coef, clip_vloss,
                           vf_coef, live, &st);
            if (part == LOSS_VALUE) continue;
            /* the first LOSS_KEPT logits and probabilities are kept, not gathered and exp'd
             * again (the same values, so the same bits; issue 13: the loss was a fifth of the
             * fused update, its exps most of it) */
            float8 zk[LOSS_KEPT], pk[LOSS_KEPT];
            float8 m = rows8(logits, b, M, A, 0);
            zk[0] = m;
            for (int j = 1; j < A; j++) {
                const float8 z = rows8(logits, b, M, A, j);
                if (j < LOSS_KEPT) zk[j] = z;
                m = fmax(m, z);
            }
#define LOGIT_(j) ((j) < LOSS_KEPT ? zk[j] : rows8(logits, b, M, A, j))
            float8 s = (float8)(0.0f);
            for (int j = 0; j < A; j++) s += exp(LOGIT_(j) - m);
            const float8 log_s = log(s);
            const int8 a = rows8_int(actions, b, M);
            float8 H = (float8)(0.0f), z_a = H;
            for (int j = 0; j < A; j++) {
                const float8 z = LOGIT_(j), lpj = z - m - log_s, pj = exp(lpj);
                if (j < LOSS_KEPT) pk[j] = pj;
                H -= pj * lpj;
                z_a = select(z_a, z, a == j);
            }
            const float8 adv = (rows8(advantages, b, M, 1, 0) - norm.x) * norm.y;
            const float8 g_lp = policy_term(adv, z_a - m - log_s, rows8(old_logp, b, M, 1, 0),
                                            clip_coef, pg_mode, live, &st);
            for (int j = 0; j < A; j++) {
                const float8 lpj = LOGIT_(j) - m - log_s;
                const float8 pj = j < LOSS_KEPT ? pk[j] : exp(lpj);
#undef LOGIT_
                const float8 onehot = select((float8)(0.0f), (float8)(1.0f), a == j);
                const float8 d = (g_lp * (onehot - pj) + ent_coef * pj * (lpj + H)) / M;
                store_rows8(dlogits, d, b, M, A, j);
            }
            st.h += select((float8)(0.0f), H, live);
        }
        store_lane_stats(st, scratch, v, V);
    }
    write_loss_stats(stats, row, M, part, V, scratch);
}

inline void gaussian_loss(__global float *dmean, __global float *dvalues,
                          __global float *dlog_std, __global float *stats, int row,
                          __global const float *mean, __global const float *values,
                          __global const float *params, int log_std_off,
                          __global const float *actions, __global const float *old_logp,
                          __global const float *advantages,
                          __global const float *returns, __global const float *old_values,
                          int M, int A, float clip_coef, int clip_vloss, float ent_coef,
                          float vf_coef, int norm_adv, int pg_mode, int part, int V,
                          __local float *scratch)
{
    const int lid = get_local_id(0), W = get_local_size(0);
    const float2 norm = advantage_norm(advantages, M, norm_adv, V, scratch);
    float H = 0.0f;
    for (int j = 0; j < A; j++) H += 0.5f + HALF_LOG_2PI + params[log_std_off + j];
    for (int v = lid; v < V; v += W) {
        loss_stats st = loss_stats_init();
        for (int b = 8 * v; b < M; b += 8 * V) {  /* rows b .. b + 7 in the float8 lanes */
            const int8 live = rows_live(b, M);
            if (part != LOSS_POLICY)
                value_rows(dvalues, values, returns, old_values, b, M, clip_coef, clip_vloss,
                           vf_coef, live, &st);
            if (part == LOSS_VALUE) continue;
            float8 lp = (float8)(0.0f);
            for (int j = 0; j < A; j++)
                lp += gaussian_lp_term8(rows8(actions, b, M, A, j), rows8(mean, b, M, A, j),
                                        params[log_std_off + j]);
            const float8 adv = (rows8(advantages, b, M, 1, 0) - norm.x) * norm.y;
            const float8 g_lp = policy_term(adv, lp, rows8(old_logp, b, M, 1, 0), clip_coef,
                                            pg_mode, live, &st);
            for (int j = 0; j < A; j++) {
                const float std = exp(params[log_std_off + j]);
                const float8 z = (rows8(actions, b, M, A, j) - rows8(mean, b, M, A, j)) / std;
                store_rows8(dmean, g_lp * z / std / M, b, M, A, j);
                store_rows8(dlog_std, (g_lp * (z * z - 1.0f) - ent_coef) / M, b, M, A, j);
            }
            st.h += select((float8)(0.0f), (float8)(H), live);
        }
        store_lane_stats(st, scratch, v, V);
    }
    write_loss_stats(stats, row, M, part, V, scratch);
}

#endif
