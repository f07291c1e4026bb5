/* classic_mountain_car.h: MountainCar-v0 and MountainCarContinuous-v0 as gymnasium's
 * envs/classic_control/mountain_car.py and continuous_mountain_car.py write them, in float32.
 * Reference: rlcl/reference_envs.py; the conventions are classic_envs.h's.
 */
#ifndef RLCL_CLASSIC_MOUNTAIN_CAR_H
#define RLCL_CLASSIC_MOUNTAIN_CAR_H
#include "classic_math.h"

typedef struct {
    float min_position, max_position, max_speed, goal_position, goal_velocity;
    float force, gravity;  /* MountainCar-v0 */
    float min_action, max_action, power;  /* MountainCarContinuous-v0 */
} MountainCarParams;
__constant MountainCarParams MOUNTAIN_CAR = {-1.2f, 0.6f, 0.07f, 0.5f, 0.0f, 0.001f, 0.0025f};
__constant MountainCarParams MOUNTAIN_CAR_CONTINUOUS = {-1.2f, 0.6f, 0.07f, 0.45f, 0.0f,
                                                        0.0f, 0.0f, -1.0f, 1.0f, 0.0015f};

inline void mountain_car_reset(float *state, uint seed, uint stream, uint env, uint episode)
{
    state[0] = classic_uniform(classic_draws(seed, stream, env, episode).x, -0.6f, -0.4f);
    state[1] = 0.0f;
}

inline int mountain_car_step(float *state, int action, float *reward)
{
    __constant MountainCarParams *p = &MOUNTAIN_CAR;
    float position = state[0], velocity = state[1];
    velocity += (float)(action - 1) * p->force + classic_cos(3.0f * position) * (-p->gravity);
    velocity = clamp(velocity, -p->max_speed, p->max_speed);
    position += velocity;
    position = clamp(position, p->min_position, p->max_position);
    if (position == p->min_position && velocity < 0.0f) velocity = 0.0f;
    state[0] = position; state[1] = velocity;
    *reward = -1.0f;
    return position >= p->goal_position && velocity >= p->goal_velocity;
}

/* ACTION is the raw action, unclipped: gymnasium clips it for the force but squares the
 * raw value in the reward (classic_step passes it clipped to the action space first). */
inline int mountain_car_continuous_step(float *state, float action, float *reward)
{
    __constant MountainCarParams *p = &MOUNTAIN_CAR_CONTINUOUS;
    float position = state[0], velocity = state[1];
    const float force = fmin(fmax(action, p->min_action), p->max_action);
    velocity += force * p->power - 0.0025f * classic_cos(3.0f * position);
    if (velocity > p->max_speed) velocity = p->max_speed;
    if (velocity < -p->max_speed) velocity = -p->max_speed;
    position += velocity;
    if (position > p->max_position) position = p->max_position;
    if (position < p->min_position) position = p->min_position;
    if (position == p->min_position && velocity < 0.0f) velocity = 0.0f;
    state[0] = position; state[1] = velocity;
    const int terminated = position >= p->goal_position && velocity >= p->goal_velocity;
    *reward = (terminated ? 100.0f : 0.0f) - (action * action) * 0.1f;
    return terminated;
}

inline void mountain_car_obs(const float *state, float *obs)
{
    obs[0] = state[0]; obs[1] = state[1];
}
#endif
