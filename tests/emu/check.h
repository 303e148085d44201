// What the emulator drivers (tests/emu/*_emu.cpp) share: src/cuda/ops/'s default grid, and
// CHECK, which counts checks and prints the first 20 failures. A driver ends with
// `return report("<file>")`.
#pragma once

#include "cuda_emu.h"

#include <cstdio>

inline int failures = 0;
inline int checks = 0;

#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        ++checks;                                                           \
        if (!(cond) && ++failures <= 20) {                                  \
            std::fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);       \
            std::fprintf(stderr, __VA_ARGS__);                              \
            std::fprintf(stderr, "\n");                                     \
        }                                                                   \
    } while (0)

// src/cuda/ops/launch.rs's cfg_for: THREADS = 256, blocks = ceil(n / 256) clamped to [1, 2^20].
inline dim3 blocks_for(long long n) {
    return dim3{(unsigned)std::clamp((n + 255) / 256, 1ll, 1ll << 20), 1, 1};
}
inline const dim3 kThreads{256, 1, 1};

// Prints the tally; the process exit code (0 when nothing failed).
inline int report(const char* what) {
    std::printf("%s under the emulator: %d checks, %d failed\n", what, checks, failures);
    return failures == 0 ? 0 : 1;
}
