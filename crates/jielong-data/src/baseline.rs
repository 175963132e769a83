//! The unigram baseline: predict every token with its frequency in the training split
//! (add-one smoothed), ignoring context. A language model that cannot beat this has learned
//! nothing about order.

pub struct UnigramBaseline {
    log_probs: Vec<f64>,
}

impl UnigramBaseline {
    /// Fit on training ids with Laplace (add-one) smoothing over `vocab_size` entries.
    pub fn fit(ids: &[u32], vocab_size: usize) -> Self {
        let mut counts = vec![1u64; vocab_size];
        for &id in ids {
            counts[id as usize] += 1;
        }
        let total = (ids.len() + vocab_size) as f64;
        Self { log_probs: counts.iter().map(|&c| (c as f64 / total).ln()).collect() }
    }

    /// Mean cross-entropy in nats per token on `ids`.
    pub fn cross_entropy(&self, ids: &[u32]) -> f64 {
        if ids.is_empty() {
            return f64::NAN;
        }
        -ids.iter().map(|&i| self.log_probs[i as usize]).sum::<f64>() / ids.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unigram_baseline_matches_hand_computation() {
        // Train counts: 0:2, 1:1, 2:0 → smoothed (3, 2, 1)/6.
        let b = UnigramBaseline::fit(&[0, 0, 1], 3);
        let ce = b.cross_entropy(&[0, 2]);
        let want = -((3.0f64 / 6.0).ln() + (1.0f64 / 6.0).ln()) / 2.0;
        assert!((ce - want).abs() < 1e-12);
        // Uniform data → ln(V).
        let u = UnigramBaseline::fit(&[0, 1, 2, 3], 4);
        assert!((u.cross_entropy(&[0, 1, 2, 3]) - 4f64.ln()).abs() < 1e-12);
    }
}
