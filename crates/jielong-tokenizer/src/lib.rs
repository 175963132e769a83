//! Tokenizers for jielong: training (char, byte-level BPE, WordPiece, Unigram, word) and loading
//! (`tokenizer.json`, GPT-2's `encoder.json` + `vocab.bpe`) through Hugging Face `tokenizers`.
//! The file on disk is always HF's `tokenizer.json`, so any HF-compatible tool can load it.

pub mod byte_level;
mod word;
pub mod chat;
pub mod stream;
pub mod tokenizer;

pub use chat::{ChatTemplate, Message};
pub use stream::TextStream;
pub use tokenizer::{Tokenizer, TokenizerKind, EOT};
