//! Dropout with masks drawn from jielong's seeded generator (candle's CPU generator cannot be
//! seeded), so a training run, and a resumed one, draws the same masks for the same step.
//! Each sequence of a batch draws its own part of a mask from its own generator, so a batch
//! split into shards that run in parallel (`jielong_train::StepRunner`) gets the same masks as
//! the whole batch.

use candle_core::{Result, Tensor};
use jielong_core::Rng;
use rayon::prelude::*;

#[derive(Debug, Clone, Copy)]
pub struct Dropout {
    pub p: f32,
}

/// Where a mask's randomness comes from: sequence `r` of the tensor draws its row of the mask
/// from `Rng::derive(seed, [site, first_row + r])`, where `first_row` is the index of the
/// tensor's first sequence in the whole batch.
#[derive(Debug, Clone, Copy)]
pub struct MaskSource {
    pub seed: u64,
    /// One per place in the model where dropout applies.
    pub site: u64,
    pub first_row: usize,
}

impl Dropout {
    /// Zero each element with probability `p` and scale the rest by 1/(1−p); dimension 0 of
    /// `xs` is the batch. `src` is None in evaluation, or when p = 0: then `xs` is returned
    /// unchanged.
    pub fn forward(&self, xs: &Tensor, src: Option<MaskSource>) -> Result<Tensor> {
        let rows = xs.dims().first().copied().unwrap_or(1).max(1);
        match self.mask(rows, xs.elem_count() / rows, src) {
            Some(mask) => xs.mul(&Tensor::from_vec(mask, xs.shape(), xs.device())?),
            None => Ok(xs.clone()),
        }
    }

    /// The multiplier `forward` applies to `rows` sequences of `row_len` elements: 0 with
    /// probability `p`, else 1/(1−p). None when there is nothing to drop (evaluation, p = 0).
    pub fn mask(&self, rows: usize, row_len: usize, src: Option<MaskSource>) -> Option<Vec<f32>> {
        let src = src?;
        if self.p <= 0.0 {
            return None;
        }
        let (p, scale) = (self.p, 1.0 / (1.0 - self.p));
        // Every row is written whole below, so no zero-fill first.
        let mut mask = crate::kernel::uninit_f32(rows * row_len);
        if row_len > 0 {
            mask.par_chunks_mut(row_len).enumerate().for_each(|(r, row)| {
                let mut rng = Rng::derive(src.seed, &[src.site, (src.first_row + r) as u64]);
                for m in row {
                    *m = if rng.next_f32() < p { 0.0 } else { scale };
                }
            });
        }
        Some(mask)
    }
}

#[cfg(test)]
mod tests {
    use super::{Dropout, MaskSource};

    /// The rows of a mask drawn for a whole batch are the masks drawn for its shards.
    #[test]
    fn a_split_batch_draws_the_same_masks() {
        let drop = Dropout { p: 0.3 };
        let src = |first_row| Some(MaskSource { seed: 9, site: 4, first_row });
        let whole = drop.mask(5, 7, src(0)).unwrap();
        let mut parts = drop.mask(2, 7, src(0)).unwrap();
        parts.extend(drop.mask(3, 7, src(2)).unwrap());
        assert_eq!(whole, parts);
        let dropped = whole.iter().filter(|&&m| m == 0.0).count();
        assert!((3..=20).contains(&dropped), "{dropped} of 35 dropped at p = 0.3");
        assert!(whole.iter().all(|&m| m == 0.0 || (m - 1.0 / 0.7).abs() < 1e-6));
        assert_ne!(whole, drop.mask(5, 7, Some(MaskSource { seed: 9, site: 5, first_row: 0 })).unwrap(), "another site draws another mask");
        assert!(Dropout { p: 0.0 }.mask(5, 7, src(0)).is_none() && drop.mask(5, 7, None).is_none());
    }
}
