// The affine scan over blocks of time (rnncore.kernels.cuda.scan).
//
// Arrays are (n_blocks, steps, width), C-contiguous. Each block of time is scanned
// from its entry state by the tile scan of common.cuh: a chain is one block's
// `cols` neighbouring columns, so neighbouring threads touch neighbouring addresses.

#include "common.cuh"

// mode bit 1: write every step's state into h; bit 2: write each block's summary
// (A, B) into big_a, big_b.
// 256 threads; in float32, two blocks a multiprocessor (at most 128 registers).
template <typename T, int K>
__global__ void __launch_bounds__(256, 8 / sizeof(T))
    scan_blocks(const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ entries,
                T* __restrict__ h, T* __restrict__ big_a, T* __restrict__ big_b, int* flags,
                T* maps, long long n_chains, long long n_tiles, int cols, int serial,
                long long steps, long long width, int mode) {
    RNN_DYNAMIC_SHARED(shared);
    LookBack<T> lb = {flags, maps, n_chains, n_tiles, cols, serial};
    Tile<T> t = next_tile(lb, shared);
    long long col_groups = (width + cols - 1) / cols;
    long long block = t.chain / col_groups;
    long long column = (t.chain - block * col_groups) * cols + t.col;
    bool active = column < width;
    T entry = (active && t.group == 0) ? entries[block * width + column] : T(0);
    Affine<T> carry = identity_map<T>();
    for (bool more = true; more; more = serial && ++t.tile < n_tiles) {
        long long s0 = first_step<T, K>(lb, t);
        long long k0 = (block * steps + s0) * width + column;
        Affine<T> m[K];
        #pragma unroll
        for (int k = 0; k < K; ++k) {
            m[k] = identity_map<T>();
            if (active && s0 + k < steps) {
                m[k].a = a[k0 + k * width];
                m[k].b = b[k0 + k * width];
            }
        }
        T states[K];
        Affine<T> upto = scan_tile<T, K>(lb, t, m, entry, states, carry, !(mode & 2));
        if (!active) continue;
        if (mode & 1) {
            #pragma unroll
            for (int k = 0; k < K; ++k)
                if (s0 + k < steps) h[k0 + k * width] = states[k];
        }
        if ((mode & 2) && t.group == 0 && t.tile == n_tiles - 1) {
            big_a[block * width + column] = upto.a;
            big_b[block * width + column] = upto.b;
        }
    }
}
