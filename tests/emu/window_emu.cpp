// kernels/window.cu under the CPU emulator: im2col, col2im, max/average pooling and the
// pooling gradient, launched with src/cuda/ops/window.rs's grid (one thread per output
// element, cfg_for), on random inputs with ties, against loops written from the
// definitions. Outputs start poisoned: every element must be written. Run by
// tests/kernel_emulation.rs; exits 1 on any failure.
#include "check.h"
#include "../../kernels/window.cu"

#include <cmath>
#include <random>
#include <vector>

static float at(const std::vector<float>& x, const Win& g, i64 b, i64 c, i64 y, i64 xx) {
    if (y < 0 || y >= g.h || xx < 0 || xx >= g.w) return 0.0f;
    return x[((b * g.c + c) * g.h + y) * g.w + xx];
}

static Win conv_win(i64 n, i64 c, i64 h, i64 w, i64 kh, i64 kw, i64 s, i64 p, i64 d) {
    Win g{n, c, h, w, kh, kw, s, s, p, p, d, d, 0, 0};
    g.oh = (h + 2 * p - d * (kh - 1) - 1) / s + 1;
    g.ow = (w + 2 * p - d * (kw - 1) - 1) / s + 1;
    return g;
}

static void check_im2col(std::mt19937& rng, const Win& g) {
    std::uniform_real_distribution<float> u(-1, 1);
    std::vector<float> x(g.n * g.c * g.h * g.w);
    for (auto& v : x) v = u(rng);
    const i64 rows = g.c * g.kh * g.kw, l = g.oh * g.ow;
    // [n, rows, l]: image b's row r, output pixel p.
    auto idx = [&](i64 b, i64 r, i64 p) { return (b * rows + r) * l + p; };
    std::vector<float> cols(g.n * rows * l, std::nanf(""));
    launch(blocks_for(g.n * rows * l), kThreads, [&] { im2col_f32(g, x.data(), cols.data()); });
    for (i64 c = 0; c < g.c; ++c)
        for (i64 i = 0; i < g.kh; ++i)
            for (i64 j = 0; j < g.kw; ++j)
                for (i64 b = 0; b < g.n; ++b)
                    for (i64 oy = 0; oy < g.oh; ++oy)
                        for (i64 ox = 0; ox < g.ow; ++ox) {
                            float want = at(x, g, b, c, oy * g.sh - g.ph + i * g.dh, ox * g.sw - g.pw + j * g.dw);
                            float got = cols[idx(b, (c * g.kh + i) * g.kw + j, oy * g.ow + ox)];
                            CHECK(got == want, "im2col c%lld i%lld j%lld b%lld (%lld,%lld): got %g want %g", c, i, j, b, oy, ox, got, want);
                        }
    // col2im is the adjoint: every column value added to the position it came from.
    std::vector<float> r(g.n * rows * l);
    for (auto& v : r) v = u(rng);
    std::vector<double> want(x.size(), 0.0);
    for (i64 c = 0; c < g.c; ++c)
        for (i64 i = 0; i < g.kh; ++i)
            for (i64 j = 0; j < g.kw; ++j)
                for (i64 b = 0; b < g.n; ++b)
                    for (i64 oy = 0; oy < g.oh; ++oy)
                        for (i64 ox = 0; ox < g.ow; ++ox) {
                            i64 y = oy * g.sh - g.ph + i * g.dh, xx = ox * g.sw - g.pw + j * g.dw;
                            if (y < 0 || y >= g.h || xx < 0 || xx >= g.w) continue;
                            want[((b * g.c + c) * g.h + y) * g.w + xx] += r[idx(b, (c * g.kh + i) * g.kw + j, oy * g.ow + ox)];
                        }
    std::vector<float> back(x.size(), std::nanf(""));
    launch(blocks_for((i64)x.size()), kThreads, [&] { col2im_f32(g, r.data(), back.data()); });
    for (size_t k = 0; k < x.size(); ++k)
        CHECK(std::fabs(back[k] - want[k]) <= 1e-5 * (1 + std::fabs(want[k])), "col2im [%zu]: got %g want %g", k, back[k], want[k]);
}

static Win pool_win(i64 n, i64 c, i64 h, i64 w, i64 k, i64 s, i64 p, bool ceil) {
    Win g{n, c, h, w, k, k, s, s, p, p, 1, 1, 0, 0};
    auto ext = [&](i64 len) {
        i64 span = len + 2 * p - k;
        i64 o = (ceil ? (span + s - 1) / s : span / s) + 1;
        if (ceil && (o - 1) * s >= len + p) --o;
        return o;
    };
    g.oh = ext(h);
    g.ow = ext(w);
    return g;
}

static void check_pool(std::mt19937& rng, const Win& g) {
    std::uniform_int_distribution<int> coarse(-6, 6);  // few distinct values: ties
    std::vector<float> x(g.n * g.c * g.h * g.w), dy(g.n * g.c * g.oh * g.ow);
    for (auto& v : x) v = 0.5f * (float)coarse(rng);
    for (auto& v : dy) v = 0.25f * (float)coarse(rng);
    for (int kind = 0; kind < 2; ++kind)
        for (int include = 0; include < 2; ++include) {
            std::vector<float> y(dy.size(), std::nanf("")), dx(x.size(), std::nanf(""));
            std::vector<double> want_dx(x.size(), 0.0);
            launch(blocks_for((i64)y.size()), kThreads, [&] { pool2d_f32(g, kind, include, x.data(), y.data()); });
            launch(blocks_for((i64)x.size()), kThreads, [&] { pool2d_grad_f32(g, kind, include, x.data(), dy.data(), dx.data()); });
            for (i64 p = 0; p < g.n * g.c; ++p)
                for (i64 oy = 0; oy < g.oh; ++oy)
                    for (i64 ox = 0; ox < g.ow; ++ox) {
                        i64 ys = oy * g.sh - g.ph, xs = ox * g.sw - g.pw;
                        double best = 0, sum = 0;
                        i64 arg = -1, count = 0;
                        for (i64 yy = ys; yy < ys + g.kh; ++yy)
                            for (i64 xx = xs; xx < xs + g.kw; ++xx) {
                                if (yy < 0 || yy >= g.h || xx < 0 || xx >= g.w) continue;
                                double v = x[(p * g.h + yy) * g.w + xx];
                                if (arg < 0 || v > best) { best = v; arg = (p * g.h + yy) * g.w + xx; }
                                sum += v;
                                ++count;
                            }
                        i64 ye = std::min(ys + g.kh, g.h + g.ph), xe = std::min(xs + g.kw, g.w + g.pw);
                        double div = include ? (double)((ye - ys) * (xe - xs)) : (double)count;
                        double want = kind == 0 ? best : sum / div;
                        double d = dy[(p * g.oh + oy) * g.ow + ox];
                        if (kind == 0) want_dx[arg] += d;
                        else
                            for (i64 yy = std::max(ys, 0ll); yy < std::min(ys + g.kh, g.h); ++yy)
                                for (i64 xx = std::max(xs, 0ll); xx < std::min(xs + g.kw, g.w); ++xx) want_dx[(p * g.h + yy) * g.w + xx] += d / div;
                        float got = y[(p * g.oh + oy) * g.ow + ox];
                        CHECK(std::fabs(got - want) <= 1e-5 * (1 + std::fabs(want)), "pool kind %d include %d plane %lld (%lld,%lld): got %g want %g",
                              kind, include, p, oy, ox, got, want);
                    }
            for (size_t k = 0; k < x.size(); ++k)
                CHECK(std::fabs(dx[k] - want_dx[k]) <= 1e-5 * (1 + std::fabs(want_dx[k])), "pool grad kind %d include %d [%zu]: got %g want %g",
                      kind, include, k, dx[k], want_dx[k]);
        }
}

int main() {
    std::mt19937 rng(11);
    check_im2col(rng, conv_win(2, 3, 7, 6, 3, 3, 1, 0, 1));
    check_im2col(rng, conv_win(2, 2, 9, 8, 3, 2, 2, 1, 1));
    check_im2col(rng, conv_win(1, 2, 11, 9, 3, 3, 2, 2, 2));
    check_im2col(rng, conv_win(3, 1, 28, 28, 5, 5, 1, 0, 1));
    Win odd = conv_win(2, 2, 7, 9, 2, 3, 1, 1, 1);
    odd.sh = 3;  // different strides per axis
    odd.oh = (7 + 2 - 2) / 3 + 1;
    check_im2col(rng, odd);
    // Padding and dilation that differ per axis.
    Win axes{2, 3, 9, 10, 3, 2, 1, 2, 2, 0, 1, 3, 0, 0};
    axes.oh = (9 + 2 * 2 - 1 * (3 - 1) - 1) / 1 + 1;
    axes.ow = (10 + 0 - 3 * (2 - 1) - 1) / 2 + 1;
    check_im2col(rng, axes);
    check_pool(rng, pool_win(2, 3, 8, 8, 2, 2, 0, false));
    check_pool(rng, pool_win(2, 2, 7, 9, 3, 2, 1, false));
    check_pool(rng, pool_win(1, 3, 7, 8, 3, 2, 1, true));
    check_pool(rng, pool_win(2, 2, 5, 5, 2, 2, 0, true));
    return report("window.cu");
}
