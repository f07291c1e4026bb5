/* loss.cl: the PPO / A2C loss and its gradient with respect to the network outputs, in one pass.
 *
 * Per sample b (CleanRL ppo.py; Schulman et al. 2017, eq. 7 and 9):
 *   lp     = log softmax(logits_b)[a_b],  ratio = exp(lp - old_logp_b)
 *   adv    = norm_adv ? (adv_b - mean) / (std + 1e-8) : adv_b     (std unbiased, per minibatch)
 *   pg     = max(-adv * ratio, -adv * clip(ratio, 1 - c, 1 + c))     pg_mode 0 (PPO)
 *   pg     = -adv * lp                                               pg_mode 1 (A2C, Mnih et
 *            al. 2016; the gradient equals PPO's at ratio 1, the value is SB3's policy_loss)
 *   v_loss = 0.5 * (v_b - R_b)^2, or with clip_vloss
 *            0.5 * max((v_b - R_b)^2, (old_v_b + clip(v_b - old_v_b, -c, c) - R_b)^2)
 *   H      = -sum_j p_j log p_j
 *   loss   = mean(pg) - ent_coef * mean(H) + vf_coef * mean(v_loss)
 * Gradients written for the backward pass (M = minibatch size):
 *   dlogits[b,j] = (g_lp * ([j == a] - p_j) + ent_coef * p_j * (log p_j + H)) / M
 *                  with g_lp = -adv * ratio where the unclipped term is the active one, else 0
 *                  (pg_mode 1: g_lp = -adv)
 *   dvalues[b]   = vf_coef * (v_b - R_b) / M where the active value term depends on v_b, else 0
 * stats[row * 8 + k]: means over the minibatch of pg, v_loss, H, approx_kl = (ratio-1) - log
 *   ratio, clip fraction; then max approx_kl, max ratio, min ratio.
 *
 * Launch: ONE work-group of L work-items (L a power of two); each work-item takes eight
 * samples at a time (float8 lanes, loss.h) and every reduction is a tree in a fixed order, so
 * the result is deterministic.
 * scratch: 8 * L local floats. Reference: rlcl/reference.py ppo_loss.
 * The shared pieces (advantage normalisation, policy and value terms, statistics) are in
 * loss.h; gaussian.cl has the same loss for a diagonal Gaussian head.
 */
#include "loss.h"

__kernel void ppo_loss(__global float *dlogits, __global float *dvalues, __global float *stats,
                       int row, __global const float *logits, __global const float *values,
                       __global const int *actions, __global const float *old_logp,
                       __global const float *advantages, __global const float *returns,
                       __global const float *old_values, int M, int A, float clip_coef,
                       int clip_vloss, float ent_coef, float vf_coef, int norm_adv,
                       int pg_mode, __local float *scratch)
{
    categorical_loss(dlogits, dvalues, stats, row, logits, values, actions, old_logp, advantages,
                     returns, old_values, M, A, clip_coef, clip_vloss, ent_coef, vf_coef,
                     norm_adv, pg_mode, LOSS_BOTH,
                     get_local_size(0), scratch);
}
