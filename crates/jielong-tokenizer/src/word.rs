//! The `word` tokenizer kind: one token per word, cut the way every classical tool in jielong
//! cuts words (`jielong_text::segment`: UAX #29 word boundaries, jieba for runs of Han
//! characters), so its tokens are the words `jielong vectors train --units words` learns
//! vectors for, and those vectors can initialise a model's embedding table
//! (`jielong train --init-embeddings`).
//!
//! Whitespace runs are tokens too (as in the `char` kind), so decoding is concatenation and
//! any text made of known words round-trips exactly. The vocabulary is the `vocab_size - 2`
//! most frequent pieces (ties by the piece itself) after `<unk>` and `<|endoftext|>`.
//!
//! jieba cannot be written into a `tokenizer.json`, so jielong segments first and hands the
//! pieces to Hugging Face tokenizers as pre-tokenized input. The saved file still carries a
//! portable approximation (NFC, then a regex split into whitespace runs, letter/digit runs
//! joined by `'`, `’` or `.`, and single other characters) that other programs use: it agrees
//! with jielong on English and keeps a whole Han run as one piece.

use crate::tokenizer::{tk_err, EOT};
use jielong_core::{Error, Result};
use std::collections::HashMap;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{
    AddedToken, NormalizedString, Normalizer, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer,
    SplitDelimiterBehavior,
};

/// The unknown-word token.
pub const UNK: &str = "<unk>";

const PATTERN: &str = r"(?s)\s+|[\p{L}\p{M}\p{N}_]+(?:['’.][\p{L}\p{M}\p{N}_]+)*|.";

/// The split that the saved `tokenizer.json` carries (and that marks a tokenizer as `word`).
pub(crate) fn pre_tokenizer() -> Result<Split> {
    Split::new(SplitPattern::Regex(PATTERN.into()), SplitDelimiterBehavior::Isolated, false)
        .map_err(|e| tk_err("building word splitter", e))
}

/// Whether a loaded tokenizer is of the `word` kind (its pre-tokenizer is ours).
pub(crate) fn is_word_kind(inner: &tokenizers::Tokenizer) -> bool {
    let (Some(pt), Ok(ours)) = (inner.get_pre_tokenizer(), pre_tokenizer()) else { return false };
    let ours: tokenizers::PreTokenizerWrapper = ours.into();
    serde_json::to_string(pt).ok() == serde_json::to_string(&ours).ok()
}

/// `text` cut into pieces that cover all of it: `<|endoftext|>` marks, jielong's words and
/// punctuation, and the whitespace runs between them.
pub(crate) fn pieces(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for (i, part) in text.split(EOT).enumerate() {
        if i > 0 {
            out.push(EOT);
        }
        let mut at = 0;
        for seg in jielong_text::segment::word_segments(part) {
            if seg.start > at {
                out.push(&part[at..seg.start]);
            }
            out.push(seg.text);
            at = seg.end();
        }
        if at < part.len() {
            out.push(&part[at..]);
        }
    }
    out
}

/// The tokens a piece becomes after NFC and the portable split (what the model looks up).
fn piece_tokens(split: &Split, piece: &str) -> Result<Vec<String>> {
    let mut n = NormalizedString::from(piece);
    NFC.normalize(&mut n).map_err(|e| tk_err("normalizing", e))?;
    let mut pre = PreTokenizedString::from(n);
    split.pre_tokenize(&mut pre).map_err(|e| tk_err("splitting", e))?;
    Ok(pre.get_splits(OffsetReferential::Normalized, OffsetType::Byte).into_iter().map(|(s, _, _)| s.to_string()).collect())
}

/// Train a word tokenizer: count the pieces of `texts`, keep the most frequent.
pub(crate) fn train<S: AsRef<str>>(vocab_size: usize, texts: impl Iterator<Item = S>) -> Result<tokenizers::Tokenizer> {
    let split = pre_tokenizer()?;
    let mut counts: HashMap<String, u64> = HashMap::new();
    for t in texts {
        for piece in pieces(t.as_ref()) {
            if piece == EOT {
                continue;
            }
            for tok in piece_tokens(&split, piece)? {
                *counts.entry(tok).or_insert(0) += 1;
            }
        }
    }
    counts.remove(UNK);
    let mut ranked: Vec<(String, u64)> = counts.into_iter().collect();
    ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(vocab_size.saturating_sub(2));
    let vocab = [UNK, EOT].iter().map(|s| s.to_string()).chain(ranked.into_iter().map(|(w, _)| w)).zip(0u32..).collect();
    let model = WordLevel::builder()
        .vocab(vocab)
        .unk_token(UNK.into())
        .build()
        .map_err(|e| Error::Other(format!("building word model: {e}")))?;
    let mut tk = tokenizers::Tokenizer::new(model);
    tk.with_normalizer(Some(NFC));
    tk.with_pre_tokenizer(Some(split));
    tk.with_decoder(Some(Fuse::new()));
    tk.add_special_tokens(&[AddedToken::from(UNK.to_string(), true), AddedToken::from(EOT.to_string(), true)]);
    Ok(tk)
}

#[cfg(test)]
mod tests {
    use crate::{Tokenizer, TokenizerKind};

    const TEXT: &str = "The cat sat on the mat. Don't stop: the dog sat on the log.\n\
        语言模型也在玩接龙：给出前面的词，说出下一个词。\n";

    #[test]
    fn word_kind_tokens_are_jielong_words_and_round_trip() {
        let tk = Tokenizer::train(TokenizerKind::Word, 100, std::iter::repeat_n(TEXT, 3)).unwrap();
        assert!(tk.is_word_level());
        let ids = tk.encode(TEXT).unwrap();
        assert_eq!(tk.decode(&ids).unwrap(), TEXT);
        let pieces: Vec<String> = ids.iter().map(|&i| tk.id_to_piece(i).unwrap()).collect();
        let words: Vec<&str> = jielong_text::segment::word_tokens(TEXT);
        let non_space: Vec<&str> = pieces.iter().map(String::as_str).filter(|p| !p.trim().is_empty()).collect();
        assert_eq!(non_space, words, "the tokens are the segmenter's words (jieba for Chinese)");
        assert!(pieces.iter().any(|p| p == "Don't") && pieces.iter().any(|p| p == "语言"), "{pieces:?}");
        // An unseen word is <unk>; an end-of-text mark is its own token.
        let ids = tk.encode("the zebra<|endoftext|>the").unwrap();
        let shown: Vec<String> = ids.iter().map(|&i| tk.id_to_piece(i).unwrap()).collect();
        assert_eq!(shown, ["the", " ", "<unk>", "<|endoftext|>", "the"]);
        assert_eq!(tk.encode_batch(vec![TEXT, "the cat"]).unwrap()[0], tk.encode(TEXT).unwrap());
    }

    #[test]
    fn word_kind_survives_save_and_reload() {
        let tk = Tokenizer::train(TokenizerKind::Word, 50, std::iter::once(TEXT)).unwrap();
        assert!(tk.vocab_size() <= 50);
        let dir = tempfile::tempdir().unwrap();
        tk.save(dir.path()).unwrap();
        let back = Tokenizer::load(dir.path()).unwrap();
        assert!(back.is_word_level());
        assert_eq!(back.hash(), tk.hash());
        assert_eq!(back.encode(TEXT).unwrap(), tk.encode(TEXT).unwrap());
        // The most frequent pieces come first, after the two specials.
        assert_eq!(back.id_to_piece(0).as_deref(), Some("<unk>"));
        assert_eq!(back.id_to_piece(2).as_deref(), Some(" "));
    }
}
