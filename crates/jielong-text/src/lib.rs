//! Tensor-free text work: reading a corpus from files, folders and JSONL, and cleaning it.

pub mod clean;
pub mod reader;

pub use clean::{clean, CleanStats};
pub use reader::{read_corpus, Document, ReadReport};
