//! `FilterSampler`: the indices of the samples of a dataset for which a predicate holds.
//! Apart from `sampler.rs` so that samplers know nothing of datasets.

use crate::data::dataset::Dataset;
use crate::data::sampler::Sampler;
use crate::error::Result;

/// The indices of the samples for which a predicate holds, as Gluon's `FilterSampler`.
/// The predicate runs over the whole dataset once, in `new`.
///
/// ```
/// use boson::data::{FilterSampler, Sampler, SimpleDataset};
///
/// let ds = SimpleDataset::new(vec![5i64, 1, 7, 2]);
/// let big = FilterSampler::new(&ds, |x| *x > 3)?;
/// assert_eq!(big.indices(0), vec![0, 2]);
/// # Ok::<(), boson::error::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct FilterSampler {
    indices: Vec<usize>,
}

impl FilterSampler {
    /// Evaluates `predicate` on every sample of `dataset`; a failing `get` is returned.
    pub fn new<D, P>(dataset: &D, predicate: P) -> Result<Self>
    where
        D: Dataset + ?Sized,
        P: Fn(&D::Item) -> bool,
    {
        let mut indices = Vec::new();
        for i in 0..dataset.len() {
            if predicate(&dataset.get(i)?) {
                indices.push(i);
            }
        }
        Ok(FilterSampler { indices })
    }
}

impl Sampler for FilterSampler {
    fn len(&self) -> usize {
        self.indices.len()
    }
    fn indices(&self, _epoch: u64) -> Vec<usize> {
        self.indices.clone()
    }
}
