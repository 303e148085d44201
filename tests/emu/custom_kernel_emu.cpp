// The custom op kernels of tests/custom_kernels/softsign.cu (a user's kernels, written
// for boson::tensor::ElementwiseKernel) under the CPU emulator, against plain loops: with
// src/cuda/ops/launch.rs's grid, and with a grid smaller than the elements (the grid-stride
// loop covers the rest).
#include "check.h"
#include "../custom_kernels/softsign.cu"

#include <cmath>
#include <vector>

int main() {
    for (long long n : {1ll, 255ll, 256ll, 1000ll, 70000ll}) {
        std::vector<float> x(n), dy(n), y(n, -7.0f), dx(n, -7.0f);
        for (long long i = 0; i < n; ++i) {
            x[i] = (float)((i * 37 % 201) - 100) / 13.0f;
            dy[i] = (float)((i * 11 % 7) - 3) / 2.0f;
        }
        for (dim3 grid : {blocks_for(n), dim3{3, 1, 1}}) {
            launch(grid, kThreads, [&] { softsign_f32(n, x.data(), nullptr, nullptr, y.data(), 0, 0, 0, 0); });
            launch(grid, kThreads,
                   [&] { softsign_grad_f32(n, x.data(), dy.data(), nullptr, dx.data(), 0, 0, 0, 0); });
            for (long long i = 0; i < n; ++i) {
                float d = 1.0f + std::fabs(x[i]);
                CHECK(y[i] == x[i] / d, "softsign n=%lld [%lld]: %g vs %g", n, i, y[i], x[i] / d);
                CHECK(dx[i] == dy[i] / (d * d), "softsign_grad n=%lld [%lld]: %g vs %g", n, i, dx[i], dy[i] / (d * d));
            }
        }
    }
    return report("tests/custom_kernels/softsign.cu");
}
