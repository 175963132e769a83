//! `Tokenizer`: a Hugging Face tokenizer plus what jielong needs around it (its hash, the
//! end-of-text id, pieces for people to read).
//!
//! Kinds we train (each pipeline is normalizer → pre-tokenizer → model → decoder):
//! - `char`: NFC → one split per character → word-level vocabulary of the most frequent characters.
//! - `bpe`: NFC → GPT-2 byte-level split → BPE over bytes (never an unknown token).
//! - `wordpiece`: BERT normalizer (keeps case, isolates CJK characters) → BERT split → WordPiece.
//! - `unigram`: NFC → metaspace (`▁` marks a word start) → SentencePiece-style Unigram.
//! - `word`: jielong's word segmentation (UAX #29, jieba for Chinese) → one token per word or
//!   whitespace run (see `word.rs`).

use jielong_core::{sha256_hex, Error, Result};
use std::path::Path;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::unigram::{Unigram, UnigramTrainerBuilder};
use tokenizers::models::wordlevel::{WordLevel, WordLevelTrainerBuilder};
use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainerBuilder};
use tokenizers::models::TrainerWrapper;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior};

/// The end-of-text token that separates documents in token shards.
pub const EOT: &str = "<|endoftext|>";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenizerKind {
    Char,
    Bpe,
    Wordpiece,
    Unigram,
    Word,
}

impl std::str::FromStr for TokenizerKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "char" => Ok(Self::Char),
            "bpe" => Ok(Self::Bpe),
            "wordpiece" => Ok(Self::Wordpiece),
            "unigram" => Ok(Self::Unigram),
            "word" => Ok(Self::Word),
            _ => Err(Error::input(format!("unknown tokenizer kind `{s}`: use char, bpe, wordpiece, unigram or word"))),
        }
    }
}

/// The byte span (start, end) of the text each token covers.
pub type Offsets = Vec<(usize, usize)>;

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    hash: String,
    eot_id: Option<u32>,
    byte_level: bool,
    /// The `word` kind: text is segmented by jielong before the HF pipeline sees it.
    word_level: bool,
    /// `inner.get_vocab_size(true)`, which builds the whole vocabulary as a map on every call:
    /// counted once here (the wrapped tokenizer never changes after `wrap`).
    vocab_size: usize,
}

pub(crate) fn tk_err(what: &str, e: tokenizers::Error) -> Error {
    Error::Other(format!("{what}: {e}"))
}

impl Tokenizer {
    fn wrap(inner: tokenizers::Tokenizer) -> Result<Self> {
        // Hash the canonical form: serialize, parse, serialize again. Some models (Unigram's
        // float scores) only reach a fixed point after one round trip, and the hash must not
        // change when a saved tokenizer is loaded again.
        let first = inner.to_string(false).map_err(|e| tk_err("serializing tokenizer", e))?;
        let reparsed: tokenizers::Tokenizer =
            first.parse().map_err(|e| tk_err("re-reading serialized tokenizer", e))?;
        let json = reparsed.to_string(false).map_err(|e| tk_err("serializing tokenizer", e))?;
        let hash = sha256_hex(json.as_bytes());
        let eot_id = inner.token_to_id(EOT);
        let byte_level = json.contains("\"type\":\"ByteLevel\"");
        let word_level = crate::word::is_word_kind(&inner);
        let vocab_size = inner.get_vocab_size(true);
        Ok(Self { inner, hash, eot_id, byte_level, word_level, vocab_size })
    }

    /// Train a tokenizer of `kind` with at most `vocab_size` entries on `texts`.
    pub fn train<I, S>(kind: TokenizerKind, vocab_size: usize, texts: I) -> Result<Self>
    where
        I: Iterator<Item = S> + Send,
        S: AsRef<str> + Send,
    {
        let min_vocab = match kind {
            TokenizerKind::Bpe => 256 + 1,
            _ => 8,
        };
        if vocab_size < min_vocab {
            return Err(Error::input(format!(
                "--vocab-size {vocab_size} is too small for a {kind:?} tokenizer: use at least {min_vocab}"
            )));
        }
        let special = |names: &[&str]| -> Vec<AddedToken> {
            names.iter().map(|n| AddedToken::from(n.to_string(), true)).collect()
        };
        // Refuse a corpus with nothing to learn from (no texts, or only empty and whitespace
        // ones, as an empty file gives) before training: BPE would otherwise "succeed" with a
        // vocabulary of bare bytes. The blank texts read ahead are still trained on, in order.
        let mut texts = texts;
        let mut leading_blank: Vec<S> = Vec::new();
        let first_text = loop {
            match texts.next() {
                Some(t) if t.as_ref().trim().is_empty() => leading_blank.push(t),
                found => break found,
            }
        };
        let Some(first_text) = first_text else {
            let n = leading_blank.len();
            return Err(Error::input(format!(
                "no text to train the tokenizer on: the corpus is empty ({n} {}, all empty or only whitespace); pass files with text in them",
                if n == 1 { "text" } else { "texts" }
            )));
        };
        let texts = leading_blank.into_iter().chain(std::iter::once(first_text)).chain(texts);
        if kind == TokenizerKind::Word {
            return Self::wrap(crate::word::train(vocab_size, texts)?);
        }
        let (mut tk, mut trainer): (tokenizers::Tokenizer, TrainerWrapper) = match kind {
            TokenizerKind::Char => {
                let model = WordLevel::builder()
                    .unk_token("<unk>".into())
                    .build()
                    .map_err(|e| tk_err("building char model", e))?;
                let mut tk = tokenizers::Tokenizer::new(model);
                tk.with_normalizer(Some(NFC));
                let split = Split::new(SplitPattern::Regex("(?s).".into()), SplitDelimiterBehavior::Isolated, false)
                    .map_err(|e| tk_err("building char splitter", e))?;
                tk.with_pre_tokenizer(Some(split));
                tk.with_decoder(Some(Fuse::new()));
                let trainer = WordLevelTrainerBuilder::default()
                    .vocab_size(vocab_size)
                    .show_progress(false)
                    .special_tokens(special(&["<unk>", EOT]))
                    .build()
                    .map_err(|e| Error::Other(e.to_string()))?;
                (tk, trainer.into())
            }
            TokenizerKind::Bpe => {
                let mut tk = tokenizers::Tokenizer::new(BPE::default());
                tk.with_normalizer(Some(NFC));
                tk.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
                tk.with_post_processor(Some(ByteLevel::new(false, true, true)));
                tk.with_decoder(Some(ByteLevelDecoder::default()));
                let trainer = BpeTrainerBuilder::new()
                    .vocab_size(vocab_size)
                    .min_frequency(2)
                    .show_progress(false)
                    .special_tokens(special(&[EOT]))
                    .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
                    .build();
                (tk, trainer.into())
            }
            TokenizerKind::Wordpiece => {
                let model = WordPiece::builder()
                    .unk_token("[UNK]".into())
                    .build()
                    .map_err(|e| tk_err("building WordPiece model", e))?;
                let mut tk = tokenizers::Tokenizer::new(model);
                tk.with_normalizer(Some(BertNormalizer::new(true, true, Some(false), false)));
                tk.with_pre_tokenizer(Some(BertPreTokenizer));
                tk.with_decoder(Some(WordPieceDecoder::default()));
                let trainer = WordPieceTrainerBuilder::default()
                    .vocab_size(vocab_size)
                    .min_frequency(2)
                    .show_progress(false)
                    .special_tokens(special(&["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", EOT]))
                    .build();
                (tk, trainer.into())
            }
            TokenizerKind::Word => unreachable!("trained above"),
            TokenizerKind::Unigram => {
                let mut tk = tokenizers::Tokenizer::new(Unigram::default());
                tk.with_normalizer(Some(NFC));
                tk.with_pre_tokenizer(Some(Metaspace::new('▁', PrependScheme::Always, true)));
                tk.with_decoder(Some(Metaspace::new('▁', PrependScheme::Always, true)));
                let trainer = UnigramTrainerBuilder::default()
                    .vocab_size(vocab_size as u32)
                    .show_progress(false)
                    .unk_token(Some("<unk>".into()))
                    .special_tokens(special(&["<unk>", EOT]))
                    .build()
                    .map_err(|e| Error::Other(e.to_string()))?;
                (tk, trainer.into())
            }
        };
        tk.train(&mut trainer, texts).map_err(|e| Error::input(format!("training the tokenizer failed: {e}")))?;
        Self::wrap(tk)
    }

    /// Load `tokenizer.json`, or a folder holding `tokenizer.json` or GPT-2's `encoder.json` + `vocab.bpe`.
    pub fn load(path: &Path) -> Result<Self> {
        if path.is_dir() {
            let json = path.join("tokenizer.json");
            if json.exists() {
                return Self::from_file(&json);
            }
            let (enc, bpe) = (path.join("encoder.json"), path.join("vocab.bpe"));
            if enc.exists() && bpe.exists() {
                return Self::from_gpt2_files(&enc, &bpe);
            }
            return Err(Error::input(format!(
                "{}: no tokenizer.json (or encoder.json + vocab.bpe) in this folder; train one with `jielong tokenizer train`",
                path.display()
            )));
        }
        if path.file_name().is_some_and(|n| n == "encoder.json") {
            let bpe = path.with_file_name("vocab.bpe");
            return Self::from_gpt2_files(path, &bpe);
        }
        Self::from_file(path)
    }

    /// Load a Hugging Face `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(Error::input(format!(
                "{}: tokenizer file not found; train one with `jielong tokenizer train` or pass --tokenizer",
                path.display()
            )));
        }
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| Error::format(path, format!("not a Hugging Face tokenizer.json ({e})")))?;
        Self::wrap(inner)
    }

    /// Load GPT-2's original files: `encoder.json` (token → id) and `vocab.bpe` (merges).
    pub fn from_gpt2_files(encoder_json: &Path, vocab_bpe: &Path) -> Result<Self> {
        for p in [encoder_json, vocab_bpe] {
            if !p.exists() {
                return Err(Error::input(format!("{}: not found (GPT-2 needs encoder.json and vocab.bpe side by side)", p.display())));
            }
        }
        let bpe = BPE::from_file(&encoder_json.to_string_lossy(), &vocab_bpe.to_string_lossy())
            .build()
            .map_err(|e| Error::format(encoder_json, format!("not a GPT-2 encoder.json/vocab.bpe pair ({e})")))?;
        let mut tk = tokenizers::Tokenizer::new(bpe);
        tk.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
        tk.with_post_processor(Some(ByteLevel::new(false, true, true)));
        tk.with_decoder(Some(ByteLevelDecoder::default()));
        if tk.token_to_id(EOT).is_some() {
            tk.add_special_tokens(&[AddedToken::from(EOT.to_string(), true)]);
        }
        Self::wrap(tk)
    }

    /// Write `tokenizer.json` (HF format) and `vocab.txt` (for people) into `dir`, atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let json = self.inner.to_string(true).map_err(|e| tk_err("serializing tokenizer", e))?;
        jielong_core::fs::write_atomic(&dir.join("tokenizer.json"), json.as_bytes())?;
        let mut vocab = String::from("# id\tpiece\ttext (what the piece stands for; <xx> = raw bytes)\n");
        for id in 0..self.vocab_size() as u32 {
            let piece = self.inner.id_to_token(id).unwrap_or_default();
            let shown = piece.replace('\\', "\\\\").replace('\n', "\\n").replace('\t', "\\t").replace('\r', "\\r");
            vocab.push_str(&format!("{id}\t{shown}\t{}\n", self.piece_text(&piece)));
        }
        jielong_core::fs::write_atomic(&dir.join("vocab.txt"), vocab.as_bytes())
    }

    /// What a piece stands for, escaped for display: spaces as `␣`, newlines as `\n`,
    /// bytes that are part of a longer UTF-8 character as `<e6>`.
    pub fn piece_text(&self, piece: &str) -> String {
        let text = if self.byte_level {
            let table = crate::byte_level::char_to_byte();
            let bytes: Option<Vec<u8>> = piece.chars().map(|c| table.get(&c).copied()).collect();
            match bytes {
                Some(b) => match String::from_utf8(b.clone()) {
                    Ok(s) => s,
                    Err(_) => return b.iter().map(|x| format!("<{x:02x}>")).collect(),
                },
                None => piece.to_string(),
            }
        } else {
            piece.replace('▁', " ")
        };
        text.replace(' ', "␣").replace('\n', "\\n").replace('\t', "\\t").replace('\r', "\\r")
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        if self.word_level {
            let enc = self.inner.encode_fast(crate::word::pieces(text), false).map_err(|e| tk_err("encoding", e))?;
            return Ok(enc.get_ids().to_vec());
        }
        let enc = self.inner.encode_fast(text, false).map_err(|e| tk_err("encoding", e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Encode many texts in parallel.
    pub fn encode_batch(&self, texts: Vec<&str>) -> Result<Vec<Vec<u32>>> {
        if self.word_level {
            use tokenizers::parallelism::MaybeParallelIterator;
            let pieces: Vec<Vec<&str>> = texts.into_maybe_par_iter().map(crate::word::pieces).collect();
            let encs = self.inner.encode_batch_fast(pieces, false).map_err(|e| tk_err("encoding", e))?;
            return Ok(encs.into_iter().map(|e| e.get_ids().to_vec()).collect());
        }
        let encs = self.inner.encode_batch_fast(texts, false).map_err(|e| tk_err("encoding", e))?;
        Ok(encs.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= self.vocab_size) {
            return Err(Error::input(format!("token id {bad} is outside the vocabulary (size {})", self.vocab_size)));
        }
        self.inner.decode(ids, false).map_err(|e| tk_err("decoding", e))
    }

    pub fn id_to_piece(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Number of ids, added tokens included: the model's `vocab_size` must be at least this.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// SHA-256 of the canonical serialization: shards and checkpoints record it.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    pub fn eot_id(&self) -> Option<u32> {
        self.eot_id
    }

    pub fn is_byte_level(&self) -> bool {
        self.byte_level
    }

    /// Whether this is a `word` tokenizer (one token per jielong word or whitespace run).
    pub fn is_word_level(&self) -> bool {
        self.word_level
    }

    /// Whether every token is a whole piece of text looked up in a table (a word-level model:
    /// the `word` and `char` kinds), rather than a subword.
    pub fn has_word_level_model(&self) -> bool {
        matches!(self.inner.get_model(), tokenizers::models::ModelWrapper::WordLevel(_))
    }

    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    // --- instruction tuning ---
    /// Ids with the byte span of the text each one covers (tokens overlapping a span of the
    /// text are found by these). Word tokenizers (which segment before the model) encode
    /// piece by piece, each piece's span its own.
    pub fn encode_with_offsets(&self, text: &str) -> Result<(Vec<u32>, Offsets)> {
        if self.word_level {
            let mut ids = Vec::new();
            let mut offsets = Vec::new();
            let mut at = 0usize;
            for piece in crate::word::pieces(text) {
                let start = text[at..].find(piece).map_or(at, |i| at + i);
                let end = start + piece.len();
                let enc = self.inner.encode_fast(vec![piece], false).map_err(|e| tk_err("encoding", e))?;
                for &id in enc.get_ids() {
                    ids.push(id);
                    offsets.push((start, end));
                }
                at = end;
            }
            return Ok((ids, offsets));
        }
        let enc = self.inner.encode(text, false).map_err(|e| tk_err("encoding", e))?;
        Ok((enc.get_ids().to_vec(), enc.get_offsets().to_vec()))
    }

    /// This tokenizer without the padding and truncation its file may ask for (an imported
    /// BERT's `tokenizer.json` pads every text to 128 tokens): `encode` then gives the text's
    /// own tokens, which callers that frame and cut inputs themselves need.
    pub fn without_padding(&self) -> Result<Self> {
        let mut inner = self.inner.clone();
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| tk_err("removing truncation", e))?;
        Self::wrap(inner)
    }

    /// This tokenizer with `tokens` added as special tokens where it lacks them (the turn
    /// markers of a chat template), and the ones that were added, in id order. New ids come
    /// after the existing ones, so every old id keeps its meaning.
    pub fn with_special_tokens(&self, tokens: &[&str]) -> Result<(Self, Vec<String>)> {
        let missing: Vec<&str> = tokens.iter().copied().filter(|t| !t.is_empty() && self.inner.token_to_id(t).is_none()).collect();
        let mut missing_unique: Vec<&str> = Vec::new();
        for t in missing {
            if !missing_unique.contains(&t) {
                missing_unique.push(t);
            }
        }
        if missing_unique.is_empty() {
            return Ok((Self::wrap(self.inner.clone())?, Vec::new()));
        }
        let mut inner = self.inner.clone();
        inner.add_special_tokens(&missing_unique.iter().map(|t| AddedToken::from(t.to_string(), true)).collect::<Vec<_>>());
        Ok((Self::wrap(inner)?, missing_unique.iter().map(|t| t.to_string()).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "The cat sat on the mat. The dog sat on the log.\n\
        接龙是一个文字游戏：给出前面的词，说出下一个词。语言模型也在玩接龙。\n\
        Emoji 🐉🐲 and code: fn main() { println!(\"hi\"); }\n";

    fn corpus() -> Vec<String> {
        (0..20).map(|i| format!("{TEXT} line {i}")).collect()
    }

    #[test]
    fn tokenizer_bpe_round_trips_any_utf8() {
        let tk = Tokenizer::train(TokenizerKind::Bpe, 400, corpus().into_iter()).unwrap();
        for s in [TEXT, "未见过的汉字：龘靐齉 and unseen emoji 🦀🧬, tabs\tand\r\nCRLF", "ü", ""] {
            let ids = tk.encode(s).unwrap();
            // NFC-normalised input round-trips exactly; all of these are already NFC.
            assert_eq!(tk.decode(&ids).unwrap(), s);
        }
        assert!(tk.vocab_size() <= 400 && tk.vocab_size() > 256);
        assert!(tk.eot_id().is_some());
        // A merged piece compresses: fewer tokens than bytes.
        assert!(tk.encode(TEXT).unwrap().len() < TEXT.len() / 2);
    }

    #[test]
    fn tokenizer_every_kind_trains_saves_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        for kind in [TokenizerKind::Char, TokenizerKind::Bpe, TokenizerKind::Wordpiece, TokenizerKind::Unigram] {
            let tk = Tokenizer::train(kind, 300, corpus().into_iter()).unwrap();
            let sub = dir.path().join(format!("{kind:?}"));
            tk.save(&sub).unwrap();
            let back = Tokenizer::load(&sub).unwrap();
            assert_eq!(back.hash(), tk.hash(), "{kind:?} hash changes on reload");
            let s = "The cat sat on the mat. 接龙";
            let ids = tk.encode(s).unwrap();
            assert_eq!(back.encode(s).unwrap(), ids);
            let decoded = tk.decode(&ids).unwrap();
            match kind {
                // WordPiece drops whitespace information by design (BERT); it keeps the words.
                TokenizerKind::Wordpiece => assert_eq!(decoded.replace(' ', ""), s.replace(' ', "")),
                _ => assert_eq!(decoded.trim_start(), s, "{kind:?}"),
            }
            let vocab = std::fs::read_to_string(sub.join("vocab.txt")).unwrap();
            assert_eq!(vocab.lines().count(), tk.vocab_size() + 1);
        }
    }

    #[test]
    fn tokenizer_char_kind_is_one_token_per_character() {
        let tk = Tokenizer::train(TokenizerKind::Char, 1000, corpus().into_iter()).unwrap();
        let s = "接龙 cat";
        assert_eq!(tk.encode(s).unwrap().len(), s.chars().count());
    }

    #[test]
    fn tokenizer_rejects_bad_input() {
        let e = Tokenizer::train(TokenizerKind::Bpe, 100, corpus().into_iter()).err().unwrap();
        assert!(e.is_user_error() && e.to_string().contains("too small"), "{e}");
        let e = Tokenizer::train(TokenizerKind::Bpe, 1000, Vec::<String>::new().into_iter()).err().unwrap();
        assert!(e.is_user_error(), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokenizer.json");
        std::fs::write(&p, "{\"not\": \"a tokenizer\"}").unwrap();
        let e = Tokenizer::load(&p).err().unwrap();
        assert!(e.is_user_error() && e.to_string().contains("not a Hugging Face"), "{e}");
        assert!(Tokenizer::load(&dir.path().join("missing.json")).err().unwrap().is_user_error());
        assert!("gpt".parse::<TokenizerKind>().is_err());
    }

    #[test]
    fn tokenizer_refuses_corpus_of_only_empty_or_blank_texts() {
        // An empty file reads as one empty document, a file of spaces and newlines as one blank
        // one: neither has anything to learn from, for any kind (BPE would otherwise succeed
        // with a byte-only vocabulary).
        for kind in [TokenizerKind::Char, TokenizerKind::Bpe, TokenizerKind::Wordpiece, TokenizerKind::Unigram] {
            for texts in [vec![""], vec!["  \n", "\t\r\n", ""]] {
                let e = Tokenizer::train(kind, 300, texts.clone().into_iter()).err().unwrap_or_else(|| {
                    panic!("{kind:?} trained on {texts:?}, which has no text in it")
                });
                assert!(e.is_user_error() && e.to_string().contains("corpus is empty"), "{kind:?}: {e}");
                assert_eq!(e.to_string().lines().count(), 1, "{e}");
            }
        }
        // Blank texts before the first real one do not stop training.
        let mut with_blanks = vec![String::new(), " \n".to_string()];
        with_blanks.extend(corpus());
        let tk = Tokenizer::train(TokenizerKind::Bpe, 300, with_blanks.into_iter()).unwrap();
        assert_eq!(tk.decode(&tk.encode(TEXT).unwrap()).unwrap(), TEXT);
    }

    #[test]
    fn tokenizer_bpe_pieces_show_bytes() {
        let tk = Tokenizer::train(TokenizerKind::Bpe, 300, corpus().into_iter()).unwrap();
        assert_eq!(tk.piece_text("Ġcat"), "␣cat");
        assert_eq!(tk.piece_text("æ"), "<e6>");
    }
}
