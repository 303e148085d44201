//! The recommender's MFBlock, shared by the GPU test and the GPU training benchmark.
#![allow(dead_code)]

use boson::nn::{Activation, Block, Dense, Dropout, Embedding, Parameter};
use boson::{Result, Tensor};

/// The recommender's MFBlock (user/item Embedding → Dense(relu) → Dropout → dot).
pub struct Mf {
    pub user: Embedding,
    item: Embedding,
    ud: Dense,
    id: Dense,
    drop_u: Dropout,
    drop_i: Dropout,
}

impl Block for Mf {
    fn forward(&self, _: &Tensor) -> Result<Tensor> {
        Err(boson::Error::InvalidArgument(
            "Mf takes (users, items)".into(),
        ))
    }
    fn forward_many(&self, xs: &[Tensor]) -> Result<Tensor> {
        let u = self
            .drop_u
            .forward(&self.ud.forward(&self.user.forward(&xs[0])?)?)?;
        let i = self
            .drop_i
            .forward(&self.id.forward(&self.item.forward(&xs[1])?)?)?;
        u.mul(&i)?.sum_axis(1, false)
    }
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(String, &Parameter)) {
        self.user.visit_params(&format!("{prefix}user."), f);
        self.item.visit_params(&format!("{prefix}item."), f);
        self.ud.visit_params(&format!("{prefix}ud."), f);
        self.id.visit_params(&format!("{prefix}id."), f);
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
