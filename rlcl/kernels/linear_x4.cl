/* linear_x4.cl: faster versions of linear.cl's kernels, one layer per launch, made of the
 * tiles in linear_tiles.h and so bit-identical to linear.cl (tests/test_linear.py).
 *
 * linear_forward_x4:          global (ceil(OUT / 4), ceil(B / 4)):      out[4r .., 4k ..]
 * linear_forward_wide:        global (OUT / TILE_COLS, B / 4); OUT % TILE_COLS == 0, B % 4 == 0
 * linear_backward_input_x4:   global (ceil(IN / 4), ceil(B / 4)):       dinp[4r .., 4k ..]
 * linear_backward_params_x4:  global (ceil(OUT / 4), ceil((IN + 1) / 4)): dW[4j .., 4k ..]
 *                             (row IN of the grid is the bias gradient)
 * linear_backward_params_wide: global (OUT / TILE_COLS, ceil((IN + 1) / 4));
 *                             OUT % TILE_COLS == 0 (TILE_COLS: linear_tiles.h)
 * Formulas, layout and arguments: linear.cl. Reference: rlcl/reference.py linear_*.
 */
#include "linear_tiles.h"

__kernel void linear_forward_x4(__global float *out, __global const float *inp,
                                __global const float *params, int w_off, int b_off,
                                int B, int IN, int OUT, int act)
{
    const int o = 4 * get_global_id(0), b = 4 * get_global_id(1);
    if (o >= OUT || b >= B) return;
    if (o + 4 <= OUT && b + 4 <= B) {
        forward_tile4(out, inp, params, w_off, b_off, b, o, IN, OUT, act);
        return;
    }
    for (int r = b; r < min(b + 4, B); r++)
        for (int k = o; k < min(o + 4, OUT); k++)
            forward_one(out, inp, params, w_off, b_off, r, k, IN, OUT, act);
}

__kernel void linear_forward_wide(__global float *out, __global const float *inp,
                                  __global const float *params, int w_off, int b_off,
                                  int B, int IN, int OUT, int act)
{
    const int o = TILE_COLS * get_global_id(0), b = 4 * get_global_id(1);
    if (o + TILE_COLS > OUT || b + 4 > B) return;
    forward_tilew(out, inp, params, w_off, b_off, b, o, IN, OUT, act);
}

__kernel void linear_backward_input_x4(__global float *dinp, __global const float *dout,
                                       __global const float *inp, __global const float *params,
                                       int w_off, int B, int IN, int OUT, int in_act)
{
    const int i = 4 * get_global_id(0), b = 4 * get_global_id(1);
    if (i >= IN || b >= B) return;
    __global const float *w = params + w_off;
    if (i + 4 <= IN && b + 4 <= B) {
        backward_input_tile4(dinp, dout, inp, w, b, i, IN, OUT, in_act);
        return;
    }
    for (int r = b; r < min(b + 4, B); r++)
        for (int k = i; k < min(i + 4, IN); k++)
            backward_input_one(dinp, dout, inp, w, r, k, IN, OUT, in_act);
}

__kernel void linear_backward_params_x4(__global float *grads, __global const float *dout,
                                        __global const float *inp, int w_off, int b_off,
                                        int B, int IN, int OUT)
{
    const int o = 4 * get_global_id(0), j = 4 * get_global_id(1);
    if (o >= OUT || j > IN) return;
    backward_params_tile4(grads, dout, inp, w_off, b_off, j, o, B, IN, OUT);
}

__kernel void linear_backward_params_wide(__global float *grads, __global const float *dout,
                                          __global const float *inp, int w_off, int b_off,
                                          int B, int IN, int OUT)
{
    const int o = TILE_COLS * get_global_id(0), j = 4 * get_global_id(1);
    if (o + TILE_COLS > OUT || j > IN) return;
    backward_params_tilew(grads, dout, inp, w_off, b_off, j, o, B, IN, OUT);
}
