// softsign's GPU path for tests/custom_op.rs, as a user of boson writes one: element-wise
// kernels with the signature of `boson::tensor::ElementwiseKernel`
// (n, a, b, c, out, s0..s3), looping over the elements with a grid stride.
// tests/emu/custom_kernel_emu.cpp runs them under the CPU emulator.

// out = x / (1 + |x|), x = a.
extern "C" __global__ void softsign_f32(long long n, const float* a, const float* b, const float* c, float* out,
                                        float s0, float s1, float s2, float s3) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x) {
        out[i] = a[i] / (1.0f + fabsf(a[i]));
    }
}

// out = dy / (1 + |x|)^2, x = a, dy = b: the gradient of softsign_f32.
extern "C" __global__ void softsign_grad_f32(long long n, const float* a, const float* b, const float* c, float* out,
                                             float s0, float s1, float s2, float s3) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x) {
        float d = 1.0f + fabsf(a[i]);
        out[i] = b[i] / (d * d);
    }
}
