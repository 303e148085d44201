// Reductions over one axis of a contiguous tensor viewed as (outer, len, inner).
// Output is (outer, inner). Ops: 0 Sum, 1 Max, 2 Min (f32 out); argmax has its own
// kernels (i64 out, first index of the maximum). At the end, softmax and log-softmax over
// the last axis and their gradients (rows of the same warp/block layout).
//
// Two layouts, because the coalesced direction differs:
//  * inner == 1 (reduce the last axis): a group of TPR threads (a warp, or a whole block
//    for long rows) walks one row with consecutive threads on consecutive elements, then
//    combines with warp shuffles (+ shared memory across warps).
//  * inner > 1: a 32 x 32 block; threadIdx.x runs along inner (coalesced), threadIdx.y
//    splits len into 32 interleaved slices, then the 32 partials are combined in shared
//    memory in a fixed order (deterministic). This keeps e.g. a bias gradient
//    (1, 1024, 64) from being one thread looping 1024 times per column.

typedef long long i64;

__device__ __forceinline__ float red_identity(int op) {
    return op == 0 ? 0.0f : (op == 1 ? -__int_as_float(0x7f800000) : __int_as_float(0x7f800000));
}

__device__ __forceinline__ float red_combine(int op, float a, float b) {
    return op == 0 ? a + b : (op == 1 ? fmaxf(a, b) : fminf(a, b));
}

// Argmax pairs: the larger value wins; on a tie the smaller index wins (first maximum).
__device__ __forceinline__ void arg_combine(float& v, i64& i, float v2, i64 i2) {
    if (v2 > v || (v2 == v && i2 < i)) { v = v2; i = i2; }
}

// ---------------------------------------------------------------- inner == 1

template <int TPR>
__device__ __forceinline__ void reduce_rows(int op, i64 outer, i64 len, const float* x, float* y) {
    __shared__ float warp_part[32];
    const int lane = threadIdx.x & 31;
    const int rows_per_block = blockDim.x / TPR;
    const int row_in_block = threadIdx.x / TPR;
    const int t = threadIdx.x % TPR;
    // All threads of a block go through the same number of iterations so that the
    // __syncthreads() inside stays uniform.
    for (i64 base = (i64)blockIdx.x * rows_per_block; base < outer; base += (i64)gridDim.x * rows_per_block) {
        i64 row = base + row_in_block;
        float acc = red_identity(op);
        if (row < outer) {
            const float* r = x + row * len;
            for (i64 j = t; j < len; j += TPR) acc = red_combine(op, acc, r[j]);
        }
        for (int off = 16; off > 0; off >>= 1) acc = red_combine(op, acc, __shfl_down_sync(0xffffffffu, acc, off));
        if (TPR == 32) {
            if (lane == 0 && row < outer) y[row] = acc;
        } else {
            // TPR == blockDim.x: one row per block, combine the warps' partials.
            if (lane == 0) warp_part[threadIdx.x >> 5] = acc;
            __syncthreads();
            if (threadIdx.x < 32) {
                int nw = blockDim.x >> 5;
                float v = threadIdx.x < nw ? warp_part[threadIdx.x] : red_identity(op);
                for (int off = 16; off > 0; off >>= 1) v = red_combine(op, v, __shfl_down_sync(0xffffffffu, v, off));
                if (threadIdx.x == 0 && row < outer) y[row] = v;
            }
            __syncthreads();
        }
    }
}

// blockDim 256, 8 rows per block (short rows).
extern "C" __global__ void reduce_last_warp_f32(int op, i64 outer, i64 len, const float* x, float* y) {
    reduce_rows<32>(op, outer, len, x, y);
}

// blockDim 256, one row per block (long rows).
extern "C" __global__ void reduce_last_block_f32(int op, i64 outer, i64 len, const float* x, float* y) {
    reduce_rows<256>(op, outer, len, x, y);
}

template <int TPR>
__device__ __forceinline__ void argmax_rows(i64 outer, i64 len, const float* x, i64* y) {
    __shared__ float part_v[32];
    __shared__ i64 part_i[32];
    const int lane = threadIdx.x & 31;
    const int rows_per_block = blockDim.x / TPR;
    const int row_in_block = threadIdx.x / TPR;
    const int t = threadIdx.x % TPR;
    for (i64 base = (i64)blockIdx.x * rows_per_block; base < outer; base += (i64)gridDim.x * rows_per_block) {
        i64 row = base + row_in_block;
        float v = -__int_as_float(0x7f800000);
        i64 vi = 0x7fffffffffffffffll;
        if (row < outer) {
            const float* r = x + row * len;
            for (i64 j = t; j < len; j += TPR) arg_combine(v, vi, r[j], j);
        }
        for (int off = 16; off > 0; off >>= 1) {
            float v2 = __shfl_down_sync(0xffffffffu, v, off);
            i64 i2 = __shfl_down_sync(0xffffffffu, vi, off);
            arg_combine(v, vi, v2, i2);
        }
        if (TPR == 32) {
            // A row of all -inf/NaN never beats the identity: report index 0 then.
            if (lane == 0 && row < outer) y[row] = vi == 0x7fffffffffffffffll ? 0 : vi;
        } else {
            if (lane == 0) { part_v[threadIdx.x >> 5] = v; part_i[threadIdx.x >> 5] = vi; }
            __syncthreads();
            if (threadIdx.x < 32) {
                int nw = blockDim.x >> 5;
                float w = -__int_as_float(0x7f800000);
                i64 wi = 0x7fffffffffffffffll;
                if (threadIdx.x < nw) { w = part_v[threadIdx.x]; wi = part_i[threadIdx.x]; }
                for (int off = 16; off > 0; off >>= 1) {
                    float w2 = __shfl_down_sync(0xffffffffu, w, off);
                    i64 j2 = __shfl_down_sync(0xffffffffu, wi, off);
                    arg_combine(w, wi, w2, j2);
                }
                if (threadIdx.x == 0 && row < outer) y[row] = wi == 0x7fffffffffffffffll ? 0 : wi;
            }
            __syncthreads();
        }
    }
}

extern "C" __global__ void argmax_last_warp_f32(i64 outer, i64 len, const float* x, i64* y) {
    argmax_rows<32>(outer, len, x, y);
}

extern "C" __global__ void argmax_last_block_f32(i64 outer, i64 len, const float* x, i64* y) {
    argmax_rows<256>(outer, len, x, y);
}

// ---------------------------------------------------------------- inner > 1

// grid (ceil(inner/32), outer), block (32, 32).
extern "C" __global__ void reduce_mid_f32(int op, i64 outer, i64 len, i64 inner, const float* x, float* y) {
    __shared__ float part[32][33];  // +1 column: no bank conflicts on the transposed read
    const i64 col = (i64)blockIdx.x * 32 + threadIdx.x;
    for (i64 o = blockIdx.y; o < outer; o += gridDim.y) {
        float acc = red_identity(op);
        if (col < inner) {
            const float* base = x + o * len * inner + col;
            for (i64 j = threadIdx.y; j < len; j += 32) acc = red_combine(op, acc, base[j * inner]);
        }
        part[threadIdx.y][threadIdx.x] = acc;
        __syncthreads();
        if (threadIdx.y == 0) {
            float v = part[0][threadIdx.x];
            for (int s = 1; s < 32; ++s) v = red_combine(op, v, part[s][threadIdx.x]);
            if (col < inner) y[o * inner + col] = v;
        }
        __syncthreads();
    }
}

extern "C" __global__ void argmax_mid_f32(i64 outer, i64 len, i64 inner, const float* x, i64* y) {
    __shared__ float part_v[32][33];
    __shared__ i64 part_i[32][33];
    const i64 col = (i64)blockIdx.x * 32 + threadIdx.x;
    for (i64 o = blockIdx.y; o < outer; o += gridDim.y) {
        float v = -__int_as_float(0x7f800000);
        i64 vi = 0x7fffffffffffffffll;
        if (col < inner) {
            const float* base = x + o * len * inner + col;
            for (i64 j = threadIdx.y; j < len; j += 32) arg_combine(v, vi, base[j * inner], j);
        }
        part_v[threadIdx.y][threadIdx.x] = v;
        part_i[threadIdx.y][threadIdx.x] = vi;
        __syncthreads();
        if (threadIdx.y == 0) {
            float w = part_v[0][threadIdx.x];
            i64 wi = part_i[0][threadIdx.x];
            for (int s = 1; s < 32; ++s) arg_combine(w, wi, part_v[s][threadIdx.x], part_i[s][threadIdx.x]);
            if (col < inner) y[o * inner + col] = wi == 0x7fffffffffffffffll ? 0 : wi;
        }
        __syncthreads();
    }
}

// ---------------------------------------------------------------- softmax over the last axis

// `op` over the TPR threads sharing a row, returned to all of them: warp shuffles, then
// (TPR > 32) the warps' partials through `part`, combined in a fixed order.
template <int TPR>
__device__ __forceinline__ float row_all_reduce(int op, float v, float* part) {
    for (int off = 16; off > 0; off >>= 1) v = red_combine(op, v, __shfl_down_sync(0xffffffffu, v, off));
    v = __shfl_sync(0xffffffffu, v, 0);
    if (TPR > 32) {
        __syncthreads();  // every thread has read the previous call's partials
        if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = v;
        __syncthreads();
        v = part[0];
        for (int w = 1; w < TPR / 32; ++w) v = red_combine(op, v, part[w]);
    }
    return v;
}

// y = softmax(x) (log = 0) or log_softmax(x) (log = 1) along rows of `len`, the maximum
// subtracted first. A row of TPR threads: consecutive threads read consecutive elements.
template <int TPR>
__device__ __forceinline__ void softmax_rows(int log, i64 outer, i64 len, const float* x, float* y) {
    __shared__ float part[32];
    const int rows_per_block = blockDim.x / TPR;
    const int t = threadIdx.x % TPR;
    // Uniform trip counts: the barriers and shuffles inside see every thread.
    for (i64 base = (i64)blockIdx.x * rows_per_block; base < outer; base += (i64)gridDim.x * rows_per_block) {
        const i64 row = base + threadIdx.x / TPR;
        const bool live = row < outer;
        const float* r = x + (live ? row : 0) * len;
        float m = red_identity(1);
        if (live)
            for (i64 j = t; j < len; j += TPR) m = fmaxf(m, r[j]);
        m = row_all_reduce<TPR>(1, m, part);
        float s = 0.0f;
        if (live)
            for (i64 j = t; j < len; j += TPR) s += expf(r[j] - m);
        s = row_all_reduce<TPR>(0, s, part);
        if (live) {
            float* out = y + row * len;
            if (log) {
                const float shift = m + logf(s);
                for (i64 j = t; j < len; j += TPR) out[j] = r[j] - shift;
            } else {
                const float inv = 1.0f / s;
                for (i64 j = t; j < len; j += TPR) out[j] = expf(r[j] - m) * inv;
            }
        }
    }
}

// blockDim 256, 8 rows per block (short rows).
extern "C" __global__ void softmax_last_warp_f32(int log, i64 outer, i64 len, const float* x, float* y) {
    softmax_rows<32>(log, outer, len, x, y);
}

// blockDim 256, one row per block (long rows).
extern "C" __global__ void softmax_last_block_f32(int log, i64 outer, i64 len, const float* x, float* y) {
    softmax_rows<256>(log, outer, len, x, y);
}

// The input gradient from the output y and its gradient dy, row by row:
// softmax dx = y * (dy - sum(dy * y)); log_softmax dx = dy - exp(y) * sum(dy).
template <int TPR>
__device__ __forceinline__ void softmax_grad_rows(int log, i64 outer, i64 len, const float* y, const float* dy, float* dx) {
    __shared__ float part[32];
    const int rows_per_block = blockDim.x / TPR;
    const int t = threadIdx.x % TPR;
    for (i64 base = (i64)blockIdx.x * rows_per_block; base < outer; base += (i64)gridDim.x * rows_per_block) {
        const i64 row = base + threadIdx.x / TPR;
        const bool live = row < outer;
        const i64 off = (live ? row : 0) * len;
        float s = 0.0f;
        if (live)
            for (i64 j = t; j < len; j += TPR) s += log ? dy[off + j] : dy[off + j] * y[off + j];
        s = row_all_reduce<TPR>(0, s, part);
        if (live) {
            if (log)
                for (i64 j = t; j < len; j += TPR) dx[off + j] = dy[off + j] - expf(y[off + j]) * s;
            else
                for (i64 j = t; j < len; j += TPR) dx[off + j] = y[off + j] * (dy[off + j] - s);
        }
    }
}

extern "C" __global__ void softmax_grad_last_warp_f32(int log, i64 outer, i64 len, const float* y, const float* dy, float* dx) {
    softmax_grad_rows<32>(log, outer, len, y, dy, dx);
}

extern "C" __global__ void softmax_grad_last_block_f32(int log, i64 outer, i64 len, const float* y, const float* dy, float* dx) {
    softmax_grad_rows<256>(log, outer, len, y, dy, dx);
}
