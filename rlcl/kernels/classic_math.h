/* classic_math.h: what the device envs share: reset draws and a reproducible sin and cos.
 * Reference: rlcl/reference_envs.py uniform, sincos.
 */
#ifndef RLCL_CLASSIC_MATH_H
#define RLCL_CLASSIC_MATH_H
#include "mlp.h"

inline uint4 classic_draws(uint seed, uint stream, uint env, uint episode)
{
    return philox_bits(seed, stream, env, episode, 0u, 0u);
}

inline float classic_uniform(uint bits, float low, float high)
{
    return low + (high - low) * ((float)(bits >> 8) * (1.0f / 16777216.0f));
}

/* sin (want_cos = 0) or cos (1) of x: Cody-Waite reduction by pi/4 in three parts and
 * minimax polynomials on [-pi/4, pi/4], constants from Cephes' sinf.c/cosf.c (S. L. Moshier).
 * Error <= 2 ulp for |x| <= 4, <= 1e-7 absolute for |x| <= 1000 (tests/test_env_kernels.py);
 * the envs' arguments stay far below that (Pendulum's unwrapped theta grows 0.4 a step at most). */
inline float classic_sincos(float x, int want_cos)
{
    const float ax = fabs(x);
    int j = (int)(ax * 1.27323954473516f);  /* 4 / pi: octant */
    float y = (float)j;
    if (j & 1) { j += 1; y += 1.0f; }
    j &= 7;
    float sign = (!want_cos && x < 0.0f) ? -1.0f : 1.0f;
    if (j > 3) { sign = -sign; j -= 4; }
    if (want_cos && j > 1) sign = -sign;
    const float r = ((ax - y * 0.78515625f) - y * 2.4187564849853515625e-4f)
                    - y * 3.77489497744594108e-8f;
    const float z = r * r;
    const float s = ((-1.9515295891e-4f * z + 8.3321608736e-3f) * z - 1.6666654611e-1f) * z * r + r;
    const float c = ((2.443315711809948e-5f * z - 1.388731625493765e-3f) * z
                     + 4.166664568298827e-2f) * z * z - 0.5f * z + 1.0f;
    return sign * (((j == 1 || j == 2) != want_cos) ? c : s);
}

inline float classic_sin(float x) { return classic_sincos(x, 0); }
inline float classic_cos(float x) { return classic_sincos(x, 1); }
#endif
