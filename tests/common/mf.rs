//! The recommender's MFBlock, shared by the GPU test and the GPU training benchmark.
#![allow(dead_code)]

use boson::nn::{Activation, Block, Dense, Dropout, Embedding, Forward};
use boson::{Result, Tensor};

/// The recommender's MFBlock (user/item Embedding → Dense(relu) → Dropout → dot).
#[derive(Block)]
pub struct Mf {
    pub user: Embedding,
    item: Embedding,
    ud: Dense,
    id: Dense,
    drop_u: Dropout,
    drop_i: Dropout,
}

impl Forward for Mf {
    type Input = (Tensor, Tensor);
    fn forward(&self, (users, items): &(Tensor, Tensor)) -> Result<Tensor> {
        let u = self
            .drop_u
            .forward(&self.ud.forward(&self.user.forward(users)?)?)?;
        let i = self
            .drop_i
            .forward(&self.id.forward(&self.item.forward(items)?)?)?;
        (&u * &i)?.sum_axis(1, false)
    }
}

pub fn mf(users: usize, items: usize, dim: usize) -> Mf {
    Mf {
        user: Embedding::new(users, dim),
        item: Embedding::new(items, dim),
        ud: Dense::new(dim).in_units(dim).activation(Activation::Relu),
        id: Dense::new(dim).in_units(dim).activation(Activation::Relu),
        drop_u: Dropout::new(0.5).with_seed(1),
        drop_i: Dropout::new(0.5).with_seed(2),
    }
}
