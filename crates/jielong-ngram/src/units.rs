//! Cutting text into sentences and units, the same way for training and for scoring.
//!
//! Sentences: `lines` (the default, and KenLM's convention: one sentence per line; blank lines
//! are skipped) or `unicode` (UAX #29 sentence boundaries within each line, which know 。！？
//! as well as . ! ?). Units: `words` (Unicode word boundaries, jieba for Chinese, punctuation
//! kept: `jielong_text::segment::word_tokens`), `chars` (graphemes), `space` (split on
//! whitespace only, exactly what KenLM does, for text that is already segmented) or `tokens`
//! (a jielong tokenizer's pieces, so the model predicts the ids a neural model predicts).

use crate::vocab::Vocab;
use jielong_core::{Error, Result};
use jielong_tokenizer::Tokenizer;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitKind {
    Words,
    Chars,
    Space,
    Tokens,
}

impl UnitKind {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "words" | "word" => UnitKind::Words,
            "chars" | "char" => UnitKind::Chars,
            "space" | "whitespace" => UnitKind::Space,
            "tokens" | "token" => UnitKind::Tokens,
            other => return Err(Error::input(format!("--units {other} is not known: use words, chars, space or tokens"))),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            UnitKind::Words => "words",
            UnitKind::Chars => "chars",
            UnitKind::Space => "space",
            UnitKind::Tokens => "tokens",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentenceMode {
    Lines,
    Unicode,
    /// Each document is one sequence, line breaks included (with `--units tokens`, the ids a
    /// neural model sees, so `jielong eval --checkpoint` figures line up).
    Document,
}

impl SentenceMode {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "lines" | "line" => Ok(SentenceMode::Lines),
            "unicode" => Ok(SentenceMode::Unicode),
            "document" | "documents" => Ok(SentenceMode::Document),
            other => Err(Error::input(format!("--sentences {other} is not known: use lines, unicode or document"))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SentenceMode::Lines => "lines",
            SentenceMode::Unicode => "unicode",
            SentenceMode::Document => "document",
        }
    }

    /// The sentences of `text` (trimmed, empty ones dropped).
    pub fn split(self, text: &str) -> Vec<&str> {
        match self {
            SentenceMode::Lines => text.lines().map(str::trim).filter(|l| !l.is_empty()).collect(),
            SentenceMode::Unicode => jielong_text::segment::sentences(text),
            SentenceMode::Document => if text.trim().is_empty() { Vec::new() } else { vec![text] },
        }
    }
}

/// Cuts sentences into unit strings.
pub struct Splitter {
    kind: UnitKind,
    tokenizer: Option<Tokenizer>,
}

impl Splitter {
    /// `tokenizer` is required for (and only for) `tokens`.
    pub fn new(kind: UnitKind, tokenizer: Option<&Path>) -> Result<Self> {
        let tokenizer = match (kind, tokenizer) {
            (UnitKind::Tokens, Some(p)) => Some(Tokenizer::load(p)?),
            (UnitKind::Tokens, None) => return Err(Error::input("--units tokens needs --tokenizer FILE")),
            (_, Some(_)) => return Err(Error::input("--tokenizer applies only to --units tokens")),
            (_, None) => None,
        };
        Ok(Self { kind, tokenizer })
    }

    pub fn kind(&self) -> UnitKind {
        self.kind
    }

    pub fn tokenizer(&self) -> Option<&Tokenizer> {
        self.tokenizer.as_ref()
    }

    pub fn split(&self, sentence: &str) -> Result<Vec<String>> {
        Ok(match self.kind {
            UnitKind::Words => jielong_text::segment::word_tokens(sentence).into_iter().map(str::to_string).collect(),
            UnitKind::Chars => jielong_text::segment::chars(sentence).into_iter().map(str::to_string).collect(),
            UnitKind::Space => sentence.split_whitespace().map(str::to_string).collect(),
            UnitKind::Tokens => {
                let tok = self.tokenizer.as_ref().expect("checked in new");
                tok.encode(sentence)?.into_iter().map(|id| piece(tok, id)).collect()
            }
        })
    }

    /// The ids of `sentence`'s units in `vocab` (`<unk>` for unknown ones), without building
    /// a string per unit (what scoring needs).
    pub fn ids(&self, sentence: &str, vocab: &Vocab) -> Result<Vec<u32>> {
        Ok(match self.kind {
            UnitKind::Words => jielong_text::segment::word_tokens(sentence).into_iter().map(|u| vocab.id(u)).collect(),
            UnitKind::Chars => jielong_text::segment::chars(sentence).into_iter().map(|u| vocab.id(u)).collect(),
            UnitKind::Space => sentence.split_whitespace().map(|u| vocab.id(u)).collect(),
            UnitKind::Tokens => self.split(sentence)?.iter().map(|u| vocab.id(u)).collect(),
        })
    }

    /// For `tokens`: a vocabulary holding every piece of the tokenizer, so that every id has a
    /// probability even if training never saw it.
    pub fn seed_vocab(&self) -> Option<Vocab> {
        let tok = self.tokenizer.as_ref()?;
        let mut v = Vocab::new();
        for id in 0..tok.vocab_size() as u32 {
            v.insert(&piece(tok, id));
        }
        Some(v)
    }
}

/// A tokenizer piece as a unit string (whitespace in a piece, which byte-level tokenizers never
/// have, would break ARPA lines; it is written as U+2581).
pub(crate) fn piece(tok: &Tokenizer, id: u32) -> String {
    let p = tok.id_to_piece(id).unwrap_or_else(|| format!("<id{id}>"));
    if p.chars().any(char::is_whitespace) {
        p.chars().map(|c| if c.is_whitespace() { '\u{2581}' } else { c }).collect()
    } else {
        p
    }
}
