//! Tensor-free text work: reading a corpus from files, folders and JSONL, cleaning it, and
//! cutting it into words, characters and sentences.

pub mod clean;
pub mod reader;
pub mod segment;

pub use clean::{clean, CleanStats};
pub use reader::{read_corpus, Document, ReadReport};
pub use segment::Units;
