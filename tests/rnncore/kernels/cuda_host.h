// Run rnncore's CUDA kernels on the CPU, for the tests: each CUDA thread is a host
// thread, __syncthreads a barrier of the block's threads, shared memory a buffer
// per block. Blocks run a few at a time, concurrently, in launch order, as a GPU
// may run them; the kernels use no warp intrinsics, so nothing else is needed.
#pragma once
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstring>
#include <memory>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

namespace rnn_host {
inline thread_local dim3 thread_idx, block_idx;
inline thread_local std::barrier<>* block_barrier = nullptr;
inline thread_local unsigned char* block_shared = nullptr;
inline dim3 block_dim, grid_dim;
}  // namespace rnn_host

#define threadIdx (rnn_host::thread_idx)
#define blockIdx (rnn_host::block_idx)
#define blockDim (rnn_host::block_dim)
#define gridDim (rnn_host::grid_dim)
#define __global__
#define __launch_bounds__(...)
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __align__(n) alignas(n)
#define RNN_DYNAMIC_SHARED(name) unsigned char* name = rnn_host::block_shared

using std::exp;
using std::isnan;
using std::log1p;
using std::tanh;

inline void __syncthreads() { rnn_host::block_barrier->arrive_and_wait(); }
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __nanosleep(unsigned) { std::this_thread::yield(); }
template <typename T>
inline T atomicAdd(T* p, T v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
template <typename T>
inline T atomicExch(T* p, T v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline double __longlong_as_double(long long i) { double f; std::memcpy(&f, &i, 8); return f; }

namespace rnn_host {
// Launch kernel `k` on grid x block threads; `args[i]` points at argument i's value.
template <typename... P, std::size_t... I>
void launch(void (*k)(P...), dim3 grid, dim3 block, std::size_t shared, void** args,
            unsigned concurrent, std::index_sequence<I...>) {
    auto call = [&] { k(*static_cast<std::remove_cvref_t<P>*>(args[I])...); };
    unsigned threads = block.x * block.y * block.z;
    unsigned long long blocks = 1ULL * grid.x * grid.y * grid.z;
    block_dim = block;
    grid_dim = grid;
    for (unsigned long long first = 0; first < blocks; first += concurrent) {
        unsigned long long last = std::min(blocks, first + concurrent);
        std::vector<std::unique_ptr<std::barrier<>>> barriers;
        std::vector<std::vector<unsigned char>> memory(last - first,
                                                       std::vector<unsigned char>(shared + 16));
        std::vector<std::thread> pool;
        for (unsigned long long n = first; n < last; ++n) {
            barriers.push_back(std::make_unique<std::barrier<>>(threads));
            dim3 bi{unsigned(n % grid.x), unsigned(n / grid.x % grid.y),
                    unsigned(n / grid.x / grid.y)};
            for (unsigned i = 0; i < threads; ++i) {
                dim3 ti{i % block.x, i / block.x % block.y, i / block.x / block.y};
                auto* bar = barriers.back().get();
                auto* mem = memory[n - first].data();
                pool.emplace_back([=] {
                    thread_idx = ti;
                    block_idx = bi;
                    block_barrier = bar;
                    block_shared = mem;
                    call();
                });
            }
        }
        for (auto& th : pool) th.join();
    }
}

template <typename... P>
void launch(void (*k)(P...), dim3 grid, dim3 block, std::size_t shared, void** args,
            unsigned concurrent) {
    launch(k, grid, block, shared, args, concurrent, std::index_sequence_for<P...>{});
}
}  // namespace rnn_host
