//! The sampler chain, after llama.cpp's design: every stage has the same small interface
//! (`name`, `apply`, `accept`, `reset`), works on a list of candidate tokens, and a chain of
//! stages is itself a stage. A stage either reshapes the logits (penalties, temperature),
//! removes candidates (top-k, top-p, min-p, typical), or selects one (greedy, dist).
//!
//! Probabilities are always softmax(logits) over the candidates still in the list, so a user
//! can watch each stage reshape the distribution (`jielong generate --explain`).

mod chain;
mod config;
mod stages;

pub use chain::{Chain, StageView};
pub use config::SamplingConfig;
pub use stages::{Dist, Greedy, MinP, NoRepeatNgram, Penalties, Temperature, TopK, TopP, Typical};

/// One candidate: a token id, its current logit and probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub id: u32,
    pub logit: f32,
    pub p: f32,
}

/// The candidate list a stage reads and rewrites.
#[derive(Debug, Clone, Default)]
pub struct Candidates {
    pub items: Vec<Candidate>,
    /// Items are in descending logit order.
    pub sorted: bool,
    /// Index into `items` of the chosen token, once a selecting stage has run.
    pub selected: Option<usize>,
}

impl Candidates {
    pub fn from_logits(logits: &[f32]) -> Self {
        let items = logits.iter().enumerate().map(|(i, &l)| Candidate { id: i as u32, logit: l, p: 0.0 }).collect();
        Self { items, sorted: false, selected: None }
    }

    pub fn sort(&mut self) {
        if !self.sorted {
            self.items.sort_by(Self::order);
            self.sorted = true;
        }
    }

    /// Sort and set `p` = softmax of the current logits over the remaining candidates.
    pub fn softmax(&mut self) {
        self.sort();
        self.probabilities();
    }

    /// Most likely first; ties by id: the order of `sort`.
    pub fn order(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
        b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id))
    }

    /// `p` of every candidate (softmax of the logits), in whatever order they are.
    pub fn probabilities(&mut self) {
        let max = self.items.iter().map(|c| c.logit).fold(f32::NEG_INFINITY, f32::max);
        let mut total = 0f64;
        for c in &mut self.items {
            let e = if c.logit == f32::NEG_INFINITY { 0.0 } else { ((c.logit - max) as f64).exp() };
            c.p = e as f32;
            total += e;
        }
        if total > 0.0 {
            for c in &mut self.items {
                c.p = (c.p as f64 / total) as f32;
            }
        }
    }

    /// Keep the first `n` (after sorting), never fewer than one.
    pub fn keep_first(&mut self, n: usize) {
        self.items.truncate(n.max(1));
    }

    /// The chosen id, if any stage selected one.
    pub fn chosen(&self) -> Option<u32> {
        self.selected.map(|i| self.items[i].id)
    }
}

/// A stage of the chain.
pub trait Sampler: Send {
    fn name(&self) -> String;
    /// Rewrite the candidates (reshape, filter, or select).
    fn apply(&mut self, cands: &mut Candidates);
    /// Learn that `id` was emitted (penalties keep a history).
    fn accept(&mut self, _id: u32) {}
    /// Forget the history (a new sequence).
    fn reset(&mut self) {}
}
