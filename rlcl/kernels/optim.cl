/* optim.cl: global-norm clipping and the fused optimizer updates over the flat buffer.
 *
 * sum_squares: norms[slot] = sqrt(sum_i x_i^2). ONE work-group of L work-items (L a power
 *   of two), strided partial sums then group_sum: a fixed order, so deterministic.
 *
 * Clipping (torch.nn.utils.clip_grad_norm_): with max_norm > 0 the step scales the gradient
 *   by min(1, max_norm / (norms[slot] + 1e-6)) before using it; max_norm <= 0 means no clip.
 *
 * sgd_step (torch.optim.SGD semantics, DESIGN.md section 3), per coordinate:
 *   g = clip_scale * grad + weight_decay * theta             (coupled weight decay)
 *   v = first ? g : momentum * v + (1 - dampening) * g        (skipped when momentum == 0)
 *   d = nesterov ? g + momentum * v : v
 *   theta -= lr * d
 * rlcl.optim.Momentum is this kernel with momentum 0.9 and no dampening.
 *
 * adam_step (torch.optim.Adam, coupled weight decay), with step_size = lr / (1 - b1^t) and
 *   bc2_sqrt = sqrt(1 - b2^t) computed on the host in float64:
 *   m = b1 m + (1 - b1) g;  s = b2 s + (1 - b2) g^2;  theta -= step_size * m / (sqrt(s) / bc2_sqrt + eps)
 *
 * Launch: sum_squares (L) with local L; the steps (n) with any local size.
 * Reference: rlcl/reference.py sum_squares, sgd_step, adam_step.
 */
#include "common.h"

__kernel void sum_squares(__global float *norms, int slot, __global const float *x, int n,
                          __local float *scratch)
{
    const int lid = get_local_id(0), L = get_local_size(0);
    float acc = 0.0f;
    for (int i = lid; i < n; i += L) acc += x[i] * x[i];
    const float total = group_sum(acc, scratch);
    if (lid == 0) norms[slot] = sqrt(total);
}

inline float clip_scale(__global const float *norms, int slot, float max_norm)
{
    return max_norm > 0.0f ? fmin(1.0f, max_norm / (norms[slot] + 1e-6f)) : 1.0f;
}

__kernel void sgd_step(__global float *params, __global const float *grads,
                       __global float *velocity, __global const float *norms, int slot,
                       float max_norm, int n, float lr, float momentum, float dampening,
                       float weight_decay, int nesterov, int first)
{
    const int i = get_global_id(0);
    if (i >= n) return;
    const float scale = clip_scale(norms, slot, max_norm);
    float g = grads[i] * scale + weight_decay * params[i];
    float d = g;
    if (momentum != 0.0f) {
        const float v = first ? g : momentum * velocity[i] + (1.0f - dampening) * g;
        velocity[i] = v;
        d = nesterov ? g + momentum * v : v;
    }
    params[i] -= lr * d;
}

__kernel void adam_step(__global float *params, __global const float *grads,
                        __global float *exp_avg, __global float *exp_avg_sq,
                        __global const float *norms, int slot, float max_norm, int n,
                        float step_size, float beta1, float beta2, float eps,
                        float bc2_sqrt, float weight_decay)
{
    const int i = get_global_id(0);
    if (i >= n) return;
    const float g = grads[i] * clip_scale(norms, slot, max_norm) + weight_decay * params[i];
    const float m = beta1 * exp_avg[i] + (1.0f - beta1) * g;
    const float s = beta2 * exp_avg_sq[i] + (1.0f - beta2) * g * g;
    exp_avg[i] = m;
    exp_avg_sq[i] = s;
    params[i] -= step_size * m / (sqrt(s) / bc2_sqrt + eps);
}
