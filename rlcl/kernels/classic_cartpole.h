/* classic_cartpole.h: CartPole-v1 as gymnasium/envs/classic_control/cartpole.py writes it,
 * in float32.
 * Reference: rlcl/reference_envs.py; the conventions are classic_envs.h's.
 */
#ifndef RLCL_CLASSIC_CARTPOLE_H
#define RLCL_CLASSIC_CARTPOLE_H
#include "classic_math.h"

typedef struct {
    float gravity, masspole, total_mass, length, polemass_length, force_mag, tau;
    float theta_threshold_radians, x_threshold;
} CartPoleParams;
__constant CartPoleParams CARTPOLE = {9.8f, 0.1f, 1.1f, 0.5f, 0.05f, 10.0f, 0.02f,
                                      0.20943951023931953f /* 12 * 2 * pi / 360 */, 2.4f};

inline void cartpole_reset(float *state, uint seed, uint stream, uint env, uint episode)
{
    const uint4 u = classic_draws(seed, stream, env, episode);
    state[0] = classic_uniform(u.x, -0.05f, 0.05f);
    state[1] = classic_uniform(u.y, -0.05f, 0.05f);
    state[2] = classic_uniform(u.z, -0.05f, 0.05f);
    state[3] = classic_uniform(u.w, -0.05f, 0.05f);
}

inline int cartpole_step(float *state, int action, float *reward)
{
    __constant CartPoleParams *p = &CARTPOLE;
    float x = state[0], x_dot = state[1], theta = state[2], theta_dot = state[3];
    const float force = action == 1 ? p->force_mag : -p->force_mag;
    const float costheta = classic_cos(theta), sintheta = classic_sin(theta);
    const float temp = (force + p->polemass_length * (theta_dot * theta_dot) * sintheta)
                       / p->total_mass;
    const float thetaacc = (p->gravity * sintheta - costheta * temp)
        / (p->length * (4.0f / 3.0f - p->masspole * (costheta * costheta) / p->total_mass));
    const float xacc = temp - p->polemass_length * thetaacc * costheta / p->total_mass;
    x = x + p->tau * x_dot;  /* kinematics_integrator = "euler" */
    x_dot = x_dot + p->tau * xacc;
    theta = theta + p->tau * theta_dot;
    theta_dot = theta_dot + p->tau * thetaacc;
    state[0] = x; state[1] = x_dot; state[2] = theta; state[3] = theta_dot;
    *reward = 1.0f;  /* also on the terminating step */
    return x < -p->x_threshold || x > p->x_threshold
        || theta < -p->theta_threshold_radians || theta > p->theta_threshold_radians;
}

inline void cartpole_obs(const float *state, float *obs)
{
    for (int i = 0; i < 4; i++) obs[i] = state[i];
}
#endif
