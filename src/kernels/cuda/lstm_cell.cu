// The LSTM cell on the GPU: one thread per (row, unit), gate order (i, f, g, o) as PyTorch.
// Compiled to PTX by build.rs (feature `cuda`); src/model/lstm/cell_op.rs holds the same math
// on the CPU, which the tests use as the reference.

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// Unit j's gate activations from its row of pre-activations a (4H).
__device__ __forceinline__ void activations(const float* a, size_t hidden, size_t j, float* i,
                                            float* f, float* g, float* o) {
    *i = sigmoid(a[j]);
    *f = sigmoid(a[hidden + j]);
    *g = tanhf(a[2 * hidden + j]);
    *o = sigmoid(a[3 * hidden + j]);
}

// gates (rows, 4H) pre-activations, c_prev (rows, H) -> out (rows, 2H) = [h | c].
extern "C" __global__ void lstm_cell_fwd(const float* __restrict__ gates,
                                         const float* __restrict__ c_prev,
                                         float* __restrict__ out,
                                         unsigned int rows, unsigned int hidden) {
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)rows * hidden) return;
    size_t r = idx / hidden, j = idx % hidden;
    float i, f, g, o;
    activations(gates + r * 4 * hidden, hidden, j, &i, &f, &g, &o);
    float c = f * c_prev[idx] + i * g;
    out[r * 2 * hidden + j] = o * tanhf(c);
    out[r * 2 * hidden + hidden + j] = c;
}

// gates (rows, 4H), c_prev (rows, H), grad (rows, 2H) = [dL/dh | dL/dc]
// -> out (rows, 5H) = [dL/d gates (4H) | dL/d c_prev (H)]. Activations are recomputed.
extern "C" __global__ void lstm_cell_bwd(const float* __restrict__ gates,
                                         const float* __restrict__ c_prev,
                                         const float* __restrict__ grad,
                                         float* __restrict__ out,
                                         unsigned int rows, unsigned int hidden) {
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)rows * hidden) return;
    size_t r = idx / hidden, j = idx % hidden;
    float i, f, g, o;
    activations(gates + r * 4 * hidden, hidden, j, &i, &f, &g, &o);
    float cp = c_prev[idx];
    float tc = tanhf(f * cp + i * g);
    float dh = grad[r * 2 * hidden + j];
    float dc = grad[r * 2 * hidden + hidden + j] + dh * o * (1.0f - tc * tc);
    float* d = out + r * 5 * hidden;
    d[j] = dc * g * i * (1.0f - i);
    d[hidden + j] = dc * cp * f * (1.0f - f);
    d[2 * hidden + j] = dc * i * (1.0f - g * g);
    d[3 * hidden + j] = dh * tc * o * (1.0f - o);
    d[4 * hidden + j] = dc * f;
}
