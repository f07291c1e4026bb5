/* gaussian.h: the diagonal Gaussian head's draws and log-density terms, shared by gaussian.cl
 * (the rollout step and the loss) and device_rollout.cl (the rollout in one launch), so both
 * compute the same bits. Formulas: gaussian.cl.
 */
#ifndef RLCL_GAUSSIAN_H
#define RLCL_GAUSSIAN_H
#include "mlp.h"

#define HALF_LOG_2PI 0.91893853320467274f

/* Box-Muller: the uniform under the log must be in (0, 1]; (bits >> 9) + 0.5 needs only 24
 * bits, so u1 is exact in float32 and the twin reproduces it. */
inline float4 philox_normal4(uint seed, uint stream, uint n, uint step, uint iteration, uint k)
{
    const uint4 bits = philox_bits(seed, stream, n, step, iteration, k);
    const float u1 = ((float)(bits.x >> 9) + 0.5f) * (1.0f / 8388608.0f);
    const float u2 = (float)(bits.y >> 8) * (1.0f / 16777216.0f);
    const float u3 = ((float)(bits.z >> 9) + 0.5f) * (1.0f / 8388608.0f);
    const float u4 = (float)(bits.w >> 8) * (1.0f / 16777216.0f);
    const float r1 = sqrt(-2.0f * log(u1)), r2 = sqrt(-2.0f * log(u3));
    const float two_pi = 6.2831853071795865f;
    return (float4)(r1 * cos(two_pi * u2), r1 * sin(two_pi * u2),
                    r2 * cos(two_pi * u4), r2 * sin(two_pi * u4));
}

/* log N(a; mu, exp(log_std)) for eight rows in the lanes (the loss, loss.h) or one (the
 * rollout): the same operations lane by lane, so the same bits. */
inline float8 gaussian_lp_term8(float8 a, float8 mu, float log_std)
{
    const float8 z = (a - mu) / exp(log_std);
    return -0.5f * z * z - log_std - HALF_LOG_2PI;
}

inline float gaussian_lp_term(float a, float mu, float log_std)
{
    return gaussian_lp_term8((float8)(a), (float8)(mu), log_std).s0;
}
#endif
