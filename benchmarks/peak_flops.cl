/* peak_flops.cl: the device's float32 arithmetic peak for benchmarks/roofline.py (issue 12).
 * Each work-item runs CHAINS (a -D option, 4 to 16) independent float8 chains of
 * x = x * m + c, a multiply and an add (FP_CONTRACT OFF: no fusion, as in rlcl's kernels), so
 * CHAINS * 8 * 2 FLOP per iteration. Enough chains hide both units' latency; too many no longer
 * fit the registers (16 on AVX2, with m and c) and spill, so the script tries several and keeps
 * the best. out keeps the work from being optimised away.
 * Launch: global (work-items), any local size.
 */
#pragma OPENCL FP_CONTRACT OFF

#define STEP(k) if (CHAINS > k) x[k] = x[k] * m + c

__kernel void peak_flops(__global float *out, int iters)
{
    const float8 m = (float8)(0.9999f), c = (float8)(0.0001f);
    const float g = (float)get_global_id(0);
    float8 x[16];
    for (int k = 0; k < 16; k++) x[k] = (float8)(g + k);
    for (int i = 0; i < iters; i++) {
        STEP(0); STEP(1); STEP(2); STEP(3); STEP(4); STEP(5); STEP(6); STEP(7);
        STEP(8); STEP(9); STEP(10); STEP(11); STEP(12); STEP(13); STEP(14); STEP(15);
    }
    float8 s = (float8)(0.0f);
    for (int k = 0; k < CHAINS; k++) s += x[k];
    out[get_global_id(0)] = s.s0 + s.s1 + s.s2 + s.s3 + s.s4 + s.s5 + s.s6 + s.s7;
}
