//! Streaming decode: turn ids into text as they arrive without ever printing half a character.
//!
//! A byte-level BPE token can end in the middle of a UTF-8 character (a Chinese character is
//! three bytes, an emoji four, and a small vocabulary often splits them). Decoding each token
//! alone would print U+FFFD replacement characters. Instead we decode a short window that
//! starts a few tokens back, and release only the text that has grown past what was already
//! released, once it no longer ends in an incomplete character. Starting the window a few
//! tokens back also keeps decoders that treat the first token specially (Metaspace, WordPiece
//! "##") from changing spacing at the seam.

use crate::Tokenizer;
use jielong_core::Result;

const REPLACEMENT: char = '\u{FFFD}';

pub struct TextStream<'a> {
    tk: &'a Tokenizer,
    ids: Vec<u32>,
    /// Start of the decode window.
    prefix: usize,
    /// Ids up to here have been released as text.
    read: usize,
}

impl<'a> TextStream<'a> {
    /// A stream whose text follows `context` (the prompt ids, or none).
    pub fn new(tk: &'a Tokenizer, context: &[u32]) -> Self {
        let keep = context.len().min(6);
        let ids = context[context.len() - keep..].to_vec();
        Self { tk, read: ids.len(), prefix: 0, ids }
    }

    /// Add one id; returns the text that became complete, if any.
    pub fn push(&mut self, id: u32) -> Result<Option<String>> {
        self.ids.push(id);
        let before = self.tk.decode(&self.ids[self.prefix..self.read])?;
        let now = self.tk.decode(&self.ids[self.prefix..])?;
        if now.len() > before.len() && !now.ends_with(REPLACEMENT) && now.starts_with(&before) {
            let new = now[before.len()..].to_string();
            self.prefix = self.read;
            self.read = self.ids.len();
            Ok(Some(new))
        } else {
            Ok(None)
        }
    }

    /// Whatever is still held back (text that ends in an invalid sequence, decoded as U+FFFD).
    pub fn finish(&mut self) -> Result<String> {
        let before = self.tk.decode(&self.ids[self.prefix..self.read])?;
        let now = self.tk.decode(&self.ids[self.prefix..])?;
        self.prefix = self.read;
        self.read = self.ids.len();
        Ok(if now.len() > before.len() && now.starts_with(&before) { now[before.len()..].to_string() } else { String::new() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TokenizerKind;

    /// Push ids one by one: the pieces must join to the full decode and never contain U+FFFD.
    pub fn check_stream(tk: &Tokenizer, context: &[u32], ids: &[u32]) {
        let mut stream = TextStream::new(tk, context);
        let mut out = String::new();
        for &id in ids {
            if let Some(piece) = stream.push(id).unwrap() {
                assert!(!piece.contains(REPLACEMENT), "released a broken character: {piece:?}");
                out.push_str(&piece);
            }
        }
        out.push_str(&stream.finish().unwrap());
        let mut all = context.to_vec();
        all.extend_from_slice(ids);
        let full = tk.decode(&all).unwrap();
        let ctx = tk.decode(context).unwrap();
        assert_eq!(format!("{ctx}{out}"), full);
    }

    #[test]
    fn stream_decodes_chinese_and_emoji_split_across_byte_tokens() {
        // A tiny vocabulary: most Chinese characters and emoji stay split into single bytes.
        let tk = Tokenizer::train(TokenizerKind::Bpe, 300, ["the cat sat on the mat. 猫坐在垫子上。"].iter()).unwrap();
        let text = "接龙 is a word-chain game 🐉🐲: 给出前面的词，说出下一个。 fin";
        let ids = tk.encode(text).unwrap();
        assert!(ids.len() > text.chars().count(), "characters must be split for this test to mean anything");
        check_stream(&tk, &[], &ids);
        // After a prompt, as in generation.
        for prompt in ["龙", "Prompt: 写一首诗", "x"] {
            check_stream(&tk, &tk.encode(prompt).unwrap(), &ids);
        }
    }

    #[test]
    fn stream_works_for_every_tokenizer_kind() {
        let corpus = ["Hello world, hello tokens.", "你好，世界。", "Emoji 🐉 here."];
        for kind in [TokenizerKind::Char, TokenizerKind::Wordpiece, TokenizerKind::Unigram] {
            let tk = Tokenizer::train(kind, 200, corpus.iter()).unwrap();
            let ids = tk.encode("hello world 你好 🐉").unwrap();
            check_stream(&tk, &[], &ids);
        }
    }
}
