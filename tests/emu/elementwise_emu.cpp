// kernels/elementwise.cu under the CPU emulator: every unary and binary op (broadcast and
// contiguous), strided copies, fill, casts, bf16 rounding, one_hot and the dropout mask,
// launched as src/cuda/ops/elementwise.rs launches them, against plain CPU references. Outputs start
// poisoned. (f16 conversions use PTX on the device and software here, so they are left to
// the GPU tests.) Run by tests/kernel_emulation.rs; exits 1 on any failure.
#include "check.h"
#include "../../kernels/elementwise.cu"

#include <cstdio>
#include <random>

static bool close(double got, double want, double rel, double abs_tol) {
    if (std::isnan(want)) return std::isnan(got);
    if (std::isinf(want)) return got == want;
    return std::fabs(got - want) <= abs_tol + rel * std::fabs(want);
}

// unary_ref(op, x, p0, p1) and UNARY_CASES: generated from src/tensor/unary.rs
// (UnaryOp::emulator_source), written by tests/emu/build.rs.
#include "unary_ref.h"

// binary_ref(op, a, b) and BINARY_CODES: generated from src/tensor/binary.rs
// (BinaryOp::emulator_source), written by tests/emu/build.rs.
#include "binary_ref.h"

// bf16 by its definition: the nearer of the two bf16 neighbours, ties to the even one.
static unsigned short bf16_ref(float f) {
    unsigned x = __float_as_uint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((x >> 16) | 0x40u);
    if ((x & 0x7fffffffu) == 0x7f800000u) return (unsigned short)(x >> 16);  // infinities stay
    unsigned lo = x & 0xffff0000u, hi = lo + 0x10000u;
    // The step above the largest finite bf16 is the infinity; as a neighbour it counts 2^128.
    double hv = (hi & 0x7fffffffu) == 0x7f800000u ? std::copysign(std::ldexp(1.0, 128), f) : (double)__uint_as_float(hi);
    double dl = std::fabs((double)__uint_as_float(lo) - f), dh = std::fabs(hv - f);
    if (dl < dh || (dl == dh && ((lo >> 16) & 1u) == 0)) return (unsigned short)(lo >> 16);
    return (unsigned short)(hi >> 16);
}

int main() {
    std::mt19937_64 rng(11);
    auto uni = [&](double lo, double hi) { return (float)(lo + (hi - lo) * (double)(rng() >> 11) / 9007199254740992.0); };

    // Unary, every op (with its example parameters), and an unknown code (NaN, never
    // garbage).
    const int n_cases = (int)(sizeof(UNARY_CASES) / sizeof(UNARY_CASES[0]));
    for (int c = 0; c <= n_cases; ++c) {
        const bool unknown = c == n_cases;
        const UnaryCase u = unknown ? UnaryCase{UNARY_UNKNOWN_CODE, false, 0.0f, 0.0f} : UNARY_CASES[c];
        const int op = u.code;
        const long long n = 3001;
        std::vector<float> x(n), y(n, 12345.0f);
        for (auto& v : x) v = u.positive ? uni(0.05, 6.0) : uni(-30.0, 30.0);
        x[0] = u.positive ? 1.0f : 0.0f;
        launch(blocks_for(n), kThreads, [&] { unary_f32(op, n, x.data(), y.data(), u.p0, u.p1); });
        for (long long i = 0; i < n; ++i) {
            double want = unknown ? NAN : unary_ref(op, x[i], u.p0, u.p1);
            CHECK(close(y[i], want, 2e-6, 1e-6), "unary %d x=%g: got %g want %g", op, x[i], y[i], want);
        }
    }

    // Binary through strides: a is [3, 4, 5] read through offset strides, b a [4, 1]
    // broadcast to [3, 4, 5] (strides 0, 1, 0), both with offsets; and the contiguous path.
    for (int op : BINARY_CODES) {
        BinaryMeta m{};
        m.ndim = 3;
        const i64 shape[3] = {3, 4, 5}, as[3] = {24, 6, 1}, bs[3] = {0, 1, 0};
        for (int d = 0; d < 3; ++d) {
            m.shape[d] = shape[d];
            m.a_strides[d] = as[d];
            m.b_strides[d] = bs[d];
        }
        m.a_offset = 2;
        m.b_offset = 3;
        std::vector<float> a(2 + 3 * 24), b(3 + 4), y(60, -777.0f);
        for (auto& v : a) v = uni(0.5, 3.0);
        for (auto& v : b) v = uni(0.5, 3.0);
        b[4] = a[2 + 1 * 6];  // one equal pair for the comparisons
        launch(blocks_for(60), kThreads, [&] { binary_f32(op, 60, m, a.data(), b.data(), y.data()); });
        for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 4; ++j)
                for (int k = 0; k < 5; ++k) {
                    double want = binary_ref(op, a[2 + i * 24 + j * 6 + k], b[3 + j]);
                    float got = y[(i * 4 + j) * 5 + k];
                    CHECK(close(got, want, 2e-6, 1e-6), "binary %d [%d,%d,%d]: got %g want %g", op, i, j, k, got, want);
                }
        const long long n = 1000;
        std::vector<float> ca(n), cb(n), cy(n, -777.0f);
        for (long long i = 0; i < n; ++i) ca[i] = uni(0.5, 3.0), cb[i] = i % 7 == 0 ? ca[i] : uni(0.5, 3.0);
        launch(blocks_for(n), kThreads, [&] { binary_contig_f32(op, n, ca.data(), cb.data(), cy.data()); });
        for (long long i = 0; i < n; ++i) {
            double want = binary_ref(op, ca[i], cb[i]);
            CHECK(close(cy[i], want, 2e-6, 1e-6), "binary_contig %d [%lld]: got %g want %g", op, i, cy[i], want);
        }
    }

    // Strided copy: the transpose of a [4, 6] block at offset 5 of a wider buffer, f32 and
    // i64, into a contiguous [6, 4] at offset 1.
    {
        CopyMeta m{};
        m.ndim = 2;
        m.shape[0] = 6, m.shape[1] = 4;
        m.src_strides[0] = 1, m.src_strides[1] = 9;  // source rows are 9 wide
        m.dst_strides[0] = 4, m.dst_strides[1] = 1;
        m.src_offset = 5, m.dst_offset = 1;
        std::vector<float> src(5 + 4 * 9), dst(1 + 24, -1.0f);
        std::vector<i64> isrc(src.size()), idst(dst.size(), -1);
        for (size_t i = 0; i < src.size(); ++i) src[i] = uni(-1, 1), isrc[i] = (i64)(rng() >> 3);
        launch(blocks_for(24), kThreads, [&] { strided_copy_f32(24, m, src.data(), dst.data()); });
        launch(blocks_for(24), kThreads, [&] { strided_copy_i64(24, m, isrc.data(), idst.data()); });
        CHECK(dst[0] == -1.0f && idst[0] == -1, "strided copy wrote before dst_offset");
        for (int r = 0; r < 6; ++r)
            for (int c = 0; c < 4; ++c) {
                CHECK(dst[1 + r * 4 + c] == src[5 + c * 9 + r], "strided copy f32 [%d,%d]", r, c);
                CHECK(idst[1 + r * 4 + c] == isrc[5 + c * 9 + r], "strided copy i64 [%d,%d]", r, c);
            }
    }

    // Fill, i64 -> f32, f32 -> bf16 (rounding, ties, NaN, infinities), bf16 -> f32.
    {
        const long long n = 5000;
        std::vector<float> y(n, 0.0f), f(n), back(n, -1.0f);
        std::vector<i64> iv(n);
        std::vector<unsigned short> h(n, 0);
        launch(blocks_for(n), kThreads, [&] { fill_f32(n, 2.5f, y.data()); });
        for (long long i = 0; i < n; ++i) CHECK(y[i] == 2.5f, "fill [%lld]", i);
        for (long long i = 0; i < n; ++i) iv[i] = (i64)(rng() % 2000001) - 1000000;
        iv[0] = (1ll << 24) + 1;  // rounds
        launch(blocks_for(n), kThreads, [&] { cast_i64_f32(n, iv.data(), y.data()); });
        for (long long i = 0; i < n; ++i) CHECK(y[i] == (float)iv[i], "cast [%lld]", i);
        for (long long i = 0; i < n; ++i) f[i] = uni(-1e4, 1e4);
        f[0] = __uint_as_float(0x3f808000u);  // exactly half-way, even neighbour below
        f[1] = __uint_as_float(0x3f818000u);  // half-way, even neighbour above
        f[2] = NAN, f[3] = INFINITY, f[4] = -INFINITY, f[5] = 0.0f, f[6] = -0.0f;
        f[7] = __uint_as_float(0x7f7fffffu);  // rounds up to infinity
        launch(blocks_for(n), kThreads, [&] { f32_to_bf16_kernel(n, f.data(), h.data()); });
        for (long long i = 0; i < n; ++i) CHECK(h[i] == bf16_ref(f[i]), "bf16 of %g: got %04x want %04x", f[i], h[i], bf16_ref(f[i]));
        launch(blocks_for(n), kThreads, [&] { bf16_to_f32_kernel(n, h.data(), back.data()); });
        for (long long i = 3; i < n; ++i) CHECK(__float_as_uint(back[i]) == (unsigned)h[i] << 16, "bf16 -> f32 [%lld]", i);
    }

    // one_hot: a bad label gives a zero row and is reported.
    {
        const long long n = 300, classes = 7;
        std::vector<i64> labels(n);
        for (auto& l : labels) l = (i64)(rng() % classes);
        labels[100] = classes;
        std::vector<float> out(n * classes, NAN);
        i64 err[2] = {0, 0};
        launch(blocks_for(n * classes), kThreads, [&] { one_hot_f32(n, classes, labels.data(), out.data(), err); });
        CHECK(err[0] == 1 && err[1] == classes, "one_hot bad label report (%lld, %lld)", (long long)err[0], (long long)err[1]);
        for (long long i = 0; i < n; ++i)
            for (long long c = 0; c < classes; ++c) {
                float want = i != 100 && labels[i] == c ? 1.0f : 0.0f;
                CHECK(out[i * classes + c] == want, "one_hot [%lld,%lld]", i, c);
            }
    }

    // Dropout mask: the counter-based hash (boson::rng::uniform_hash), kept with
    // probability 1 - p, kept values exactly `scale`.
    {
        const long long n = 20000;
        const float p = 0.3f, scale = 1.0f / 0.7f;
        const u64 seed = 0x1234abcdull;
        std::vector<float> mask(n, NAN);
        launch(blocks_for(n), kThreads, [&] { dropout_mask_f32(n, seed, p, scale, mask.data()); });
        long long kept = 0;
        for (long long i = 0; i < n; ++i) {
            u64 x = seed + ((u64)i + 1ull) * 0x9E3779B97F4A7C15ull;
            u64 z = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            z ^= z >> 31;
            const double u = (double)(z >> 40) / 16777216.0;
            CHECK(mask[i] == (u >= p ? scale : 0.0f), "dropout mask [%lld]", i);
            kept += mask[i] != 0.0f;
        }
        CHECK(std::fabs((double)kept / n - 0.7) < 0.02, "dropout kept %lld of %lld", kept, n);
    }

    return report("elementwise.cu");
}
