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

/* tanh is always computed as the float8 builtin, also for four values or one: PoCL's vector
 * tanh is about 5x faster than its scalar one (1.4 vs 7.3 ns per element on this CPU, issue 6),
 * its float8 twice as fast per element as its float4 (1.1 vs 2.2 ns, issue 12), and the widths
 * are not all bit-identical (scalar and vector differ on PoCL; float4 and float8 agreed on every
 * 16th float32 bit pattern there, but need not elsewhere). So every kernel must take its tanh
 * from activate8, for the rollout's log-probabilities to equal the update's and linear_x4.cl to
 * equal linear.cl. A float4 through the float8 costs what the float4 builtin did. */
inline float8 activate8(float8 x, int act)
{
    if (act == ACT_TANH) return tanh(x);
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

/* R[0] = the sum of R[0 .. n-1] (n a power of two) in the order of a halving tree: at stride
 * s = n/2, n/4, .. 1, R[i] += R[i + s] for i < s. Run by ONE work-item, so that the kernels
 * that fuse many phases (ppo_update.cl) hold no barrier inside a loop but the phase loop itself:
 * PoCL's work-group compiler is slow on many barrier loops (eight once hung it). */
inline void tree_sum(__local float *r, int n)
{
    for (int stride = n / 2; stride > 0; stride /= 2)
        for (int i = 0; i < stride; i++) r[i] += r[i + stride];
}

/* Sum V over the work-group in tree_sum's fixed order; every work-item gets the total.
 * SCRATCH holds get_local_size(0) floats; the local size must be a power of two. */
inline float group_sum(float v, __local float *scratch)
{
    const int lid = get_local_id(0);
    scratch[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid == 0) tree_sum(scratch, get_local_size(0));
    barrier(CLK_LOCAL_MEM_FENCE);
    const float total = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE); /* scratch is reused by the next call */
    return total;
}

#endif
