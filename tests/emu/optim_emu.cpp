// One launch of a kernel from kernels/optim.cu under the CPU emulator, driven by
// src/optim/kernel_emulation_tests.rs, which compares the result with the CPU optimizer.
// Usage: optim_emu IN OUT. IN (little-endian, packed):
//   i32 kernel (0 sgd_update, 1 adam_update, 2 adagrad_update, 3 rule_update), i32 rule code,
//   i64 n, dim, rows, has_idx, nstates, f32 params[8] (each kernel's scalars in its
//   argument order), [i64 idx[n / dim]], f32 w[rows * dim], f32 g[n],
//   f32 state[nstates][rows * dim]
// OUT: f32 w, f32 state[nstates], i64 err[2].
#include "check.h"
#include "../../kernels/optim.cu"

#include <cstdio>

template <typename T> static void read(FILE* f, T* p, size_t n) {
    if (std::fread(p, sizeof(T), n, f) != n) {
        std::fprintf(stderr, "optim_emu: input truncated\n");
        std::exit(2);
    }
}

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: optim_emu IN OUT\n");
        return 2;
    }
    FILE* in = std::fopen(argv[1], "rb");
    if (!in) return 2;
    int kernel, rule;
    i64 n, dim, rows, has_idx, nstates;
    float p[8];
    read(in, &kernel, 1);
    read(in, &rule, 1);
    read(in, &n, 1);
    read(in, &dim, 1);
    read(in, &rows, 1);
    read(in, &has_idx, 1);
    read(in, &nstates, 1);
    read(in, p, 8);
    std::vector<i64> idx(has_idx ? n / dim : 0);
    read(in, idx.data(), idx.size());
    std::vector<float> w(rows * dim), g(n);
    read(in, w.data(), w.size());
    read(in, g.data(), g.size());
    std::vector<std::vector<float>> st(nstates, std::vector<float>(rows * dim));
    for (auto& s : st) read(in, s.data(), s.size());
    std::fclose(in);

    const i64* ix = has_idx ? idx.data() : nullptr;
    float* s[3] = {nullptr, nullptr, nullptr};
    for (i64 k = 0; k < nstates && k < 3; ++k) s[k] = st[k].data();
    i64 err[2] = {0, 0};
    // src/cuda/ops/optim.rs: one thread per gradient element.
    launch(blocks_for(n), kThreads, [&] {
        switch (kernel) {
        case 0: sgd_update_f32(n, dim, rows, ix, w.data(), g.data(), s[0], p[0], p[1], p[2], p[3], p[4], err); break;
        case 1:
            adam_update_f32(n, dim, rows, ix, w.data(), g.data(), s[0], s[1], p[0], p[1], p[2], p[3], p[4], p[5], p[6], err);
            break;
        case 2: adagrad_update_f32(n, dim, rows, ix, w.data(), g.data(), s[0], p[0], p[1], p[2], p[3], p[4], err); break;
        default:
            rule_update_f32(rule, n, dim, rows, ix, w.data(), g.data(), s[0], s[1], s[2], p[0], p[1], p[2], p[3], p[4], p[5],
                            p[6], p[7], err);
        }
    });

    FILE* out = std::fopen(argv[2], "wb");
    if (!out) return 2;
    std::fwrite(w.data(), sizeof(float), w.size(), out);
    for (auto& v : st) std::fwrite(v.data(), sizeof(float), v.size(), out);
    std::fwrite(err, sizeof(i64), 2, out);
    std::fclose(out);
    return 0;
}
