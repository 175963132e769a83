//! What a per-document stage is, and what it counts.

use crate::doc::Doc;
use std::collections::BTreeMap;

/// A stage's decision on one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// Remove the document; the rule that fired (e.g. `gopher_too_few_words`).
    Drop(&'static str),
}

/// Counters a stage adds to as it works (PII replacements per type, lines removed, …); they
/// end up in the report under the stage.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Counters(pub BTreeMap<String, u64>);

impl Counters {
    pub fn add(&mut self, key: &str, n: u64) {
        if n > 0 {
            *self.0.entry(key.to_string()).or_insert(0) += n;
        }
    }

    pub fn merge(&mut self, other: &Counters) {
        for (k, v) in &other.0 {
            *self.0.entry(k.clone()).or_insert(0) += v;
        }
    }
}

/// A stage that looks at one document at a time: a pure function of the document (and the
/// stage's settings), so documents can be processed in any order on any thread.
pub trait DocStage: Send + Sync {
    /// The stage's name in the pipeline TOML and the report ("gopher_quality", "pii", …).
    fn name(&self) -> &'static str;
    /// Keep, drop, or rewrite `doc` (stages that rewrite change `doc.text` in place).
    fn apply(&self, doc: &mut Doc, counters: &mut Counters) -> Verdict;
}
