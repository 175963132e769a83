//! The encoder capability: what `jielong embed`, `similarity`, `fill-mask` and masked-LM
//! training need of a model, whatever its family.
//!
//! A batch is padded on the right to its longest sequence; `attention_mask` (b, t) says which
//! positions are tokens (non-zero) and which are padding (zero). An encoder never lets a token
//! attend to padding, so a sentence's hidden states do not depend on what it was batched with.

use crate::ForwardOpts;
use candle_core::{Result, Tensor};

/// The target id that marks a position as "not predicted" in [`MaskedLm::mlm_loss`]
/// (what Hugging Face writes as label −100).
pub const IGNORE: u32 = u32::MAX;

/// A model that gives contextual hidden states for every position.
pub trait Encoder: Send + Sync {
    /// `ids` (b, t) u32, `token_types` (b, t) u32 segment ids (None: all 0), `attention_mask`
    /// (b, t) → the last layer's hidden states (b, t, hidden_size).
    fn hidden_states(&self, ids: &Tensor, token_types: Option<&Tensor>, attention_mask: &Tensor) -> Result<Tensor>;
    fn hidden_size(&self) -> usize;
    /// Longest sequence the model accepts in one call.
    fn max_seq_len(&self) -> usize;
    /// The family's own sentence vector from the hidden states, if it has one (BERT's pooler:
    /// tanh(dense(first token))), (b, hidden_size).
    fn pooled(&self, _hidden: &Tensor) -> Result<Option<Tensor>> {
        Ok(None)
    }
    /// The encoder as a masked language model, if it has the head.
    fn as_masked_lm(&self) -> Option<&dyn MaskedLm> {
        None
    }
}

/// An encoder with a masked-LM head.
pub trait MaskedLm: Send + Sync {
    fn vocab_size(&self) -> usize;
    /// Logits (b, t, vocab_size) at every position.
    fn mlm_logits(&self, ids: &Tensor, token_types: Option<&Tensor>, attention_mask: &Tensor) -> Result<Tensor>;
    /// Mean cross-entropy over the positions whose `targets` (b, t) are not [`IGNORE`].
    fn mlm_loss(&self, ids: &Tensor, token_types: Option<&Tensor>, attention_mask: &Tensor, targets: &Tensor, opts: ForwardOpts) -> Result<Tensor>;
}
