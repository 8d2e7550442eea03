// Beam search's ranking on the GPU: per row of logits (rows, vocab), the best k extensions
// scored base + log-softmax, so that only (rows, k) candidates go back to the host instead
// of the whole row. One block per row: the row's max and sum of exponentials, then k
// block-wide arg-max passes, each finding the best entry ranked after the previous pick.
// Compiled to PTX by build.rs (feature `cuda`); src/search/device_rank.rs holds the CPU
// reference (the host ranking of src/search/rank.rs) and the launch.

#include "reduce.cuh"

#define NONE 0xffffffffu

// Whether (s, i) ranks before (t, j): the higher score, then the lower id; NONE ranks last.
__device__ __forceinline__ bool before(float s, unsigned int i, float t, unsigned int j) {
    if (j == NONE) return i != NONE;
    if (i == NONE) return false;
    return s > t || (s == t && i < j);
}

__device__ __forceinline__ void warp_best(float& s, unsigned int& i) {
    for (int o = 16; o > 0; o >>= 1) {
        float t = __shfl_xor_sync(0xffffffffu, s, o);
        unsigned int j = __shfl_xor_sync(0xffffffffu, i, o);
        if (before(t, j, s, i)) {
            s = t;
            i = j;
        }
    }
}

// The block's best (s, i), returned to every thread.
__device__ void block_best(float& s, unsigned int& i) {
    __shared__ float ps[32];
    __shared__ unsigned int pi[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int warps = (blockDim.x + 31) >> 5;
    warp_best(s, i);
    __syncthreads();  // every thread has read the previous call's result
    if (lane == 0) {
        ps[warp] = s;
        pi[warp] = i;
    }
    __syncthreads();
    if (warp == 0) {
        s = lane < warps ? ps[lane] : 0.0f;
        i = lane < warps ? pi[lane] : NONE;
        warp_best(s, i);
        if (lane == 0) {
            ps[0] = s;
            pi[0] = i;
        }
    }
    __syncthreads();
    s = ps[0];
    i = pi[0];
}

// logits (rows, vocab), bases (rows) -> out (rows, 2k): per row its k best scores
// base + (x - lse), best first, then their token ids as floats (-1 where the row had fewer
// than k entries that are not NaN). `banned` (NONE for none) is never picked.
extern "C" __global__ void row_top_k(const float* __restrict__ logits,
                                     const float* __restrict__ bases, float* __restrict__ out,
                                     unsigned int rows, unsigned int vocab, unsigned int k,
                                     unsigned int banned) {
    unsigned int r = blockIdx.x;
    if (r >= rows) return;
    const float* x = logits + (size_t)r * vocab;
    float m = __int_as_float(0xff800000);
    for (unsigned int v = threadIdx.x; v < vocab; v += blockDim.x) m = fmaxf(m, x[v]);
    m = block_reduce(m, true);
    float e = 0.0f;
    // NaN entries are never picked, so they add nothing to the sum either.
    for (unsigned int v = threadIdx.x; v < vocab; v += blockDim.x)
        if (!isnan(x[v])) e += expf(x[v] - m);
    e = block_reduce(e, false);
    float lse = m + logf(e), base = bases[r];
    float last_s = 0.0f;
    unsigned int last_i = NONE;
    float* o = out + (size_t)r * 2 * k;
    for (unsigned int j = 0; j < k; ++j) {
        float best_s = 0.0f;
        unsigned int best_i = NONE;
        for (unsigned int v = threadIdx.x; v < vocab; v += blockDim.x) {
            float s = base + (x[v] - lse);
            // Only entries ranked after the previous pick are still open.
            if (isnan(s) || v == banned || (last_i != NONE && !before(last_s, last_i, s, v)))
                continue;
            if (before(s, v, best_s, best_i)) {
                best_s = s;
                best_i = v;
            }
        }
        block_best(best_s, best_i);
        if (threadIdx.x == 0) {
            o[j] = best_i == NONE ? __int_as_float(0xff800000) : best_s;
            o[k + j] = best_i == NONE ? -1.0f : (float)best_i;
        }
        last_s = best_s;
        last_i = best_i;
        if (best_i == NONE) {
            // Nothing is left: the remaining picks are empty too.
            for (unsigned int q = j + 1 + threadIdx.x; q < k; q += blockDim.x) {
                o[q] = __int_as_float(0xff800000);
                o[k + q] = -1.0f;
            }
            return;
        }
    }
}
