/* linear.cl: a fully connected layer with a fused activation, on the flat parameter buffer.
 *
 * Layout: W is IN x OUT row-major at params[w_off] (x @ W, so a work-group running along o
 * reads W contiguously), the bias is OUT floats at params[b_off]. inp is B x IN, out B x OUT.
 *
 * forward:          out[b,o]  = act(bias[o] + sum_i inp[b,i] W[i,o])
 * backward_input:   dinp[b,i] = act'(inp[b,i]) * sum_o dout[b,o] W[i,o]
 *                   (inp is the previous layer's activated output, so this also runs that
 *                   layer's activation backward; pass ACT_IDENTITY for the network input)
 * backward_params:  dW[i,o]   = sum_b inp[b,i] dout[b,o],   dbias[o] = sum_b dout[b,o]
 *                   written (not accumulated) into grads at the same offsets as params.
 *
 * Launch: forward (OUT, B); backward_input (IN, B); backward_params (OUT, IN + 1).
 * One work-item per output element; every sum runs in index order.
 * Reference: rlcl/reference.py linear_forward, linear_backward_input, linear_backward_params.
 */
#include "common.h"

__kernel void linear_forward(__global float *out, __global const float *inp,
                             __global const float *params, int w_off, int b_off,
                             int B, int IN, int OUT, int act)
{
    const int o = get_global_id(0), b = get_global_id(1);
    if (o >= OUT || b >= B) return;
    __global const float *x = inp + b * IN;
    __global const float *w = params + w_off + o;
    float acc = 0.0f;
    for (int i = 0; i < IN; i++) acc += x[i] * w[i * OUT];
    out[b * OUT + o] = activate(acc + params[b_off + o], act);
}

__kernel void linear_backward_input(__global float *dinp, __global const float *dout,
                                    __global const float *inp, __global const float *params,
                                    int w_off, int B, int IN, int OUT, int in_act)
{
    const int i = get_global_id(0), b = get_global_id(1);
    if (i >= IN || b >= B) return;
    __global const float *d = dout + b * OUT;
    __global const float *w = params + w_off + i * OUT;
    float acc = 0.0f;
    for (int o = 0; o < OUT; o++) acc += d[o] * w[o];
    dinp[b * IN + i] = acc * activate_grad(inp[b * IN + i], in_act);
}

__kernel void linear_backward_params(__global float *grads, __global const float *dout,
                                     __global const float *inp, int w_off, int b_off,
                                     int B, int IN, int OUT)
{
    const int o = get_global_id(0), i = get_global_id(1);
    if (o >= OUT || i > IN) return;
    float acc = 0.0f;
    if (i < IN) {
        for (int b = 0; b < B; b++) acc += inp[b * IN + i] * dout[b * OUT + o];
        grads[w_off + i * OUT + o] = acc;
    } else {
        for (int b = 0; b < B; b++) acc += dout[b * OUT + o];
        grads[b_off + o] = acc;
    }
}
