/* common.h: shared by every rlcl kernel file.
 *
 * FP_CONTRACT OFF forbids fused multiply-add contraction, so a given device gives
 * bit-identical results whatever its compiler decides.
 * Reductions in rlcl are always written as loops in a fixed order; there are no float
 * atomics anywhere.
 */
#ifndef RLCL_COMMON_H
#define RLCL_COMMON_H
#pragma OPENCL FP_CONTRACT OFF

/* Constants shared with the host come from rlcl/kernel_constants.py as -D options
 * (rlcl/device.py adds them to every build); each file checks for the ones it uses. */
#if !defined(ACT_IDENTITY) || !defined(ACT_TANH) || !defined(ACT_RELU)
#error "activation ids undefined: build through rlcl.device.Device (rlcl/kernel_constants.py)"
#endif

/* A population's per-agent row of scalars (issue 13; kernel_constants.AGENT_COLUMNS), read by
 * the *_pop kernels. */
#if !defined(AGENT_HP) || !defined(HP_CLIP_COEF) || !defined(HP_CLIP_VLOSS) || \
    !defined(HP_ENT_COEF) || !defined(HP_VF_COEF) || !defined(HP_NORM_ADV) || \
    !defined(HP_INJECT_NAN) || !defined(HP_MAX_NORM) || !defined(HP_SKIP_ABOVE) || \
    !defined(HP_LR) || !defined(HP_MOMENTUM) || !defined(HP_DAMPENING) || \
    !defined(HP_WEIGHT_DECAY) || !defined(HP_NESTEROV) || !defined(HP_FIRST) || \
    !defined(HP_SEED) || !defined(HP_GAMMA) || !defined(HP_GAE_LAMBDA)
#error "AGENT_HP / HP_* undefined: build through rlcl.device.Device (rlcl/kernel_constants.py)"
#endif

/* Eight floats from P + K as scalars that the compiler merges into one vector load (and the
 * store likewise): PoCL 3.0 calls its vload8 / vstore8 out of line, slower than this. */
#define LOAD8(p, k) (p)[k], (p)[k + 1], (p)[k + 2], (p)[k + 3], (p)[k + 4], (p)[k + 5], \
                    (p)[k + 6], (p)[k + 7]
#define STORE8(v, p, k, s0, s1, s2, s3, s4, s5, s6, s7)                                    \
    (p)[k] = (v).s0; (p)[k + 1] = (v).s1; (p)[k + 2] = (v).s2; (p)[k + 3] = (v).s3;          \
    (p)[k + 4] = (v).s4; (p)[k + 5] = (v).s5; (p)[k + 6] = (v).s6; (p)[k + 7] = (v).s7

/* Rows in float8 lanes (issue 13): a loop that takes eight rows b .. b + 7 at once, a row per
 * lane, so that the categorical heads' exp and log are float8 calls (loss.h, policy.cl). Lanes
 * past the last row M - 1 repeat it and are masked (rows_live) or not stored. */
#define ROW8(p, b, M, stride, j, k) (p)[min((b) + (k), (M) - 1) * (stride) + (j)]
inline float8 rows8(__global const float *p, int b, int M, int stride, int j)
{
    return (float8)(ROW8(p, b, M, stride, j, 0), ROW8(p, b, M, stride, j, 1),
                    ROW8(p, b, M, stride, j, 2), ROW8(p, b, M, stride, j, 3),
                    ROW8(p, b, M, stride, j, 4), ROW8(p, b, M, stride, j, 5),
                    ROW8(p, b, M, stride, j, 6), ROW8(p, b, M, stride, j, 7));
}

inline int8 rows8_int(__global const int *p, int b, int M)
{
    return (int8)(ROW8(p, b, M, 1, 0, 0), ROW8(p, b, M, 1, 0, 1), ROW8(p, b, M, 1, 0, 2),
                  ROW8(p, b, M, 1, 0, 3), ROW8(p, b, M, 1, 0, 4), ROW8(p, b, M, 1, 0, 5),
                  ROW8(p, b, M, 1, 0, 6), ROW8(p, b, M, 1, 0, 7));
}

/* -1 in the lanes that hold a row (b + k < M), 0 past the end */
inline int8 rows_live(int b, int M)
{
    return (int8)(b) + (int8)(0, 1, 2, 3, 4, 5, 6, 7) < (int8)(M);
}

inline void store_rows8(__global float *p, float8 v, int b, int M, int stride, int j)
{
    float t[8];
    STORE8(v, t, 0, s0, s1, s2, s3, s4, s5, s6, s7);
    for (int k = 0; k < 8 && b + k < M; k++) p[(b + k) * stride + j] = t[k];
}

/* The lanes of a float8 folded in one fixed order, ((0 4)(2 6))((1 5)(3 7)), through a volatile
 * private array: taken directly, clang turns the sums into vector shuffles, on which Oclgrind
 * 21.10's uninitialised-value checker crashed. Once per work-item per call: no cost. */
#define FOLD8(v, op)                                                                         \
    volatile float t_[8];                                                                    \
    STORE8(v, t_, 0, s0, s1, s2, s3, s4, s5, s6, s7);                                        \
    return op(op(op(t_[0], t_[4]), op(t_[2], t_[6])), op(op(t_[1], t_[5]), op(t_[3], t_[7])))
#define PLUS_(a, b) ((a) + (b))
inline float fold_sum8(float8 v) { FOLD8(v, PLUS_); }
inline float fold_max8(float8 v) { FOLD8(v, fmax); }
inline float fold_min8(float8 v) { FOLD8(v, fmin); }

/* tanh, rlcl's own (issue 12): x P(x^2) / Q(x^2), a 13/6 odd rational function fitted to tanh
 * on [0, 9] (minimax of the relative error, 0.11 float32 ulp before rounding), evaluated by
 * Horner in float32: at most 6 ulp from the true tanh (measured on every third positive
 * float32; the function is odd), and +-1 from |x| >= 9, infinities included. PoCL's builtin took 1.1-2.2 ns a value, about a fifth of the whole
 * update at 64x64; this is multiplies, adds and one divide, a few cycles per float8. Plain
 * IEEE operations (FP_CONTRACT OFF), so every width, scalar or vector, gives the same bits,
 * and so does its numpy twin (rlcl/reference.py tanh32) where division is correctly rounded.
 * A NaN stays NaN (the comparison is false), for the divergence guard to see. */
inline float8 tanh8(float8 x)
{
    const float8 x2 = x * x;
    float8 p = (float8)(-0x1.7e4ccep-44f);
    p = p * x2 + 0x1.d0416ep-35f;
    p = p * x2 - 0x1.5b77c8p-26f;
    p = p * x2 + 0x1.7646f2p-17f;
    p = p * x2 + 0x1.96d78ep-9f;
    p = p * x2 + 0x1.0bf5e8p-3f;
    p = p * x2 + 1.0f;
    float8 q = (float8)(0x1.0afba4p-12f);
    q = q * x2 + 0x1.915442p-6f;
    q = q * x2 + 0x1.db5044p-2f;
    q = q * x2 + 1.0f;
    /* |x| >= 9 ? copysign(1, x) : x p / q, all as bit operations: PoCL calls its fabs,
     * copysign and select (and the ?: it lowers to select) out of line, at more cost than
     * the whole rational function */
    const uint8 sign = as_uint8(x) & 0x80000000u;
    const int8 big = as_float8(as_uint8(x) ^ sign) >= 9.0f;  /* -1 where |x| >= 9 */
    return as_float8((as_int8(sign | 0x3f800000u) & big) | (as_int8((x * p) / q) & ~big));
}

/* Every activation goes through activate8 (a float4 or a scalar in a float8's lanes), one
 * code path for the rollout's log-probabilities and the update's. */
inline float8 activate8(float8 x, int act)
{
    if (act == ACT_TANH) return tanh8(x);
    if (act == ACT_RELU) return fmax(x, (float8)(0.0f));
    return x;
}

inline float4 activate4(float4 x, int act)
{
    return activate8((float8)(x, x), act).lo;
}

inline float activate(float x, int act)
{
    return activate4((float4)(x), act).x;
}

/* The derivative written in terms of the activation's OUTPUT y, so the backward pass
 * needs only the cached activations: tanh' = 1 - y^2, relu' = [y > 0]. */
inline float activate_grad(float y, int act)
{
    if (act == ACT_TANH) return 1.0f - y * y;
    if (act == ACT_RELU) return y > 0.0f ? 1.0f : 0.0f;
    return 1.0f;
}

/* Which half of a loss a call computes: both (the separate loss kernels), the policy's (its
 * gradient and every statistic but the value loss) or the value's (its gradient and the value
 * loss). ppo_update.cl runs the halves in two work-groups at once, one per network (issue 12);
 * each statistic is its own tree, so either way it has the same bits. */
#define LOSS_BOTH 0
#define LOSS_POLICY 1
#define LOSS_VALUE 2

/* R[0] = the sum of R[0 .. n-1] (n a power of two) in the order of a halving tree: at stride
 * s = n/2, n/4, .. 1, R[i] += R[i + s] for i < s. Run by ONE work-item, so that the kernels
 * that fuse many phases (ppo_update.cl) hold no barrier inside a loop but the phase loop itself:
 * PoCL's work-group compiler is slow on many barrier loops (eight once hung it). */
inline void tree_sum(__local float *r, int n)
{
    for (int stride = n / 2; stride > 0; stride /= 2)
        for (int i = 0; i < stride; i++) r[i] += r[i + stride];
}

/* The sum of N lanes' partials in scratch[0 .. N-1] (N a power of two, the lanes virtual or
 * the work-items) in tree_sum's order, by one work-item; every work-item gets it. */
inline float lanes_total(__local float *scratch, int n)
{
    barrier(CLK_LOCAL_MEM_FENCE);
    if (get_local_id(0) == 0) tree_sum(scratch, n);
    barrier(CLK_LOCAL_MEM_FENCE);
    const float total = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE); /* scratch is reused by the next call */
    return total;
}

/* Sum V over the work-group in tree_sum's fixed order; every work-item gets the total.
 * SCRATCH holds get_local_size(0) floats; the local size must be a power of two. */
inline float group_sum(float v, __local float *scratch)
{
    scratch[get_local_id(0)] = v;
    return lanes_total(scratch, get_local_size(0));
}

#endif
