/* device_rollout.cl: a whole rollout of a classic-control env in ONE launch (issue 11).
 *
 * rollout_classic: for t = 0 .. T-1, every env n: x = normalise(raw obs); the actor and critic
 *   forward on x, a sampled action (policy.cl's Categorical or gaussian.cl's Gaussian, same
 *   arithmetic and Philox counters (n, t, iteration), so the update recomputes the same
 *   log-probs); the env step (classic_envs.h); episode return and length (of the raw
 *   rewards, as gymnasium's RecordEpisodeStatistics); at an end, the autoreset (Philox key
 *   (seed, STREAM_ENV_RESET), counter (n, episode)) and, at a time limit, V(normalise(final
 *   obs)) for the bootstrap (SB3 issue 633). Then row T: x and V(x) for GAE. Streams: the
 *   draws use key (seed, stream_act) as the host path's policy_act, resets (seed, stream_reset).
 *   Writes the rollout storage rows t * N + n exactly as rlcl/rollout.py's host path does, the
 *   actor's outputs there (outputs[row * A ..]: the logits the update's policy_churn compares), and
 *   ep_log[2 (t N + n)] = (return, length) of an episode that ended there (ends != 0).
 *
 * Normalisation (SB3 VecNormalize, as rlcl/envs.py's wrappers), float32 running statistics
 *   (mean, var, count; start 0, 1, 1e-4) merged per step from the batch of N envs in env
 *   order, by work-item 0 between two barriers:
 *   norm_obs: after each env step the new raw observations (after autoreset) update obs_rms,
 *     then normalise; the final observation of an ended episode uses the updated statistics.
 *   norm_reward: ret = gamma ret + r updates ret_rms; the stored reward is
 *     clip(r / sqrt(var + 1e-8), +-10); ret is reset at every end.
 *
 * Layout (per agent; rollout_classic_pop runs a population, one work-group per agent, as
 * ppo_update.cl's *_pop kernels do: stride, hp):
 *   env_state [N][CLASSIC_STATE_DIM], env_int [N][2] (steps, episodes), ep_acc [N][2]
 *   (return, length), obs_rms [2 D + 1], ret_rms [3], ret_acc [N].
 * Launch: ONE work-group of ceil(N / per_item) work-items, each stepping per_item envs (the
 *   last fewer), four at a time through the networks (env_forward.h forward_env4; a rest of
 *   one to three one by one): rlcl/device.py rollout_items gives a CPU's items up to
 *   ROLLOUT_ITEM_ENVS envs and a GPU's one. The bits do not depend on it.
 *   scratch: N * 2 * width floats (width: the widest layer; env n owns 2 width from
 *   n * 2 * width, four envs' rows together); batch: N * max(D, 1) floats.
 * Reference: rlcl/reference_envs.py (envs), rlcl/reference.py policy_act (network, sampling).
 */
#include "device_rollout.h"
#ifndef ROLLOUT_ITEM_ENVS
#error "ROLLOUT_ITEM_ENVS undefined: build through rlcl.device.Device (rlcl/kernel_constants.py)"
#endif

inline void rollout_classic_body(
    __global float *obs, __global uint *actions, __global float *outputs, __global float *logp,
    __global float *values,
    __global float *rewards, __global int *ends, __global float *trunc_values,
    __global float *ep_log, __global float *env_state, __global int *env_int,
    __global float *ep_acc, __global float *obs_rms, __global float *ret_rms,
    __global float *ret_acc, __global const float *params, __global const int *layers,
    int n_actor, int n_critic, int act, int log_std_off, int env_id, int D, int max_steps,
    int T, int N, uint seed, uint stream_act, uint stream_reset, uint iteration, float gamma,
    int norm_obs, int norm_reward, int width, int per_item, __local float *scratch,
    __local float *batch)
{
    /* this work-item's envs: n0 .. n0 + count - 1 (none past N; every work-item reaches every
     * barrier) */
    const int n0 = get_local_id(0) * per_item, count = clamp(N - n0, 0, per_item);
    const int A = layers[(n_actor - 1) * 4 + 3];  /* the actor's outputs */
    const int words = log_std_off >= 0 ? A : 1;  /* per action */
    float s[ROLLOUT_ITEM_ENVS][CLASSIC_STATE_DIM], raw[ROLLOUT_ITEM_ENVS][CLASSIC_MAX_OBS_DIM];
    float fin[ROLLOUT_ITEM_ENVS][CLASSIC_MAX_OBS_DIM], r[ROLLOUT_ITEM_ENVS];
    float ep_ret[ROLLOUT_ITEM_ENVS], ep_len[ROLLOUT_ITEM_ENVS], ret[ROLLOUT_ITEM_ENVS];
    int steps[ROLLOUT_ITEM_ENVS], episodes[ROLLOUT_ITEM_ENVS], done[ROLLOUT_ITEM_ENVS];
    for (int k = 0; k < count; k++) {
        const int n = n0 + k;
        for (int i = 0; i < CLASSIC_STATE_DIM; i++) s[k][i] = env_state[n * CLASSIC_STATE_DIM + i];
        steps[k] = env_int[2 * n]; episodes[k] = env_int[2 * n + 1];
        ep_ret[k] = ep_acc[2 * n]; ep_len[k] = ep_acc[2 * n + 1];
        ret[k] = norm_reward ? ret_acc[n] : 0.0f;
        for (int i = 0; i < CLASSIC_MAX_OBS_DIM; i++) raw[k][i] = 0.0f;
        classic_obs(env_id, s[k], raw[k]);
    }
    for (int t = 0; t <= T; t++) {
        /* V(x) of every env's normalised observation, four envs at a time where four are left
         * (forward_env4), env n's rows in its own 2 width floats of scratch */
        for (int b = 0; b < count; b += 4) {
            const int nr = min(4, count - b);
            __local float *ha = scratch + (n0 + b) * 2 * width;
            for (int k = b; k < b + nr; k++) {
                __global float *x = obs + (t * N + n0 + k) * D;
                __local float *h = nr == 4 ? ha + (k - b) * width : scratch + (n0 + k) * 2 * width;
                for (int i = 0; i < D; i++) {
                    x[i] = norm_obs ? normalize_obs(raw[k][i], obs_rms, i, D) : raw[k][i];
                    h[i] = x[i];
                }
            }
            if (nr == 4) {
                __local float *v = forward_env4(params, layers, n_actor, n_critic, act, ha,
                                                ha + 4 * width, width);
                for (int k = 0; k < 4; k++) values[t * N + n0 + b + k] = v[k * width];
            } else
                for (int k = b; k < b + nr; k++) {
                    __local float *h = scratch + (n0 + k) * 2 * width;
                    values[t * N + n0 + k] = value_of(params, layers, n_actor, n_critic, act, h,
                                                      h + width);
                }
        }
        if (t == T) break;
        /* the actor's outputs, then per env the draw and the env step */
        for (int b = 0; b < count; b += 4) {
            const int nr = min(4, count - b);
            __local float *ha = scratch + (n0 + b) * 2 * width;
            for (int k = b; k < b + nr; k++) {
                __local float *h = nr == 4 ? ha + (k - b) * width : scratch + (n0 + k) * 2 * width;
                load_input(h, obs + (t * N + n0 + k) * D, D);
            }
            __local float *out4 = nr == 4 ? forward_env4(params, layers, 0, n_actor, act, ha,
                                                         ha + 4 * width, width) : 0;
            const int drawn4 = nr == 4 && log_std_off < 0 && A <= 2;  /* uniform */
            if (drawn4)
                draw_actions4(actions, outputs, logp, out4, width, A, seed, stream_act,
                              n0 + b, t * N + n0 + b, (uint)t, iteration);
            for (int k = b; k < b + nr; k++) {
                const int n = n0 + k, row = t * N + n;
                __local float *h = scratch + n * 2 * width;
                if (!drawn4) {
                    __local const float *out = nr == 4 ? out4 + (k - b) * width
                                                       : forward_env(params, layers, 0, n_actor,
                                                                     act, h, h + width);
                    logp[row] = draw_action(actions + row * words, outputs + row * A, out,
                                            params, A, log_std_off, seed, stream_act, (uint)n,
                                            (uint)t, iteration);
                }
                const int term = classic_step(env_id, s[k], actions[row * words], &r[k]);
                steps[k] += 1;
                const int trunc = !term && steps[k] >= max_steps;
                ep_ret[k] += r[k]; ep_len[k] += 1.0f;
                ep_log[2 * row] = ep_ret[k];
                ep_log[2 * row + 1] = (term || trunc) ? ep_len[k] : 0.0f;
                ends[row] = term ? 1 : (trunc ? 2 : 0);
                done[k] = term ? 1 : (trunc ? 2 : 0);
                classic_obs(env_id, s[k], fin[k]);
                if (term || trunc) {
                    ep_ret[k] = 0.0f; ep_len[k] = 0.0f; steps[k] = 0; episodes[k] += 1;
                    classic_reset(env_id, s[k], seed, stream_reset, (uint)n, (uint)episodes[k]);
                }
                classic_obs(env_id, s[k], raw[k]);
            }
        }
        if (norm_obs)  /* uniform: the whole group merges the batch of new observations */
            merge_obs_batch(obs_rms, batch, raw, D, N, n0, count);
        if (norm_reward) {
            for (int k = 0; k < count; k++) ret[k] = gamma * ret[k] + r[k];
            const float var = merge_scalar_batch(ret_rms, batch, ret, N, n0, count);
            for (int k = 0; k < count; k++) {
                r[k] = clamp(r[k] / sqrt(var + 1e-8f), -10.0f, 10.0f);
                if (done[k]) ret[k] = 0.0f;
            }
        }
        for (int k = 0; k < count; k++) {
            const int n = n0 + k, row = t * N + n;
            rewards[row] = r[k];
            trunc_values[row] = 0.0f;
            if (done[k] == 2) {  /* V(final obs), normalised with the statistics that now hold */
                __local float *h = scratch + n * 2 * width;
                for (int i = 0; i < D; i++)
                    h[i] = norm_obs ? normalize_obs(fin[k][i], obs_rms, i, D) : fin[k][i];
                trunc_values[row] = value_of(params, layers, n_actor, n_critic, act, h, h + width);
            }
        }
    }
    for (int k = 0; k < count; k++) {
        const int n = n0 + k;
        for (int i = 0; i < CLASSIC_STATE_DIM; i++) env_state[n * CLASSIC_STATE_DIM + i] = s[k][i];
        env_int[2 * n] = steps[k]; env_int[2 * n + 1] = episodes[k];
        ep_acc[2 * n] = ep_ret[k]; ep_acc[2 * n + 1] = ep_len[k];
        if (norm_reward) ret_acc[n] = ret[k];
    }
}

__kernel void rollout_classic(
    __global float *obs, __global uint *actions, __global float *outputs, __global float *logp,
    __global float *values,
    __global float *rewards, __global int *ends, __global float *trunc_values,
    __global float *ep_log, __global float *env_state, __global int *env_int,
    __global float *ep_acc, __global float *obs_rms, __global float *ret_rms,
    __global float *ret_acc, __global const float *params, __global const int *layers,
    int n_actor, int n_critic, int act, int log_std_off, int env_id, int D, int max_steps,
    int T, int N, uint seed, uint stream_act, uint stream_reset, uint iteration, float gamma,
    int norm_obs, int norm_reward, int width, int per_item, __local float *scratch,
    __local float *batch)
{
    rollout_classic_body(obs, actions, outputs, logp, values, rewards, ends, trunc_values,
                         ep_log, env_state, env_int, ep_acc, obs_rms, ret_rms, ret_acc, params,
                         layers, n_actor, n_critic, act, log_std_off, env_id, D, max_steps, T,
                         N, seed, stream_act, stream_reset, iteration, gamma, norm_obs,
                         norm_reward, width, per_item, scratch, batch);
}

/* Every agent of a population: work-group (0, a) runs agent a (seed and gamma: its hp row). */
__kernel void rollout_classic_pop(
    __global float *obs, __global uint *actions, __global float *outputs, __global float *logp,
    __global float *values,
    __global float *rewards, __global int *ends, __global float *trunc_values,
    __global float *ep_log, __global float *env_state, __global int *env_int,
    __global float *ep_acc, __global float *obs_rms, __global float *ret_rms,
    __global float *ret_acc, __global const float *params, __global const int *layers,
    __global const int *stride, __global const uint *hp,
    int n_actor, int n_critic, int act, int log_std_off, int env_id, int D, int max_steps,
    int T, int N, uint stream_act, uint stream_reset, uint iteration,
    int norm_obs, int norm_reward, int width, int per_item, __local float *scratch,
    __local float *batch)
{
    const int a = get_group_id(1);
    __global const uint *h = hp + a * AGENT_HP;
    rollout_classic_body(obs + a * stride[0], actions + a * stride[1], outputs + a * stride[2],
                         logp + a * stride[3], values + a * stride[4], rewards + a * stride[5],
                         ends + a * stride[6], trunc_values + a * stride[7],
                         ep_log + a * stride[8], env_state + a * stride[9],
                         env_int + a * stride[10], ep_acc + a * stride[11],
                         obs_rms + a * stride[12], ret_rms + a * stride[13],
                         ret_acc + a * stride[14], params + a * stride[15],
                         layers + a * stride[16], n_actor, n_critic, act, log_std_off, env_id, D,
                         max_steps, T, N, h[HP_SEED], stream_act, stream_reset, iteration,
                         as_float(h[HP_GAMMA]), norm_obs, norm_reward, width, per_item, scratch,
                         batch);
}

/* rollout_classic_reset: every env n < N starts its first episode (episode 0) and, with
 * norm_obs, the initial observations update obs_rms (gymnasium's reset does). One work-group
 * of N work-items, as rollout_classic. */
__kernel void rollout_classic_reset(__global float *env_state, __global int *env_int,
                                    __global float *ep_acc, __global float *obs_rms,
                                    __global float *ret_acc, int env_id, int D, int N,
                                    uint seed, uint stream_reset, int norm_obs,
                                    __local float *batch)
{
    const int n = get_local_id(0);
    const int live = n < N;
    float s[CLASSIC_STATE_DIM], raw[CLASSIC_MAX_OBS_DIM] = {0};
    if (live) {
        classic_reset(env_id, s, seed, stream_reset, (uint)n, 0u);
        classic_obs(env_id, s, raw);
        for (int i = 0; i < CLASSIC_STATE_DIM; i++) env_state[n * CLASSIC_STATE_DIM + i] = s[i];
        env_int[2 * n] = 0; env_int[2 * n + 1] = 0;
        ep_acc[2 * n] = 0.0f; ep_acc[2 * n + 1] = 0.0f; ret_acc[n] = 0.0f;
    }
    if (norm_obs) merge_obs_batch(obs_rms, batch, &raw, D, N, n, live);
}
