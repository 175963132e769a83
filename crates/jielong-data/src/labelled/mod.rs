//! Labelled data for task fine-tuning, the span side: named-entity recognition (NER) and
//! extractive question answering (QA).
//!
//! - `bio`: BIO tags: checking and repairing them, and cutting a tag sequence into entities the
//!   way `seqeval` does.
//! - `ner`: NER examples read from JSONL (words with tags, or text with character spans) and
//!   their label set.
//! - `align`: NER examples → token ids and one label per token (only the first piece of each
//!   word labelled, the rest [`IGNORE`]); predicted labels → entity spans.
//! - `squad`: SQuAD v1.1 / v2.0 JSON, checked answer by answer.
//! - `qa`: question + context windows with answer token positions (as HF's `run_qa` makes
//!   them); start/end logits → the best answer span in characters.
//! - `metrics`: entity precision/recall/F1 (seqeval), exact match and F1 (the SQuAD v1.1
//!   script; character-level for Chinese as CMRC 2018 does), accuracy and macro-F1.
//! - `peoples_daily`: People's Daily 1998-01 (`word/POS`) → NER JSONL (PER, LOC, ORG).
//! - `handbook_qa`: a cloze-style extractive QA set made from the handbook's own sentences.
//!
//! **Offsets are Unicode character offsets** (what Python's `len` and slicing count), end
//! exclusive, everywhere in this module's public types: `"text"[start:end]` in Python gives
//! the span. Tokenizers report bytes; `CharMap` converts.

pub mod align;
pub mod bio;
pub mod handbook_qa;
pub mod metrics;
pub mod ner;
pub mod peoples_daily;
pub mod qa;
pub mod squad;

pub use align::{align_ner, decode_ner, Framing, TokenFeatures};
pub use bio::{entities as bio_entities, repair_bio, TagSpan};
pub use metrics::{accuracy, entity_scores, macro_f1, qa_scores, EntityScores, Prf, QaScores};
pub use ner::{read_ner_jsonl, Entity, LabelSet, NerExample, NerRead};
pub use qa::{best_answer, qa_windows, QaAnswer, QaOptions, QaWindow};
pub use squad::{parse_squad, read_squad, to_squad_json, Answer, QaExample};

/// The label of a token that carries no loss (a word's later pieces, special tokens, padding):
/// the same value as `jielong_models::IGNORE` and `sft::IGNORE`.
pub const IGNORE: u32 = u32::MAX;

/// Byte ↔ character offset conversion for one string.
pub struct CharMap {
    /// Byte offset of every character, plus the string's length at the end.
    bytes: Vec<usize>,
}

impl CharMap {
    pub fn new(text: &str) -> Self {
        let mut bytes: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
        bytes.push(text.len());
        Self { bytes }
    }

    /// Number of characters.
    pub fn len(&self) -> usize {
        self.bytes.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Byte offset of character `c` (`c == len()` gives the string's byte length).
    pub fn byte(&self, c: usize) -> usize {
        self.bytes[c.min(self.len())]
    }

    /// Character offset of byte `b`; a byte inside a character maps to that character.
    pub fn char(&self, b: usize) -> usize {
        match self.bytes.binary_search(&b) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        }
    }

    /// Character offset just past byte `b` (rounds a byte inside a character up).
    pub fn char_end(&self, b: usize) -> usize {
        match self.bytes.binary_search(&b) {
            Ok(i) => i,
            Err(i) => i.min(self.len()),
        }
    }
}

/// `text[start..end]` in characters.
pub fn char_slice(text: &str, start: usize, end: usize) -> &str {
    let m = CharMap::new(text);
    &text[m.byte(start)..m.byte(end)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charmap_converts_both_ways() {
        let t = "a中b🐉c";
        let m = CharMap::new(t);
        assert_eq!(m.len(), 5);
        assert_eq!(m.byte(2), 4);
        assert_eq!(m.char(4), 2);
        assert_eq!(m.char(2), 1, "a byte inside 中 maps to 中");
        assert_eq!(m.char_end(2), 2, "and rounds up as an end");
        assert_eq!(char_slice(t, 1, 4), "中b🐉");
    }
}
