// The optimizer's per-parameter updates on the GPU, one thread per element, in place.
// Compiled to PTX by build.rs (feature `cuda`); src/optim/fused.rs holds the same arithmetic
// on the CPU, the reference.

// w <- w - step * g.
extern "C" __global__ void sgd_update(float* __restrict__ w, const float* __restrict__ g,
                                      unsigned int n, float step) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) w[i] -= step * g[i];
}

// m <- decay m + (1 - decay) f(scale g), f the identity or (square != 0) the square.
extern "C" __global__ void adam_moment(float* __restrict__ m, const float* __restrict__ g,
                                       unsigned int n, float decay, float scale,
                                       float square) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float x = scale * g[i];
    m[i] = decay * m[i] + (1.0f - decay) * (square != 0.0f ? x * x : x);
}

// w <- w - lr (m / c1) / (sqrt(v / c2) + eps).
extern "C" __global__ void adam_update(float* __restrict__ w, const float* __restrict__ m,
                                       const float* __restrict__ v, unsigned int n, float lr,
                                       float c1, float c2, float eps) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) w[i] -= lr * (m[i] / c1) / (sqrtf(v[i] / c2) + eps);
}

// sums[slot] += sum(g^2), one parameter's share of the gradient norm: a grid-stride sum per
// thread, then a block sum, then one atomic add per block.
extern "C" __global__ void sum_squares(float* sums, const float* __restrict__ g, unsigned int n,
                                       unsigned int slot) {
    float s = 0.0f;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        s += g[i] * g[i];
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    __shared__ float part[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) part[warp] = s;
    __syncthreads();
    if (warp == 0) {
        s = lane < (int)((blockDim.x + 31) >> 5) ? part[lane] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (lane == 0) atomicAdd(sums + slot, s);
    }
}
