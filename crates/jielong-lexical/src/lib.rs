//! Lexical retrieval: find the documents that share words with a query, scored by bag-of-words
//! cosine, TF-IDF cosine or Okapi BM25.
//!
//! Text is cut into words by `jielong_text::segment` (jieba for Chinese, Unicode word
//! boundaries for the rest) and lowercased, the same words the n-gram models count.
//!
//! ```no_run
//! use jielong_lexical::{read_docs, LexicalIndex, Params, Scheme, Split};
//! # fn main() -> jielong_core::Result<()> {
//! let docs = read_docs(&["corpus/".into()], Split::Paragraphs)?;
//! LexicalIndex::build(docs, Params::new(Scheme::Bm25, None, None, None)?, "idx".as_ref())?;
//! let index = LexicalIndex::open("idx".as_ref())?;
//! for hit in index.search("语言模型", 5)? {
//!     println!("{:.3} {} {}", hit.score, hit.doc_id, hit.marked("«", "»"));
//! }
//! # Ok(()) }
//! ```

pub mod analyze;
pub mod bm25;
pub mod docs;
pub mod index;
pub mod params;
pub mod snippet;
pub mod vector;

pub use docs::{read_docs, Doc, Split};
pub use index::{BuildReport, Hit, LexicalIndex, Meta, QueryTerms};
pub use params::{Params, Scheme, TfMode};
