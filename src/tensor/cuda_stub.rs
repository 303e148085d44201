//! The CUDA backend of a build without the `cuda` feature: a storage type with no values
//! (an empty enum, so no tensor can be on a GPU) whose constructors say why. It keeps
//! `Storage`'s dispatch the same in every build, with no `cfg` arms.

use super::backend::BackendStorage;
use super::binary::BinaryOp;
use super::cpu_backend::CpuStorage;
use super::dtype::DType;
use super::primitives::ReduceOp;
use super::primitives::{PoolKind, Window2d};
use super::shape::Layout;
use super::unary::UnaryOp;
use crate::device::Device;
use crate::error::{Error, Result};

/// Values on a CUDA device, which this build cannot have.
pub(crate) enum CudaStorage {}

fn no_cuda(ordinal: usize) -> Error {
    Error::Cuda(format!(
        "device cuda:{ordinal}: boson was built without its `cuda` feature \
         (build with the default features or `--features cuda`)"
    ))
}

impl CudaStorage {
    /// Fails: no CUDA in this build.
    pub fn check_device(ordinal: usize) -> Result<()> {
        Err(no_cuda(ordinal))
    }

    /// Fails: no CUDA in this build.
    pub fn full(ordinal: usize, _value: f32, _n: usize) -> Result<CudaStorage> {
        Err(no_cuda(ordinal))
    }

    /// Never called: there is no `CudaStorage` to download.
    pub fn to_cpu(&self) -> Result<CpuStorage> {
        match *self {}
    }

    /// Fails: no CUDA in this build.
    pub fn from_cpu(ordinal: usize, _c: &CpuStorage) -> Result<CudaStorage> {
        Err(no_cuda(ordinal))
    }

    /// Fails: no CUDA in this build.
    pub fn dropout_mask(ordinal: usize, _n: usize, _p: f32, _seed: u64) -> Result<CudaStorage> {
        Err(no_cuda(ordinal))
    }

    /// Never called: there is no `CudaStorage` to update. Generic over the other
    /// arguments so that the stub needs nothing from the files that call it (the real
    /// signature is `crate::cuda::CudaStorage::update_rows`'s).
    pub fn update_rows<K, S, G, R>(
        _kernel: &K,
        w: &mut CudaStorage,
        _states: &mut [S],
        _g: &G,
        _rows: Option<&R>,
        _dim: usize,
    ) -> Result<()> {
        match *w {}
    }

    /// Never called: there is no `CudaStorage` to read (the real signature is
    /// `crate::cuda::CudaStorage::map_kernel`'s).
    pub fn map_kernel<K>(
        inputs: &[&CudaStorage],
        _kernel: &K,
        _scalars: &[f32; 4],
    ) -> Result<CudaStorage> {
        match inputs.first() {
            Some(c) => match **c {},
            None => Err(Error::InvalidArgument("map_kernel: no inputs".into())),
        }
    }
}

impl BackendStorage for CudaStorage {
    fn dtype(&self) -> DType {
        match *self {}
    }
    fn len(&self) -> usize {
        match *self {}
    }
    fn device(&self) -> Device {
        match *self {}
    }
    fn to_dtype(&self, _: DType) -> Result<Self> {
        match *self {}
    }
    fn deep_clone(&self) -> Result<Self> {
        match *self {}
    }
    fn unary(&self, _: UnaryOp) -> Result<Self> {
        match *self {}
    }
    fn binary(&self, _: &Layout, _: &Self, _: &Layout, _: BinaryOp) -> Result<Self> {
        match *self {}
    }
    fn reduce(&self, _: ReduceOp, _: usize, _: usize, _: usize) -> Result<Self> {
        match *self {}
    }
    fn argmax(&self, _: usize, _: usize, _: usize) -> Result<Self> {
        match *self {}
    }
    fn fill_at(&self, _: &Self, _: f32) -> Result<Self> {
        match *self {}
    }
    fn softmax(&self, _: usize, _: bool) -> Result<Self> {
        match *self {}
    }
    fn softmax_grad(&self, _: &Self, _: usize, _: bool) -> Result<Self> {
        match *self {}
    }
    fn matmul(
        &self,
        _: &Self,
        _: usize,
        _: usize,
        _: usize,
        _: usize,
        _: bool,
        _: bool,
    ) -> Result<Self> {
        match *self {}
    }
    fn strided_copy(&self, _: &Layout) -> Result<Self> {
        match *self {}
    }
    fn concat(parts: &[&Self], _: usize, _: &[usize]) -> Result<Self> {
        match *parts[0] {}
    }
    fn gather_rows(&self, _: usize, _: usize, _: &Self) -> Result<Self> {
        match *self {}
    }
    fn coalesce_rows(idx: &Self, _: &Self, _: usize, _: usize) -> Result<(Self, Self)> {
        match *idx {}
    }
    fn index_add_rows(&mut self, _: usize, _: &Self, _: &Self) -> Result<()> {
        match *self {}
    }
    fn one_hot(&self, _: usize) -> Result<Self> {
        match *self {}
    }
    fn im2col(&self, _: &Window2d) -> Result<Self> {
        match *self {}
    }
    fn col2im(&self, _: &Window2d) -> Result<Self> {
        match *self {}
    }
    fn pool2d(&self, _: &Window2d, _: PoolKind) -> Result<Self> {
        match *self {}
    }
    fn pool2d_grad(x: &Self, _: &Self, _: &Window2d, _: PoolKind) -> Result<Self> {
        match *x {}
    }
}

#[cfg(test)]
mod tests {
    use crate::{Device, Tensor};

    /// Every way onto a GPU fails with an error naming the device and the feature.
    #[test]
    fn a_build_without_cuda_refuses_gpu_tensors_by_name() {
        let gpu = Device::Cuda(1);
        let x = Tensor::from_vec(vec![1.0, 2.0], &[2]).unwrap();
        let errors = [
            Tensor::zeros(&[2], gpu).err(),
            x.to_device(gpu).err(),
            Device::new_cuda(1).err(),
        ];
        for e in errors {
            let msg = e.expect("a GPU tensor in a build without cuda").to_string();
            assert!(
                msg.contains("cuda:1") && msg.contains("`cuda` feature"),
                "{msg}"
            );
        }
    }
}
