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
 * ac_backward_deltas: global (ceil(B / 4), 2): the same rows, deltas from the top layer down.
 *   A work-item reads only rows it wrote itself (or the shared input), so neither needs a
 *   barrier or a second launch per layer.
 * ac_backward_params: global (number of tiles): one 4 x TILE_COLS tile of one layer's
 *   [W; bias] gradient per work-item where TILE_COLS divides OUT, else 4 x 4, summed over all
 *   B rows (rlcl/nn.py backward_param_tiles counts them).
 * Reference: rlcl/reference.py mlp_forward, mlp_backward.
 */
#include "linear_tiles.h"

#if !defined(AC_COLS) || !defined(COL_W_OFF) || !defined(COL_B_OFF) || !defined(COL_N_IN) || \
    !defined(COL_N_OUT) || !defined(COL_IN_OFF) || !defined(COL_OUT_OFF) || \
    !defined(COL_DOUT_OFF) || !defined(COL_DIN_OFF) || !defined(COL_TILE_START) || \
    !defined(COL_ACT)
#error "table columns undefined: build through rlcl.device.Device (rlcl/kernel_constants.py)"
#endif

/* A layer's input rows and its output (or output-delta) rows: in HIDDEN unless the table says
 * -1, then the network input or the network's own output buffer. */
#define LAYER_IN(t, obs, hidden) ((t)[COL_IN_OFF] < 0 ? (obs) : (hidden) + (t)[COL_IN_OFF])
#define LAYER_OUT(t, col, own, hidden) ((t)[col] < 0 ? (own) : (hidden) + (t)[col])

__kernel void ac_forward(__global float *hidden, __global float *outputs,
                         __global float *values, __global const float *obs,
                         __global const float *params, __global const int *table, int lpn,
                         int B)
{
    const int b = 4 * get_global_id(0), net = get_global_id(1);
    if (b >= B) return;
    const int nr = min(4, B - b);
    __global float *own = net ? values : outputs;
    for (int l = net * lpn; l < (net + 1) * lpn; l++) {
        __global const int *t = table + l * AC_COLS;
        forward_rows(LAYER_OUT(t, COL_OUT_OFF, own, hidden), LAYER_IN(t, obs, hidden), params,
                     t[COL_W_OFF], t[COL_B_OFF], b, nr, t[COL_N_IN], t[COL_N_OUT], t[COL_ACT]);
    }
}

__kernel void ac_backward_deltas(__global float *hidden, __global const float *d_outputs,
                                 __global const float *d_values, __global const float *params,
                                 __global const int *table, int lpn, int B)
{
    const int b = 4 * get_global_id(0), net = get_global_id(1);
    if (b >= B) return;
    const int nr = min(4, B - b);
    __global const float *own = net ? d_values : d_outputs;
    for (int l = (net + 1) * lpn - 1; l > net * lpn; l--) {
        __global const int *t = table + l * AC_COLS;
        const int in_act = table[(l - 1) * AC_COLS + COL_ACT];
        backward_input_rows(hidden + t[COL_DIN_OFF], LAYER_OUT(t, COL_DOUT_OFF, own, hidden),
                            hidden + t[COL_IN_OFF], params + t[COL_W_OFF], b, nr, t[COL_N_IN],
                            t[COL_N_OUT], in_act);
    }
}

__kernel void ac_backward_params(__global float *grads, __global const float *hidden,
                                 __global const float *obs, __global const float *d_outputs,
                                 __global const float *d_values, __global const int *table,
                                 int lpn, int n_tiles, int B)
{
    const int g = get_global_id(0);
    if (g >= n_tiles) return;
    int l = 0;
    while (l + 1 < 2 * lpn && g >= table[(l + 1) * AC_COLS + COL_TILE_START]) l++;
    __global const int *t = table + l * AC_COLS;
    __global const float *dout =
        LAYER_OUT(t, COL_DOUT_OFF, l < lpn ? d_outputs : d_values, hidden);
    __global const float *inp = LAYER_IN(t, obs, hidden);
    const int IN = t[COL_N_IN], OUT = t[COL_N_OUT], tile = g - t[COL_TILE_START];
    const int wide = OUT % TILE_COLS == 0;
    const int cols = wide ? OUT / TILE_COLS : (OUT + 3) / 4;
    /* tile - row * cols, not tile % cols: clang turns a div/rem pair into an LLVM freeze,
     * which Oclgrind 21.10's uninitialised-value checker cannot run */
    const int row = tile / cols, o = (wide ? TILE_COLS : 4) * (tile - row * cols), j = 4 * row;
    if (wide)
        backward_params_tilew(grads, dout, inp, t[COL_W_OFF], t[COL_B_OFF], j, o, B, IN, OUT);
    else
        backward_params_tile4(grads, dout, inp, t[COL_W_OFF], t[COL_B_OFF], j, o, B, IN, OUT);
}
