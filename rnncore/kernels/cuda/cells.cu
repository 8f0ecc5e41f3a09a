// Fused cell kernels (rnncore.kernels.cuda.cells): the GPU twin of
// rnncore.kernels.cells, with its cell ids and maths.
//
// Arrays are C-contiguous: inputs x (steps, batch, features), states (batch, hidden),
// outputs (steps, batch, hidden or outputs). A step where any feature is NaN is the
// identity, with NaN outputs.

#include "common.cuh"

enum { MINGRU = 0, MINLSTM = 1, QRNN = 2, DIAGONAL = 3, ELMAN = 4, GRU = 5, LSTM = 6 };

template <typename T>
__device__ __forceinline__ bool any_nan(const T* row, int n) {
    bool missing = false;
    for (int f = 0; f < n; ++f) missing |= isnan(row[f]);
    return missing;
}

// ---- linear-state cells --------------------------------------------------------

// Row `row` of the projection: bias[row] + w[row, :] . x.
template <typename T>
__device__ __forceinline__ T project(const T* __restrict__ w, const T* __restrict__ bias,
                                     const T* x, int features, int row) {
    T u = bias[row];
    const T* wr = w + (long long)row * features;
    for (int f = 0; f < features; ++f) u += wr[f] * x[f];
    return u;
}

template <typename T, bool G>
__device__ __forceinline__ T candidate(T u) {
    return G ? rnn_g(u) : u;
}

// The step map (a, b) of unit `unit` for input row `x` (no NaN), and QRNN's output gate.
template <typename T, int KIND, bool G>
__device__ __forceinline__ Affine<T> step_map(const T* __restrict__ w, const T* __restrict__ bias,
                              const T* __restrict__ decay, const T* x, int features, int hidden,
                              int unit, T& out_gate) {
    Affine<T> m;
    if (KIND == MINGRU) {
        T uz = project(w, bias, x, features, unit);
        T uh = project(w, bias, x, features, hidden + unit);
        m.a = rnn_sigmoid(-uz);
        m.b = rnn_sigmoid(uz) * candidate<T, G>(uh);
    } else if (KIND == MINLSTM) {
        T uf = project(w, bias, x, features, unit);
        T ui = project(w, bias, x, features, hidden + unit);
        T uh = project(w, bias, x, features, 2 * hidden + unit);
        T log_ratio = rnn_log_sigmoid(uf) - rnn_log_sigmoid(ui);
        m.a = rnn_sigmoid(log_ratio);
        m.b = rnn_sigmoid(-log_ratio) * candidate<T, G>(uh);
    } else if (KIND == QRNN) {
        T uz = project(w, bias, x, features, unit);
        T uf = project(w, bias, x, features, hidden + unit);
        m.a = rnn_sigmoid(uf);
        m.b = rnn_sigmoid(-uf) * rnn_tanh(uz);
        out_gate = rnn_sigmoid(project(w, bias, x, features, 2 * hidden + unit));
    } else {  // DIAGONAL
        m.a = decay[unit];
        m.b = project(w, bias, x, features, unit);
    }
    return m;
}

// mode bits of linear_cell: outputs, summary, final state, readout.
enum { WRITE_Y = 1, SUMMARY = 2, FINAL = 4, READOUT = 8 };

// A linear-state layer: gates, tile scan and outputs (or their readout) in one pass,
// hidden states never stored. A chain is `series_per_chain` whole series (all
// their units), so that a block holds every unit a readout sums.
// At most 256 threads; in float32, two blocks a multiprocessor (at most 128 registers).
template <typename T, int K, int KIND, bool G>
__global__ void __launch_bounds__(256, 8 / sizeof(T))
    linear_cell(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                const T* __restrict__ decay, const T* __restrict__ c0,
                const T* __restrict__ ro_w, const T* __restrict__ ro_b, T* __restrict__ y,
                T* __restrict__ c_out, T* __restrict__ big_a, T* __restrict__ big_b, int* flags,
                T* maps, long long n_chains, long long n_tiles, int cols, int serial,
                long long steps, long long batch, int features, int hidden, int outputs,
                int mode) {
    RNN_DYNAMIC_SHARED(shared);
    LookBack<T> lb = {flags, maps, n_chains, n_tiles, cols, serial};
    Tile<T> t = next_tile(lb, shared);
    int per_chain = cols / hidden;
    int local = t.col / hidden, unit = t.col - local * hidden;
    long long series = t.chain * per_chain + local;
    bool active = series < batch;
    int groups = blockDim.x / cols, rows = groups * K;
    T* tile_out = reinterpret_cast<T*>(after_tile<T>(shared, cols));  // readout rows
    T entry = (active && t.group == 0) ? c0[series * hidden + unit] : T(0);
    Affine<T> carry = identity_map<T>();
    for (bool more = true; more; more = serial && ++t.tile < n_tiles) {
        long long s0 = first_step<T, K>(lb, t);
        Affine<T> m[K];
        T gate[K];
        bool missing[K];
        #pragma unroll
        for (int k = 0; k < K; ++k) {
            m[k] = identity_map<T>();
            missing[k] = true;
            gate[k] = T(1);
            if (active && s0 + k < steps) {
                const T* row = x + ((s0 + k) * batch + series) * features;
                missing[k] = any_nan(row, features);
                if (!missing[k])
                    m[k] = step_map<T, KIND, G>(w, bias, decay, row, features, hidden, unit,
                                                gate[k]);
            }
        }
        T states[K];
        Affine<T> upto = scan_tile<T, K>(lb, t, m, entry, states, carry, !(mode & SUMMARY));
        #pragma unroll
        for (int k = 0; k < K; ++k)
            if (active && (mode & FINAL) && s0 + k == steps - 1)
                c_out[series * hidden + unit] = states[k];
        if (active && (mode & SUMMARY) && t.group == 0 && t.tile == n_tiles - 1) {
            big_a[series * hidden + unit] = upto.a;
            big_b[series * hidden + unit] = upto.b;
        }
        if (!(mode & WRITE_Y)) continue;
        if (!(mode & READOUT)) {
            #pragma unroll
            for (int k = 0; k < K; ++k)
                if (active && s0 + k < steps)
                    y[((s0 + k) * batch + series) * hidden + unit] =
                        missing[k] ? rnn_nan(T(0)) : gate[k] * states[k];
            continue;
        }
        // Readout: the tile's outputs go through shared memory, one row per step.
        #pragma unroll
        for (int k = 0; k < K; ++k)
            tile_out[(t.group * K + k) * cols + t.col] =
                missing[k] ? rnn_nan(T(0)) : gate[k] * states[k];
        __syncthreads();
        long long first = t.tile * rows;
        for (int i = threadIdx.x; i < rows * per_chain * outputs; i += blockDim.x) {
            int r = i / (per_chain * outputs), rest = i - r * per_chain * outputs;
            int sl = rest / outputs, o = rest - sl * outputs;
            long long step = first + r, s = t.chain * per_chain + sl;
            if (step >= steps || s >= batch) continue;
            const T* h = tile_out + r * cols + sl * hidden;
            T acc = ro_b[o];
            for (int u = 0; u < hidden; ++u) acc += ro_w[o * hidden + u] * h[u];
            y[(step * batch + s) * outputs + o] = acc;
        }
    }
}

// The step maps of a linear-state layer, or its outputs for given states c:
// one thread per (step, series, unit). mode 0: a, b; mode 1: out = emit(c).
template <typename T, int KIND, bool G>
__global__ void linear_maps(const T* __restrict__ x, const T* __restrict__ w,
                            const T* __restrict__ bias, const T* __restrict__ decay,
                            const T* __restrict__ c, T* __restrict__ out_a,
                            T* __restrict__ out_b, long long steps, long long batch,
                            int features, int hidden, int mode) {
    long long i = (long long)blockDim.x * blockIdx.x + threadIdx.x;
    if (i >= steps * batch * hidden) return;
    long long row = i / hidden;
    int unit = i - row * hidden;
    const T* xr = x + row * features;
    bool missing = any_nan(xr, features);
    T gate = T(1);
    Affine<T> m = identity_map<T>();
    if (!missing) m = step_map<T, KIND, G>(w, bias, decay, xr, features, hidden, unit, gate);
    if (mode == 0) {
        out_a[i] = m.a;
        out_b[i] = m.b;
    } else {
        out_a[i] = missing ? rnn_nan(T(0)) : gate * c[i];
    }
}

// ---- nonlinear cells -----------------------------------------------------------

// An Elman, GRU or LSTM layer (PyTorch's layout and equations). A block steps SB
// series through time: each thread computes gate rows of the recurrent and input
// products, with the transposed weights w_hh_t (hidden, rows) in shared memory
// when they fit (w_shared = 1), then the units' new states. Readouts are applied
// by the caller.
template <typename T, int KIND, int SB>
__global__ void nonlinear_cell(const T* __restrict__ x, const T* __restrict__ w_ih_t,
                               const T* __restrict__ w_hh_t, const T* __restrict__ b_ih,
                               const T* __restrict__ b_hh, const T* __restrict__ h0,
                               const T* __restrict__ c0, T* __restrict__ y, T* __restrict__ h_out,
                               T* __restrict__ c_out, long long steps, long long batch,
                               int features, int hidden, int w_shared) {
    RNN_DYNAMIC_SHARED(shared);
    const int blocks = KIND == ELMAN ? 1 : (KIND == GRU ? 3 : 4);
    const int rows = blocks * hidden;
    T* sw = reinterpret_cast<T*>(shared);
    T* h = sw + (w_shared ? (long long)hidden * rows : 0);
    T* c = h + SB * hidden;
    T* gx = c + SB * hidden;
    T* gh = gx + SB * rows;
    int* missing = reinterpret_cast<int*>(gh + SB * rows);
    const T* wt = w_shared ? sw : w_hh_t;
    long long b0 = (long long)blockIdx.x * SB;
    if (w_shared)
        for (long long i = threadIdx.x; i < (long long)hidden * rows; i += blockDim.x)
            sw[i] = w_hh_t[i];
    for (int i = threadIdx.x; i < SB * hidden; i += blockDim.x) {
        long long b = b0 + i / hidden;
        h[i] = b < batch ? h0[b * hidden + i % hidden] : T(0);
        c[i] = (KIND == LSTM && b < batch) ? c0[b * hidden + i % hidden] : T(0);
    }
    __syncthreads();
    for (long long t = 0; t < steps; ++t) {
        const T* xt = x + t * batch * features;
        for (int r = threadIdx.x; r < rows; r += blockDim.x) {
            T ax[SB], ah[SB];
            for (int s = 0; s < SB; ++s) {
                ax[s] = b_ih[r];
                ah[s] = b_hh[r];
            }
            for (int f = 0; f < features; ++f) {
                T wf = w_ih_t[(long long)f * rows + r];
                for (int s = 0; s < SB; ++s) {
                    long long b = b0 + s < batch ? b0 + s : batch - 1;
                    ax[s] += wf * xt[b * features + f];
                }
            }
            for (int k = 0; k < hidden; ++k) {
                T wk = wt[(long long)k * rows + r];
                for (int s = 0; s < SB; ++s) ah[s] += wk * h[s * hidden + k];
            }
            for (int s = 0; s < SB; ++s) {
                gx[s * rows + r] = ax[s];
                gh[s * rows + r] = ah[s];
            }
        }
        if (threadIdx.x < SB) {
            long long b = b0 + threadIdx.x;
            missing[threadIdx.x] = b >= batch || any_nan(xt + b * features, features);
        }
        __syncthreads();
        for (int i = threadIdx.x; i < SB * hidden; i += blockDim.x) {
            int s = i / hidden, j = i - s * hidden;
            long long b = b0 + s;
            if (b >= batch) continue;
            T* yt = y + (t * batch + b) * hidden + j;
            if (missing[s]) {
                *yt = rnn_nan(T(0));
                continue;
            }
            const T* ax = gx + s * rows;
            const T* ah = gh + s * rows;
            T hn;
            if (KIND == ELMAN) {
                hn = rnn_tanh(ax[j] + ah[j]);
            } else if (KIND == GRU) {
                T r = rnn_sigmoid(ax[j] + ah[j]);
                T z = rnn_sigmoid(ax[hidden + j] + ah[hidden + j]);
                T n = rnn_tanh(ax[2 * hidden + j] + r * ah[2 * hidden + j]);
                hn = n + z * (h[i] - n);
            } else {  // LSTM: rows [i; f; g; o]
                T ig = rnn_sigmoid(ax[j] + ah[j]);
                T fg = rnn_sigmoid(ax[hidden + j] + ah[hidden + j]);
                T gg = rnn_tanh(ax[2 * hidden + j] + ah[2 * hidden + j]);
                T og = rnn_sigmoid(ax[3 * hidden + j] + ah[3 * hidden + j]);
                c[i] = fg * c[i] + ig * gg;
                hn = og * rnn_tanh(c[i]);
            }
            h[i] = hn;
            *yt = hn;
        }
        __syncthreads();
    }
    for (int i = threadIdx.x; i < SB * hidden; i += blockDim.x) {
        long long b = b0 + i / hidden;
        if (b >= batch) continue;
        h_out[b * hidden + i % hidden] = h[i];
        if (KIND == LSTM) c_out[b * hidden + i % hidden] = c[i];
    }
}
