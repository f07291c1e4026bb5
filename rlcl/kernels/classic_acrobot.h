/* classic_acrobot.h: Acrobot-v1 as gymnasium/envs/classic_control/acrobot.py writes it
 * (book_or_nips = "book", torque_noise_max = 0), in float32.
 * Reference: rlcl/reference_envs.py; the conventions are classic_envs.h's.
 */
#ifndef RLCL_CLASSIC_ACROBOT_H
#define RLCL_CLASSIC_ACROBOT_H
#include "classic_math.h"

typedef struct {
    float dt, link_length_1, link_mass_1, link_mass_2, link_com_pos_1, link_com_pos_2, link_moi;
    float max_vel_1, max_vel_2, g;
} AcrobotParams;
__constant AcrobotParams ACROBOT = {0.2f, 1.0f, 1.0f, 1.0f, 0.5f, 0.5f, 1.0f,
                                    12.566370614359172f /* 4 pi */,
                                    28.274333882308138f /* 9 pi */, 9.8f};

inline void acrobot_reset(float *state, uint seed, uint stream, uint env, uint episode)
{
    const uint4 u = classic_draws(seed, stream, env, episode);
    state[0] = classic_uniform(u.x, -0.1f, 0.1f);
    state[1] = classic_uniform(u.y, -0.1f, 0.1f);
    state[2] = classic_uniform(u.z, -0.1f, 0.1f);
    state[3] = classic_uniform(u.w, -0.1f, 0.1f);
}

/* _dsdt; x**2 is written (x * x), one rounding, as numpy squares. */
inline void acrobot_dsdt(const float *s, float a, float *ds)
{
    __constant AcrobotParams *p = &ACROBOT;
    const float m1 = p->link_mass_1, m2 = p->link_mass_2, l1 = p->link_length_1;
    const float lc1 = p->link_com_pos_1, lc2 = p->link_com_pos_2;
    const float I1 = p->link_moi, I2 = p->link_moi, g = p->g, pi = M_PI_F;
    const float theta1 = s[0], theta2 = s[1], dtheta1 = s[2], dtheta2 = s[3];
    const float d1 = m1 * (lc1 * lc1)
                     + m2 * ((l1 * l1) + (lc2 * lc2) + 2.0f * l1 * lc2 * classic_cos(theta2))
                     + I1 + I2;
    const float d2 = m2 * ((lc2 * lc2) + l1 * lc2 * classic_cos(theta2)) + I2;
    const float phi2 = m2 * lc2 * g * classic_cos(theta1 + theta2 - pi / 2.0f);
    const float phi1 = -m2 * l1 * lc2 * (dtheta2 * dtheta2) * classic_sin(theta2)
                       - 2.0f * m2 * l1 * lc2 * dtheta2 * dtheta1 * classic_sin(theta2)
                       + (m1 * lc1 + m2 * l1) * g * classic_cos(theta1 - pi / 2.0f) + phi2;
    const float ddtheta2 = (a + d2 / d1 * phi1
                            - m2 * l1 * lc2 * (dtheta1 * dtheta1) * classic_sin(theta2) - phi2)
                           / (m2 * (lc2 * lc2) + I2 - (d2 * d2) / d1);
    const float ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
    ds[0] = dtheta1; ds[1] = dtheta2; ds[2] = ddtheta1; ds[3] = ddtheta2;
}

/* wrap(): the finiteness test only keeps a corrupt (infinite) state from hanging the device. */
inline float acrobot_wrap(float x, float m, float M)
{
    const float diff = M - m;
    while (x > M && isfinite(x)) x = x - diff;
    while (x < m && isfinite(x)) x = x + diff;
    return x;
}

inline int acrobot_step(float *s, int action, float *reward)
{
    __constant AcrobotParams *p = &ACROBOT;
    const float torque = action == 0 ? -1.0f : (action == 1 ? 0.0f : 1.0f);  /* AVAIL_TORQUE */
    /* rk4(_dsdt, s + [torque], [0, dt]): one step; the torque's derivative is 0 */
    const float dt = p->dt, dt2 = dt / 2.0f;
    float k1[4], k2[4], k3[4], k4[4], y[4];
    acrobot_dsdt(s, torque, k1);
    for (int i = 0; i < 4; i++) y[i] = s[i] + dt2 * k1[i];
    acrobot_dsdt(y, torque, k2);
    for (int i = 0; i < 4; i++) y[i] = s[i] + dt2 * k2[i];
    acrobot_dsdt(y, torque, k3);
    for (int i = 0; i < 4; i++) y[i] = s[i] + dt * k3[i];
    acrobot_dsdt(y, torque, k4);
    for (int i = 0; i < 4; i++)
        s[i] = s[i] + dt / 6.0f * (k1[i] + 2.0f * k2[i] + 2.0f * k3[i] + k4[i]);
    s[0] = acrobot_wrap(s[0], -M_PI_F, M_PI_F);
    s[1] = acrobot_wrap(s[1], -M_PI_F, M_PI_F);
    s[2] = fmin(fmax(s[2], -p->max_vel_1), p->max_vel_1);  /* bound() */
    s[3] = fmin(fmax(s[3], -p->max_vel_2), p->max_vel_2);
    const int terminated = -classic_cos(s[0]) - classic_cos(s[1] + s[0]) > 1.0f;
    *reward = terminated ? 0.0f : -1.0f;
    return terminated;
}

inline void acrobot_obs(const float *s, float *obs)
{
    obs[0] = classic_cos(s[0]); obs[1] = classic_sin(s[0]);
    obs[2] = classic_cos(s[1]); obs[3] = classic_sin(s[1]);
    obs[4] = s[2]; obs[5] = s[3];
}
#endif
