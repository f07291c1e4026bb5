/* classic_envs.cl: N copies of one classic-control env (classic_envs.h), reset or stepped in one
 * launch. These kernels test the header's functions against their twins and gymnasium; the
 * fused rollout calls the same functions.
 *
 * env_reset: for env n < N, state[n] <- a reset draw with Philox key (seed, stream) and counter
 *   (n, episode, 0, 0); steps[n] <- 0; obs[n] <- its observation.
 * env_step: for env n < N, state[n] <- the next state under actions[n] (a 32-bit word: int for
 *   Discrete envs, float for Box envs); rewards[n], terminated[n]; steps[n] += 1 and
 *   truncated[n] = steps[n] >= max_steps (gymnasium's TimeLimit: also on a termination);
 *   obs[n] <- the next observation. No autoreset: the caller resets.
 *
 * Layout: state [N][CLASSIC_STATE_DIM] floats, obs [N][obs_dim], one int or word per env for
 * the rest. Each env's slice is found once at the top, so an agent index (a second NDRange
 * dimension over agents' slices) only changes those lines.
 * Launch: global (N), one work-item per env.
 * Reference: rlcl/reference_envs.py env_reset, env_step.
 */
#include "classic_envs.h"

__kernel void env_reset(__global float *obs, __global float *state, __global int *steps,
                        int env_id, int obs_dim, int N, uint seed, uint stream, uint episode)
{
    const int n = get_global_id(0);
    if (n >= N) return;
    __global float *state_n = state + n * CLASSIC_STATE_DIM;
    __global float *obs_n = obs + n * obs_dim;

    float s[CLASSIC_STATE_DIM], o[CLASSIC_MAX_OBS_DIM];
    classic_reset(env_id, s, seed, stream, (uint)n, episode);
    classic_obs(env_id, s, o);
    for (int i = 0; i < CLASSIC_STATE_DIM; i++) state_n[i] = s[i];
    for (int i = 0; i < obs_dim; i++) obs_n[i] = o[i];
    steps[n] = 0;
}

__kernel void env_step(__global float *obs, __global float *rewards, __global int *terminated,
                       __global int *truncated, __global float *state, __global int *steps,
                       __global const uint *actions, int env_id, int obs_dim, int max_steps,
                       int N)
{
    const int n = get_global_id(0);
    if (n >= N) return;
    __global float *state_n = state + n * CLASSIC_STATE_DIM;
    __global float *obs_n = obs + n * obs_dim;

    float s[CLASSIC_STATE_DIM], o[CLASSIC_MAX_OBS_DIM], r;
    for (int i = 0; i < CLASSIC_STATE_DIM; i++) s[i] = state_n[i];
    const int term = classic_step(env_id, s, actions[n], &r);
    classic_obs(env_id, s, o);
    const int t = steps[n] + 1;
    for (int i = 0; i < CLASSIC_STATE_DIM; i++) state_n[i] = s[i];
    for (int i = 0; i < obs_dim; i++) obs_n[i] = o[i];
    rewards[n] = r;
    terminated[n] = term;
    truncated[n] = t >= max_steps;
    steps[n] = t;
}
