//! `MfBlock`, the reference network of the SageMaker + Gluon notebook. A file of its own
//! that needs nothing but boson, so that the GPU tests and the GPU training benchmark
//! (`tests/common/gpu.rs`, `benches/gpu_train.rs`) train this network, not a copy.

use boson::nn::{Activation, Block, Dense, Dropout, Embedding, Forward};
use boson::ratings::FactorScorer;
use boson::tensor::DType;
use boson::{autograd, Result, Tensor};

/// The reference network, parameter names as in the Gluon notebook.
#[derive(Block)]
pub struct MfBlock {
    user_embeddings: Embedding,
    item_embeddings: Embedding,
    dense_user: Dense,
    dense_item: Dense,
    dropout_user: Dropout,
    dropout_item: Dropout,
}

impl MfBlock {
    /// `users × k` and `items × k` f32 tables (row-sparse gradients when `sparse_grad`),
    /// a `k → k` relu `Dense` on each side, and dropout `p` on both, its masks drawn from
    /// two streams of `seed`.
    pub fn new(
        (users, items, k): (usize, usize, usize),
        p: f32,
        sparse_grad: bool,
        seed: u64,
    ) -> MfBlock {
        let table = |rows| Embedding::with_options(rows, k, sparse_grad, DType::F32);
        MfBlock {
            user_embeddings: table(users),
            item_embeddings: table(items),
            dense_user: Dense::new(k).in_units(k).activation(Activation::Relu),
            dense_item: Dense::new(k).in_units(k).activation(Activation::Relu),
            // Two independent mask streams, both derived from the run's seed.
            dropout_user: Dropout::new(p).with_seed(boson::rng::mix_seed(seed, 1)),
            dropout_item: Dropout::new(p).with_seed(boson::rng::mix_seed(seed, 2)),
        }
    }
}

impl Forward for MfBlock {
    type Input = (Tensor, Tensor);

    fn forward(&self, (users, items): &(Tensor, Tensor)) -> Result<Tensor> {
        let a = self
            .dense_user
            .forward(&self.user_embeddings.forward(users)?)?;
        let b = self
            .dense_item
            .forward(&self.item_embeddings.forward(items)?)?;
        let p = self
            .dropout_user
            .forward(&a)?
            .mul(&self.dropout_item.forward(&b)?)?;
        p.sum_axis(1, false)
    }
}

impl FactorScorer for MfBlock {
    fn user_factors(&self, users: &Tensor) -> Result<Tensor> {
        // Dropout is the identity outside training, so the factors are the Dense outputs.
        autograd::predict_mode(|| {
            self.dense_user
                .forward(&self.user_embeddings.forward(users)?)
        })
    }
    fn item_factors(&self, items: &Tensor) -> Result<Tensor> {
        autograd::predict_mode(|| {
            self.dense_item
                .forward(&self.item_embeddings.forward(items)?)
        })
    }
}
