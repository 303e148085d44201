// Embedding gather (forward) and the row-sparse scatter-add "coalesce" (backward); at the
// end, writing one value at given positions (`Tensor::fill_at`).
//
// Bounds checks: every index read is checked against [0, rows). A bad index is recorded
// in err (err[0] flag, err[1] the first bad value to win the CAS) and the kernel writes
// zeros instead of reading out of bounds; the launcher turns it into an Error.

typedef long long i64;
typedef unsigned long long u64;
typedef unsigned int u32;

#define GRID_LOOP(i, n) \
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)blockDim.x * gridDim.x)

#define KEY_PAD 0xffffffffffffffffull

__device__ __forceinline__ void record_bad_index(i64* err, i64 idx) {
    if (atomicCAS((u64*)err, 0ull, 1ull) == 0ull) err[1] = idx;
}

__device__ __forceinline__ float f16_to_f32(unsigned short h) {
#ifdef BOSON_EMU  // the CPU emulator (tests/emu/cuda_emu.h) has no PTX
    return boson_emu_f16_to_f32(h);
#else
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
#endif
}

__device__ __forceinline__ float bf16_to_f32(unsigned short h) {
    return __uint_as_float(((unsigned int)h) << 16);
}

// ================================================================ gather
//
// Vectorised gathers move 16-byte pieces: piece t of the output is column c = t % (D/4)
// of row r = t / (D/4). Each thread handles GATHER_ILP pieces one grid-width apart and
// issues all their index loads, then all their table loads, before storing: at D=64 a
// row is only 16 pieces, and with one dependent (index, row) load pair per thread the
// kernel is latency-bound at about half the copy bandwidth. The index is re-read by each
// thread of a row; those reads hit one cache line and cost no extra DRAM traffic.

#define GATHER_ILP 4

// dim % 4 == 0, f32 table.
extern "C" __global__ void gather_f32_vec4(i64 n, i64 rows, i64 dim, const i64* idx, const float* table,
                                           float* out, i64* err) {
    const i64 dv = dim >> 2, total = n * dv;
    const i64 grid = (i64)blockDim.x * gridDim.x;
    for (i64 t0 = (i64)blockIdx.x * blockDim.x + threadIdx.x; t0 < total; t0 += GATHER_ILP * grid) {
        i64 row[GATHER_ILP];
#pragma unroll
        for (int k = 0; k < GATHER_ILP; k++) {
            i64 t = t0 + k * grid;
            row[k] = t < total ? idx[t / dv] : 0;
        }
        float4 v[GATHER_ILP];
#pragma unroll
        for (int k = 0; k < GATHER_ILP; k++) {
            i64 t = t0 + k * grid;
            v[k] = make_float4(0.f, 0.f, 0.f, 0.f);
            if (t < total) {
                i64 c = t % dv;
                if (row[k] < 0 || row[k] >= rows) {
                    if (c == 0) record_bad_index(err, row[k]);
                } else {
                    v[k] = __ldg(reinterpret_cast<const float4*>(table + row[k] * dim) + c);
                }
            }
        }
#pragma unroll
        for (int k = 0; k < GATHER_ILP; k++) {
            i64 t = t0 + k * grid;
            if (t < total) reinterpret_cast<float4*>(out)[t] = v[k];
        }
    }
}

// Any dim, f32 table.
extern "C" __global__ void gather_f32_scalar(i64 n, i64 rows, i64 dim, const i64* idx, const float* table,
                                             float* out, i64* err) {
    GRID_LOOP(t, n * dim) {
        i64 r = t / dim, c = t - r * dim;
        i64 row = idx[r];
        float v = 0.f;
        if (row < 0 || row >= rows) {
            if (c == 0) record_bad_index(err, row);
        } else {
            v = table[row * dim + c];
        }
        out[t] = v;
    }
}

// Half tables (f16: kind 0, bf16: kind 1), dim % 4 == 0: 8-byte loads of 4 halves,
// GATHER_ILP pieces per thread as in gather_f32_vec4.
extern "C" __global__ void gather_half_vec4(int kind, i64 n, i64 rows, i64 dim, const i64* idx,
                                            const unsigned short* table, float* out, i64* err) {
    const i64 dv = dim >> 2, total = n * dv;
    const i64 grid = (i64)blockDim.x * gridDim.x;
    for (i64 t0 = (i64)blockIdx.x * blockDim.x + threadIdx.x; t0 < total; t0 += GATHER_ILP * grid) {
        i64 row[GATHER_ILP];
#pragma unroll
        for (int k = 0; k < GATHER_ILP; k++) {
            i64 t = t0 + k * grid;
            row[k] = t < total ? idx[t / dv] : 0;
        }
        uint2 w[GATHER_ILP];
#pragma unroll
        for (int k = 0; k < GATHER_ILP; k++) {
            i64 t = t0 + k * grid;
            w[k] = make_uint2(0u, 0u);
            if (t < total) {
                i64 c = t % dv;
                if (row[k] < 0 || row[k] >= rows) {
                    if (c == 0) record_bad_index(err, row[k]);
                } else {
                    w[k] = __ldg(reinterpret_cast<const uint2*>(table + row[k] * dim) + c);
                }
            }
        }
#pragma unroll
        for (int k = 0; k < GATHER_ILP; k++) {
            i64 t = t0 + k * grid;
            if (t >= total) continue;
            unsigned short h0 = (unsigned short)(w[k].x & 0xffffu), h1 = (unsigned short)(w[k].x >> 16);
            unsigned short h2 = (unsigned short)(w[k].y & 0xffffu), h3 = (unsigned short)(w[k].y >> 16);
            float4 v = kind == 0
                ? make_float4(f16_to_f32(h0), f16_to_f32(h1), f16_to_f32(h2), f16_to_f32(h3))
                : make_float4(bf16_to_f32(h0), bf16_to_f32(h1), bf16_to_f32(h2), bf16_to_f32(h3));
            reinterpret_cast<float4*>(out)[t] = v;
        }
    }
}

// Half tables, any dim.
extern "C" __global__ void gather_half_scalar(int kind, i64 n, i64 rows, i64 dim, const i64* idx,
                                              const unsigned short* table, float* out, i64* err) {
    GRID_LOOP(t, n * dim) {
        i64 r = t / dim, c = t - r * dim;
        i64 row = idx[r];
        float v = 0.f;
        if (row < 0 || row >= rows) {
            if (c == 0) record_bad_index(err, row);
        } else {
            unsigned short h = table[row * dim + c];
            v = kind == 0 ? f16_to_f32(h) : bf16_to_f32(h);
        }
        out[t] = v;
    }
}

// ================================================================ coalesce
//
// Row-sparse scatter-add, deterministic, no atomics on data:
//  1. keys[i] = idx[i] << 32 | i (bad index or padding: KEY_PAD), padded to P = 2^m >= 2048.
//  2. sort: tiles of 2048 keys in shared memory (sort_tiles), then log2(P / 2048)
//     merge passes (merge_runs).
//  3. head flags (first key of each run of equal idx) -> exclusive scan -> segment ids;
//     unique[s] = idx, seg_start[s] = first sorted position, seg_start[k] = m (valid keys).
//  4. each segment is cut into chunks of <= 32 rows (chunk counts -> exclusive scan ->
//     chunk_off; chunk_seg[c] = owning segment by binary search).
//  5. chunk_sum: each chunk sums its rows in sorted (= original position) order. A
//     single-chunk segment writes its result directly; longer segments write a partial.
//  6. seg_finish: multi-chunk segments add their partials in chunk order; rows k..n of
//     summed are zeroed.
// The order of every addition is fixed by the data alone, so results are bitwise
// reproducible, and a hot row is spread over many chunks instead of serialising.

// The sort key of position i: (row << 32 | i), or KEY_PAD (sorts last) for padding and
// for a bad index, which is reported.
__device__ __forceinline__ u64 sort_key(i64 i, i64 n, i64 rows, const i64* idx, i64* err) {
    if (i >= n) return KEY_PAD;
    const i64 v = idx[i];
    if (v < 0 || v >= rows) {
        record_bad_index(err, v);
        return KEY_PAD;
    }
    return ((u64)v << 32) | (u64)i;
}

extern "C" __global__ void coalesce_build_keys(i64 n, i64 padded, i64 rows, const i64* idx, u64* keys, i64* err) {
    GRID_LOOP(i, padded) { keys[i] = sort_key(i, n, rows, idx, err); }
}

#define SORT_TILE 2048  // keys per shared-memory tile; blockDim is SORT_TILE / 2

__device__ __forceinline__ void cmp_swap_shared(u64* s, int i, int j, bool ascending) {
    u64 a = s[i], b = s[i + j];
    if ((a > b) == ascending && a != b) { s[i] = b; s[i + j] = a; }
}

// Sorts the SORT_TILE keys in shared memory s ascending (a bitonic network). Needs all
// SORT_TILE / 2 threads of the block.
__device__ __forceinline__ void sort_tile_shared(u64* s) {
    const int tid = threadIdx.x;
    for (int k = 2; k <= SORT_TILE; k <<= 1) {
        for (int j = k >> 1; j > 0; j >>= 1) {
            int i = 2 * j * (tid / j) + (tid % j);
            cmp_swap_shared(s, i, j, (i & k) == 0);
            __syncthreads();
        }
    }
}

// Sorts each tile of SORT_TILE keys ascending; blockDim SORT_TILE / 2, one block a tile.
extern "C" __global__ void sort_tiles(u64* keys) {
    __shared__ u64 s[SORT_TILE];
    const i64 base = (i64)blockIdx.x * SORT_TILE;
    const int tid = threadIdx.x;
    s[tid] = keys[base + tid];
    s[tid + SORT_TILE / 2] = keys[base + tid + SORT_TILE / 2];
    __syncthreads();
    sort_tile_shared(s);
    keys[base + tid] = s[tid];
    keys[base + tid + SORT_TILE / 2] = s[tid + SORT_TILE / 2];
}

#define MERGE_ITEMS 8  // keys each thread of merge_runs writes

// Merges each pair of adjacent sorted runs of `run` keys in src into one run of 2 * run
// in dst (merge path: thread t writes dst[8t, 8t + 8), first finding by binary search how
// many of its pair's first outputs come from the left run). Keys are distinct (row << 32
// | position; padding is the largest value), so no ties. padded is a multiple of 2 * run.
extern "C" __global__ void merge_runs(const u64* src, u64* dst, i64 padded, i64 run) {
    GRID_LOOP(t, padded / MERGE_ITEMS) {
        const i64 out = t * MERGE_ITEMS;
        const i64 pair = out - out % (2 * run);
        const u64* a = src + pair;
        const u64* b = a + run;
        const i64 k = out - pair;  // outputs of this pair before ours
        i64 lo = max(0ll, k - run), hi = min(k, run);
        while (lo < hi) {  // smallest i with a[i] > b[k - 1 - i]
            const i64 mid = (lo + hi) >> 1;
            if (a[mid] < b[k - 1 - mid]) lo = mid + 1; else hi = mid;
        }
        i64 i = lo, j = k - lo;
        for (int e = 0; e < MERGE_ITEMS; ++e) {
            const bool from_a = j >= run || (i < run && a[i] < b[j]);
            dst[out + e] = from_a ? a[i++] : b[j++];
        }
    }
}

// ---------------------------------------------------------------- block scan helpers
// Scans use blockDim 1024 and one element per thread.

#define SCAN_BLOCK 1024

// Exclusive scan of v across the block; *total gets the block's sum.
__device__ __forceinline__ u32 block_exclusive_scan(u32 v, u32* total) {
    __shared__ u32 warp_sums[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    u32 x = v;
    for (int off = 1; off < 32; off <<= 1) {
        u32 y = __shfl_up_sync(0xffffffffu, x, off);
        if (lane >= off) x += y;
    }
    if (lane == 31) warp_sums[warp] = x;
    __syncthreads();
    if (warp == 0) {
        u32 w = warp_sums[lane];
        for (int off = 1; off < 32; off <<= 1) {
            u32 y = __shfl_up_sync(0xffffffffu, w, off);
            if (lane >= off) w += y;
        }
        warp_sums[lane] = w;  // inclusive prefix of warp sums
    }
    __syncthreads();
    u32 prefix = warp > 0 ? warp_sums[warp - 1] : 0u;
    *total = warp_sums[31];
    __syncthreads();  // warp_sums is reused by the next call
    return prefix + x - v;
}

// Pass 1: sums[b] = sum of in[b*1024 .. (b+1)*1024).
extern "C" __global__ void scan_block_sums(const u32* in, i64 n, u32* sums) {
    i64 i = (i64)blockIdx.x * SCAN_BLOCK + threadIdx.x;
    u32 v = i < n ? in[i] : 0u;
    u32 total;
    block_exclusive_scan(v, &total);
    if (threadIdx.x == 0) sums[blockIdx.x] = total;
}

// Pass 2 (one block): exclusive scan of sums in place; *grand_total = sum of all.
extern "C" __global__ void scan_block_offsets(u32* sums, i64 nb, u32* grand_total) {
    u32 carry = 0;
    for (i64 base = 0; base < nb; base += SCAN_BLOCK) {
        i64 i = base + threadIdx.x;
        u32 v = i < nb ? sums[i] : 0u;
        u32 total;
        u32 ex = block_exclusive_scan(v, &total);
        if (i < nb) sums[i] = carry + ex;
        carry += total;
    }
    if (threadIdx.x == 0) *grand_total = carry;
}

// Pass 3: out[i] = offsets[block] + exclusive scan of in within the block.
extern "C" __global__ void scan_apply(const u32* in, i64 n, const u32* offsets, u32* out) {
    i64 i = (i64)blockIdx.x * SCAN_BLOCK + threadIdx.x;
    u32 v = i < n ? in[i] : 0u;
    u32 total;
    u32 ex = block_exclusive_scan(v, &total);
    if (i < n) out[i] = offsets[blockIdx.x] + ex;
}

// ---------------------------------------------------------------- segments

extern "C" __global__ void coalesce_head_flags(i64 n, const u64* keys, u32* flags) {
    GRID_LOOP(i, n) {
        u64 key = keys[i];
        bool head = key != KEY_PAD && (i == 0 || (keys[i - 1] >> 32) != (key >> 32));
        flags[i] = head ? 1u : 0u;
    }
}

// k = *num_segments. Writes unique[0..k) and seg_start[0..=k], unique[k..n) = -1,
// k_out[0] = k.
extern "C" __global__ void coalesce_segments(i64 n, const u64* keys, const u32* flags, const u32* seg_id,
                                             const u32* num_segments, i64* unique, u32* seg_start, i64* k_out) {
    const i64 k = (i64)*num_segments;
    GRID_LOOP(i, n) {
        u64 key = keys[i];
        if (flags[i]) {
            u32 s = seg_id[i];
            unique[s] = (i64)(key >> 32);
            seg_start[s] = (u32)i;
        }
        // The last valid key closes the last segment.
        if (key != KEY_PAD && (i + 1 == n || keys[i + 1] == KEY_PAD)) seg_start[k] = (u32)(i + 1);
        if (i >= k) unique[i] = -1;
        if (i == 0) k_out[0] = k;
    }
}

#define CHUNK_ROWS 32

extern "C" __global__ void coalesce_chunk_counts(i64 n, const u32* num_segments, const u32* seg_start, u32* counts) {
    const i64 k = (i64)*num_segments;
    GRID_LOOP(s, n) {
        counts[s] = s < k ? (seg_start[s + 1] - seg_start[s] + CHUNK_ROWS - 1) / CHUNK_ROWS : 0u;
    }
}

// chunk_seg[c] = the segment owning chunk c: the last s < k with chunk_off[s] <= c
// (chunk_off is strictly increasing on [0, k) because every segment has >= 1 chunk).
extern "C" __global__ void coalesce_chunk_map(i64 cap, const u32* num_segments, const u32* num_chunks,
                                              const u32* chunk_off, u32* chunk_seg) {
    const i64 k = (i64)*num_segments;
    const i64 nc = (i64)*num_chunks;
    GRID_LOOP(c, cap) {
        if (c >= nc) continue;
        i64 lo = 0, hi = k - 1;  // invariant: chunk_off[lo] <= c
        while (lo < hi) {
            i64 mid = (lo + hi + 1) >> 1;
            if ((i64)chunk_off[mid] <= c) lo = mid; else hi = mid - 1;
        }
        chunk_seg[c] = (u32)lo;
    }
}

// Sums chunk c of segment s (its rows in sorted-position order) for column group col
// (VEC columns) into summed row s when the segment is one chunk, else into partial row c.
template <int VEC>
__device__ __forceinline__ void sum_chunk(i64 c, i64 col, i64 dim, const u64* keys, const float* rows,
                                          const u32* seg_start, const u32* chunk_off, u32 s, u32 chunks,
                                          float* summed, float* partial) {
    const i64 start = (i64)seg_start[s] + (i64)CHUNK_ROWS * (c - (i64)chunk_off[s]);
    const i64 end = min(start + CHUNK_ROWS, (i64)seg_start[s + 1]);
    float* dst = chunks == 1 ? summed + (i64)s * dim : partial + c * dim;
    if (VEC == 4) {
        float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll 4
        for (i64 p = start; p < end; ++p) {
            i64 pos = (i64)(keys[p] & 0xffffffffull);
            float4 v = reinterpret_cast<const float4*>(rows + pos * dim)[col];
            acc.x += v.x; acc.y += v.y; acc.z += v.z; acc.w += v.w;
        }
        reinterpret_cast<float4*>(dst)[col] = acc;
    } else {
        float acc = 0.f;
#pragma unroll 4
        for (i64 p = start; p < end; ++p) acc += rows[(i64)(keys[p] & 0xffffffffull) * dim + col];
        dst[col] = acc;
    }
}

// Element t of summed (slot t / dim): zero past the k segments; for a multi-chunk
// segment, its partials added in chunk order. One-chunk segments were written by sum_chunk.
__device__ __forceinline__ void finish_element(i64 t, i64 dim, i64 k, const u32* chunk_off, u32 chunks_of_slot,
                                               const float* partial, float* summed) {
    const i64 s = t / dim, col = t - s * dim;
    if (s >= k) {
        summed[t] = 0.f;
    } else if (chunks_of_slot > 1) {
        const float* p = partial + (i64)chunk_off[s] * dim + col;
        float acc = 0.f;
        for (u32 j = 0; j < chunks_of_slot; ++j) acc += p[(i64)j * dim];
        summed[t] = acc;
    }
}

// One thread per (chunk, 4-column group) when dim % 4 == 0 (VEC = 4) or per (chunk,
// column) otherwise (VEC = 1).
template <int VEC>
__device__ __forceinline__ void chunk_sum(i64 cap, i64 dim, const u64* keys, const float* rows,
                                          const u32* seg_start, const u32* counts, const u32* chunk_off,
                                          const u32* chunk_seg, const u32* num_chunks, float* summed,
                                          float* partial) {
    const i64 dv = dim / VEC;
    const i64 nc = (i64)*num_chunks;
    GRID_LOOP(t, cap * dv) {
        i64 c = t / dv, col = t - c * dv;
        if (c >= nc) continue;
        u32 s = chunk_seg[c];
        sum_chunk<VEC>(c, col, dim, keys, rows, seg_start, chunk_off, s, counts[s], summed, partial);
    }
}

extern "C" __global__ void coalesce_chunk_sum_vec4(i64 cap, i64 dim, const u64* keys, const float* rows,
                                                   const u32* seg_start, const u32* counts, const u32* chunk_off,
                                                   const u32* chunk_seg, const u32* num_chunks, float* summed,
                                                   float* partial) {
    chunk_sum<4>(cap, dim, keys, rows, seg_start, counts, chunk_off, chunk_seg, num_chunks, summed, partial);
}

extern "C" __global__ void coalesce_chunk_sum_scalar(i64 cap, i64 dim, const u64* keys, const float* rows,
                                                     const u32* seg_start, const u32* counts, const u32* chunk_off,
                                                     const u32* chunk_seg, const u32* num_chunks, float* summed,
                                                     float* partial) {
    chunk_sum<1>(cap, dim, keys, rows, seg_start, counts, chunk_off, chunk_seg, num_chunks, summed, partial);
}

// One thread per element of summed (see finish_element).
extern "C" __global__ void coalesce_seg_finish(i64 n, i64 dim, const u32* num_segments, const u32* counts,
                                               const u32* chunk_off, const float* partial, float* summed) {
    const i64 k = (i64)*num_segments;
    GRID_LOOP(t, n * dim) {
        const i64 s = t / dim;
        finish_element(t, dim, k, chunk_off, s < k ? counts[s] : 0u, partial, summed);
    }
}

// ---------------------------------------------------------------- coalesce in one block
//
// The same computation for n <= SORT_TILE indices in one launch of one block of
// SORT_TILE / 2 threads: a training batch's backward, where the kernels above cost ~13
// launches. Every step and the order of every addition are theirs (sort_key, sum_chunk
// and finish_element are shared), so the results are bitwise the same: keys sorted in shared memory, segments and chunks found with block
// scans (thread t owns sorted positions and segments 2t and 2t + 1), chunk sums written
// to summed (one-chunk segments) or partial, then multi-chunk segments summed in chunk
// order. Writes to partial are read back by other threads of the block after a
// __syncthreads, which makes them visible.

#define ONE_BLOCK_CHUNKS (SORT_TILE + SORT_TILE / CHUNK_ROWS)  // >= k + n/32 chunks

__device__ __forceinline__ u32 is_head(const u64* keys, int p) {
    u64 key = keys[p];
    return key != KEY_PAD && (p == 0 || (keys[p - 1] >> 32) != (key >> 32)) ? 1u : 0u;
}

__device__ __forceinline__ u32 chunks_of(const u32* seg_start, u32 s) {
    return (seg_start[s + 1] - seg_start[s] + CHUNK_ROWS - 1) / CHUNK_ROWS;
}

template <int VEC>
__device__ __forceinline__ void coalesce_one_block(i64 n, i64 dim, i64 rows, const i64* idx, const float* g,
                                                   i64* unique, float* summed, i64* count, float* partial,
                                                   i64* err) {
    __shared__ u64 keys[SORT_TILE];
    __shared__ u32 seg_start[SORT_TILE + 1];
    __shared__ u32 chunk_off[SORT_TILE];
    __shared__ u32 chunk_seg[ONE_BLOCK_CHUNKS];
    const int tid = threadIdx.x, threads = SORT_TILE / 2;

    // 1. keys (as coalesce_build_keys), 2. sort (as sort_tiles).
    for (int i = tid; i < SORT_TILE; i += threads) keys[i] = sort_key(i, n, rows, idx, err);
    __syncthreads();
    sort_tile_shared(keys);

    // 3. segments (as coalesce_head_flags, the scan and coalesce_segments).
    const int p0 = 2 * tid;
    const u32 h0 = is_head(keys, p0), h1 = is_head(keys, p0 + 1);
    u32 k;
    const u32 first = block_exclusive_scan(h0 + h1, &k);
    if (h0) {
        unique[first] = (i64)(keys[p0] >> 32);
        seg_start[first] = (u32)p0;
    }
    if (h1) {
        unique[first + h0] = (i64)(keys[p0 + 1] >> 32);
        seg_start[first + h0] = (u32)(p0 + 1);
    }
    for (int p = p0; p <= p0 + 1; ++p) {
        // The last valid key closes the last segment.
        if (keys[p] != KEY_PAD && (p + 1 == SORT_TILE || keys[p + 1] == KEY_PAD)) seg_start[k] = (u32)(p + 1);
    }
    for (i64 i = (i64)k + tid; i < n; i += threads) unique[i] = -1;
    if (tid == 0) count[0] = (i64)k;
    __syncthreads();

    // 4. chunks of <= CHUNK_ROWS rows (as coalesce_chunk_counts, the scan, coalesce_chunk_map).
    const u32 c0 = (u32)p0 < k ? chunks_of(seg_start, p0) : 0u;
    const u32 c1 = (u32)p0 + 1 < k ? chunks_of(seg_start, p0 + 1) : 0u;
    u32 nc;
    const u32 off = block_exclusive_scan(c0 + c1, &nc);
    if ((u32)p0 < k) {
        chunk_off[p0] = off;
        for (u32 j = 0; j < c0; ++j) chunk_seg[off + j] = (u32)p0;
    }
    if ((u32)p0 + 1 < k) {
        chunk_off[p0 + 1] = off + c0;
        for (u32 j = 0; j < c1; ++j) chunk_seg[off + c0 + j] = (u32)(p0 + 1);
    }
    __syncthreads();

    // 5. chunk sums (as chunk_sum<VEC>), 6. multi-chunk segments and the zero tail (as
    // coalesce_seg_finish).
    const i64 dv = dim / VEC;
    for (i64 t = tid; t < (i64)nc * dv; t += threads) {
        const i64 c = t / dv;
        const u32 s = chunk_seg[c];
        sum_chunk<VEC>(c, t - c * dv, dim, keys, g, seg_start, chunk_off, s, chunks_of(seg_start, s), summed, partial);
    }
    __syncthreads();
    for (i64 t = tid; t < n * dim; t += threads) {
        const i64 s = t / dim;
        finish_element(t, dim, k, chunk_off, s < (i64)k ? chunks_of(seg_start, (u32)s) : 0u, partial, summed);
    }
}

// grid 1, blockDim SORT_TILE / 2, n <= SORT_TILE; partial holds (n + n/32 + 1) * dim.
extern "C" __global__ void coalesce_one_block_vec4(i64 n, i64 dim, i64 rows, const i64* idx, const float* g,
                                                   i64* unique, float* summed, i64* count, float* partial, i64* err) {
    coalesce_one_block<4>(n, dim, rows, idx, g, unique, summed, count, partial, err);
}

extern "C" __global__ void coalesce_one_block_scalar(i64 n, i64 dim, i64 rows, const i64* idx, const float* g,
                                                     i64* unique, float* summed, i64* count, float* partial,
                                                     i64* err) {
    coalesce_one_block<1>(n, dim, rows, idx, g, unique, summed, count, partial, err);
}

// ================================================================ scatter-add, atomic
//
// The non-deterministic scatter-add (`boson::device::set_deterministic(false)`): the same
// row-sparse output as coalesce in three launches instead of ~33, with float atomics
// instead of a sort. `unique` lists each touched row once in no fixed order (slots are
// handed out as blocks get to them), and float sums depend on the order atomics land.
//
// A block takes SCATTER_BLOCK consecutive indices at a time (group id i / SCATTER_BLOCK).
// Its lanes holding the same row form a group, found through a shared hash table and led
// by the lowest thread; a group's rows are pre-summed in shared memory first, so a hot
// row costs one global operation per block, not one per index. slot_plus1 is a
// table-sized u32 map owned by the device, all zero between calls: row r -> its output
// slot + 1 (CLAIMING while a claim is in flight).
//  1. scatter_claim_store: group leaders CAS-claim their rows; each warp's winners take
//     consecutive slots from one atomicAdd on count, write unique[slot] and
//     claimer[slot] = group id, publish slot + 1, and store their group's pre-summed row
//     with plain stores: the row's first contribution, so nothing needs zeroing first.
//     With spread-out indices almost every row is touched by one block only, and this
//     kernel alone moves the gradient: one read, one write.
//  2. scatter_add_losers: groups whose row another block claimed add their pre-sum with
//     one float atomic per row per step; blocks with no such group leave at once.
//     blockIdx.y splits rows into groups of SCATTER_STEPS steps so a small batch still
//     fills the GPU.
//  3. scatter_finish: slots below k clear their row's map entry; slots k..n get -1 and
//     zero rows.
// Grid-stride loops step a whole block at a time, so every thread reaches every
// __syncthreads and warp intrinsic.

#define CLAIMING 0xffffffffu
#define FULL_WARP 0xffffffffu
#define SCATTER_BLOCK 256  // blockDim of the scatter kernels
#define SCATTER_STEPS 4    // VEC-wide steps of a row a thread loads before using them
#define GROUP_TABLE 512    // hash slots per block (at most 256 rows: load <= 1/2)

__device__ __forceinline__ void atomic_add_vec(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add_vec(float4* p, float4 v) {
#if __CUDA_ARCH__ >= 900
    atomicAdd(p, v);  // one vector atomic (sm_90+, global memory)
#else
    atomicAdd(&p->x, v.x); atomicAdd(&p->y, v.y); atomicAdd(&p->z, v.z); atomicAdd(&p->w, v.w);
#endif
}
// Shared memory has no vector atomics.
__device__ __forceinline__ void shared_add(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void shared_add(float4* p, float4 v) {
    atomicAdd(&p->x, v.x); atomicAdd(&p->y, v.y); atomicAdd(&p->z, v.z); atomicAdd(&p->w, v.w);
}

__device__ __forceinline__ float4 zero_of(float4) { return make_float4(0.f, 0.f, 0.f, 0.f); }
__device__ __forceinline__ float zero_of(float) { return 0.f; }

// The block's lanes grouped by row, and a pre-sum area per group.
template <typename T>
struct BlockGroups {
    u64 key[GROUP_TABLE];  // row + 1; 0 = empty
    int lead[GROUP_TABLE];
    int size[GROUP_TABLE];
    int won[GROUP_TABLE];
    T acc[GROUP_TABLE][SCATTER_STEPS];  // zero between uses
};

// This lane's group slot (-1 when !valid). Afterwards lead/size are final for the block.
template <typename T>
__device__ __forceinline__ int group_of(BlockGroups<T>& t, bool valid, i64 r) {
    __syncthreads();  // the previous iteration is done with the table
    for (int e = threadIdx.x; e < GROUP_TABLE; e += blockDim.x) {
        t.key[e] = 0ull;
        t.lead[e] = 0x7fffffff;
        t.size[e] = 0;
        t.won[e] = 0;
        for (int k = 0; k < SCATTER_STEPS; ++k) t.acc[e][k] = zero_of(T());
    }
    __syncthreads();
    int h = -1;
    if (valid) {
        const u64 key = (u64)r + 1ull;
        h = (int)((key * 0x9E3779B97F4A7C15ull) >> 55);  // top 9 bits: [0, 512)
        for (;;) {
            const u64 old = atomicCAS(&t.key[h], 0ull, key);
            if (old == 0ull || old == key) break;
            h = (h + 1) & (GROUP_TABLE - 1);
        }
        atomicMin(&t.lead[h], (int)threadIdx.x);
        atomicAdd(&t.size[h], 1);
    }
    __syncthreads();
    return h;
}

// Loads steps c0 .. c0 + SCATTER_STEPS of this lane's row (zeros unless `take`) and, when
// some taking group of the block has several lanes (`any_grouped`, block-uniform),
// replaces each such group leader's values by the group's sum.
template <typename T>
__device__ __forceinline__ void load_presummed(T (&v)[SCATTER_STEPS], BlockGroups<T>& t, int h, const T* src,
                                               i64 c0, i64 width, bool take, bool lead, bool any_grouped) {
#pragma unroll
    for (int k = 0; k < SCATTER_STEPS; ++k) v[k] = take && c0 + k < width ? src[c0 + k] : zero_of(T());
    if (!any_grouped) return;
    const bool grouped = take && t.size[h] > 1;
    if (grouped) {
#pragma unroll
        for (int k = 0; k < SCATTER_STEPS; ++k) shared_add(&t.acc[h][k], v[k]);
    }
    __syncthreads();
    if (grouped && lead) {
#pragma unroll
        for (int k = 0; k < SCATTER_STEPS; ++k) {
            v[k] = t.acc[h][k];
            t.acc[h][k] = zero_of(T());
        }
    }
    __syncthreads();
}

// T = float4 (dim % 4 == 0) or float; width = dim / (sizeof(T) / 4) steps per row.
template <typename T>
__device__ __forceinline__ void scatter_claim_store(i64 n, i64 rows, i64 width, const i64* idx, u32* slot_plus1,
                                                    u32* claimer, i64* count, i64* unique, const T* g, T* summed,
                                                    i64* err) {
    __shared__ BlockGroups<T> t;
    const int lane = threadIdx.x & 31;
    for (i64 base = (i64)blockIdx.x * blockDim.x; base < n; base += (i64)blockDim.x * gridDim.x) {
        const i64 i = base + threadIdx.x;
        i64 r = -1;
        bool valid = false;
        if (i < n) {
            r = idx[i];
            valid = r >= 0 && r < rows;
            if (!valid) record_bad_index(err, r);
        }
        const int h = group_of(t, valid, r);
        const bool lead = valid && t.lead[h] == (int)threadIdx.x;
        const bool won = lead && atomicCAS(&slot_plus1[r], 0u, CLAIMING) == 0u;
        const unsigned winners = __ballot_sync(FULL_WARP, won);
        if (winners != 0u) {  // uniform across the warp
            const int first_lane = __ffs(winners) - 1;
            unsigned long long first = 0ull;
            if (lane == first_lane) first = atomicAdd((unsigned long long*)count, (unsigned long long)__popc(winners));
            first = __shfl_sync(FULL_WARP, first, first_lane);
            if (won) {
                const u32 s = (u32)first + (u32)__popc(winners & ((1u << lane) - 1u));
                unique[s] = r;
                claimer[s] = (u32)(i / SCATTER_BLOCK);
                atomicExch(&slot_plus1[r], s + 1u);  // other blocks may be CASing this word
                t.won[h] = (int)s + 1;
            }
        }
        __syncthreads();
        const bool take = valid && t.won[h] != 0;
        const bool any_grouped = __syncthreads_or(take && t.size[h] > 1);
        if (!__syncthreads_or(take)) continue;  // uniform across the block
        const T* src = g + i * width;
        T* dst = summed + (won ? (i64)(t.won[h] - 1) * width : 0);
        for (i64 c0 = 0; c0 < width; c0 += SCATTER_STEPS) {
            T v[SCATTER_STEPS];
            load_presummed(v, t, h, src, c0, width, take, lead, any_grouped);
            if (won) {
#pragma unroll
                for (int k = 0; k < SCATTER_STEPS; ++k)
                    if (c0 + k < width) dst[c0 + k] = v[k];
            }
        }
    }
}

template <typename T>
__device__ __forceinline__ void scatter_add_losers(i64 n, i64 rows, i64 width, const i64* idx, const u32* slot_plus1,
                                                   const u32* claimer, const T* g, T* summed) {
    __shared__ BlockGroups<T> t;
    for (i64 base = (i64)blockIdx.x * blockDim.x; base < n; base += (i64)blockDim.x * gridDim.x) {
        const i64 i = base + threadIdx.x;
        const i64 r = i < n ? idx[i] : -1;
        const bool valid = r >= 0 && r < rows;  // bad indices were reported by the claim
        const u32 s = valid ? slot_plus1[r] - 1u : 0u;
        const bool lost = valid && claimer[s] != (u32)(i / SCATTER_BLOCK);
        if (!__syncthreads_or(lost)) continue;  // uniform across the block
        const int h = group_of(t, lost, r);
        const bool lead = lost && t.lead[h] == (int)threadIdx.x;
        const bool any_grouped = __syncthreads_or(lost && t.size[h] > 1);
        const T* src = g + i * width;
        T* dst = summed + (i64)s * width;
        for (i64 c0 = (i64)blockIdx.y * SCATTER_STEPS; c0 < width; c0 += (i64)gridDim.y * SCATTER_STEPS) {
            T v[SCATTER_STEPS];
            load_presummed(v, t, h, src, c0, width, lost, lead, any_grouped);
            if (lead) {
#pragma unroll
                for (int k = 0; k < SCATTER_STEPS; ++k)
                    if (c0 + k < width) atomic_add_vec(dst + c0 + k, v[k]);
            }
        }
    }
}

template <typename T>
__device__ __forceinline__ void scatter_finish(i64 n, i64 width, const i64* count, i64* unique, u32* slot_plus1,
                                               T* summed) {
    const i64 k = count[0];
    GRID_LOOP(t, n * width) {
        const i64 s = t / width;
        if (s >= k) summed[t] = zero_of(T());
        if (t - s * width == 0) {
            if (s < k) {
                slot_plus1[unique[s]] = 0u;
            } else {
                unique[s] = -1;
            }
        }
    }
}

// blockDim SCATTER_BLOCK; one thread per index (claim_store, add_losers: grid.y splits
// each row into groups of SCATTER_STEPS steps) or per (slot, step) (finish).
extern "C" __global__ void scatter_claim_store_vec4(i64 n, i64 rows, i64 dim, const i64* idx, u32* slot_plus1,
                                                    u32* claimer, i64* count, i64* unique, const float* g,
                                                    float* summed, i64* err) {
    scatter_claim_store<float4>(n, rows, dim / 4, idx, slot_plus1, claimer, count, unique,
                                reinterpret_cast<const float4*>(g), reinterpret_cast<float4*>(summed), err);
}
extern "C" __global__ void scatter_claim_store_scalar(i64 n, i64 rows, i64 dim, const i64* idx, u32* slot_plus1,
                                                      u32* claimer, i64* count, i64* unique, const float* g,
                                                      float* summed, i64* err) {
    scatter_claim_store<float>(n, rows, dim, idx, slot_plus1, claimer, count, unique, g, summed, err);
}
extern "C" __global__ void scatter_add_losers_vec4(i64 n, i64 rows, i64 dim, const i64* idx, const u32* slot_plus1,
                                                   const u32* claimer, const float* g, float* summed) {
    scatter_add_losers<float4>(n, rows, dim / 4, idx, slot_plus1, claimer, reinterpret_cast<const float4*>(g),
                               reinterpret_cast<float4*>(summed));
}
extern "C" __global__ void scatter_add_losers_scalar(i64 n, i64 rows, i64 dim, const i64* idx, const u32* slot_plus1,
                                                     const u32* claimer, const float* g, float* summed) {
    scatter_add_losers<float>(n, rows, dim, idx, slot_plus1, claimer, g, summed);
}
extern "C" __global__ void scatter_finish_vec4(i64 n, i64 dim, const i64* count, i64* unique, u32* slot_plus1,
                                               float* summed) {
    scatter_finish<float4>(n, dim / 4, count, unique, slot_plus1, reinterpret_cast<float4*>(summed));
}
extern "C" __global__ void scatter_finish_scalar(i64 n, i64 dim, const i64* count, i64* unique, u32* slot_plus1,
                                                 float* summed) {
    scatter_finish<float>(n, dim, count, unique, slot_plus1, summed);
}

// ================================================================ fill at positions
//
// y[pos[k]] = value for every k (y already holds a copy of the input). An index outside
// [0, len) is recorded in err and skipped, as the gathers do. Duplicates write the same
// value, so their order does not matter.

extern "C" __global__ void fill_at_f32(i64 n, i64 len, const i64* pos, float value, float* y, i64* err) {
    GRID_LOOP(k, n) {
        const i64 p = pos[k];
        if (p < 0 || p >= len) {
            record_bad_index(err, p);
            continue;
        }
        y[p] = value;
    }
}
