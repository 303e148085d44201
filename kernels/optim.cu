// Optimizer updates (MXNet semantics), applied either to the rows listed in idx
// (row-sparse gradient: grad row r belongs to weight row idx[r]; idx < 0 is padding from
// coalesce and is skipped) or, when idx is null, to every row (dense parameter, grad has
// the weight's shape). State tensors (momentum, mean, var, history) have the weight's
// shape. An idx >= rows is recorded in err and its row skipped.
//
// One thread per element of the gradient; rows of different idx are distinct (coalesce
// output), so no two threads write the same weight element.

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

// MXNet sgd_mom_update: mom = momentum*mom - lr*(clip(rescale*g) + wd*w); w += mom.
// mom == nullptr: plain sgd_update, w -= lr*(clip(rescale*g) + wd*w).
extern "C" __global__ void sgd_update_f32(i64 n, i64 dim, i64 rows, const i64* idx, float* w, const float* g,
                                          float* mom, float lr, float momentum, float wd, float rescale,
                                          float clip, i64* err) {
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
// correction (computed on the host).
extern "C" __global__ void adam_update_f32(i64 n, i64 dim, i64 rows, const i64* idx, float* w, const float* g,
                                           float* mean, float* var, float lr_t, float beta1, float beta2,
                                           float eps, float wd, float rescale, float clip, i64* err) {
    GRID_LOOP(t, n) {
        i64 e = target_elem(t, dim, rows, idx, err);
        if (e < 0) continue;
        float wv = w[e];
        float gv = clip_grad(rescale * g[t] + wd * wv, clip);  // MXNet clips after adding wd*w
        float m = beta1 * mean[e] + (1.0f - beta1) * gv;
        float v = beta2 * var[e] + (1.0f - beta2) * gv * gv;
        mean[e] = m;
        var[e] = v;
        w[e] = wv - lr_t * m / (sqrtf(v) + eps);
    }
}

// MXNet adagrad: g = clip(rescale*g); history += g^2; w -= lr*(g/sqrt(history+eps) + wd*w).
extern "C" __global__ void adagrad_update_f32(i64 n, i64 dim, i64 rows, const i64* idx, float* w, const float* g,
                                              float* history, float lr, float eps, float wd, float rescale,
                                              float clip, i64* err) {
    GRID_LOOP(t, n) {
        i64 e = target_elem(t, dim, rows, idx, err);
        if (e < 0) continue;
        float wv = w[e];
        float gv = clip_grad(rescale * g[t], clip);
        float h = history[e] + gv * gv;
        history[e] = h;
        w[e] = wv - lr * (gv / sqrtf(h + eps) + wd * wv);
    }
}

// The other rules, one kernel selected by `rule` (uniform across the grid, so no warp
// diverges). Each line is the CPU's formula in src/optim/rule.rs; h0..h3 are the rule's
// own hyper-parameters and s0..s2 its state tensors (null where the rule has fewer):
//   0 NAG:              h0 momentum;                      s0 momentum
//   1 AdamW:            lr = bias-corrected lr_t, wd = lr*wd (decoupled decay),
//                       h0 beta1, h1 beta2, h2 eps;       s0 mean, s1 var
//   2 RMSProp:          h0 gamma1, h2 eps;                s0 n
//   3 RMSProp centered: h0 gamma1, h1 gamma2, h2 eps;     s0 n, s1 g, s2 delta
//   4 FTRL:             h0 lamda1, h1 beta;               s0 z, s1 n
extern "C" __global__ void rule_update_f32(int rule, i64 n, i64 dim, i64 rows, const i64* idx, float* w,
                                           const float* g, float* s0, float* s1, float* s2, float lr,
                                           float wd, float rescale, float clip, float h0, float h1,
                                           float h2, float h3, i64* err) {
    GRID_LOOP(t, n) {
        i64 e = target_elem(t, dim, rows, idx, err);
        if (e < 0) continue;
        float wv = w[e];
        float raw = rescale * g[t];
        float gv = clip_grad(raw, clip);
        switch (rule) {
        case 0: {  // Nag
            float gw = gv + wd * wv;
            float m = h0 * s0[e] + gw;
            s0[e] = m;
            w[e] = wv - lr * (gw + h0 * m);
            break;
        }
        case 1: {  // AdamW
            float m = h0 * s0[e] + (1.0f - h0) * gv;
            float v = h1 * s1[e] + (1.0f - h1) * gv * gv;
            s0[e] = m;
            s1[e] = v;
            w[e] = wv - (lr * m / (sqrtf(v) + h2) + wd * wv);
            break;
        }
        case 2: {  // RmsProp (MXNet clips after adding wd*w)
            float gw = clip_grad(raw + wd * wv, clip);
            float nv = (1.0f - h0) * gw * gw + h0 * s0[e];
            s0[e] = nv;
            w[e] = wv - lr * gw / sqrtf(nv + h2);
            break;
        }
        case 3: {  // RmsPropCentered (MXNet clips after adding wd*w)
            float gw = clip_grad(raw + wd * wv, clip);
            float nv = (1.0f - h0) * gw * gw + h0 * s0[e];
            float ga = (1.0f - h0) * gw + h0 * s1[e];
            float d = h1 * s2[e] - lr * gw / sqrtf(nv - ga * ga + h2);
            s0[e] = nv;
            s1[e] = ga;
            s2[e] = d;
            w[e] = wv + d;
            break;
        }
        case 4: {  // Ftrl
            float nv = s1[e];
            float z = s0[e] + gv - (sqrtf(nv + gv * gv) - sqrtf(nv)) * wv / lr;
            nv += gv * gv;
            s0[e] = z;
            s1[e] = nv;
            w[e] = fabsf(z) > h0 ? (copysignf(h0, z) - z) / ((h1 + sqrtf(nv)) / lr + wd) : 0.0f;
            break;
        }
        }
    }
}
