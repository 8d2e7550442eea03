// The LSTM cell on the GPU: one thread per (row, unit), gate order (i, f, g, o) as PyTorch:
// a step of the sequence op's forward (lstm_seq_step) and the cell's gradient (lstm_cell_bwd).
// Compiled to PTX by build.rs (feature `cuda`); src/model/lstm/sequence_op.rs and cell_op.rs
// hold the same math on the CPU, which the tests use as the reference.

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// Unit j's gate activations from its row of pre-activations a (4H).
__device__ __forceinline__ void activations(const float* a, size_t hidden, size_t j, float* i,
                                            float* f, float* g, float* o) {
    *i = sigmoid(a[j]);
    *f = sigmoid(a[hidden + j]);
    *g = tanhf(a[2 * hidden + j]);
    *o = sigmoid(a[3 * hidden + j]);
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

// One step t of the sequence op (src/model/lstm/sequence_op.rs): xw (T, B, 4H) the projected
// input, hw (B, 4H) = h_{t-1} . W_hhᵀ, hc0 (2, B, H), mask (T, B) read when has_mask, and
// out = [hs (T, B, H) | cs (T, B, H) | gates (T, B, 4H)], of which step t - 1's h and c are
// read and step t's written. A padding row keeps its state.
extern "C" __global__ void lstm_seq_step(const float* __restrict__ xw,
                                         const float* __restrict__ hw,
                                         const float* __restrict__ hc0,
                                         const float* __restrict__ mask, float* out,
                                         unsigned int t, unsigned int steps, unsigned int rows,
                                         unsigned int hidden, unsigned int has_mask) {
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t bh = (size_t)rows * hidden, tbh = (size_t)steps * bh;
    if (idx >= bh) return;
    size_t r = idx / hidden, j = idx % hidden;
    float* hs = out;
    float* cs = out + tbh;
    float* a = out + 2 * tbh + ((size_t)t * rows + r) * 4 * hidden;
    const float* x = xw + ((size_t)t * rows + r) * 4 * hidden;
    const float* w = hw + r * 4 * hidden;
    // This thread's unit in each of the four gates: the only entries `activations` reads.
    for (int q = 0; q < 4; ++q) a[q * hidden + j] = x[q * hidden + j] + w[q * hidden + j];
    float h_prev = t == 0 ? hc0[idx] : hs[(t - 1) * bh + idx];
    float c_prev = t == 0 ? hc0[bh + idx] : cs[(t - 1) * bh + idx];
    float i, f, g, o;
    activations(a, hidden, j, &i, &f, &g, &o);
    float c = f * c_prev + i * g;
    float h = o * tanhf(c);
    bool keep = !has_mask || mask[(size_t)t * rows + r] != 0.0f;
    hs[(size_t)t * bh + idx] = keep ? h : h_prev;
    cs[(size_t)t * bh + idx] = keep ? c : c_prev;
}
