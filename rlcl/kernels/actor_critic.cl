/* actor_critic.cl: the update's forward and backward passes of BOTH networks (actor and
 * critic, every layer) in three launches instead of one launch per layer and network
 * (issue 6: on PoCL a launch costs several microseconds of host time, more than a small
 * layer's arithmetic). Built from linear_tiles.h, so the results are linear.cl's to the bit:
 * tests/test_policy_kernels.py compares them with the per-layer kernels.
 *
 * All activations and deltas live in one buffer, ARENA, at element offsets given per layer by
 * TABLE (AC_COLS ints per layer; the actor's layers, then the critic's, both LPN long):
 *   0 w_off, 1 b_off   where W and the bias sit in params/grads
 *   2 IN, 3 OUT        the layer's widths
 *   4 in_off           arena offset of its input rows      (B x IN)
 *   5 out_off          arena offset of its activated output (B x OUT)
 *   6 dout_off         arena offset of d(loss)/d(its pre-activation output) (B x OUT)
 *   7 din_off          arena offset where it writes the previous layer's delta (-1: none)
 *   8 tile_start       first work-item of its tiles in ac_backward_params
 *   9 act              its output activation (ACT_IDENTITY for the last layer)
 *
 * ac_forward:         global (ceil(B / 4), 2): rows 4g .. 4g+3 of network n, all layers.
 * ac_backward_deltas: global (ceil(B / 4), 2): the same rows, deltas from the top layer down.
 *   A work-item reads only rows it wrote itself (or the shared input), so neither needs a
 *   barrier or a second launch per layer.
 * ac_backward_params: global (table[last][8] + tiles of the last layer): one 4 x 4 or 4 x 16
 *   tile of one layer's [W; bias] gradient per work-item, summed over all B rows.
 * Reference: rlcl/reference.py mlp_forward, mlp_backward.
 */
#include "linear_tiles.h"

#define AC_COLS 10

__kernel void ac_forward(__global float *arena, __global const float *params,
                         __global const int *table, int lpn, int B)
{
    const int b = 4 * get_global_id(0), net = get_global_id(1);
    if (b >= B) return;
    const int nr = min(4, B - b);
    for (int l = net * lpn; l < (net + 1) * lpn; l++) {
        __global const int *t = table + l * AC_COLS;
        forward_rows(arena + t[5], arena + t[4], params, t[0], t[1], b, nr, t[2], t[3], t[9]);
    }
}

__kernel void ac_backward_deltas(__global float *arena, __global const float *params,
                                 __global const int *table, int lpn, int B)
{
    const int b = 4 * get_global_id(0), net = get_global_id(1);
    if (b >= B) return;
    const int nr = min(4, B - b);
    for (int l = (net + 1) * lpn - 1; l > net * lpn; l--) {
        __global const int *t = table + l * AC_COLS;
        const int in_act = table[(l - 1) * AC_COLS + 9];
        backward_input_rows(arena + t[7], arena + t[6], arena + t[4], params + t[0], b, nr,
                            t[2], t[3], in_act);
    }
}

__kernel void ac_backward_params(__global float *grads, __global const float *arena,
                                 __global const int *table, int n_layers, int n_tiles, int B)
{
    const int g = get_global_id(0);
    if (g >= n_tiles) return;
    int l = 0;
    while (l + 1 < n_layers && g >= table[(l + 1) * AC_COLS + 8]) l++;
    __global const int *t = table + l * AC_COLS;
    const int IN = t[2], OUT = t[3], tile = g - t[8];
    const int wide = OUT % 16 == 0;
    const int cols = wide ? OUT / 16 : (OUT + 3) / 4;
    const int o = (wide ? 16 : 4) * (tile % cols), j = 4 * (tile / cols);
    if (wide)
        backward_params_tile16(grads, arena + t[6], arena + t[4], t[0], t[1], j, o, B, IN, OUT);
    else
        backward_params_tile4(grads, arena + t[6], arena + t[4], t[0], t[1], j, o, B, IN, OUT);
}
