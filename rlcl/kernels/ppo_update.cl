/* ppo_update.cl: one PPO / A2C minibatch update in TWO launches (issues 11 and 12), where
 * agents/ppo.py otherwise makes six (gather, forward, loss, backward x2, clip sum) plus the
 * optimizer step.
 *
 * ppo_minibatch, update u of the iteration (minibatch rows idx[u M .. u M + M - 1] of the
 * rollout): two work-groups, the actor's (group 0) and the critic's (group 1), each running its
 * network's share of the separate kernels' work phase after phase, a barrier between phases,
 * through the same functions in the same order, so its results equal theirs to the bit
 * (tests/test_ppo_update.py). The networks share nothing until the gradient norm: the loss
 * splits into the policy's half and the value's (common.h LOSS_POLICY / LOSS_VALUE), and each
 * group writes only its own buffers (the critic gathers its own copy of the observations), so
 * on a device that runs work-groups side by side (PoCL's pthread, a GPU) the two networks
 * train at once.
 *   gather_minibatch (rollout.h)            the minibatch rows its half of the loss reads
 *   ac_forward (actor_critic.h)             (row quad) items of its network
 *   ppo_loss / ppo_loss_gaussian (loss.h)   its half: stats row u, d(loss)/d(its outputs)
 *   ac_backward_deltas, ac_backward_params  items (reading W transposed into wt, contiguous:
 *                                           actor_critic.h), then its network's tiles;
 *                                           the actor's also column_sum (log std)
 *   the fault injection of issue 4          the actor's: grads[0] = NaN when inject_nan
 * ppo_step, after it (any number of work-groups; two on pthread, one per core):
 *   sum_squares (optim.h)                   the norm over NORM_LANES virtual work-items, by
 *                                           every group: the separate launch's lanes and tree,
 *                                           whatever W is, eight lanes a float8
 *                                           (lane_squares8); group 0 stores it in norms[u]
 *   sgd_step (optim.h)                      the group's share of the step groups (STEP_CHUNK
 *                                           contiguous coordinates each), a work-item per step
 *                                           group, its STEP_LANES lanes in order, and the
 *                                           group's smoothness partial sums into row u
 * Launches per minibatch, not for the whole iteration: PoCL 3.0 (LLVM 14) miscompiled the
 * body inside a loop over the minibatches (zero gradients; Oclgrind ran it correctly) in
 * work-groups of several items; ppo_update_pop (below) loops in groups of one.
 *
 * Launch: ppo_minibatch two work-groups of W work-items, W any divisor of LANES (the loss's
 *   V lanes, a power of two, loss.h: they alone fix the bits; rlcl/device.py lane_items: one
 *   work-item on a CPU, LANES on a GPU); ppo_step two work-groups of any size (any number
 *   works). scratch: max(8 LANES, norm_lanes) floats.
 * Optimizer: SGD / Momentum (torch.optim.SGD semantics; `first`: the run's very first step).
 *   Adam keeps the separate launches.
 * A population (issue 13): ppo_minibatch_pop and ppo_step_pop run every agent in one launch,
 *   a second NDRange dimension over agents (work-group (g, a): group g of agent a). Agent a's
 *   buffers lie stride[i] words after agent a-1's (i: the buffer's place among the buffer
 *   arguments; 0 for one shared by all), its scalars are row (u, a) of hp (AGENT_HP words,
 *   columns HP_*: kernel_constants.AGENT_COLUMNS; the rows of all of an iteration's updates,
 *   written at once), and it runs the same body as the single launch on its own buffers: the
 *   same arithmetic in the same order, so the single run's bits.
 * Reference: the separate kernels, and through them rlcl/reference.py.
 */
#include "actor_critic.h"
#include "loss.h"
#include "optim.h"
#include "rollout.h"

inline void ppo_minibatch_body(
    __global float *grads, __global const float *params, __global float *stats,
    __global float *wt,
    /* the network's minibatch buffers (ActorCritic) and the minibatch (Rollout); critic_obs:
     * the critic's copy of mb_obs */
    __global float *hidden, __global float *mb_obs, __global float *critic_obs,
    __global float *outputs, __global float *mb_values, __global float *d_outputs,
    __global float *d_values, __global float *d_log_std, __global uint *mb_actions,
    __global float *mb_logp, __global float *mb_adv, __global float *mb_ret,
    __global float *mb_val,
    /* the rollout storage */
    __global const int *idx, __global const float *obs, __global const uint *actions,
    __global const float *logp, __global const float *advantages, __global const float *returns,
    __global const float *values,
    __global const int *table, int lpn, int n_tiles, int obs_dim, int act_dim, int A,
    int log_std_off, int M, int lanes, int u, float clip_coef, int clip_vloss, float ent_coef,
    float vf_coef, int norm_adv, int pg_mode, int inject_nan, int net, __local float *scratch)
{
    const int lid = get_local_id(0), W = get_local_size(0);
    const int part = net ? LOSS_VALUE : LOSS_POLICY, quads = (M + 3) / 4;
    __global float *x = net ? critic_obs : mb_obs;
    for (int m = lid; m < M; m += W)
        gather_row(x, mb_actions, mb_logp, mb_adv, mb_ret, mb_val, idx[u * M + m], m, obs,
                   actions, logp, advantages, returns, values, obs_dim, act_dim, part);
    barrier(CLK_GLOBAL_MEM_FENCE);
    for (int q = lid; q < quads; q += W)
        ac_forward_rows(hidden, outputs, mb_values, x, params, table, lpn, M, 4 * q, net);
    ac_transpose_weights(wt, params, table, lpn, net, lid, W);
    barrier(CLK_GLOBAL_MEM_FENCE);
    /* the value's half normalises no advantages: it reads the rollout's (constant here)
     * rather than mb_adv, which the actor's group is writing */
    __global const float *adv = net ? advantages : mb_adv;
    if (log_std_off >= 0)  /* uniform: every work-item takes the same branch */
        gaussian_loss(d_outputs, d_values, d_log_std, stats, u, outputs, mb_values, params,
                      log_std_off, (__global const float *)mb_actions, mb_logp, adv, mb_ret,
                      mb_val, M, A, clip_coef, clip_vloss, ent_coef, vf_coef, norm_adv, pg_mode,
                      part, lanes, scratch);
    else
        categorical_loss(d_outputs, d_values, stats, u, outputs, mb_values,
                         (__global const int *)mb_actions, mb_logp, adv, mb_ret, mb_val, M, A,
                         clip_coef, clip_vloss, ent_coef, vf_coef, norm_adv, pg_mode, part,
                         lanes, scratch);
    barrier(CLK_GLOBAL_MEM_FENCE);
    for (int q = lid; q < quads; q += W)
        ac_deltas_rows(hidden, d_outputs, d_values, wt, 1, table, lpn, M, 4 * q, net);
    barrier(CLK_GLOBAL_MEM_FENCE);
    const int critic_tiles = table[lpn * AC_COLS + COL_TILE_START];
    for (int g = (net ? critic_tiles : 0) + lid; g < (net ? n_tiles : critic_tiles); g += W)
        ac_param_tile(grads, hidden, x, d_outputs, d_values, table, lpn, M, g);
    if (!net && log_std_off >= 0)
        for (int j = lid; j < A; j += W) {  /* gaussian.cl column_sum */
            float acc = 0.0f;
            for (int r = 0; r < M; r++) acc += d_log_std[r * A + j];
            grads[log_std_off + j] = acc;
        }
    barrier(CLK_GLOBAL_MEM_FENCE);
    if (!net && lid == 0 && inject_nan) grads[0] = NAN;  /* the actor's first weight */
}

inline void ppo_step_body(
    __global float *params, __global float *grads, __global float *velocity,
    __global float *prev_update, __global float *norms, __global float *partials, int n, int u,
    float max_norm, int norm_lanes, float skip_above, float lr, float momentum, float dampening,
    float weight_decay, int nesterov, int first, int step_groups, int wg, int groups,
    __local float *scratch)
{
    const int lid = get_local_id(0), W = get_local_size(0);
    if (norm_lanes % 8 == 0)  /* uniform: the same branch for every work-item */
        for (int v = 8 * lid; v < norm_lanes; v += 8 * W)
            vstore8(lane_squares8(grads, n, v, norm_lanes), 0, scratch + v);
    else
        for (int v = lid; v < norm_lanes; v += W)
            scratch[v] = lane_squares(grads, n, v, norm_lanes);
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid == 0) tree_sum(scratch, norm_lanes);
    barrier(CLK_LOCAL_MEM_FENCE);
    const float norm = sqrt(scratch[0]);
    const int per = (step_groups + groups - 1) / groups;
    if (wg == 0 && lid == 0) norms[u] = norm;
    const bool skip = skip_step(norm, skip_above);
    for (int g = wg * per + lid; g < min(step_groups, (wg + 1) * per); g += W)
        sgd_group8(params, grads, velocity, prev_update, g, n, norm, max_norm, skip, lr, momentum,
                   dampening, weight_decay, nesterov, first,
                   partials + (u * step_groups + g) * NUM_SMOOTH);
}

__kernel void ppo_minibatch(
    __global float *grads, __global const float *params, __global float *stats,
    __global float *wt, __global float *hidden, __global float *mb_obs,
    __global float *critic_obs, __global float *outputs, __global float *mb_values,
    __global float *d_outputs, __global float *d_values, __global float *d_log_std,
    __global uint *mb_actions, __global float *mb_logp, __global float *mb_adv,
    __global float *mb_ret, __global float *mb_val, __global const int *idx,
    __global const float *obs, __global const uint *actions, __global const float *logp,
    __global const float *advantages, __global const float *returns,
    __global const float *values, __global const int *table, int lpn, int n_tiles,
    int obs_dim, int act_dim, int A, int log_std_off, int M, int lanes, int u, float clip_coef,
    int clip_vloss, float ent_coef, float vf_coef, int norm_adv, int pg_mode, int inject_nan,
    __local float *scratch)
{
    ppo_minibatch_body(grads, params, stats, wt, hidden, mb_obs, critic_obs, outputs, mb_values,
                       d_outputs, d_values, d_log_std, mb_actions, mb_logp, mb_adv, mb_ret,
                       mb_val, idx, obs, actions, logp, advantages, returns, values, table, lpn,
                       n_tiles, obs_dim, act_dim, A, log_std_off, M, lanes, u, clip_coef,
                       clip_vloss, ent_coef, vf_coef, norm_adv, pg_mode, inject_nan,
                       get_group_id(0), scratch);
}

/* A population's minibatch buffers and sizes: the parameters of agent_minibatch,
 * ppo_minibatch_pop and ppo_update_pop (params written: ppo_update_pop steps them), and the
 * arguments that pass them on. */
#define POP_MINIBATCH_PARAMS                                                                   \
    __global float *grads, __global float *params, __global float *stats, __global float *wt, \
    __global float *hidden, __global float *mb_obs, __global float *critic_obs,              \
    __global float *outputs, __global float *mb_values, __global float *d_outputs,           \
    __global float *d_values, __global float *d_log_std, __global uint *mb_actions,          \
    __global float *mb_logp, __global float *mb_adv, __global float *mb_ret,                 \
    __global float *mb_val, __global const int *idx, __global const float *obs,             \
    __global const uint *actions, __global const float *logp,                               \
    __global const float *advantages, __global const float *returns,                        \
    __global const float *values, __global const int *table, __global const int *stride,    \
    __global const uint *hp, int lpn, int n_tiles, int obs_dim, int act_dim, int A,         \
    int log_std_off, int M, int lanes
#define POP_MINIBATCH_ARGS                                                                     \
    grads, params, stats, wt, hidden, mb_obs, critic_obs, outputs, mb_values, d_outputs,     \
    d_values, d_log_std, mb_actions, mb_logp, mb_adv, mb_ret, mb_val, idx, obs, actions,     \
    logp, advantages, returns, values, table, stride, hp, lpn, n_tiles, obs_dim, act_dim, A, \
    log_std_off, M, lanes

/* Network NET's half of update u for agent a = get_group_id(1) of a population: its slices
 * of the buffers and its row of update u's scalars. */
inline void agent_minibatch(POP_MINIBATCH_PARAMS, int u, int pg_mode, int net,
                            __local float *scratch)
{
    const int a = get_group_id(1);
    __global const uint *h = hp + (u * get_num_groups(1) + a) * AGENT_HP;  /* update u's row */
    ppo_minibatch_body(grads + a * stride[0], params + a * stride[1], stats + a * stride[2],
                       wt + a * stride[3], hidden + a * stride[4], mb_obs + a * stride[5],
                       critic_obs + a * stride[6], outputs + a * stride[7],
                       mb_values + a * stride[8], d_outputs + a * stride[9],
                       d_values + a * stride[10], d_log_std + a * stride[11],
                       mb_actions + a * stride[12], mb_logp + a * stride[13],
                       mb_adv + a * stride[14], mb_ret + a * stride[15], mb_val + a * stride[16],
                       idx + a * stride[17], obs + a * stride[18], actions + a * stride[19],
                       logp + a * stride[20], advantages + a * stride[21],
                       returns + a * stride[22], values + a * stride[23],
                       table + a * stride[24], lpn, n_tiles, obs_dim, act_dim, A, log_std_off, M,
                       lanes, u, as_float(h[HP_CLIP_COEF]), (int)h[HP_CLIP_VLOSS],
                       as_float(h[HP_ENT_COEF]), as_float(h[HP_VF_COEF]), (int)h[HP_NORM_ADV],
                       pg_mode, (int)h[HP_INJECT_NAN], net, scratch);
}

__kernel void ppo_minibatch_pop(POP_MINIBATCH_PARAMS, int u, int pg_mode, __local float *scratch)
{
    agent_minibatch(POP_MINIBATCH_ARGS, u, pg_mode, get_group_id(0), scratch);
}

__kernel void ppo_step(
    __global float *params, __global float *grads, __global float *velocity,
    __global float *prev_update, __global float *norms, __global float *partials, int n, int u,
    float max_norm, int norm_lanes, float skip_above, float lr, float momentum, float dampening,
    float weight_decay, int nesterov, int first, int step_groups, __local float *scratch)
{
    ppo_step_body(params, grads, velocity, prev_update, norms, partials, n, u, max_norm,
                  norm_lanes, skip_above, lr, momentum, dampening, weight_decay, nesterov, first,
                  step_groups, get_group_id(0), get_num_groups(0), scratch);
}

/* ppo_step_pop's buffers and sizes, as agent_step takes them. */
#define POP_STEP_PARAMS                                                                        \
    __global float *params, __global float *grads, __global float *velocity,                \
    __global float *prev_update, __global float *norms, __global float *partials,           \
    __global const int *stride, __global const uint *hp, int n, int u, int norm_lanes,      \
    int step_groups

/* Agent a = get_group_id(1)'s step after update u, its share for work-group WG of GROUPS. */
inline void agent_step(POP_STEP_PARAMS, int wg, int groups, __local float *scratch)
{
    const int a = get_group_id(1);
    __global const uint *h = hp + (u * get_num_groups(1) + a) * AGENT_HP;  /* update u's row */
    ppo_step_body(params + a * stride[0], grads + a * stride[1], velocity + a * stride[2],
                  prev_update + a * stride[3], norms + a * stride[4], partials + a * stride[5],
                  n, u, as_float(h[HP_MAX_NORM]), norm_lanes, as_float(h[HP_SKIP_ABOVE]),
                  as_float(h[HP_LR]), as_float(h[HP_MOMENTUM]), as_float(h[HP_DAMPENING]),
                  as_float(h[HP_WEIGHT_DECAY]), (int)h[HP_NESTEROV], (int)h[HP_FIRST],
                  step_groups, wg, groups, scratch);
}

__kernel void ppo_step_pop(POP_STEP_PARAMS, __local float *scratch)
{
    agent_step(params, grads, velocity, prev_update, norms, partials, stride, hp, n, u,
               norm_lanes, step_groups, get_group_id(0), get_num_groups(0), scratch);
}

/* Every update of an iteration for a population on a CPU: work-group (0, a) runs agent a's
 * minibatches u = 0 .. updates - 1 in order, each as the two launches above would (the actor's
 * half, the critic's, then the step), so the bits are theirs. One launch in place of 2 x updates:
 * a CPU runs a work-group whole on one core and the agents fill the cores, so the networks need
 * not run in two groups, and each launch cost the host ~0.1 ms and the device a sync (issue 13:
 * 64 default agents' update 0.89-0.92x the device time of the 24 launches, paired).
 * Work-groups of one work-item (Device.lane_items on a CPU): PoCL 3.0 once miscompiled a
 * minibatch loop holding the body's barriers in groups of several (zero gradients), while with
 * one item the population tests match the single runs bit for bit. A GPU keeps the two launches
 * (two groups per agent: the networks side by side). stride: the minibatch buffers'; step_stride:
 * ppo_step_pop's (params, grads, velocity, prev_update, norms, partials). */
__kernel void ppo_update_pop(
    POP_MINIBATCH_PARAMS, int updates, int pg_mode, __global float *velocity,
    __global float *prev_update, __global float *norms, __global float *partials,
    __global const int *step_stride, int n, int norm_lanes, int step_groups,
    __local float *scratch)
{
    for (int u = 0; u < updates; u++) {
        for (int net = 0; net < 2; net++)
            agent_minibatch(POP_MINIBATCH_ARGS, u, pg_mode, net, scratch);
        barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);
        agent_step(params, grads, velocity, prev_update, norms, partials, step_stride, hp, n, u,
                   norm_lanes, step_groups, 0, 1, scratch);
        barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);
    }
}
