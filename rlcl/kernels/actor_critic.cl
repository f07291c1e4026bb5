/* actor_critic.cl: the update's forward and backward passes of BOTH networks (actor and
 * critic, every layer) in three launches instead of one launch per layer and network
 * (issue 6: on PoCL a launch costs several microseconds of host time, more than a small
 * layer's arithmetic). Built from linear_tiles.h, so the results are linear.cl's to the bit:
 * tests/test_policy_kernels.py compares them with the per-layer kernels.
 *
 * The hidden layers' activations and deltas live in HIDDEN, at element offsets given per layer
 * by TABLE (AC_COLS ints per layer; the actor's layers, then the critic's, both LPN long); the
 * network input and outputs are the ActorCritic's own buffers (OBS, OUTPUTS/VALUES and their
 * gradients D_OUTPUTS/D_VALUES), because the gather, loss and rollout kernels use them too.
 * Columns (rlcl/kernel_constants.py AC_COLUMNS, passed as -D COL_*):
 *   COL_W_OFF, COL_B_OFF  where W and the bias sit in params/grads
 *   COL_N_IN, COL_N_OUT   the layer's widths
 *   COL_IN_OFF       HIDDEN offset of its input rows (B x IN); -1: the first layer, OBS
 *   COL_OUT_OFF      HIDDEN offset of its activated output (B x OUT); -1: the last layer
 *   COL_DOUT_OFF     HIDDEN offset of d(loss)/d(its pre-activation output); -1: the last
 *   COL_DIN_OFF      HIDDEN offset where it writes the previous layer's delta; -1: none
 *   COL_TILE_START   first work-item of its tiles in ac_backward_params
 *   COL_ACT          its output activation (ACT_IDENTITY for the last layer)
 *
 * ac_forward:         global (ceil(B / 4), 2): rows 4g .. 4g+3 of network n, all layers.
 * ac_transpose:       global (any, 2): network n's weight matrices past its first, transposed
 *   into WT (same offsets), so that the deltas read contiguous rows (issue 12).
 * ac_backward_deltas: global (ceil(B / 4), 2): the same rows, deltas from the top layer down,
 *   from ac_transpose's WT.
 *   A work-item reads only rows it wrote itself (or the shared input), so neither needs a
 *   barrier or a second launch per layer.
 * ac_backward_params: global (number of tiles): one 4 x 2 TILE_COLS tile of one layer's
 *   [W; bias] gradient per work-item where 2 TILE_COLS divides OUT, else 4 x TILE_COLS where
 *   TILE_COLS does, else 4 x 4, summed over all B rows (rlcl/nn.py backward_param_tiles counts
 *   them).
 * Reference: rlcl/reference.py mlp_forward, mlp_backward.
 */
#include "actor_critic.h"

__kernel void ac_forward(__global float *hidden, __global float *outputs,
                         __global float *values, __global const float *obs,
                         __global const float *params, __global const int *table, int lpn,
                         int B)
{
    const int b = 4 * get_global_id(0);
    if (b < B)
        ac_forward_rows(hidden, outputs, values, obs, params, table, lpn, B, b, get_global_id(1));
}

/* Every agent's: (row quad, network, agent) items (stride: hidden, outputs, values, obs,
 * params, table). */
__kernel void ac_forward_pop(__global float *hidden, __global float *outputs,
                             __global float *values, __global const float *obs,
                             __global const float *params, __global const int *table,
                             __global const int *stride, int lpn, int B)
{
    const int b = 4 * get_global_id(0), a = get_global_id(2);
    if (b < B)
        ac_forward_rows(hidden + a * stride[0], outputs + a * stride[1], values + a * stride[2],
                        obs + a * stride[3], params + a * stride[4], table + a * stride[5], lpn,
                        B, b, get_global_id(1));
}

__kernel void ac_transpose(__global float *wt, __global const float *params,
                           __global const int *table, int lpn)
{
    ac_transpose_weights(wt, params, table, lpn, get_global_id(1), get_global_id(0),
                         get_global_size(0));
}

__kernel void ac_backward_deltas(__global float *hidden, __global const float *d_outputs,
                                 __global const float *d_values, __global const float *wt,
                                 __global const int *table, int lpn, int B)
{
    const int b = 4 * get_global_id(0);
    if (b < B)
        ac_deltas_rows(hidden, d_outputs, d_values, wt, 1, table, lpn, B, b, get_global_id(1));
}

__kernel void ac_backward_params(__global float *grads, __global const float *hidden,
                                 __global const float *obs, __global const float *d_outputs,
                                 __global const float *d_values, __global const int *table,
                                 int lpn, int n_tiles, int B)
{
    const int g = get_global_id(0);
    if (g < n_tiles) ac_param_tile(grads, hidden, obs, d_outputs, d_values, table, lpn, B, g);
}
