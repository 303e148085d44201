//! Gluon's `gluon.data.vision.transforms`: steps that turn an [`Image`](super::Image)
//! into a normalised tensor, chained with [`ImageTransform::then`] ([`Compose`]) and
//! plugged into a dataset with [`ImageTransform::into_fn`].
//!
//! Random steps ([`RandomFlipLeftRight`], [`RandomCrop`]) draw from
//! [`sample_rng`](crate::data::sample_rng): inside a
//! [`DataLoader`](crate::data::DataLoader), from (loader seed, epoch, sample index), so
//! the same seed gives the same batches whatever the number of workers.
//!
//! ```
//! use boson::data::vision::transforms::{CenterCrop, ImageTransform, ToTensor};
//! use boson::data::vision::Image;
//!
//! let image = Image::new(3, 3, 1, (0..9).collect())?;
//! let to_tensor = CenterCrop::new(1, 1).then(ToTensor);
//! assert_eq!(to_tensor.apply(image)?.to_vec_f32()?, vec![4.0 / 255.0]);
//! # Ok::<(), boson::error::Error>(())
//! ```

mod crop;
mod flip;
mod resize;
mod tensor;

pub use crop::{CenterCrop, RandomCrop};
pub use flip::RandomFlipLeftRight;
pub use resize::Resize;
pub use tensor::{Normalize, ToTensor};

use crate::error::Result;

/// One step of an image pipeline, from `In` to [`Output`](Self::Output) (a Gluon
/// transform block). Closures `Fn(In) -> Result<Out> + Send + Sync` are steps too.
pub trait ImageTransform<In>: Send + Sync {
    /// What the step makes.
    type Output;

    /// Runs the step.
    fn apply(&self, input: In) -> Result<Self::Output>;

    /// This step, then `next` on its output (Gluon's `Compose([self, next])`).
    fn then<B>(self, next: B) -> Compose<Self, B>
    where
        Self: Sized,
        B: ImageTransform<Self::Output>,
    {
        Compose::new(self, next)
    }

    /// The step as a closure, for [`Dataset::transform`](crate::data::Dataset::transform)
    /// and [`Dataset::transform_first`](crate::data::Dataset::transform_first).
    fn into_fn(self) -> impl Fn(In) -> Result<Self::Output> + Send + Sync
    where
        Self: Sized,
    {
        move |input| self.apply(input)
    }
}

impl<In, Out, F> ImageTransform<In> for F
where
    F: Fn(In) -> Result<Out> + Send + Sync,
{
    type Output = Out;
    fn apply(&self, input: In) -> Result<Out> {
        self(input)
    }
}

/// Two steps run one after the other (Gluon's `Compose`); longer chains nest:
/// `Compose::new(a, b).then(c)`.
#[derive(Clone, Copy, Debug)]
pub struct Compose<A, B> {
    first: A,
    second: B,
}

impl<A, B> Compose<A, B> {
    /// `first`, then `second`.
    pub fn new(first: A, second: B) -> Self {
        Compose { first, second }
    }
}

impl<In, A, B> ImageTransform<In> for Compose<A, B>
where
    A: ImageTransform<In>,
    B: ImageTransform<A::Output>,
{
    type Output = B::Output;
    fn apply(&self, input: In) -> Result<B::Output> {
        self.second.apply(self.first.apply(input)?)
    }
}
