//! Dropout with masks drawn from jielong's seeded generator (candle's CPU generator cannot be
//! seeded), so a training run, and a resumed one, draws the same masks for the same step.

use candle_core::{Result, Tensor};
use jielong_core::Rng;

#[derive(Debug, Clone, Copy)]
pub struct Dropout {
    pub p: f32,
}

impl Dropout {
    /// Zero each element with probability `p` and scale the rest by 1/(1−p). `rng` is None in
    /// evaluation, or when p = 0: then `xs` is returned unchanged.
    pub fn forward(&self, xs: &Tensor, rng: Option<&mut Rng>) -> Result<Tensor> {
        match self.mask(xs.elem_count(), rng) {
            Some(mask) => xs.mul(&Tensor::from_vec(mask, xs.shape(), xs.device())?),
            None => Ok(xs.clone()),
        }
    }

    /// The multiplier `forward` applies to `n` elements: 0 with probability `p`, else
    /// 1/(1−p), drawn in element order. None when there is nothing to drop (evaluation, p = 0).
    pub fn mask(&self, n: usize, rng: Option<&mut Rng>) -> Option<Vec<f32>> {
        let rng = rng?;
        if self.p <= 0.0 {
            return None;
        }
        let scale = 1.0 / (1.0 - self.p);
        Some((0..n).map(|_| if rng.next_f32() < self.p { 0.0 } else { scale }).collect())
    }
}
