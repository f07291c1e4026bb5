/* rollout.h: row M of a minibatch from row K of the rollout storage (rollout.cl
 * gather_minibatch; also the fused update, ppo_update.cl). A copy: no arithmetic.
 */
#ifndef RLCL_ROLLOUT_H
#define RLCL_ROLLOUT_H
#include "common.h"

inline void gather_row(__global float *mb_obs, __global uint *mb_actions,
                       __global float *mb_logp, __global float *mb_adv, __global float *mb_ret,
                       __global float *mb_val, int k, int m, __global const float *obs,
                       __global const uint *actions, __global const float *logp,
                       __global const float *advantages, __global const float *returns,
                       __global const float *values, int obs_dim, int act_dim, int part)
{
    for (int d = 0; d < obs_dim; d++) mb_obs[m * obs_dim + d] = obs[k * obs_dim + d];
    if (part != LOSS_VALUE) {  /* what the policy's half of the loss reads (loss.h) */
        for (int d = 0; d < act_dim; d++) mb_actions[m * act_dim + d] = actions[k * act_dim + d];
        mb_logp[m] = logp[k];
        mb_adv[m] = advantages[k];
    }
    if (part != LOSS_POLICY) {  /* the value's */
        mb_ret[m] = returns[k];
        mb_val[m] = values[k];
    }
}
#endif
