/* ppo_update.cl: one PPO / A2C minibatch update in ONE launch (issue 11), where agents/ppo.py
 * otherwise makes six (gather, forward, loss, backward x2, clip sum) plus the optimizer step.
 *
 * ppo_minibatch, update u of the iteration (minibatch rows idx[u M .. u M + M - 1] of the
 * rollout): the work-group runs the separate kernels' work phase after phase, a barrier between
 * phases, through the same functions in the same order, so its results equal theirs to the bit
 * (tests/test_ppo_update.py):
 *   gather_minibatch (rollout.h)            the minibatch rows
 *   ac_forward (actor_critic.h)             (row quad, network) items
 *   ppo_loss / ppo_loss_gaussian (loss.h)   stats row u, d(loss)/d(outputs)
 *   ac_backward_deltas, ac_backward_params  items (reading W transposed into wt, contiguous:
 *                                           actor_critic.h), then tiles; column_sum
 *   the fault injection of issue 4          grads[0] = NaN when inject_nan
 *   sum_squares (optim.h)                   norms[u] over NORM_LANES virtual work-items: the
 *                                           separate launch's lanes and tree, whatever W is
 *   sgd_step (optim.h)                      a work-item per step group (STEP_CHUNK contiguous
 *                                           coordinates), its STEP_LANES lanes in order, and
 *                                           the group's smoothness partial sums into row u
 * One launch per minibatch, not one for the whole iteration: PoCL 3.0 (LLVM 14) miscompiled
 * this body inside a loop over the minibatches (zero gradients; Oclgrind ran it correctly).
 *
 * Launch: ONE work-group of W work-items, W = the loss's group size (a power of two: the loss
 *   reduces over the group). scratch: max(8 W, norm_lanes) floats.
 * Optimizer: SGD / Momentum (torch.optim.SGD semantics; `first`: the run's very first step).
 *   Adam keeps the separate launches.
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
    __global float *stats, __global float *wt,
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
    int inject_nan, __local float *scratch)
{
    const int lid = get_local_id(0), W = get_local_size(0);
    const int quads = (M + 3) / 4;
    for (int m = lid; m < M; m += W)
        gather_row(mb_obs, mb_actions, mb_logp, mb_adv, mb_ret, mb_val, idx[u * M + m], m,
                   obs, actions, logp, advantages, returns, values, obs_dim, act_dim);
    barrier(CLK_GLOBAL_MEM_FENCE);
    for (int it = lid; it < 2 * quads; it += W) {  /* no div/rem: see actor_critic.h */
        const int net = it >= quads;
        ac_forward_rows(hidden, outputs, mb_values, mb_obs, params, table, lpn, M,
                        4 * (it - net * quads), net);
    }
    ac_transpose_weights(wt, params, table, lpn, lid, W);
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
        ac_deltas_rows(hidden, d_outputs, d_values, wt, 1, table, lpn, M,
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
    for (int g = lid; g < step_groups; g += W)  /* sgd_step's work-group g */
        sgd_group8(params, grads, velocity, prev_update, g, n, norm, max_norm, skip, lr, momentum,
                   dampening, weight_decay, nesterov, first,
                   partials + (u * step_groups + g) * NUM_SMOOTH);
}
