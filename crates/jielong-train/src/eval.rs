//! Evaluation loss: mean cross-entropy over non-overlapping windows of a split.

use crate::step::batch_tensors;
use candle_core::{Device, D};
use jielong_core::Result;
use jielong_data::batcher::eval_batches;
use jielong_data::TokenDataset;
use jielong_models::CausalLm;

#[derive(Debug, Clone, Copy)]
pub struct EvalResult {
    /// Mean cross-entropy in nats per predicted token.
    pub loss: f64,
    pub n_tokens: usize,
}

/// Evaluate `model` on at most `max_windows` windows of `seq_len` tokens from `data`.
pub fn evaluate(
    model: &dyn CausalLm,
    data: &TokenDataset,
    batch_size: usize,
    seq_len: usize,
    max_windows: usize,
    dev: &Device,
) -> Result<EvalResult> {
    let mut sum = 0f64;
    let mut n = 0usize;
    for batch in eval_batches(data, batch_size, seq_len, max_windows) {
        let (ids, targets) = batch_tensors(&batch, dev)?;
        let logits = model.logits(&ids)?;
        let (b, t, v) = logits.dims3()?;
        let logp = candle_nn::ops::log_softmax(&logits.reshape((b * t, v))?, D::Minus1)?;
        let picked = logp.gather(&targets.reshape((b * t, 1))?, 1)?;
        sum -= picked.sum_all()?.to_scalar::<f32>()? as f64;
        n += b * t;
    }
    Ok(EvalResult { loss: if n > 0 { sum / n as f64 } else { f64::NAN }, n_tokens: n })
}
