// A small CUDA emulator for checking the logic of boson's kernels on a machine without a
// GPU: `kernels/*.cu` compile as C++20 with this header (and BOSON_EMU defined), and
// `launch` runs a grid as the programming model allows: blocks one after another, the
// threads of a block interleaved at every `__syncthreads`, warp intrinsic and
// `__syncwarp`, in a shuffled order, so shared memory, warp exchanges and atomics behave
// as CUDA promises rather than as one lucky schedule. It checks logic, never speed. Not
// modelled: threads (or blocks) running truly at the same time between two sync points,
// so a race inside such a stretch (two threads' plain stores to one word) goes unseen;
// atomics are real atomics, but never contended.
//
// Kept to what the kernels use; a kernel needing more fails to compile here, loudly.
#pragma once

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include <ucontext.h>

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)  // a register budget for the real compiler only
#define __shared__ static  // blocks run one at a time: one copy serves every block

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
struct alignas(8) uint2 {
    unsigned x, y;
};
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }

// Set by `launch` whenever it switches to a thread; blockIdx, blockDim and gridDim are the
// same for every thread of the running block.
inline uint3 threadIdx;
inline uint3 blockIdx;
inline dim3 blockDim, gridDim;

inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline float __uint_as_float(unsigned i) { float f; std::memcpy(&f, &i, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned i; std::memcpy(&i, &f, 4); return i; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __ffs(unsigned x) { return __builtin_ffs((int)x); }
template <typename T> inline T __ldg(const T* p) { return *p; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }

// ---------------------------------------------------------------- atomics (return the old value)

template <typename T> inline T atomicAdd(T* p, T v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline float atomicAdd(float* p, float v) {
    unsigned* u = reinterpret_cast<unsigned*>(p);
    unsigned old = __atomic_load_n(u, __ATOMIC_SEQ_CST);
    while (!__atomic_compare_exchange_n(u, &old, __float_as_uint(__uint_as_float(old) + v), false,
                                        __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    }
    return __uint_as_float(old);
}
inline float4 atomicAdd(float4* p, float4 v) {
    return {atomicAdd(&p->x, v.x), atomicAdd(&p->y, v.y), atomicAdd(&p->z, v.z), atomicAdd(&p->w, v.w)};
}
template <typename T> inline T atomicCAS(T* p, T expected, T desired) {
    __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return expected;  // the old value, whether or not the swap happened
}
template <typename T> inline T atomicExch(T* p, T v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
template <typename T> inline T atomicMin(T* p, T v) {
    T old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
    while (v < old && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    }
    return old;
}

// ---------------------------------------------------------------- threads, barriers, warps
//
// Each CUDA thread of a block is a fiber (ucontext) on the calling OS thread: it runs until
// it reaches a barrier or a warp intrinsic, then the next one runs. That is one of the
// schedules the hardware may pick (nothing orders threads between two sync points), and
// the order of the fibers is shuffled every round so that code relying on an order it was
// not promised shows up. A thread that waits at a barrier the others never reach is a
// deadlock, reported and fatal. Fibers cost ~0.1 µs a switch against ~25 µs to create an
// OS thread and ~2 ms for 1024 OS threads to pass a barrier on two cores.

namespace emu {

struct Barrier {
    int expected = 0;
    int arrived = 0;
    unsigned long long phase = 0;
};

struct Warp {
    Barrier bar;
    unsigned long long vals[32] = {};
};

struct Fiber {
    ucontext_t ctx;
    std::unique_ptr<char[]> stack;
    uint3 idx;
    Warp* warp = nullptr;
    int lane = 0;
    bool done = false;
};

inline constexpr size_t kStack = 256 * 1024;
inline ucontext_t scheduler;
inline Fiber* current = nullptr;
inline Barrier* block_bar = nullptr;
inline Warp* warp = nullptr;
inline int lane = 0;
inline unsigned long long progress = 0;  // bumped on every arrival: the deadlock check
inline void (*body)(void*) = nullptr;
inline void* body_arg = nullptr;

inline void yield() { swapcontext(&current->ctx, &scheduler); }

inline void arrive_and_wait(Barrier& b) {
    ++progress;
    const unsigned long long my_phase = b.phase;
    if (++b.arrived == b.expected) {
        b.arrived = 0;
        ++b.phase;
        return;
    }
    while (b.phase == my_phase) yield();
}

// A finished thread no longer takes part (CUDA: exited threads do not hold barriers up).
inline void drop(Barrier& b) {
    ++progress;
    if (--b.expected > 0 && b.arrived == b.expected) {
        b.arrived = 0;
        ++b.phase;
    }
}

inline void trampoline() {
    body(body_arg);
    drop(warp->bar);
    drop(*block_bar);
    current->done = true;
    swapcontext(&current->ctx, &scheduler);
}

// Every lane posts `v`, then reads what lane `src` posted (its own value when `src` is
// outside the warp, as __shfl_*_sync does).
template <typename T> T exchange(T v, int src) {
    static_assert(sizeof(T) <= 8, "warp exchange of more than 8 bytes");
    unsigned long long bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    warp->vals[lane] = bits;
    arrive_and_wait(warp->bar);
    T out = v;
    if (src >= 0 && src < 32) std::memcpy(&out, &warp->vals[src], sizeof(T));
    arrive_and_wait(warp->bar);
    return out;
}

// Lanes whose posted value satisfies `pick(own, other)`, as a bit mask.
template <typename T, typename F> unsigned lanes_where(T v, F pick) {
    unsigned long long bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    warp->vals[lane] = bits;
    arrive_and_wait(warp->bar);
    unsigned mask = 0;
    for (int l = 0; l < warp->bar.expected; ++l)
        if (pick(bits, warp->vals[l])) mask |= 1u << l;
    arrive_and_wait(warp->bar);
    return mask;
}

}  // namespace emu

inline void __syncthreads() { emu::arrive_and_wait(*emu::block_bar); }
// Three barriers: everyone posts, everyone reads, then the flag is cleared for the next call.
inline int __syncthreads_or(int pred) {
    static int any = 0;
    if (pred) any = 1;
    emu::arrive_and_wait(*emu::block_bar);
    const int out = any;
    emu::arrive_and_wait(*emu::block_bar);
    any = 0;
    emu::arrive_and_wait(*emu::block_bar);
    return out;
}
inline void __syncwarp(unsigned = 0xffffffffu) { emu::arrive_and_wait(emu::warp->bar); }
template <typename T> T __shfl_sync(unsigned, T v, int src) { return emu::exchange(v, src & 31); }
template <typename T> T __shfl_down_sync(unsigned, T v, unsigned d) { return emu::exchange(v, emu::lane + (int)d); }
template <typename T> T __shfl_up_sync(unsigned, T v, unsigned d) { return emu::exchange(v, emu::lane - (int)d); }
inline unsigned __ballot_sync(unsigned, int pred) {
    return emu::lanes_where((unsigned long long)(pred != 0), [](auto, auto other) { return other != 0; });
}
inline int __any_sync(unsigned m, int pred) { return __ballot_sync(m, pred) != 0; }
template <typename T> unsigned __match_any_sync(unsigned, T v) {
    return emu::lanes_where(v, [](auto own, auto other) { return own == other; });
}

// Runs `kernel()` on every thread of a grid: blocks one after another, each block's
// threads as fibers in a shuffled order. Warps are consecutive linear thread ids, as on
// the hardware.
template <typename F> void launch(dim3 grid, dim3 block, F kernel) {
    static std::vector<emu::Fiber> fibers;
    static std::mt19937 order_rng(12345);
    gridDim = grid;
    blockDim = block;
    const int nthreads = (int)(block.x * block.y * block.z);
    if ((int)fibers.size() < nthreads) fibers.resize(nthreads);
    emu::body = [](void* k) { (*static_cast<F*>(k))(); };
    emu::body_arg = &kernel;
    std::vector<int> order(nthreads);
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                blockIdx = {bx, by, bz};
                emu::Barrier bar{nthreads};
                std::vector<emu::Warp> warps((nthreads + 31) / 32);
                for (size_t w = 0; w < warps.size(); ++w) warps[w].bar.expected = std::min(32, nthreads - 32 * (int)w);
                for (int t = 0; t < nthreads; ++t) {
                    emu::Fiber& f = fibers[t];
                    if (!f.stack) f.stack.reset(new char[emu::kStack]);
                    getcontext(&f.ctx);
                    f.ctx.uc_stack.ss_sp = f.stack.get();
                    f.ctx.uc_stack.ss_size = emu::kStack;
                    f.ctx.uc_link = nullptr;
                    makecontext(&f.ctx, emu::trampoline, 0);
                    f.idx = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
                    f.warp = &warps[t / 32];
                    f.lane = t % 32;
                    f.done = false;
                    order[t] = t;
                }
                int live = nthreads;
                while (live > 0) {
                    const unsigned long long before = emu::progress;
                    std::shuffle(order.begin(), order.end(), order_rng);
                    for (int t : order) {
                        emu::Fiber& f = fibers[t];
                        if (f.done) continue;
                        emu::current = &f;
                        emu::block_bar = &bar;
                        emu::warp = f.warp;
                        emu::lane = f.lane;
                        threadIdx = f.idx;
                        swapcontext(&emu::scheduler, &f.ctx);
                        if (f.done) --live;
                    }
                    if (live > 0 && emu::progress == before) {
                        std::fprintf(stderr, "emulator: deadlock in block (%u, %u, %u): %d threads wait at a barrier the others never reach\n",
                                     bx, by, bz, live);
                        std::abort();
                    }
                }
            }
}

// Software f16 -> f32 (the kernels use PTX `cvt` on the device).
inline float boson_emu_f16_to_f32(unsigned short h) {
    unsigned sign = (h >> 15) & 1, exp = (h >> 10) & 31, man = h & 1023;
    float v = exp == 0 ? std::ldexp((float)man, -24)
            : exp == 31 ? (man ? NAN : INFINITY)
                        : std::ldexp((float)(man | 1024), (int)exp - 25);
    return sign ? -v : v;
}

// Software f32 -> f16, round to nearest even (GCC's _Float16 conversion).
inline unsigned short boson_emu_f32_to_f16(float f) {
    _Float16 h = (_Float16)f;
    unsigned short bits;
    std::memcpy(&bits, &h, 2);
    return bits;
}
