//! Evaluation loss: the objective's loss (no dropout) over non-overlapping windows of a split.

use crate::mlm::MlmMasker;
use crate::objective::Objective;
use crate::step::batch_tensors;
use candle_core::Device;
use jielong_core::Result;
use jielong_data::batcher::eval_batches;
use jielong_data::TokenDataset;
use jielong_models::{ForwardOpts, Model};

#[derive(Debug, Clone, Copy)]
pub struct EvalResult {
    /// Mean cross-entropy in nats per predicted token.
    pub loss: f64,
    pub n_tokens: usize,
    /// With a sentence task: its loss and accuracy over the evaluated pairs (`loss` is then
    /// the MLM loss).
    pub pair: Option<crate::sentence::PairStats>,
}

/// Evaluate `model` under `objective` on at most `max_windows` windows of `seq_len` tokens
/// from `data` (for `mlm`, masked by `masker`; with `pairs`, each window made a masked
/// sentence pair, the same pairs at every evaluation).
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    model: &dyn Model,
    objective: Objective,
    data: &TokenDataset,
    batch_size: usize,
    seq_len: usize,
    max_windows: usize,
    dev: &Device,
    masker: Option<&MlmMasker>,
    pairs: Option<&crate::sentence::PairMaker>,
) -> Result<EvalResult> {
    let mut sum = 0f64;
    let mut n = 0usize;
    let mut pair_sum: Option<crate::sentence::PairStats> = None;
    for (k, batch) in eval_batches(data, batch_size, seq_len, max_windows).into_iter().enumerate() {
        if let (Some(pm), Some(m), true) = (pairs, masker, batch.seq_len >= 5) {
            let mut rng = jielong_core::Rng::derive(0x6d6c6d, &[k as u64]);
            let t = crate::sentence::pair_tensors(pm, m, &batch, 0..batch.batch_size, 0x736f70 + k as u64, &mut rng, dev)?;
            let (_, stats) = crate::sentence::pair_loss(model, &t, ForwardOpts::default())?;
            let tokens = batch.batch_size * batch.seq_len;
            sum += stats.mlm_loss * tokens as f64;
            n += tokens;
            pair_sum.get_or_insert_with(Default::default).add_weighted(&stats, batch.batch_size as f64);
            continue;
        }
        let (ids, targets) = match masker {
            // The same masks at every evaluation: a fixed stream per batch.
            Some(m) => crate::step::masked_tensors(m, &batch, 0..batch.batch_size, &mut jielong_core::Rng::derive(0x6d6c6d, &[k as u64]), dev)?,
            None => batch_tensors(&batch, dev)?,
        };
        let (b, t) = ids.dims2()?;
        // The mean over the batch's tokens, weighted back into a sum.
        let loss = objective.loss(model, &ids, &targets, ForwardOpts::default())?;
        sum += loss.to_scalar::<f32>()? as f64 * (b * t) as f64;
        n += b * t;
    }
    // Pair losses were summed weighted by rows: back to means over the pairs.
    let pair = pair_sum.map(|mut p| {
        let rows = p.n.max(1) as f64;
        p.mlm_loss /= rows;
        p.pair_loss /= rows;
        p
    });
    Ok(EvalResult { loss: if n > 0 { sum / n as f64 } else { f64::NAN }, n_tokens: n, pair })
}
