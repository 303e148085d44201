// kernels/reduce.cu under the CPU emulator: sum/max/min and argmax over the last axis
// (warp per row and block per row) and a middle axis, softmax/log-softmax and their
// gradients over the last axis, launched with src/cuda/ops/reduce.rs's grids, on
// random inputs with ties, against plain CPU loops. Outputs start poisoned, since src/cuda/ops/reduce.rs
// no longer zeroes them. Run by tests/kernel_emulation.rs; exits 1 on any failure.
#include "check.h"
#include "../../kernels/reduce.cu"

#include <cstdio>
#include <random>

// src/cuda/ops/reduce.rs: THREADS 256, rows longer than LONG_ROW get a block each, else a warp each;
// the middle-axis kernels take (ceil(inner/32), min(outer, 65535)) blocks of 32 x 32.
static const long long kLongRow = 1024;
static dim3 last_grid(long long outer, long long len) {
    long long rows_per_block = len > kLongRow ? 1 : 256 / 32;
    return dim3{(unsigned)std::clamp((outer + rows_per_block - 1) / rows_per_block, 1ll, 1ll << 20), 1, 1};
}
static dim3 mid_grid(long long outer, long long inner) {
    return dim3{(unsigned)((inner + 31) / 32), (unsigned)std::clamp(outer, 1ll, 65535ll), 1};
}

static void check_case(std::mt19937& rng, long long outer, long long len, long long inner) {
    std::vector<float> x(outer * len * inner);
    std::uniform_int_distribution<int> coarse(-8, 8);  // few distinct values: many ties
    for (auto& v : x) v = 0.25f * (float)coarse(rng);
    for (int op = 0; op < 3; ++op) {
        std::vector<float> y(outer * inner, std::nanf(""));
        if (inner == 1) {
            launch(last_grid(outer, len), dim3{256, 1, 1}, [&] {
                if (len > kLongRow) reduce_last_block_f32(op, outer, len, x.data(), y.data());
                else reduce_last_warp_f32(op, outer, len, x.data(), y.data());
            });
        } else {
            launch(mid_grid(outer, inner), dim3{32, 32, 1}, [&] { reduce_mid_f32(op, outer, len, inner, x.data(), y.data()); });
        }
        for (long long o = 0; o < outer; ++o)
            for (long long i = 0; i < inner; ++i) {
                double want = op == 0 ? 0.0 : op == 1 ? -INFINITY : INFINITY;
                for (long long j = 0; j < len; ++j) {
                    double v = x[(o * len + j) * inner + i];
                    want = op == 0 ? want + v : op == 1 ? std::max(want, v) : std::min(want, v);
                }
                float got = y[o * inner + i];
                CHECK(std::fabs(got - want) <= 1e-4 * (1 + std::fabs(want)), "op %d (%lld,%lld,%lld) [%lld,%lld]: got %g want %g", op,
                      outer, len, inner, o, i, got, want);
            }
    }
    std::vector<i64> arg(outer * inner, -7);
    if (inner == 1) {
        launch(last_grid(outer, len), dim3{256, 1, 1}, [&] {
            if (len > kLongRow) argmax_last_block_f32(outer, len, x.data(), arg.data());
            else argmax_last_warp_f32(outer, len, x.data(), arg.data());
        });
    } else {
        launch(mid_grid(outer, inner), dim3{32, 32, 1}, [&] { argmax_mid_f32(outer, len, inner, x.data(), arg.data()); });
    }
    for (long long o = 0; o < outer; ++o)
        for (long long i = 0; i < inner; ++i) {
            long long best = 0;
            for (long long j = 1; j < len; ++j)
                if (x[(o * len + j) * inner + i] > x[(o * len + best) * inner + i]) best = j;
            CHECK(arg[o * inner + i] == best, "argmax (%lld,%lld,%lld) [%lld,%lld]: got %lld want %lld (first maximum)", outer, len,
                  inner, o, i, (long long)arg[o * inner + i], best);
        }
}

// Softmax and log-softmax rows and their gradients against double-precision loops.
static void check_softmax(std::mt19937& rng, long long outer, long long len) {
    std::uniform_real_distribution<float> u(-6.0f, 6.0f);
    std::vector<float> x(outer * len), dy(outer * len);
    for (auto& v : x) v = u(rng);
    for (auto& v : dy) v = u(rng);
    if (len > 2) x[1] = -1e9f;  // a masked entry, as attention masks them
    for (int log = 0; log < 2; ++log) {
        std::vector<float> y(outer * len, std::nanf("")), dx(outer * len, std::nanf(""));
        launch(last_grid(outer, len), dim3{256, 1, 1}, [&] {
            if (len > kLongRow) softmax_last_block_f32(log, outer, len, x.data(), y.data());
            else softmax_last_warp_f32(log, outer, len, x.data(), y.data());
        });
        launch(last_grid(outer, len), dim3{256, 1, 1}, [&] {
            if (len > kLongRow) softmax_grad_last_block_f32(log, outer, len, y.data(), dy.data(), dx.data());
            else softmax_grad_last_warp_f32(log, outer, len, y.data(), dy.data(), dx.data());
        });
        for (long long o = 0; o < outer; ++o) {
            const float* r = &x[o * len];
            double m = -INFINITY, s = 0, gs = 0, gy = 0;
            for (long long j = 0; j < len; ++j) m = std::max(m, (double)r[j]);
            for (long long j = 0; j < len; ++j) s += std::exp(r[j] - m);
            std::vector<double> p(len);
            for (long long j = 0; j < len; ++j) {
                p[j] = std::exp(r[j] - m) / s;
                gs += dy[o * len + j];
                gy += dy[o * len + j] * p[j];
            }
            for (long long j = 0; j < len; ++j) {
                double want = log ? (r[j] - m) - std::log(s) : p[j];
                double gwant = log ? dy[o * len + j] - p[j] * gs : p[j] * (dy[o * len + j] - gy);
                float got = y[o * len + j], g = dx[o * len + j];
                CHECK(std::fabs(got - want) <= 1e-5 * (1 + std::fabs(want)), "softmax log=%d (%lld,%lld) [%lld,%lld]: got %g want %g",
                      log, outer, len, o, j, got, want);
                CHECK(std::fabs(g - gwant) <= 1e-4 * (1 + std::fabs(gwant)), "softmax grad log=%d (%lld,%lld) [%lld,%lld]: got %g want %g",
                      log, outer, len, o, j, g, gwant);
            }
        }
    }
}

int main() {
    std::mt19937 rng(7);
    const long long shapes[][3] = {{1, 1, 1},   {37, 5, 1},   {9, 300, 1}, {3, 2500, 1}, {2, 1025, 1},
                                   {4, 7, 3},   {2, 33, 70},  {1, 1024, 64}, {70, 2, 1},  {5, 1, 9}};
    for (auto& s : shapes) check_case(rng, s[0], s[1], s[2]);
    const long long rows[][2] = {{1, 1}, {37, 5}, {9, 200}, {3, 2500}, {2, 1025}, {17, 33}};
    for (auto& r : rows) check_softmax(rng, r[0], r[1]);
    return report("reduce.cu");
}
