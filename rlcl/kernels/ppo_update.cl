/* ppo_update.cl: a whole PPO / A2C update of one iteration in ONE launch (issue 11).
 *
 * For u = 0 .. updates-1 (epochs x minibatches, rows idx[u M .. u M + M - 1] of the rollout),
 * the work-group runs, phase after phase with a barrier between them, what agents/ppo.py
 * otherwise launches per minibatch, with the same functions in the same order, so the results
 * equal those launches to the bit (tests/test_ppo_update.py):
 *   gather_minibatch (rollout.h)            rows of the minibatch
 *   ac_forward (actor_critic.h)             (row quad, network) items
 *   ppo_loss / ppo_loss_gaussian (loss.h)   stats row u, d(loss)/d(outputs)
 *   ac_backward_deltas, ac_backward_params  items, then tiles; column_sum for log_std
 *   the fault injection of issue 4          grads[0] = NaN for nan_from <= u < nan_to
 *   sum_squares (optim.h)                   norms[u], over NORM_LANES virtual work-items
 *   sgd_step (optim.h)                      over STEP_GROUPS x STEP_LOCAL virtual work-items,
 *                                           their smoothness partial sums into row u
 * A "virtual work-item" is a lane of the separate launch: the reductions keep that launch's
 * lanes and order whatever this group's size, so its results do not depend on it.
 *
 * Launch: ONE work-group of W work-items, W = the loss's group size (a power of two, the
 *   loss's reductions are trees over the group). scratch: max(8 W, norm_lanes) floats.
 *   step_lanes: STEP_GROUPS * STEP_LOCAL * NUM_SMOOTH floats of global scratch.
 * Optimizer: SGD / Momentum (torch.optim.SGD semantics; `first` is the very first step of the
 *   run). Adam and target_kl's early stop keep the separate launches (agents/ppo.py).
 * All buffers belong to one agent: an agent index would offset each pointer once at the top.
 * Reference: the separate kernels, and through them rlcl/reference.py.
 */
#include "actor_critic.h"
#include "loss.h"
#include "optim.h"
#include "rollout.h"

__kernel void ppo_minibatch(
    __global float *params, __global float *grads, __global float *velocity,
    __global float *prev_update, __global float *norms, __global float *partials,
    __global float *step_lanes, __global float *stats,
    /* the network's minibatch buffers (ActorCritic) and the minibatch (Rollout) */
    __global float *hidden, __global float *mb_obs, __global float *outputs,
    __global float *mb_values, __global float *d_outputs, __global float *d_values,
    __global float *d_log_std, __global uint *mb_actions, __global float *mb_logp,
    __global float *mb_adv, __global float *mb_ret, __global float *mb_val,
    /* the rollout storage */
    __global const int *idx, __global const float *obs, __global const uint *actions,
    __global const float *logp, __global const float *advantages, __global const float *returns,
    __global const float *values,
    __global const int *table, int lpn, int n_tiles, int n, int obs_dim, int act_dim, int A,
    int log_std_off, int M,
    int u, float clip_coef, int clip_vloss, float ent_coef, float vf_coef, int norm_adv, int pg_mode,
    float max_norm, int norm_lanes, float skip_above, float lr, float momentum,
    float dampening, float weight_decay, int nesterov, int first, int step_groups,
    int step_local, int inject_nan, __local float *scratch)
{
    const int lid = get_local_id(0), W = get_local_size(0);
    const int quads = (M + 3) / 4, step_lanes_n = step_groups * step_local;
    for (int m = lid; m < M; m += W)
        gather_row(mb_obs, mb_actions, mb_logp, mb_adv, mb_ret, mb_val, idx[u * M + m], m,
                   obs, actions, logp, advantages, returns, values, obs_dim, act_dim);
    barrier(CLK_GLOBAL_MEM_FENCE);
    for (int it = lid; it < 2 * quads; it += W) {  /* no div/rem: see actor_critic.h */
        const int net = it >= quads;
        ac_forward_rows(hidden, outputs, mb_values, mb_obs, params, table, lpn, M,
                        4 * (it - net * quads), net);
    }
    barrier(CLK_GLOBAL_MEM_FENCE);
    if (log_std_off >= 0)  /* uniform: every work-item takes the same branch */
        gaussian_loss(d_outputs, d_values, d_log_std, stats, u, outputs, mb_values, params,
                      log_std_off, (__global const float *)mb_actions, mb_logp, mb_adv,
                      mb_ret, mb_val, M, A, clip_coef, clip_vloss, ent_coef, vf_coef,
                      norm_adv, pg_mode, scratch);
    else
        categorical_loss(d_outputs, d_values, stats, u, outputs, mb_values,
                         (__global const int *)mb_actions, mb_logp, mb_adv, mb_ret, mb_val,
                         M, A, clip_coef, clip_vloss, ent_coef, vf_coef, norm_adv, pg_mode,
                         scratch);
    barrier(CLK_GLOBAL_MEM_FENCE);
    for (int it = lid; it < 2 * quads; it += W) {
        const int net = it >= quads;
        ac_deltas_rows(hidden, d_outputs, d_values, params, table, lpn, M,
                       4 * (it - net * quads), net);
    }
    barrier(CLK_GLOBAL_MEM_FENCE);
    for (int g = lid; g < n_tiles; g += W)
        ac_param_tile(grads, hidden, mb_obs, d_outputs, d_values, table, lpn, M, g);
    if (log_std_off >= 0)
        for (int j = lid; j < A; j += W) {  /* gaussian.cl column_sum */
            float acc = 0.0f;
            for (int r = 0; r < M; r++) acc += d_log_std[r * A + j];
            grads[log_std_off + j] = acc;
        }
    barrier(CLK_GLOBAL_MEM_FENCE);
    if (lid == 0 && inject_nan) grads[0] = NAN;
    barrier(CLK_GLOBAL_MEM_FENCE);
    for (int v = lid; v < norm_lanes; v += W) scratch[v] = lane_squares(grads, n, v, norm_lanes);
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid == 0) {
        tree_sum(scratch, norm_lanes);
        norms[u] = sqrt(scratch[0]);
    }
    barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);
    const float norm = norms[u];
    const bool skip = skip_step(norm, skip_above);
    for (int v = lid; v < step_lanes_n; v += W) {
        float s[NUM_SMOOTH] = {0};
        for (int i = v; i < n; i += step_lanes_n)
            sgd_coord(params, grads, velocity, prev_update, i, norm, max_norm, skip, lr,
                      momentum, dampening, weight_decay, nesterov, first, s);
        for (int k = 0; k < NUM_SMOOTH; k++) step_lanes[v * NUM_SMOOTH + k] = s[k];
    }
    barrier(CLK_GLOBAL_MEM_FENCE);
    for (int g = lid; g < step_groups; g += W)  /* optim.cl write_partials' order */
        for (int k = 0; k < NUM_SMOOTH; k++) {
            float acc = 0.0f;
            for (int j = 0; j < step_local; j++)
                acc += step_lanes[(g * step_local + j) * NUM_SMOOTH + k];
            partials[(u * step_groups + g) * NUM_SMOOTH + k] = acc;
        }
}
