/* peak_flops.cl: the device's float32 arithmetic peak for benchmarks/roofline.py (issue 12).
 * Each work-item runs 16 independent float8 chains of x = x * m + c, a multiply and an add
 * (FP_CONTRACT OFF: no fusion, as in rlcl's kernels), so 16 * 8 * 2 FLOP per iteration; the
 * chains are many enough to hide the latency of both units, and named one by one (an array
 * indexed in a loop may live in memory). out keeps the work from being optimised away.
 * Launch: global (work-items), any local size.
 */
#pragma OPENCL FP_CONTRACT OFF

#define STEP(x) x = x * m + c

__kernel void peak_flops(__global float *out, int iters)
{
    const float8 m = (float8)(0.9999f), c = (float8)(0.0001f);
    const float g = (float)get_global_id(0);
    float8 x0 = (float8)(g), x1 = x0 + 1.0f, x2 = x0 + 2.0f, x3 = x0 + 3.0f, x4 = x0 + 4.0f,
           x5 = x0 + 5.0f, x6 = x0 + 6.0f, x7 = x0 + 7.0f, x8 = x0 + 8.0f, x9 = x0 + 9.0f,
           xa = x0 + 10.0f, xb = x0 + 11.0f, xc = x0 + 12.0f, xd = x0 + 13.0f, xe = x0 + 14.0f,
           xf = x0 + 15.0f;
    for (int i = 0; i < iters; i++) {
        STEP(x0); STEP(x1); STEP(x2); STEP(x3); STEP(x4); STEP(x5); STEP(x6); STEP(x7);
        STEP(x8); STEP(x9); STEP(xa); STEP(xb); STEP(xc); STEP(xd); STEP(xe); STEP(xf);
    }
    const float8 s = ((x0 + x1) + (x2 + x3)) + ((x4 + x5) + (x6 + x7)) + ((x8 + x9) + (xa + xb))
                     + ((xc + xd) + (xe + xf));
    out[get_global_id(0)] = s.s0 + s.s1 + s.s2 + s.s3 + s.s4 + s.s5 + s.s6 + s.s7;
}
