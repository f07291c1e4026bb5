/* classic_envs.h: gymnasium 1.4's five classic-control envs as float32 OpenCL functions, and a
 * dispatch on a runtime env_id so that one kernel serves them all.
 *
 * Each env (classic_<env>.h) follows its gymnasium file line by line: the same equations in the
 * same evaluation order, the same clipping, wrapping, rewards, termination and reset ranges,
 * in float32 where gymnasium mostly computes in float64. Per env:
 *   <env>_reset(state, seed, stream, env, episode)     state <- a reset draw
 *   <env>_step(state, action, &reward) -> terminated    state <- the next state
 *   <env>_obs(state, obs)                                the observation gymnasium returns
 * state is one env's CLASSIC_STATE_DIM private floats (classic_reset zeroes the unused ones):
 * a kernel loads an env's slice, steps it and stores it back, so it indexes envs (and later
 * agents) as it likes. The env ids, CLASSIC_STATE_DIM and CLASSIC_MAX_OBS_DIM are build
 * options from rlcl/device_envs.py. Time limits are the caller's, as gymnasium's TimeLimit is
 * a wrapper: steps += 1; truncated = steps >= max_episode_steps, also on a termination.
 * CartPole's reward is 1 on every step: gymnasium's 0 for steps after a termination never
 * happens, since an ended episode is reset.
 *
 * Randomness: one Philox4x32-10 block per reset, key (seed, stream), counter
 * (env, episode, 0, 0); its four words give up to four uniforms u = (bits >> 8) 2^-24, mapped
 * to [low, high] as low + (high - low) * u, the way numpy's uniform maps its draws.
 *
 * sin and cos are classic_math.h's, not the builtins: PoCL's builtins are not correctly
 * rounded (about 1 float32 argument in 5 gives a result one ulp away from numpy's), and a
 * builtin may round differently in scalar and vector code (common.h, tanh). Made of + - * only,
 * classic_sin/cos give the same bits on every IEEE device and in numpy, so the twins reproduce
 * whole trajectories bit for bit.
 *
 * Constants: the float32 roundings of gymnasium's, in one params record per env (as gymnax).
 * Reference: rlcl/reference_envs.py (bit-identical twins); tests/test_env_kernels.py.
 */
#ifndef RLCL_CLASSIC_ENVS_H
#define RLCL_CLASSIC_ENVS_H
#if !defined(CLASSIC_CARTPOLE) || !defined(CLASSIC_ACROBOT) || !defined(CLASSIC_MOUNTAIN_CAR) \
    || !defined(CLASSIC_MOUNTAIN_CAR_CONTINUOUS) || !defined(CLASSIC_PENDULUM) \
    || !defined(CLASSIC_STATE_DIM) || !defined(CLASSIC_MAX_OBS_DIM)
#error "build through rlcl.device.Device: the CLASSIC_* ids and sizes come from rlcl/device_envs.py"
#endif
#include "classic_cartpole.h"
#include "classic_acrobot.h"
#include "classic_mountain_car.h"
#include "classic_pendulum.h"

inline void classic_reset(int env_id, float *state, uint seed, uint stream, uint env,
                          uint episode)
{
    for (int i = 0; i < CLASSIC_STATE_DIM; i++) state[i] = 0.0f;
    switch (env_id) {
    case CLASSIC_CARTPOLE: cartpole_reset(state, seed, stream, env, episode); break;
    case CLASSIC_ACROBOT: acrobot_reset(state, seed, stream, env, episode); break;
    case CLASSIC_MOUNTAIN_CAR:
    case CLASSIC_MOUNTAIN_CAR_CONTINUOUS:
        mountain_car_reset(state, seed, stream, env, episode); break;
    case CLASSIC_PENDULUM: pendulum_reset(state, seed, stream, env, episode); break;
    }
}

/* ACTION is the rollout storage's 32-bit word: an int for Discrete envs, a float for Box envs,
 * clipped here to the action space as the host path's ActorCritic.env_actions does. */
inline int classic_step(int env_id, float *state, uint action, float *reward)
{
    switch (env_id) {
    case CLASSIC_CARTPOLE: return cartpole_step(state, as_int(action), reward);
    case CLASSIC_ACROBOT: return acrobot_step(state, as_int(action), reward);
    case CLASSIC_MOUNTAIN_CAR: return mountain_car_step(state, as_int(action), reward);
    case CLASSIC_MOUNTAIN_CAR_CONTINUOUS: {
        __constant MountainCarParams *p = &MOUNTAIN_CAR_CONTINUOUS;
        const float a = clamp(as_float(action), p->min_action, p->max_action);
        return mountain_car_continuous_step(state, a, reward);
    }
    case CLASSIC_PENDULUM:
        return pendulum_step(state, clamp(as_float(action), -PENDULUM.max_torque,
                                          PENDULUM.max_torque), reward);
    }
    *reward = NAN;  /* an unknown id: make the mistake visible rather than plausible */
    return 1;
}

inline void classic_obs(int env_id, const float *state, float *obs)
{
    switch (env_id) {
    case CLASSIC_CARTPOLE: cartpole_obs(state, obs); break;
    case CLASSIC_ACROBOT: acrobot_obs(state, obs); break;
    case CLASSIC_MOUNTAIN_CAR:
    case CLASSIC_MOUNTAIN_CAR_CONTINUOUS: mountain_car_obs(state, obs); break;
    case CLASSIC_PENDULUM: pendulum_obs(state, obs); break;
    }
}
#endif
