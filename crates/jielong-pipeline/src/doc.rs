//! One document as it moves through the pipeline.

use serde::{Deserialize, Serialize};

/// A document: its position in the input order (which makes every decision deterministic
/// whatever the thread count), where it came from, its text and what stages learned about it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Doc {
    /// Index in the input order, from 0. Dedup keeps the lowest id of each cluster.
    pub id: u64,
    /// `path`, `path:line` (JSONL) or `path#record` (WARC), plus the URL when there is one.
    pub source: String,
    pub text: String,
    /// Language code (ISO 639-1 where one exists, else ISO 639-3) set by the language stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang_score: Option<f64>,
    /// Perplexity under the n-gram model of the perplexity stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perplexity: Option<f64>,
}

impl Doc {
    pub fn new(id: u64, source: impl Into<String>, text: impl Into<String>) -> Self {
        Doc { id, source: source.into(), text: text.into(), lang: None, lang_score: None, perplexity: None }
    }

    /// Whether the text is mostly Chinese/Japanese ideographs, in which case the rules that
    /// count words in English count characters instead (the language stage's verdict wins
    /// when it ran).
    pub fn is_cjk(&self) -> bool {
        match self.lang.as_deref() {
            Some(l) => matches!(l, "zh" | "ja" | "cmn" | "jpn"),
            None => crate::words::han_fraction(&self.text) > 0.3,
        }
    }
}

/// A document a stage removed, kept for `jielong data inspect`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Removed {
    pub id: u64,
    pub source: String,
    pub stage: String,
    pub rule: String,
    pub text: String,
}
