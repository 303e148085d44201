// Sliding windows over NCHW f32 images: im2col / col2im (a convolution's gather and its
// adjoint) and max / average pooling with its gradient. Layouts match
// src/tensor/cpu_window.rs, the reference:
//  * columns are [N, C*KH*KW, OH*OW]: image n, row (c, i, j), column (oy, ox) holds
//    x[n, c, oy*SH - PH + i*DH, ox*SW - PW + j*DW], 0 in the padding;
//  * every kernel writes each output element from one thread, gathering what it needs,
//    so no atomics are used and results are deterministic.
// Grid-stride loops over i64 indices: any size runs with any grid.

typedef long long i64;

// The geometry, passed by value (mirrors Window2d in src/tensor/primitives.rs).
struct Win {
    i64 n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow;
};

extern "C" __global__ void im2col_f32(Win g, const float* x, float* cols) {
    const i64 l = g.oh * g.ow, rows = g.c * g.kh * g.kw;
    const i64 total = g.n * rows * l;
    for (i64 t = blockIdx.x * (i64)blockDim.x + threadIdx.x; t < total; t += (i64)gridDim.x * blockDim.x) {
        i64 col = t % l, row = t / l % rows, b = t / (l * rows);
        i64 oy = col / g.ow, ox = col % g.ow;
        i64 j = row % g.kw, i = row / g.kw % g.kh, ci = row / (g.kh * g.kw);
        i64 iy = oy * g.sh - g.ph + i * g.dh, ix = ox * g.sw - g.pw + j * g.dw;
        float v = 0.0f;
        if (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w) v = x[((b * g.c + ci) * g.h + iy) * g.w + ix];
        cols[t] = v;
    }
}

// One thread per image element: the sum over every (i, j) tap whose window covers it.
extern "C" __global__ void col2im_f32(Win g, const float* cols, float* x) {
    const i64 l = g.oh * g.ow, rows = g.c * g.kh * g.kw;
    const i64 total = g.n * g.c * g.h * g.w;
    for (i64 t = blockIdx.x * (i64)blockDim.x + threadIdx.x; t < total; t += (i64)gridDim.x * blockDim.x) {
        i64 xx = t % g.w, yy = t / g.w % g.h, ci = t / (g.w * g.h) % g.c, b = t / (g.w * g.h * g.c);
        float s = 0.0f;
        for (i64 i = 0; i < g.kh; ++i) {
            i64 ny = yy + g.ph - i * g.dh;  // = oy * sh
            if (ny < 0 || ny % g.sh != 0 || ny / g.sh >= g.oh) continue;
            i64 oy = ny / g.sh;
            for (i64 j = 0; j < g.kw; ++j) {
                i64 nx = xx + g.pw - j * g.dw;
                if (nx < 0 || nx % g.sw != 0 || nx / g.sw >= g.ow) continue;
                i64 ox = nx / g.sw;
                s += cols[(b * rows + (ci * g.kh + i) * g.kw + j) * l + oy * g.ow + ox];
            }
        }
        x[t] = s;
    }
}

// The in-image part [y0, y1) x [x0, x1) of window (oy, ox) and the average's divisor
// (counting padding up to h + ph when count_include_pad, as MXNet).
__device__ __forceinline__ void pool_window(const Win& g, i64 oy, i64 ox, int include_pad,
                                            i64& y0, i64& y1, i64& x0, i64& x1, float& div) {
    i64 ys = oy * g.sh - g.ph, xs = ox * g.sw - g.pw;
    i64 ye = min(ys + g.kh, g.h + g.ph), xe = min(xs + g.kw, g.w + g.pw);
    y0 = max(ys, (i64)0); x0 = max(xs, (i64)0);
    y1 = min(max(ye, (i64)0), g.h); x1 = min(max(xe, (i64)0), g.w);
    div = include_pad ? (float)((ye - ys) * (xe - xs)) : (float)(max(y1 - y0, (i64)0) * max(x1 - x0, (i64)0));
}

// The first position (plane-relative) of the largest value in a window, or -1.
__device__ __forceinline__ i64 window_argmax(const float* p, i64 w, i64 y0, i64 y1, i64 x0, i64 x1) {
    i64 best = -1;
    float bv = 0.0f;
    for (i64 y = y0; y < y1; ++y)
        for (i64 x = x0; x < x1; ++x) {
            float v = p[y * w + x];
            if (best < 0 || v > bv) { best = y * w + x; bv = v; }
        }
    return best;
}

// kind: 0 max, 1 average.
extern "C" __global__ void pool2d_f32(Win g, int kind, int include_pad, const float* x, float* y) {
    const i64 total = g.n * g.c * g.oh * g.ow;
    for (i64 t = blockIdx.x * (i64)blockDim.x + threadIdx.x; t < total; t += (i64)gridDim.x * blockDim.x) {
        i64 ox = t % g.ow, oy = t / g.ow % g.oh, p = t / (g.ow * g.oh);
        const float* src = x + p * g.h * g.w;
        i64 y0, y1, x0, x1;
        float div;
        pool_window(g, oy, ox, include_pad, y0, y1, x0, x1, div);
        float out = 0.0f;
        if (kind == 0) {
            i64 a = window_argmax(src, g.w, y0, y1, x0, x1);
            if (a >= 0) out = src[a];
        } else {
            float s = 0.0f;
            for (i64 yy = y0; yy < y1; ++yy)
                for (i64 xx = x0; xx < x1; ++xx) s += src[yy * g.w + xx];
            out = div > 0.0f ? s / div : 0.0f;
        }
        y[t] = out;
    }
}

// One thread per input element: the sum over the windows that cover it of what each
// sends there (a maximum's whole gradient if this is its first maximum, an average's
// share).
extern "C" __global__ void __launch_bounds__(1024) pool2d_grad_f32(Win g, int kind, int include_pad, const float* x,
                                           const float* dy, float* dx) {
    const i64 total = g.n * g.c * g.h * g.w;
    for (i64 t = blockIdx.x * (i64)blockDim.x + threadIdx.x; t < total; t += (i64)gridDim.x * blockDim.x) {
        i64 xx = t % g.w, yy = t / g.w % g.h, p = t / (g.w * g.h);
        const float* src = x + p * g.h * g.w;
        const float* d = dy + p * g.oh * g.ow;
        // Windows whose start oy*sh - ph lies in (yy - kh, yy].
        i64 oy_lo = yy + g.ph - g.kh + 1;
        oy_lo = oy_lo <= 0 ? 0 : (oy_lo + g.sh - 1) / g.sh;
        i64 oy_hi = min((yy + g.ph) / g.sh, g.oh - 1);
        i64 ox_lo = xx + g.pw - g.kw + 1;
        ox_lo = ox_lo <= 0 ? 0 : (ox_lo + g.sw - 1) / g.sw;
        i64 ox_hi = min((xx + g.pw) / g.sw, g.ow - 1);
        float s = 0.0f;
        for (i64 oy = oy_lo; oy <= oy_hi; ++oy)
            for (i64 ox = ox_lo; ox <= ox_hi; ++ox) {
                i64 y0, y1, x0, x1;
                float div;
                pool_window(g, oy, ox, include_pad, y0, y1, x0, x1, div);
                if (kind == 0) {
                    if (window_argmax(src, g.w, y0, y1, x0, x1) == yy * g.w + xx) s += d[oy * g.ow + ox];
                } else if (div > 0.0f) {
                    s += d[oy * g.ow + ox] / div;
                }
            }
        dx[t] = s;
    }
}
