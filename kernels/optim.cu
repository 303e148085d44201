// Optimizer updates (MXNet semantics), applied either to the rows listed in idx
// (row-sparse gradient: grad row r belongs to weight row idx[r]; idx < 0 is padding from
// coalesce and is skipped) or, when idx is null, to every row (dense parameter, grad has
// the weight's shape). State tensors (momentum, mean, var, history) have the weight's
// shape. An idx >= rows is recorded in err and its row skipped.
//
// One thread per element of the gradient; rows of different idx are distinct (coalesce
// output), so no two threads write the same weight element.
//
// Every kernel here has one signature, ROW_UPDATE's, which the one launcher in
// src/cuda/ops/optim.rs passes: the sizes, the rows, the weight and gradient, up to three
// state tensors s0..s2 (null past the update's count) and eight scalars p0..p7, whose
// meaning each kernel names in its first line. Which kernel an optimizer runs, and its
// scalars in this order, is said in that optimizer's file (src/optim/*.rs).

typedef long long i64;
typedef unsigned long long u64;

#define GRID_LOOP(i, n) \
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)blockDim.x * gridDim.x)

__device__ __forceinline__ void record_bad_index(i64* err, i64 idx) {
    if (atomicCAS((u64*)err, 0ull, 1ull) == 0ull) err[1] = idx;
}

// clip < 0 means no clipping.
__device__ __forceinline__ float clip_grad(float g, float clip) {
    return clip >= 0.0f ? fminf(fmaxf(g, -clip), clip) : g;
}

// Maps gradient element t to the weight element it updates; -1 to skip.
__device__ __forceinline__ i64 target_elem(i64 t, i64 dim, i64 rows, const i64* idx, i64* err) {
    if (idx == nullptr) return t;
    i64 r = t / dim, c = t - r * dim;
    i64 row = idx[r];
    if (row < 0) return -1;
    if (row >= rows) {
        if (c == 0) record_bad_index(err, row);
        return -1;
    }
    return row * dim + c;
}

#define ROW_UPDATE_PARAMS                                                                                \
    i64 n, i64 dim, i64 rows, const i64 *idx, float *w, const float *g, float *s0, float *s1, float *s2, \
        float p0, float p1, float p2, float p3, float p4, float p5, float p6, float p7, i64 *err
// The emulator's driver (tests/emu/optim_emu.cpp) defines its own, which also lists each kernel.
#ifndef ROW_UPDATE
#define ROW_UPDATE(name) extern "C" __global__ void name(ROW_UPDATE_PARAMS)
#endif

// MXNet sgd_mom_update: mom = momentum*mom - lr*(clip(rescale*g) + wd*w); w += mom.
// s0 == nullptr: plain sgd_update, w -= lr*(clip(rescale*g) + wd*w).
ROW_UPDATE(sgd_update_f32) {
    const float lr = p0, momentum = p1, wd = p2, rescale = p3, clip = p4;
    float* mom = s0;
    GRID_LOOP(t, n) {
        i64 e = target_elem(t, dim, rows, idx, err);
        if (e < 0) continue;
        float wv = w[e];
        float step = clip_grad(rescale * g[t], clip) + wd * wv;
        if (mom != nullptr) {
            float m = momentum * mom[e] - lr * step;
            mom[e] = m;
            w[e] = wv + m;
        } else {
            w[e] = wv - lr * step;
        }
    }
}

// MXNet adam_update: g = clip(rescale*g + wd*w); lr_t already includes the bias
// correction (computed on the host). s0 mean, s1 var.
ROW_UPDATE(adam_update_f32) {
    const float lr_t = p0, beta1 = p1, beta2 = p2, eps = p3, wd = p4, rescale = p5, clip = p6;
    GRID_LOOP(t, n) {
        i64 e = target_elem(t, dim, rows, idx, err);
        if (e < 0) continue;
        float wv = w[e];
        float gv = clip_grad(rescale * g[t] + wd * wv, clip);  // MXNet clips after adding wd*w
        float m = beta1 * s0[e] + (1.0f - beta1) * gv;
        float v = beta2 * s1[e] + (1.0f - beta2) * gv * gv;
        s0[e] = m;
        s1[e] = v;
        w[e] = wv - lr_t * m / (sqrtf(v) + eps);
    }
}

// MXNet adagrad: g = clip(rescale*g); history += g^2; w -= lr*(g/sqrt(history+eps) + wd*w).
// s0 history.
ROW_UPDATE(adagrad_update_f32) {
    const float lr = p0, eps = p1, wd = p2, rescale = p3, clip = p4;
    GRID_LOOP(t, n) {
        i64 e = target_elem(t, dim, rows, idx, err);
        if (e < 0) continue;
        float wv = w[e];
        float gv = clip_grad(rescale * g[t], clip);
        float h = s0[e] + gv * gv;
        s0[e] = h;
        w[e] = wv - lr * (gv / sqrtf(h + eps) + wd * wv);
    }
}

// Nesterov momentum (MXNet nag_mom_update). s0 momentum.
ROW_UPDATE(nag_update_f32) {
    const float lr = p0, momentum = p1, wd = p2, rescale = p3, clip = p4;
    GRID_LOOP(t, n) {
        i64 e = target_elem(t, dim, rows, idx, err);
        if (e < 0) continue;
        float wv = w[e];
        float gw = clip_grad(rescale * g[t], clip) + wd * wv;
        float m = momentum * s0[e] + gw;
        s0[e] = m;
        w[e] = wv - lr * (gw + momentum * m);
    }
}

// AdamW (decoupled decay): lr_t is the bias-corrected rate, decay = lr * wd.
// s0 mean, s1 var.
ROW_UPDATE(adamw_update_f32) {
    const float lr_t = p0, beta1 = p1, beta2 = p2, eps = p3, decay = p4, rescale = p5, clip = p6;
    GRID_LOOP(t, n) {
        i64 e = target_elem(t, dim, rows, idx, err);
        if (e < 0) continue;
        float wv = w[e];
        float gv = clip_grad(rescale * g[t], clip);
        float m = beta1 * s0[e] + (1.0f - beta1) * gv;
        float v = beta2 * s1[e] + (1.0f - beta2) * gv * gv;
        s0[e] = m;
        s1[e] = v;
        w[e] = wv - (lr_t * m / (sqrtf(v) + eps) + decay * wv);
    }
}

// RMSProp (MXNet rmsprop_update, clipping after adding wd*w). s0 n.
ROW_UPDATE(rmsprop_update_f32) {
    const float lr = p0, gamma1 = p1, eps = p2, wd = p3, rescale = p4, clip = p5;
    GRID_LOOP(t, n) {
        i64 e = target_elem(t, dim, rows, idx, err);
        if (e < 0) continue;
        float wv = w[e];
        float gw = clip_grad(rescale * g[t] + wd * wv, clip);
        float nv = (1.0f - gamma1) * gw * gw + gamma1 * s0[e];
        s0[e] = nv;
        w[e] = wv - lr * gw / sqrtf(nv + eps);
    }
}

// Graves' centered RMSProp (MXNet rmspropalex_update, clipping after adding wd*w).
// s0 n, s1 g, s2 delta.
ROW_UPDATE(rmsprop_centered_update_f32) {
    const float lr = p0, gamma1 = p1, gamma2 = p2, eps = p3, wd = p4, rescale = p5, clip = p6;
    GRID_LOOP(t, n) {
        i64 e = target_elem(t, dim, rows, idx, err);
        if (e < 0) continue;
        float wv = w[e];
        float gw = clip_grad(rescale * g[t] + wd * wv, clip);
        float nv = (1.0f - gamma1) * gw * gw + gamma1 * s0[e];
        float ga = (1.0f - gamma1) * gw + gamma1 * s1[e];
        float d = gamma2 * s2[e] - lr * gw / sqrtf(nv - ga * ga + eps);
        s0[e] = nv;
        s1[e] = ga;
        s2[e] = d;
        w[e] = wv + d;
    }
}

// FTRL-proximal (MXNet ftrl_update). s0 z, s1 n.
ROW_UPDATE(ftrl_update_f32) {
    const float lr = p0, lamda1 = p1, beta = p2, wd = p3, rescale = p4, clip = p5;
    GRID_LOOP(t, n) {
        i64 e = target_elem(t, dim, rows, idx, err);
        if (e < 0) continue;
        float wv = w[e];
        float gv = clip_grad(rescale * g[t], clip);
        float nv = s1[e];
        float z = s0[e] + gv - (sqrtf(nv + gv * gv) - sqrtf(nv)) * wv / lr;
        nv += gv * gv;
        s0[e] = z;
        s1[e] = nv;
        w[e] = fabsf(z) > lamda1 ? (copysignf(lamda1, z) - z) / ((beta + sqrtf(nv)) / lr + wd) : 0.0f;
    }
}
