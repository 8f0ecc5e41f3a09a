// Shared device code of rnncore's CUDA kernels: scalar maths and the tile scan.
//
// The tile scan is the GPU form of rnncore.scan's one primitive, the affine scan
// h_t = a_t * h_{t-1} + b_t. A launch scans independent *chains* (a chain is a
// group of `cols` columns followed through time), each cut into tiles of
// `groups * K` steps. A CUDA block takes one tile: its `cols x groups` threads each
// load K consecutive steps of one column into registers, the block composes their
// affine maps in shared memory, and the tile finds the map of everything before it
// by a decoupled look-back (Merrill and Garland, 2016) over its predecessors in the
// chain, which publish their own map (flag 1) and then the map from the chain's
// start (flag 2), a window of predecessors at a time. Inputs are read once and
// outputs written once, and long, narrow inputs spread over the whole GPU. Tiles take work ids in launch order from an
// atomic counter, time-major, so every tile waited on has started: no deadlock.
// Where chains alone fill the GPU, a block instead walks a whole chain, tile after
// tile, carrying the map from one to the next (serial): no look-back at all.
//
// Only __syncthreads, shared memory, fences and atomics are used (no warp
// intrinsics), so that the tests can run these kernels on the CPU as well.

#ifndef RNNCORE_COMMON_CUH
#define RNNCORE_COMMON_CUH

#ifndef RNN_DYNAMIC_SHARED
#define RNN_DYNAMIC_SHARED(name) extern __shared__ __align__(16) unsigned char name[]
#endif

// ---- scalar maths, in the operands' precision ---------------------------------

__device__ __forceinline__ float rnn_exp(float x) { return expf(x); }
__device__ __forceinline__ double rnn_exp(double x) { return exp(x); }
__device__ __forceinline__ float rnn_log1p(float x) { return log1pf(x); }
__device__ __forceinline__ double rnn_log1p(double x) { return log1p(x); }
__device__ __forceinline__ float rnn_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double rnn_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float rnn_nan(float) { return __int_as_float(0x7fc00000); }
__device__ __forceinline__ double rnn_nan(double) { return __longlong_as_double(0x7ff8000000000000LL); }

// sigmoid from exp(-|x|): relatively accurate in both tails (rnncore.activations).
template <typename T>
__device__ __forceinline__ T rnn_sigmoid(T x) {
    T e = rnn_exp(x < T(0) ? x : -x);
    return x < T(0) ? e / (T(1) + e) : T(1) / (T(1) + e);
}

// log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|)).
template <typename T>
__device__ __forceinline__ T rnn_log_sigmoid(T x) {
    return (x < T(0) ? x : T(0)) - rnn_log1p(rnn_exp(x < T(0) ? x : -x));
}

// g(x) = x + 0.5 for x >= 0, sigmoid(x) otherwise (log-space minGRU/minLSTM).
template <typename T>
__device__ __forceinline__ T rnn_g(T x) {
    return x >= T(0) ? x + T(0.5) : rnn_sigmoid(x);
}

// ---- affine maps ---------------------------------------------------------------

template <typename T>
struct Affine {
    T a, b;
};

template <typename T>
__device__ __forceinline__ Affine<T> identity_map() {
    Affine<T> m;
    m.a = T(1);
    m.b = T(0);
    return m;
}

// `first`, then `second`: (a2 * a1, a2 * b1 + b2), as rnncore.scan.compose.
template <typename T>
__device__ __forceinline__ Affine<T> compose(Affine<T> first, Affine<T> second) {
    Affine<T> m;
    m.a = second.a * first.a;
    m.b = second.a * first.b + second.b;
    return m;
}

// ---- the tile scan -------------------------------------------------------------

// The look-back's global scratch. `flags` holds one flag per block and, last, the
// work counter: all zero before the launch. `maps` holds, per tile and column,
// the tile's own map and its map from the chain's start: 4 values each.
template <typename T>
struct LookBack {
    int* flags;
    T* maps;
    long long n_chains;
    long long n_tiles;  // tiles per chain
    int cols;
    int serial;  // 1: a block walks a whole chain, tile after tile, and looks back at none
};

// Where a block's tile lies, and its share of the block's shared memory.
template <typename T>
struct Tile {
    long long chain;  // which chain
    long long tile;   // which tile of the chain, in time order
    int col;          // this thread's column within the chain
    int group;        // this thread's group of K steps within the tile
    Affine<T>* part;  // groups * cols maps (shared)
    T* entry;         // cols states (shared)
    int* flag;        // RNN_LOOK_BACK ints (shared)
};

// Predecessors whose flags one step of the look-back reads at once (a warp's worth;
// the tests also build smaller windows, to cross them often).
#ifndef RNN_LOOK_BACK
#define RNN_LOOK_BACK 32
#endif

// The tile scan's shared memory, (2 * groups + 1) * cols values and RNN_LOOK_BACK
// ints, is laid out from `shared`; what follows it starts 16-byte aligned here.
// rnncore.kernels.cuda.tile_shared_bytes gives the same size.
template <typename T>
__device__ __forceinline__ unsigned char* after_tile(unsigned char* shared, int cols) {
    int groups = blockDim.x / cols;
    long long used = (2LL * groups + 1) * cols * sizeof(T) + 4 * RNN_LOOK_BACK;
    return shared + (used + 15) / 16 * 16;
}

// Take the next tile in launch order (serial: the first tile of the next chain).
// Every thread of the block calls it.
template <typename T>
__device__ Tile<T> next_tile(const LookBack<T>& lb, unsigned char* shared) {
    Tile<T> t;
    int groups = blockDim.x / lb.cols;  // K-step groups of the tile
    t.part = reinterpret_cast<Affine<T>*>(shared);
    t.entry = reinterpret_cast<T*>(t.part + groups * lb.cols);
    t.flag = reinterpret_cast<int*>(t.entry + lb.cols);
    long long items = lb.serial ? lb.n_chains : lb.n_chains * lb.n_tiles;
    if (threadIdx.x == 0) t.flag[0] = atomicAdd(&lb.flags[items], 1);
    __syncthreads();
    long long id = t.flag[0];
    __syncthreads();
    t.tile = lb.serial ? 0 : id / lb.n_chains;
    t.chain = id - t.tile * lb.n_chains;
    t.col = threadIdx.x % lb.cols;
    t.group = threadIdx.x / lb.cols;
    return t;
}

template <typename T>
__device__ __forceinline__ T load_volatile(const T* p) {
    return *(const volatile T*)p;
}

// Publish this tile's map `m` (what = 0: own map, flag 1; what = 1: from the
// chain's start, flag 2). Threads of group 0 hold the columns' maps.
template <typename T>
__device__ void publish(const LookBack<T>& lb, const Tile<T>& t, Affine<T> m, int what) {
    long long id = t.tile * lb.n_chains + t.chain;
    if (t.group == 0) {
        T* slot = lb.maps + ((id * 2 + what) * lb.cols + t.col) * 2;
        slot[0] = m.a;
        slot[1] = m.b;
    }
    __syncthreads();
    if (threadIdx.x == 0) {  // the fence orders the block's stores, seen at the barrier,
        __threadfence();     // before the flag
        atomicExch(&lb.flags[id], what + 1);
    }
}

// The map from the chain's start to this tile's entry, found by looking back over
// windows of RNN_LOOK_BACK predecessors: the first warp waits for each to publish a
// map, every group of threads composes its share of the window up to the nearest
// map from the chain's start, and group 0 joins the shares. Valid in the threads of
// group 0; identity for the chain's first tile. Uses `part` as scratch.
template <typename T>
__device__ Affine<T> look_back(const LookBack<T>& lb, const Tile<T>& t) {
    int groups = blockDim.x / lb.cols;
    int share = (RNN_LOOK_BACK + groups - 1) / groups;
    Affine<T> before = identity_map<T>();
    for (long long end = t.tile; end > 0;) {  // the window: tiles end - n .. end - 1
        int n = end < RNN_LOOK_BACK ? (int)end : RNN_LOOK_BACK;
        if (threadIdx.x < n) {  // position i is tile end - 1 - i
            const int* flag = &lb.flags[(end - 1 - threadIdx.x) * lb.n_chains + t.chain];
            int f;
            while ((f = load_volatile(flag)) == 0) __nanosleep(32);
            t.flag[threadIdx.x] = f;
        }
        __threadfence();
        __syncthreads();
        int stop = n;  // the nearest position holding a map from the chain's start
        for (int i = 0; i < n && stop == n; ++i)
            if (t.flag[i] == 2) stop = i;
        int lo = t.group * share, hi = stop < n ? stop + 1 : n;
        if (hi > lo + share) hi = lo + share;
        Affine<T> mine = identity_map<T>();
        for (int i = hi - 1; i >= lo; --i) {  // oldest first
            long long id = (end - 1 - i) * lb.n_chains + t.chain;
            const T* slot = lb.maps + ((id * 2 + t.flag[i] - 1) * lb.cols + t.col) * 2;
            Affine<T> m;
            m.a = load_volatile(slot);
            m.b = load_volatile(slot + 1);
            mine = compose(mine, m);
        }
        t.part[t.group * lb.cols + t.col] = mine;
        __syncthreads();
        if (t.group == 0) {
            Affine<T> window = identity_map<T>();
            for (int g = groups - 1; g >= 0; --g)
                window = compose(window, t.part[g * lb.cols + t.col]);
            before = compose(window, before);
        }
        __syncthreads();
        if (stop < n) break;
        end -= n;
    }
    return before;
}

// The first step of this thread's K steps.
template <typename T, int K>
__device__ __forceinline__ long long first_step(const LookBack<T>& lb, const Tile<T>& t) {
    return (t.tile * (blockDim.x / lb.cols) + t.group) * K;
}

// Scan one tile. On entry each thread holds its K steps' maps in `steps` (identity
// beyond the end of time). Returns, in group 0's threads, the map from the chain's
// start to the tile's end; on return `states` holds each step's state when the
// chain starts from `entry` (read by group 0's threads only). Serial, the map
// before the tile is `carry`, the block's own from its previous tile (identity
// first), and becomes the returned one; otherwise it is found by looking back.
//
// With `absorb`, the chain's first tile folds `entry` into its map, (0, its end
// state): every later map from the chain's start is then (0, state), and decays
// are multiplied over a tile or a look-back window at most, never along the whole
// chain (see rnncore.scan). Without it (summaries), maps are whole products.
template <typename T, int K>
__device__ Affine<T> scan_tile(const LookBack<T>& lb, Tile<T>& t, const Affine<T> (&steps)[K],
                               T entry, T (&states)[K], Affine<T>& carry, bool absorb) {
    int groups = blockDim.x / lb.cols;
    Affine<T> mine = steps[0];
    #pragma unroll
    for (int k = 1; k < K; ++k) mine = compose(mine, steps[k]);
    // Inclusive prefix over the block's groups (Hillis and Steele), in shared memory.
    t.part[t.group * lb.cols + t.col] = mine;
    __syncthreads();
    for (int d = 1; d < groups; d *= 2) {
        Affine<T> earlier = identity_map<T>();
        if (t.group >= d) earlier = t.part[(t.group - d) * lb.cols + t.col];
        __syncthreads();
        if (t.group >= d) {
            mine = compose(earlier, mine);
            t.part[t.group * lb.cols + t.col] = mine;
        }
        __syncthreads();
    }
    Affine<T> own = t.part[(groups - 1) * lb.cols + t.col];
    Affine<T> prefix = identity_map<T>();  // of the groups before this thread's
    if (t.group > 0) prefix = t.part[(t.group - 1) * lb.cols + t.col];
    __syncthreads();  // `part` is the look-back's now
    Affine<T> before = carry;
    if (!lb.serial) {
        if (t.tile > 0) publish(lb, t, own, 0);
        before = look_back(lb, t);
    }
    Affine<T> upto = compose(before, own);
    if (absorb && t.tile == 0) {
        upto.b = upto.a * entry + upto.b;
        upto.a = T(0);
    }
    if (!lb.serial) publish(lb, t, upto, 1);
    carry = upto;
    if (t.group == 0) t.entry[t.col] = before.a * entry + before.b;
    __syncthreads();
    T state = t.entry[t.col];
    state = prefix.a * state + prefix.b;
    #pragma unroll
    for (int k = 0; k < K; ++k) {
        state = steps[k].a * state + steps[k].b;
        states[k] = state;
    }
    __syncthreads();  // the shared memory is free again
    return upto;
}

#endif  // RNNCORE_COMMON_CUH
