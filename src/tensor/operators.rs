//! `std::ops` arithmetic on tensors: `&a + &b`, `&a * 2.0`, `-&a`. Each operator returns
//! `Result<Tensor>` (shapes may not broadcast), as the methods they call do.

use super::Tensor;
use crate::error::Result;
use std::ops::{Add, Div, Mul, Neg, Sub};

macro_rules! tensor_operator {
    ($trait:ident, $method:ident, $tensor_op:ident, $scalar:expr) => {
        impl $trait<&Tensor> for &Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: &Tensor) -> Result<Tensor> {
                Tensor::$tensor_op(&self, rhs)
            }
        }
        impl $trait<Tensor> for &Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: Tensor) -> Result<Tensor> {
                Tensor::$tensor_op(&self, &rhs)
            }
        }
        impl $trait<&Tensor> for Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: &Tensor) -> Result<Tensor> {
                Tensor::$tensor_op(&self, rhs)
            }
        }
        impl $trait<Tensor> for Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: Tensor) -> Result<Tensor> {
                Tensor::$tensor_op(&self, &rhs)
            }
        }
        impl $trait<f32> for &Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: f32) -> Result<Tensor> {
                let (a, b): (f32, f32) = $scalar(rhs);
                self.affine(a, b)
            }
        }
        impl $trait<f32> for Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: f32) -> Result<Tensor> {
                let (a, b): (f32, f32) = $scalar(rhs);
                self.affine(a, b)
            }
        }
    };
}

// Scalars become `a·x + b`.
tensor_operator!(Add, add, add, |s: f32| (1.0, s));
tensor_operator!(Sub, sub, sub, |s: f32| (1.0, -s));
tensor_operator!(Mul, mul, mul, |s: f32| (s, 0.0));
tensor_operator!(Div, div, div, |s: f32| (1.0 / s, 0.0));

impl Neg for &Tensor {
    type Output = Result<Tensor>;
    fn neg(self) -> Result<Tensor> {
        Tensor::neg(self)
    }
}

impl Neg for Tensor {
    type Output = Result<Tensor>;
    fn neg(self) -> Result<Tensor> {
        Tensor::neg(&self)
    }
}
