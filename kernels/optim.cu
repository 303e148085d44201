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

// MXNet adam_update; lr_t already includes the bias correction (computed on the host).
extern "C" __global__ void adam_update_f32(i64 n, i64 dim, i64 rows, const i64* idx, float* w, const float* g,
                                           float* mean, float* var, float lr_t, float beta1, float beta2,
                                           float eps, float wd, float rescale, float clip, i64* err) {
    GRID_LOOP(t, n) {
        i64 e = target_elem(t, dim, rows, idx, err);
        if (e < 0) continue;
        float wv = w[e];
        float gv = clip_grad(rescale * g[t], clip) + wd * wv;
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
