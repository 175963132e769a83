//! Counting language models: n-grams of orders 1 to 6 with explicit sentence boundaries
//! (`<s>`, `</s>`), `<unk>` for unknown units, five smoothing methods (MLE, add-k, interpolated
//! add-k, Kneser-Ney and modified Kneser-Ney, the last exactly as KenLM's `lmplz` estimates
//! it), ARPA import/export, and a binary model file that is memory-mapped.
//!
//! - [`counts`]: counting and Kneser-Ney's adjusted counts.
//! - [`smoothing`]: the methods and the discount formulas (Chen & Goodman).
//! - [`estimate`]: counts → a model in backoff form.
//! - [`model`]: the model: log10 p(w | context), distributions.
//! - [`arpa`], [`binary`]: the two file formats.
//! - [`score`]: cross-entropy, perplexity (with and without OOVs, as KenLM's `query`), bits
//!   per byte, OOV rate.
//! - [`causal`]: a model over a tokenizer's pieces as a causal LM of the family spine, so the
//!   shared engine (`jielong generate/eval --checkpoint MODEL`) runs it.
//! - [`units`]: cutting text into sentences and units (words, characters, whitespace-separated
//!   tokens, or a tokenizer's pieces).

pub mod arpa;
pub mod binary;
pub mod causal;
pub mod counts;
pub mod estimate;
pub mod key;
pub mod model;
pub mod score;
pub mod smoothing;
pub mod table;
pub mod units;
pub mod vocab;

pub use counts::{index_sentences, Counts};
pub use estimate::{train, TrainConfig};
pub use model::{ModelMeta, NgramModel, State};
pub use score::Score;
pub use smoothing::Smoothing;
pub use vocab::Vocab;

/// Load a model: the binary format (by its magic bytes) or an ARPA file.
pub fn load(path: &std::path::Path) -> jielong_core::Result<NgramModel> {
    if binary::is_binary(path)? {
        binary::load(path)
    } else {
        arpa::read(path)
    }
}
