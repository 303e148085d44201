// Elementwise kernels: unary and broadcasting binary ops, fill, casts, f16/bf16
// conversions, strided copy, one_hot and the dropout mask.
//
// No CUDA headers are included on purpose: NVRTC has no built-in cuda_fp16.h, and the
// GPU machine's header path is not guaranteed. Half types travel as raw 16-bit words and
// are converted with PTX `cvt` (f16) or integer arithmetic (bf16).
//
// Op codes are fixed by the tensor core (UnaryOp in src/tensor/unary.rs, BinaryOp in
// src/tensor/binary.rs); never renumber.

typedef long long i64;
typedef unsigned long long u64;

#define MAX_DIMS 6

// Grid-stride loop over [0, n): works for any grid size the launcher picks.
#define GRID_LOOP(i, n) \
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)blockDim.x * gridDim.x)

// ---------------------------------------------------------------- unary

// unary_op(op, x, p0, p1): one case per UnaryOp, generated from its definition in
// src/tensor/unary.rs (UnaryOp::cuda_source); the library splices it in here before NVRTC
// compiles this file, and the emulator's build writes it as a header.
#include "unary_ops.cuh"

extern "C" __global__ void unary_f32(int op, i64 n, const float* x, float* y, float p0, float p1) {
    GRID_LOOP(i, n) { y[i] = unary_op(op, x[i], p0, p1); }
}

// ---------------------------------------------------------------- binary

// binary_op(op, a, b): one case per BinaryOp, generated from its definition in
// src/tensor/binary.rs (BinaryOp::cuda_source), spliced in as unary_ops.cuh is.
#include "binary_ops.cuh"

// Passed by value (kernel parameter space, up to 4 KB). Layout mirrors BinaryMeta in
// src/cuda/ops/elementwise.rs (#[repr(C)]): keep both in step.
struct BinaryMeta {
    i64 ndim;
    i64 shape[MAX_DIMS];
    i64 a_strides[MAX_DIMS];  // 0 on broadcast dims
    i64 b_strides[MAX_DIMS];
    i64 a_offset;
    i64 b_offset;
};

// Output is contiguous with meta.shape; inputs are read through their strides.
extern "C" __global__ void binary_f32(int op, i64 n, BinaryMeta meta, const float* a, const float* b,
                                      float* y) {
    GRID_LOOP(i, n) {
        i64 rem = i, oa = meta.a_offset, ob = meta.b_offset;
        for (int d = (int)meta.ndim - 1; d >= 0; --d) {
            i64 c = rem % meta.shape[d];
            rem /= meta.shape[d];
            oa += c * meta.a_strides[d];
            ob += c * meta.b_strides[d];
        }
        y[i] = binary_op(op, a[oa], b[ob]);
    }
}

// Fast path when both inputs are contiguous with the output's shape: no index arithmetic.
extern "C" __global__ void binary_contig_f32(int op, i64 n, const float* a, const float* b, float* y) {
    GRID_LOOP(i, n) { y[i] = binary_op(op, a[i], b[i]); }
}

// ---------------------------------------------------------------- strided copy

// Layout mirrors CopyMeta in src/cuda/ops/elementwise.rs.
struct CopyMeta {
    i64 ndim;
    i64 shape[MAX_DIMS];
    i64 src_strides[MAX_DIMS];
    i64 dst_strides[MAX_DIMS];
    i64 src_offset;
    i64 dst_offset;
};

template <typename T>
__device__ __forceinline__ void strided_copy(i64 n, const CopyMeta& m, const T* src, T* dst) {
    GRID_LOOP(i, n) {
        i64 rem = i, os = m.src_offset, od = m.dst_offset;
        for (int d = (int)m.ndim - 1; d >= 0; --d) {
            i64 c = rem % m.shape[d];
            rem /= m.shape[d];
            os += c * m.src_strides[d];
            od += c * m.dst_strides[d];
        }
        dst[od] = src[os];
    }
}

extern "C" __global__ void strided_copy_f32(i64 n, CopyMeta meta, const float* src, float* dst) {
    strided_copy<float>(n, meta, src, dst);
}

extern "C" __global__ void strided_copy_i64(i64 n, CopyMeta meta, const i64* src, i64* dst) {
    strided_copy<i64>(n, meta, src, dst);
}

// ---------------------------------------------------------------- fill and casts

extern "C" __global__ void fill_f32(i64 n, float value, float* y) {
    GRID_LOOP(i, n) { y[i] = value; }
}

extern "C" __global__ void cast_i64_f32(i64 n, const i64* x, float* y) {
    GRID_LOOP(i, n) { y[i] = (float)x[i]; }
}

#ifdef BOSON_EMU  // the CPU emulator (tests/emu/cuda_emu.h) has no PTX
__device__ __forceinline__ float f16_to_f32(unsigned short h) { return boson_emu_f16_to_f32(h); }
__device__ __forceinline__ unsigned short f32_to_f16(float f) { return boson_emu_f32_to_f16(f); }
#else
__device__ __forceinline__ float f16_to_f32(unsigned short h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ unsigned short f32_to_f16(float f) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));  // round to nearest even, like half::f16::from_f32
    return h;
}
#endif

__device__ __forceinline__ float bf16_to_f32(unsigned short h) {
    return __uint_as_float(((unsigned int)h) << 16);
}

// Round to nearest even; NaN stays a quiet NaN. Same rule as half::bf16::from_f32.
__device__ __forceinline__ unsigned short f32_to_bf16(float f) {
    unsigned int x = __float_as_uint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((x >> 16) | 0x0040u);
    unsigned int lsb = (x >> 16) & 1u;
    return (unsigned short)((x + 0x7fffu + lsb) >> 16);
}

extern "C" __global__ void f16_to_f32_kernel(i64 n, const unsigned short* x, float* y) {
    GRID_LOOP(i, n) { y[i] = f16_to_f32(x[i]); }
}
extern "C" __global__ void f32_to_f16_kernel(i64 n, const float* x, unsigned short* y) {
    GRID_LOOP(i, n) { y[i] = f32_to_f16(x[i]); }
}
extern "C" __global__ void bf16_to_f32_kernel(i64 n, const unsigned short* x, float* y) {
    GRID_LOOP(i, n) { y[i] = bf16_to_f32(x[i]); }
}
extern "C" __global__ void f32_to_bf16_kernel(i64 n, const float* x, unsigned short* y) {
    GRID_LOOP(i, n) { y[i] = f32_to_bf16(x[i]); }
}

// ---------------------------------------------------------------- one_hot

// err[0] is a flag (0 = fine), err[1] the first bad label recorded. The winner of the
// CAS writes the value; the host reads both after a sync.
__device__ __forceinline__ void record_bad_index(i64* err, i64 idx) {
    if (atomicCAS((u64*)err, 0ull, 1ull) == 0ull) err[1] = idx;
}

// out[i, c] = (labels[i] == c); a label outside [0, classes) gives a zero row.
extern "C" __global__ void one_hot_f32(i64 n, i64 classes, const i64* labels, float* out, i64* err) {
    GRID_LOOP(t, n * classes) {
        i64 i = t / classes, c = t - i * classes;
        i64 label = labels[i];
        if (label < 0 || label >= classes) {
            if (c == 0) record_bad_index(err, label);
            out[t] = 0.0f;
        } else {
            out[t] = (label == c) ? 1.0f : 0.0f;
        }
    }
}

// ---------------------------------------------------------------- dropout mask

// Counter-based uniform in [0, 1): bit-exact twin of boson::rng::uniform_hash.
__device__ __forceinline__ float uniform_hash(u64 seed, u64 i) {
    u64 x = seed + (i + 1ull) * 0x9E3779B97F4A7C15ull;
    u64 z = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z = z ^ (z >> 31);
    return (float)(z >> 40) * (1.0f / 16777216.0f);
}

// mask[i] = u(seed, i) >= p ? scale : 0, scale = 1/(1-p) computed on the host so that the
// CPU and GPU masks are identical bit for bit.
extern "C" __global__ void dropout_mask_f32(i64 n, u64 seed, float p, float scale, float* mask) {
    GRID_LOOP(i, n) { mask[i] = uniform_hash(seed, (u64)i) >= p ? scale : 0.0f; }
}
