//! Word and character segmentation, the same for every classical tool (n-gram models, lexical
//! indexes, word vectors), so their units line up.
//!
//! - English and every other script with spaces: Unicode word boundaries (UAX #29, through
//!   `unicode-segmentation`), so "don't", "U.S.A" and "3.14" stay whole.
//! - Chinese: runs of Han characters are cut into words by jieba (`jieba-rs`, its built-in
//!   dictionary and HMM for unknown words), because UAX #29 splits Han text into single
//!   characters.
//! - `Units::Chars`: grapheme clusters, whitespace dropped; works on any script.
//!
//! Punctuation is a token of its own in [`word_segments`] (a language model predicts it too);
//! [`words`] keeps only tokens with a letter or digit (what retrieval and word vectors want).

use jieba_rs::Jieba;
use std::sync::OnceLock;
use unicode_segmentation::UnicodeSegmentation;

/// The units a classical model counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Units {
    /// Words: Unicode word boundaries, jieba for Chinese.
    Words,
    /// Grapheme clusters (characters as a reader sees them), whitespace dropped.
    Chars,
}

impl Units {
    /// "words" or "chars".
    pub fn name(self) -> &'static str {
        match self {
            Units::Words => "words",
            Units::Chars => "chars",
        }
    }

    /// Parse "words" / "chars" (a one-line error otherwise).
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "words" | "word" => Ok(Units::Words),
            "chars" | "char" | "characters" => Ok(Units::Chars),
            other => Err(format!("units `{other}` is not known: use words or chars")),
        }
    }

    /// `text` split into these units (whitespace never is one).
    pub fn split(self, text: &str) -> Vec<&str> {
        match self {
            Units::Words => word_tokens(text),
            Units::Chars => chars(text),
        }
    }
}

impl std::fmt::Display for Units {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A piece of text and where it starts (in bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    pub text: &'a str,
    /// Byte offset of `text` in the string it was cut from.
    pub start: usize,
}

impl Segment<'_> {
    /// Byte offset just past the segment.
    pub fn end(&self) -> usize {
        self.start + self.text.len()
    }
}

fn jieba() -> &'static Jieba {
    static JIEBA: OnceLock<Jieba> = OnceLock::new();
    JIEBA.get_or_init(Jieba::new)
}

/// Whether `c` is a Han (CJK ideograph) character: the runs jieba cuts into words.
pub fn is_han(c: char) -> bool {
    matches!(c as u32,
        0x3400..=0x4DBF      // CJK Extension A
        | 0x4E00..=0x9FFF    // CJK Unified Ideographs
        | 0xF900..=0xFAFF    // CJK Compatibility Ideographs
        | 0x20000..=0x2FA1F) // Extensions B–F and the compatibility supplement
}

fn all_han(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_han)
}

/// Every word and punctuation token of `text` with its byte offset: UAX #29 word boundaries,
/// whitespace dropped, and each run of Han characters cut by jieba.
pub fn word_segments(text: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    let mut han_start: Option<usize> = None;
    for (start, piece) in text.split_word_bound_indices() {
        if all_han(piece) {
            han_start.get_or_insert(start);
            continue;
        }
        if let Some(from) = han_start.take() {
            cut_han(text, from, start, &mut out);
        }
        if !piece.chars().all(char::is_whitespace) {
            out.push(Segment { text: piece, start });
        }
    }
    if let Some(from) = han_start {
        cut_han(text, from, text.len(), &mut out);
    }
    out
}

/// The Han run `text[from..to]` cut into words by jieba, appended to `out`.
fn cut_han<'a>(text: &'a str, from: usize, to: usize, out: &mut Vec<Segment<'a>>) {
    for tok in jieba().cut(&text[from..to], true) {
        out.push(Segment { text: &text[from + tok.byte_start..from + tok.byte_end], start: from + tok.byte_start });
    }
}

/// The word and punctuation tokens of `text` (see [`word_segments`]).
pub fn word_tokens(text: &str) -> Vec<&str> {
    word_segments(text).into_iter().map(|s| s.text).collect()
}

/// Only the tokens with a letter or a digit: what retrieval and word vectors count.
pub fn words(text: &str) -> Vec<&str> {
    word_segments(text).into_iter().map(|s| s.text).filter(|w| w.chars().any(char::is_alphanumeric)).collect()
}

/// Words with their offsets, as [`words`] filters them.
pub fn word_spans(text: &str) -> Vec<Segment<'_>> {
    word_segments(text).into_iter().filter(|s| s.text.chars().any(char::is_alphanumeric)).collect()
}

/// Grapheme clusters of `text`, whitespace dropped.
pub fn chars(text: &str) -> Vec<&str> {
    text.graphemes(true).filter(|g| !g.chars().all(char::is_whitespace)).collect()
}

/// Sentences of `text`: every line break ends one, and within a line UAX #29 sentence
/// boundaries (which know 。！？ as well as . ! ?). Surrounding whitespace trimmed, empty ones
/// dropped.
pub fn sentences(text: &str) -> Vec<&str> {
    text.lines().flat_map(|line| line.unicode_sentences()).map(str::trim).filter(|s| !s.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_words_follow_unicode_boundaries() {
        assert_eq!(word_tokens("Hello, world! Don't stop: U.S.A 3.14"), ["Hello", ",", "world", "!", "Don't", "stop", ":", "U.S.A", "3.14"]);
        assert_eq!(words("Hello, world! Don't stop."), ["Hello", "world", "Don't", "stop"]);
    }

    #[test]
    fn chinese_runs_are_cut_by_jieba_and_offsets_point_into_the_text() {
        let text = "巴黎是法国的首都。Paris is 法国的capital";
        let segs = word_segments(text);
        let toks: Vec<&str> = segs.iter().map(|s| s.text).collect();
        assert_eq!(toks, ["巴黎", "是", "法国", "的", "首都", "。", "Paris", "is", "法国", "的", "capital"]);
        for s in &segs {
            assert_eq!(&text[s.start..s.end()], s.text);
        }
        assert_eq!(words("你好，世界。"), ["你好", "世界"]);
    }

    #[test]
    fn chars_are_graphemes_without_whitespace() {
        assert_eq!(chars("接龙 e\u{301}!"), ["接", "龙", "e\u{301}", "!"]);
        assert_eq!(Units::Chars.split("a b"), ["a", "b"]);
        assert_eq!(Units::parse("words"), Ok(Units::Words));
        assert!(Units::parse("bytes").unwrap_err().contains("words or chars"));
    }

    #[test]
    fn sentences_end_at_line_breaks_and_sentence_marks() {
        assert_eq!(sentences("Hello there. How are you?\n你好。我很好！\n\n"), ["Hello there.", "How are you?", "你好。", "我很好！"]);
    }
}
