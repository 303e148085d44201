// One launch of a kernel from kernels/optim.cu under the CPU emulator, driven by
// src/optim/kernel_emulation_tests.rs, which compares the result with the CPU optimizer.
// Every kernel there has ROW_UPDATE's signature; defining ROW_UPDATE here first lists each
// one by name as the file defines it, so a new kernel needs no line in this driver.
// Usage: optim_emu IN OUT. IN (little-endian, packed):
//   char name[64] (the kernel's name, zero-padded), i64 n, dim, rows, has_idx, nstates,
//   f32 scalars[8], [i64 idx[n / dim]], f32 w[rows * dim], f32 g[n],
//   f32 state[nstates][rows * dim]
// OUT: f32 w, f32 state[nstates], i64 err[2].
#include "check.h"

#include <cstdio>
#include <map>
#include <string>

using RowUpdate = void (*)(long long, long long, long long, const long long*, float*, const float*, float*, float*,
                           float*, float, float, float, float, float, float, float, float, long long*);

static std::map<std::string, RowUpdate>& kernels() {
    static std::map<std::string, RowUpdate> table;
    return table;
}

struct Listed {
    Listed(const char* name, RowUpdate f) { kernels()[name] = f; }
};

#define ROW_UPDATE(name)                             \
    void name(ROW_UPDATE_PARAMS);                    \
    static const Listed listed_##name(#name, name); \
    void name(ROW_UPDATE_PARAMS)

#include "../../kernels/optim.cu"

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
    char name[65] = {0};
    i64 n, dim, rows, has_idx, nstates;
    float p[8];
    read(in, name, 64);
    read(in, &n, 1);
    read(in, &dim, 1);
    read(in, &rows, 1);
    read(in, &has_idx, 1);
    read(in, &nstates, 1);
    read(in, p, 8);
    auto found = kernels().find(name);
    if (found == kernels().end()) {
        std::fprintf(stderr, "optim_emu: no kernel %s in kernels/optim.cu\n", name);
        return 2;
    }
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
    RowUpdate kernel = found->second;
    // src/cuda/ops/optim.rs: one thread per gradient element.
    launch(blocks_for(n), kThreads, [&] {
        kernel(n, dim, rows, ix, w.data(), g.data(), s[0], s[1], s[2], p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7],
               err);
    });

    FILE* out = std::fopen(argv[2], "wb");
    if (!out) return 2;
    std::fwrite(w.data(), sizeof(float), w.size(), out);
    for (auto& v : st) std::fwrite(v.data(), sizeof(float), v.size(), out);
    std::fwrite(err, sizeof(i64), 2, out);
    std::fclose(out);
    return 0;
}
