/* classic_pendulum.h: Pendulum-v1 (g = 10) as gymnasium/envs/classic_control/pendulum.py
 * writes it, in float32.
 * Reference: rlcl/reference_envs.py; the conventions are classic_envs.h's.
 */
#ifndef RLCL_CLASSIC_PENDULUM_H
#define RLCL_CLASSIC_PENDULUM_H
#include "classic_math.h"

typedef struct { float max_speed, max_torque, dt, g, m, l; } PendulumParams;
__constant PendulumParams PENDULUM = {8.0f, 2.0f, 0.05f, 10.0f, 1.0f, 1.0f};

inline void pendulum_reset(float *state, uint seed, uint stream, uint env, uint episode)
{
    const uint4 u = classic_draws(seed, stream, env, episode);
    state[0] = classic_uniform(u.x, -M_PI_F, M_PI_F);  /* DEFAULT_X */
    state[1] = classic_uniform(u.y, -1.0f, 1.0f);  /* DEFAULT_Y */
}

/* ((x + pi) % (2 pi)) - pi: Python's % takes the divisor's sign, fmod the dividend's. */
inline float pendulum_angle_normalize(float x)
{
    float r = fmod(x + M_PI_F, 2.0f * M_PI_F);
    if (r < 0.0f) r += 2.0f * M_PI_F;
    return r - M_PI_F;
}

inline int pendulum_step(float *state, float u, float *reward)
{
    __constant PendulumParams *p = &PENDULUM;
    const float th = state[0], thdot = state[1], g = p->g, m = p->m, l = p->l, dt = p->dt;
    u = clamp(u, -p->max_torque, p->max_torque);
    const float an = pendulum_angle_normalize(th);
    const float costs = an * an + 0.1f * (thdot * thdot) + 0.001f * (u * u);
    float newthdot = thdot
                     + (3.0f * g / (2.0f * l) * classic_sin(th) + 3.0f / (m * (l * l)) * u) * dt;
    newthdot = clamp(newthdot, -p->max_speed, p->max_speed);
    state[0] = th + newthdot * dt;  /* theta is never wrapped: only the cost normalises it */
    state[1] = newthdot;
    *reward = -costs;
    return 0;
}

inline void pendulum_obs(const float *state, float *obs)
{
    obs[0] = classic_cos(state[0]); obs[1] = classic_sin(state[0]); obs[2] = state[1];
}
#endif
