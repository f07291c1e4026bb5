/* device_rollout.h: what rollout_classic does for its envs in one work-item besides the
 * networks' forward passes (env_forward.h): the critic's value, the action draws and the
 * running-statistics merges (formulas: device_rollout.cl).
 */
#ifndef RLCL_DEVICE_ROLLOUT_H
#define RLCL_DEVICE_ROLLOUT_H
#include "gaussian.h"
#include "classic_envs.h"
#include "env_forward.h"

inline void load_input(__local float *ha, __global const float *x, int D)
{
    for (int i = 0; i < D; i++) ha[i] = x[i];
}

/* The critic's value of the input in ha. */
inline float value_of(__global const float *params, __global const int *layers, int n_actor,
                      int n_critic, int act, __local float *ha, __local float *hb)
{
    return forward_env(params, layers, n_actor, n_critic, act, ha, hb)[0];
}

/* Draw an action from the actor's A outputs at OUT (policy.cl policy_act, or gaussian.cl
 * policy_act_gaussian when log_std_off >= 0), write its words to ACTION and the outputs
 * (logits or means) to OUTPUTS, return its log-prob. */
inline float draw_action(__global uint *action, __global float *outputs, __local const float *out,
                         __global const float *params, int A, int log_std_off, uint seed,
                         uint stream, uint n, uint t, uint iteration)
{
    for (int j = 0; j < A; j++) outputs[j] = out[j];
    if (log_std_off >= 0) {
        float lp = 0.0f, eps[4];
        for (int j = 0; j < A; j++) {
            if (j % 4 == 0) vstore4(philox_normal4(seed, stream, n, t, iteration, j / 4), 0, eps);
            const float log_std = params[log_std_off + j];
            const float a = out[j] + exp(log_std) * eps[j % 4];
            action[j] = as_uint(a);
            lp += gaussian_lp_term(a, out[j], log_std);
        }
        return lp;
    }
    float m = out[0];
    for (int j = 1; j < A; j++) if (out[j] > m) m = out[j];
    const float s = softmax_sum(out, A, m);
    const int a = softmax_draw(out, A, m, philox_uniform(seed, stream, n, t, iteration) * s);
    action[0] = (uint)a;
    return out[a] - m - log_lane(s);
}

/* draw_action's categorical draw (A <= 2) for the four envs n .. n + 3 (stored rows row ..
 * row + 3) whose actor outputs are at OUT + k STRIDE: their logits in one float8's lanes (env
 * k's output j in lane 2 k + j; a lane past A holds its env's maximum, as exp_chunk pads), one
 * exp for all, the sums and the inverse CDF in softmax_sum's and softmax_draw's order, and the
 * four sums' logs in one float8. Each lane's exp and log is the one draw_action computes (a
 * lane's result depends on its input alone: mlp.h), so the same bits, with two out-of-line
 * calls where the four draws made twelve (issue 13: PoCL's exp and log were a sixth of the
 * default rollout). */
inline void draw_actions4(__global uint *actions, __global float *outputs,
                                      __global float *logp, __local const float *out, int stride,
                                      int A, uint seed, uint stream, int n, int row, uint t,
                                      uint iteration)
{
    float m[4], e[8], s[4], ls[8];
    for (int k = 0; k < 4; k++) {
        __local const float *o = out + k * stride;
        m[k] = o[0];
        for (int j = 1; j < A; j++) if (o[j] > m[k]) m[k] = o[j];
        for (int j = 0; j < A; j++) outputs[(row + k) * A + j] = o[j];
    }
    const float m0 = m[0], m1 = m[1], m2 = m[2], m3 = m[3];
#define Z_(k, j, mk) ((j) < A ? out[(k) * stride + (j)] : (mk))
    const float8 e8 = exp((float8)(Z_(0, 0, m0), Z_(0, 1, m0), Z_(1, 0, m1), Z_(1, 1, m1),
                                   Z_(2, 0, m2), Z_(2, 1, m2), Z_(3, 0, m3), Z_(3, 1, m3)) -
                          (float8)(m0, m0, m1, m1, m2, m2, m3, m3));
#undef Z_
    STORE8(e8, e, 0, s0, s1, s2, s3, s4, s5, s6, s7);
    for (int k = 0; k < 4; k++) {
        s[k] = 0.0f;
        for (int j = 0; j < A; j++) s[k] += e[2 * k + j];
    }
    /* the vectors built from scalars, not from private arrays: Oclgrind 21.10's
     * uninitialised-value checker crashed on those */
    const float sum0 = s[0], sum1 = s[1], sum2 = s[2], sum3 = s[3];
    const float8 l8 = log((float8)(sum0, sum1, sum2, sum3, sum0, sum1, sum2, sum3));
    STORE8(l8, ls, 0, s0, s1, s2, s3, s4, s5, s6, s7);
    for (int k = 0; k < 4; k++) {
        const float threshold = philox_uniform(seed, stream, (uint)(n + k), t, iteration) * s[k];
        float cum = 0.0f;
        int a = A - 1;
        for (int j = 0; j < A; j++) {
            cum += e[2 * k + j];
            if (threshold < cum) {
                a = j;
                break;
            }
        }
        actions[row + k] = (uint)a;
        logp[row + k] = out[k * stride + a] - m[k] - ls[k];
    }
}

/* SB3 VecNormalize's observation transform with the statistics rms = [mean D, var D, count]. */
inline float normalize_obs(float v, __global const float *rms, int i, int D)
{
    return clamp((v - rms[i]) / sqrt(rms[D + i] + 1e-8f), -10.0f, 10.0f);
}

/* gymnasium's RunningMeanStd.update for a batch of N rows of width D (batch[n * D + i]),
 * merged by work-item 0 in env order (Chan et al.'s parallel algorithm). All work-items. */
inline void merge_batch(__global float *rms, __local float *batch, int D, int N)
{
    /* a global fence too: every work-item's reads of rms so far come before work-item 0
     * rewrites it (a local fence alone does not order global memory; Oclgrind caught it) */
    barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE);
    if (get_local_id(0) == 0) {
        const float count = rms[2 * D], tot = count + (float)N;
        for (int i = 0; i < D; i++) {
            float mean_b = 0.0f, var_b = 0.0f;
            for (int k = 0; k < N; k++) mean_b += batch[k * D + i];
            mean_b /= (float)N;
            for (int k = 0; k < N; k++) {
                const float d = batch[k * D + i] - mean_b;
                var_b += d * d;
            }
            var_b /= (float)N;
            const float mean = rms[i], var = rms[D + i], delta = mean_b - mean;
            rms[i] = mean + delta * (float)N / tot;
            rms[D + i] = (var * count + var_b * (float)N + delta * delta * count * (float)N / tot)
                         / tot;
        }
        rms[2 * D] = tot;
    }
    barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);
}

/* The new raw observations RAW[k] of envs n0 + k (k < COUNT: a work-item's envs) into the
 * batch, then the merge. All work-items. */
inline void merge_obs_batch(__global float *rms, __local float *batch,
                            const float raw[][CLASSIC_MAX_OBS_DIM], int D, int N, int n0,
                            int count)
{
    for (int k = 0; k < count; k++)
        for (int i = 0; i < D; i++) batch[(n0 + k) * D + i] = raw[k][i];
    merge_batch(rms, batch, D, N);
}

/* Merge one scalar per env (V[k] of env n0 + k); returns the variance after the merge. */
inline float merge_scalar_batch(__global float *rms, __local float *batch, const float *v, int N,
                                int n0, int count)
{
    for (int k = 0; k < count; k++) batch[n0 + k] = v[k];
    merge_batch(rms, batch, 1, N);
    return rms[1];
}
#endif
