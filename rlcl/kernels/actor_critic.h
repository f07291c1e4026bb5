/* actor_critic.h: one work-item's share of actor_critic.cl's three kernels, as functions, so
 * that the fused update (ppo_update.cl) runs the very same arithmetic: the rows b .. b+3 of
 * network NET forward (ac_forward_rows) and backward (ac_deltas_rows), and parameter-gradient
 * tile G (ac_param_tile). Layout, table columns and formulas: actor_critic.cl.
 */
#ifndef RLCL_ACTOR_CRITIC_H
#define RLCL_ACTOR_CRITIC_H
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

inline void ac_forward_rows(__global float *hidden, __global float *outputs,
                            __global float *values, __global const float *obs,
                            __global const float *params, __global const int *table, int lpn,
                            int B, int b, int net)
{
    const int nr = min(4, B - b);
    __global float *own = net ? values : outputs;
    for (int l = net * lpn; l < (net + 1) * lpn; l++) {
        __global const int *t = table + l * AC_COLS;
        forward_rows(LAYER_OUT(t, COL_OUT_OFF, own, hidden), LAYER_IN(t, obs, hidden), params,
                     t[COL_W_OFF], t[COL_B_OFF], b, nr, t[COL_N_IN], t[COL_N_OUT], t[COL_ACT]);
    }
}

/* WEIGHTS is the flat parameter buffer, or with TRANSPOSED its copy with each W stored
 * transposed (ac_transpose_weights, for contiguous reads: backward_input_rows_t); the results
 * are the same bits. */
inline void ac_deltas_rows(__global float *hidden, __global const float *d_outputs,
                           __global const float *d_values, __global const float *weights,
                           int transposed, __global const int *table, int lpn, int B, int b,
                           int net)
{
    const int nr = min(4, B - b);
    __global const float *own = net ? d_values : d_outputs;
    for (int l = (net + 1) * lpn - 1; l > net * lpn; l--) {
        __global const int *t = table + l * AC_COLS;
        const int in_act = table[(l - 1) * AC_COLS + COL_ACT];
        __global float *dinp = hidden + t[COL_DIN_OFF];
        __global const float *dout = LAYER_OUT(t, COL_DOUT_OFF, own, hidden);
        __global const float *inp = hidden + t[COL_IN_OFF], *w = weights + t[COL_W_OFF];
        if (transposed)
            backward_input_rows_t(dinp, dout, inp, w, b, nr, t[COL_N_IN], t[COL_N_OUT], in_act);
        else
            backward_input_rows(dinp, dout, inp, w, b, nr, t[COL_N_IN], t[COL_N_OUT], in_act);
    }
}

/* Work-item LID of W's share of WT[w_off + o IN + i] = W[w_off + i OUT + o] for the layers of
 * network NET whose input deltas the backward pass needs (all but its first). */
inline void ac_transpose_weights(__global float *wt, __global const float *params,
                                 __global const int *table, int lpn, int net, int lid, int W)
{
    for (int l = net * lpn + 1; l < (net + 1) * lpn; l++) {
        __global const int *t = table + l * AC_COLS;
        const int off = t[COL_W_OFF], IN = t[COL_N_IN], OUT = t[COL_N_OUT];
        for (int i = 0; i < IN; i++)
            for (int o = lid; o < OUT; o += W) wt[off + o * IN + i] = params[off + i * OUT + o];
    }
}

inline void ac_param_tile(__global float *grads, __global const float *hidden,
                          __global const float *obs, __global const float *d_outputs,
                          __global const float *d_values, __global const int *table, int lpn,
                          int B, int g)
{
    int l = 0;
    while (l + 1 < 2 * lpn && g >= table[(l + 1) * AC_COLS + COL_TILE_START]) l++;
    __global const int *t = table + l * AC_COLS;
    __global const float *dout =
        LAYER_OUT(t, COL_DOUT_OFF, l < lpn ? d_outputs : d_values, hidden);
    __global const float *inp = LAYER_IN(t, obs, hidden);
    const int IN = t[COL_N_IN], OUT = t[COL_N_OUT], tile = g - t[COL_TILE_START];
    if (OUT < 4) {  /* a narrow layer: tiles of 16 rows (rlcl/nn.py backward_param_tiles) */
        backward_params_narrow(grads, dout, inp, t[COL_W_OFF], t[COL_B_OFF], 16 * tile, B, IN,
                               OUT);
        return;
    }
    /* a tile's columns: 2 TILE_COLS where they divide OUT, else TILE_COLS, else 4 */
    const int wide2 = OUT % (2 * TILE_COLS) == 0, wide = OUT % TILE_COLS == 0;
    const int width = wide2 ? 2 * TILE_COLS : wide ? TILE_COLS : 4;
    const int cols = (OUT + width - 1) / width;
    /* tile - row * cols, not tile % cols: clang turns a div/rem pair into an LLVM freeze,
     * which Oclgrind 21.10's uninitialised-value checker cannot run */
    const int row = tile / cols, o = width * (tile - row * cols), j = 4 * row;
    if (wide2)
        backward_params_tilew2(grads, dout, inp, t[COL_W_OFF], t[COL_B_OFF], j, o, B, IN, OUT);
    else if (wide)
        backward_params_tilew(grads, dout, inp, t[COL_W_OFF], t[COL_B_OFF], j, o, B, IN, OUT);
    else
        backward_params_tile4(grads, dout, inp, t[COL_W_OFF], t[COL_B_OFF], j, o, B, IN, OUT);
}
#endif
