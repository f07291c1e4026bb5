/* linear_x4.cl: faster versions of linear.cl's three kernels, same results to the bit.
 *
 * Each work-item computes a 4 x 4 tile of outputs: sixteen independent sums in four float4
 * registers, so the CPU's vector units and pipelines stay busy (linear.cl's one sum per
 * work-item is a serial chain of dependent adds) and each loaded value is used four times.
 * Every output is still summed in the same order as in linear.cl, with the same float
 * operations (FP_CONTRACT OFF: no fused multiply-add in either), so the results are
 * bit-identical to linear.cl's; tests/test_linear.py checks that. Edge tiles that do not fill
 * 4 x 4 take linear.cl's scalar loops.
 *
 * linear_forward_x4:         global (ceil(OUT / 4), ceil(B / 4)):   out[4r .. 4r+3, 4k .. 4k+3]
 * linear_backward_input_x4:  global (ceil(IN / 4), ceil(B / 4)):    dinp[4r .., 4k ..]
 * linear_backward_params_x4: global (ceil(OUT / 4), ceil((IN + 1) / 4)): dW[4j .., 4k ..]
 *                            (row IN of the grid is the bias gradient)
 * Formulas, layout and arguments: linear.cl. Reference: rlcl/reference.py linear_*.
 */
#include "common.h"

__kernel void linear_forward_x4(__global float *out, __global const float *inp,
                                __global const float *params, int w_off, int b_off,
                                int B, int IN, int OUT, int act)
{
    const int o = 4 * get_global_id(0), b = 4 * get_global_id(1);
    if (o >= OUT || b >= B) return;
    if (o + 4 <= OUT && b + 4 <= B) {
        float4 a0 = (float4)(0.0f), a1 = a0, a2 = a0, a3 = a0;
        for (int i = 0; i < IN; i++) {
            const float4 w = vload4(0, params + w_off + i * OUT + o);
            a0 += inp[b * IN + i] * w;
            a1 += inp[(b + 1) * IN + i] * w;
            a2 += inp[(b + 2) * IN + i] * w;
            a3 += inp[(b + 3) * IN + i] * w;
        }
        const float4 bias = vload4(0, params + b_off + o);
        vstore4(activate4(a0 + bias, act), 0, out + b * OUT + o);
        vstore4(activate4(a1 + bias, act), 0, out + (b + 1) * OUT + o);
        vstore4(activate4(a2 + bias, act), 0, out + (b + 2) * OUT + o);
        vstore4(activate4(a3 + bias, act), 0, out + (b + 3) * OUT + o);
        return;
    }
    for (int r = b; r < min(b + 4, B); r++)
        for (int k = o; k < min(o + 4, OUT); k++) {
            float acc = 0.0f;
            for (int i = 0; i < IN; i++) acc += inp[r * IN + i] * params[w_off + i * OUT + k];
            out[r * OUT + k] = activate(acc + params[b_off + k], act);
        }
}

__kernel void linear_backward_input_x4(__global float *dinp, __global const float *dout,
                                       __global const float *inp, __global const float *params,
                                       int w_off, int B, int IN, int OUT, int in_act)
{
    const int i = 4 * get_global_id(0), b = 4 * get_global_id(1);
    if (i >= IN || b >= B) return;
    __global const float *w = params + w_off;
    if (i + 4 <= IN && b + 4 <= B) {
        float4 a0 = (float4)(0.0f), a1 = a0, a2 = a0, a3 = a0;
        for (int o = 0; o < OUT; o++) {
            const float4 wc = (float4)(w[i * OUT + o], w[(i + 1) * OUT + o],
                                       w[(i + 2) * OUT + o], w[(i + 3) * OUT + o]);
            a0 += dout[b * OUT + o] * wc;
            a1 += dout[(b + 1) * OUT + o] * wc;
            a2 += dout[(b + 2) * OUT + o] * wc;
            a3 += dout[(b + 3) * OUT + o] * wc;
        }
        const float4 acc[4] = {a0, a1, a2, a3};
        for (int r = 0; r < 4; r++) {
            const float4 y = vload4(0, inp + (b + r) * IN + i);
            const float4 g = (float4)(activate_grad(y.x, in_act), activate_grad(y.y, in_act),
                                      activate_grad(y.z, in_act), activate_grad(y.w, in_act));
            vstore4(acc[r] * g, 0, dinp + (b + r) * IN + i);
        }
        return;
    }
    for (int r = b; r < min(b + 4, B); r++)
        for (int k = i; k < min(i + 4, IN); k++) {
            float acc = 0.0f;
            for (int o = 0; o < OUT; o++) acc += dout[r * OUT + o] * w[k * OUT + o];
            dinp[r * IN + k] = acc * activate_grad(inp[r * IN + k], in_act);
        }
}

__kernel void linear_backward_params_x4(__global float *grads, __global const float *dout,
                                        __global const float *inp, int w_off, int b_off,
                                        int B, int IN, int OUT)
{
    const int o = 4 * get_global_id(0), j = 4 * get_global_id(1);
    if (o >= OUT || j > IN) return;
    if (o + 4 <= OUT && j + 4 <= IN) {
        float4 a0 = (float4)(0.0f), a1 = a0, a2 = a0, a3 = a0;
        for (int b = 0; b < B; b++) {
            const float4 d = vload4(0, dout + b * OUT + o);
            a0 += inp[b * IN + j] * d;
            a1 += inp[b * IN + j + 1] * d;
            a2 += inp[b * IN + j + 2] * d;
            a3 += inp[b * IN + j + 3] * d;
        }
        vstore4(a0, 0, grads + w_off + j * OUT + o);
        vstore4(a1, 0, grads + w_off + (j + 1) * OUT + o);
        vstore4(a2, 0, grads + w_off + (j + 2) * OUT + o);
        vstore4(a3, 0, grads + w_off + (j + 3) * OUT + o);
        return;
    }
    for (int i = j; i <= min(j + 3, IN); i++)  /* row IN is the bias */
        for (int k = o; k < min(o + 4, OUT); k++) {
            float acc = 0.0f;
            if (i < IN) {
                for (int b = 0; b < B; b++) acc += inp[b * IN + i] * dout[b * OUT + k];
                grads[w_off + i * OUT + k] = acc;
            } else {
                for (int b = 0; b < B; b++) acc += dout[b * OUT + k];
                grads[b_off + k] = acc;
            }
        }
}
