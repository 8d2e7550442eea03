// Cross-entropy with label smoothing on the GPU: one block per row of logits (N, V), the
// row's max, sum of exponentials and sum read in one pass each. Compiled to PTX by build.rs
// (feature `cuda`); src/loss/cross_entropy.rs holds the same math on the CPU, which the
// tests use as the reference.

#include "reduce.cuh"

// logits (rows, vocab), targets (rows) -> out (rows, 3) = [nll, smoothed, lse] with
// nll = lse - x_t and smoothed = (1 - eps) nll + eps (lse - mean(x)). A target outside
// the vocabulary gives NaN (the trainer skips non-finite updates).
extern "C" __global__ void cross_entropy_fwd(const float* __restrict__ logits,
                                             const unsigned int* __restrict__ targets,
                                             float* __restrict__ out, unsigned int rows,
                                             unsigned int vocab, float eps) {
    unsigned int r = blockIdx.x;
    if (r >= rows) return;
    const float* x = logits + (size_t)r * vocab;
    float m = __int_as_float(0xff800000);
    for (unsigned int v = threadIdx.x; v < vocab; v += blockDim.x) m = fmaxf(m, x[v]);
    m = block_reduce(m, true);
    float e = 0.0f, s = 0.0f;
    for (unsigned int v = threadIdx.x; v < vocab; v += blockDim.x) {
        e += expf(x[v] - m);
        s += x[v];
    }
    e = block_reduce(e, false);
    s = block_reduce(s, false);
    if (threadIdx.x == 0) {
        unsigned int t = targets[r];
        float z = m + logf(e);
        float nll = t < vocab ? z - x[t] : __int_as_float(0x7fc00000);
        out[3 * r] = nll;
        out[3 * r + 1] = (1.0f - eps) * nll + eps * (z - s / vocab);
        out[3 * r + 2] = z;
    }
}

// logits (rows, vocab), targets (rows), gs (rows, 6) = [the gradient of the forward's three
// outputs | the forward's three outputs] -> dx (rows, vocab): softmax times the gradient of
// nll + smoothed, less the one-hot and uniform parts.
extern "C" __global__ void cross_entropy_bwd(const float* __restrict__ logits,
                                             const unsigned int* __restrict__ targets,
                                             const float* __restrict__ gs,
                                             float* __restrict__ dx, unsigned int rows,
                                             unsigned int vocab, float eps) {
    unsigned int r = blockIdx.x;
    if (r >= rows) return;
    const float* x = logits + (size_t)r * vocab;
    float* d = dx + (size_t)r * vocab;
    float g_nll = gs[6 * r], g_smooth = gs[6 * r + 1], z = gs[6 * r + 5];
    float total = g_nll + g_smooth;
    float uniform = g_smooth * eps / vocab;
    for (unsigned int v = threadIdx.x; v < vocab; v += blockDim.x) {
        d[v] = total == 0.0f ? 0.0f : total * expf(x[v] - z) - uniform;
    }
    __syncthreads();
    unsigned int t = targets[r];
    if (threadIdx.x == 0 && total != 0.0f && t < vocab) d[t] -= g_nll + g_smooth * (1.0f - eps);
}
