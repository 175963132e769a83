//! Scoring text with a model: the figures KenLM's `query` prints (total log10 probability,
//! perplexity with and without OOVs) and the ones `jielong eval` prints for neural models
//! (cross-entropy in nats per unit, bits per byte), so the two line up.

use crate::model::{NgramModel, State};
use crate::vocab::{BOS, EOS, UNK};

/// How many words ahead scoring prefetches (measured on the Shakespeare 5-gram).
const PREFETCH_AHEAD: usize = 2;

/// Totals over the sentences scored so far.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct Score {
    pub sentences: u64,
    /// Units predicted: words plus one `</s>` per sentence.
    pub tokens: u64,
    /// Units not in the vocabulary (scored as `<unk>`).
    pub oovs: u64,
    /// Σ log10 p over every predicted unit.
    pub log10_total: f64,
    /// The part of `log10_total` that OOVs contributed.
    pub log10_oov: f64,
    /// UTF-8 bytes of the text scored (for bits per byte).
    pub bytes: u64,
}

impl Score {
    /// Score one sentence (unit ids, no boundaries); returns its log10 probability, `</s>`
    /// included, as KenLM's `query` prints per sentence.
    pub fn add_sentence(&mut self, model: &NgramModel, ids: &[u32]) -> f64 {
        let mut state = model.begin_sentence();
        let mut next = State::default();
        let mut total = 0.0;
        // <s> w1 … wm </s>: while scoring one word, the next one's slots are prefetched.
        let mut seq = Vec::with_capacity(ids.len() + 2);
        seq.push(BOS);
        seq.extend_from_slice(ids);
        seq.push(EOS);
        for t in 1..seq.len() {
            let w = seq[t];
            if t + PREFETCH_AHEAD < seq.len() {
                model.prefetch(&seq, t + PREFETCH_AHEAD);
            }
            let lp = model.score(&state, w, &mut next);
            std::mem::swap(&mut state, &mut next);
            total += lp;
            if w == UNK {
                self.oovs += 1;
                self.log10_oov += lp;
            }
        }
        self.sentences += 1;
        self.tokens += ids.len() as u64 + 1;
        self.log10_total += total;
        total
    }

    /// Perplexity over every unit, OOVs included (KenLM: "Perplexity including OOVs").
    pub fn perplexity(&self) -> f64 {
        10f64.powf(-self.log10_total / self.tokens as f64)
    }

    /// Perplexity leaving OOVs out of both the sum and the count (KenLM: "Perplexity
    /// excluding OOVs").
    pub fn perplexity_without_oovs(&self) -> f64 {
        10f64.powf(-(self.log10_total - self.log10_oov) / (self.tokens - self.oovs) as f64)
    }

    /// Cross-entropy in nats per unit (OOVs included), as `jielong eval` reports it.
    pub fn cross_entropy(&self) -> f64 {
        -self.log10_total * std::f64::consts::LN_10 / self.tokens as f64
    }

    /// Bits per UTF-8 byte of the text: comparable across units and tokenizers.
    pub fn bits_per_byte(&self) -> f64 {
        -self.log10_total * std::f64::consts::LOG2_10 / self.bytes as f64
    }

    /// OOVs per word (`</s>` not counted).
    pub fn oov_rate(&self) -> f64 {
        self.oovs as f64 / (self.tokens - self.sentences).max(1) as f64
    }
}
