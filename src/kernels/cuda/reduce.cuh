// Block-wide reductions shared by the one-block-per-row kernels (cross_entropy.cu, top_k.cu):
// warp shuffles, then one value per warp through shared memory.
#pragma once

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// The block's sum (max when `is_max`) of every thread's v, returned to every thread.
__device__ float block_reduce(float v, bool is_max) {
    __shared__ float part[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int warps = (blockDim.x + 31) >> 5;
    float empty = is_max ? __int_as_float(0xff800000) : 0.0f;
    v = is_max ? warp_max(v) : warp_sum(v);
    __syncthreads();  // every thread has read the previous call's result
    if (lane == 0) part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < warps ? part[lane] : empty;
        v = is_max ? warp_max(v) : warp_sum(v);
        if (lane == 0) part[0] = v;
    }
    __syncthreads();
    return part[0];
}
