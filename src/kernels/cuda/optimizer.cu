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
