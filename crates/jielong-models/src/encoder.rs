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
    /// `hidden_states` in training (fine-tuning a task head): with dropout drawn from
    /// `opts`, and reading the parameters themselves (any inference copies are dropped, as
    /// the parameters are about to change). The default has no dropout.
    fn hidden_states_train(&self, ids: &Tensor, token_types: Option<&Tensor>, attention_mask: &Tensor, _opts: ForwardOpts) -> Result<Tensor> {
        self.hidden_states(ids, token_types, attention_mask)
    }
    /// The last layer's hidden state at one position of each sequence, (b, hidden_size):
    /// position `positions[i]` of sequence i (what [CLS] and last-token pooling read).
    /// `train`: Some(opts) in training (as [`Encoder::hidden_states_train`]), None in
    /// evaluation. BERT and ALBERT compute only what those positions need in their last layer
    /// (attention for those queries alone, the feed-forward on those rows); the default takes
    /// the rows from the full hidden states.
    fn hidden_states_at(&self, ids: &Tensor, token_types: Option<&Tensor>, attention_mask: &Tensor, positions: &[u32], train: Option<ForwardOpts>) -> Result<Tensor> {
        let hidden = match train {
            Some(opts) => self.hidden_states_train(ids, token_types, attention_mask, opts)?,
            None => self.hidden_states(ids, token_types, attention_mask)?,
        };
        let (b, t, _) = hidden.dims3()?;
        gather_rows(&hidden, &row_index(b, t, positions, hidden.device())?)?.squeeze(1)
    }
    fn hidden_size(&self) -> usize;
    /// Copy the weights as they are now into whatever inference-only form makes
    /// `hidden_states` faster (BERT and ALBERT: each layer's Q/K/V weights fused, and all its
    /// weights transposed to (in, out); see `post_ln`). The values are the same either way.
    /// Training (`MaskedLm::mlm_loss`, `pretraining`) drops the copies; whoever changes the
    /// parameters some other way (loading new ones) calls this again before embedding.
    /// `jielong_generate::Embedder::new` calls it.
    fn prepare_inference(&self) -> Result<()> {
        Ok(())
    }
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
    /// The sentence-pair task the model's classifier on the pooled output was made for
    /// (BERT's next-sentence head, ALBERT's sentence-order head), None without one.
    fn sentence_task(&self) -> Option<SentenceTask> {
        None
    }
    /// That classifier's logits (b, 2) from the hidden states (b, t, hidden): logit 0 is
    /// "B follows A" (NSP) or "in order" (SOP), logit 1 "random B" or "swapped".
    fn sentence_logits(&self, _hidden: &Tensor) -> Result<Option<Tensor>> {
        Ok(None)
    }
}

/// The sentence-pair pretraining tasks (`train.sentence_task`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SentenceTask {
    /// Next-sentence prediction (BERT): is B the segment that follows A, or a random one?
    Nsp,
    /// Sentence-order prediction (ALBERT): are two consecutive segments in order or swapped?
    Sop,
}

impl SentenceTask {
    pub fn name(self) -> &'static str {
        match self {
            SentenceTask::Nsp => "nsp",
            SentenceTask::Sop => "sop",
        }
    }
}

/// An encoder with a masked-LM head.
pub trait MaskedLm: Send + Sync {
    fn vocab_size(&self) -> usize;
    /// Logits (b, t, vocab_size) at every position.
    fn mlm_logits(&self, ids: &Tensor, token_types: Option<&Tensor>, attention_mask: &Tensor) -> Result<Tensor>;
    /// Mean cross-entropy over the positions whose `targets` (b, t) are not [`IGNORE`].
    fn mlm_loss(&self, ids: &Tensor, token_types: Option<&Tensor>, attention_mask: &Tensor, targets: &Tensor, opts: ForwardOpts) -> Result<Tensor>;
    /// Pretraining with a sentence-pair task, from one forward pass: the MLM loss (as
    /// `mlm_loss`) and the sentence-pair logits (b, 2) (see [`Encoder::sentence_logits`]).
    /// An error when the model has no sentence-pair head.
    fn pretraining(&self, ids: &Tensor, token_types: Option<&Tensor>, attention_mask: &Tensor, targets: &Tensor, opts: ForwardOpts) -> Result<(Tensor, Tensor)>;
}

/// The flat row index (b) of position `positions[i]` of sequence i in a (b·t) batch; an error
/// when there is not one position per sequence, or one is past the end.
pub(crate) fn row_index(b: usize, t: usize, positions: &[u32], dev: &candle_core::Device) -> Result<Tensor> {
    if positions.len() != b || positions.iter().any(|&p| p as usize >= t) {
        candle_core::bail!("{} positions for a batch of {b} sequences of {t}", positions.len());
    }
    Tensor::from_vec(positions.iter().enumerate().map(|(i, &p)| (i * t) as u32 + p).collect::<Vec<u32>>(), b, dev)
}

/// Rows `idx` (b) of `xs` (b, t, c) flattened, as (b, 1, c).
pub(crate) fn gather_rows(xs: &Tensor, idx: &Tensor) -> Result<Tensor> {
    let (b, t, c) = xs.dims3()?;
    xs.reshape((b * t, c))?.index_select(idx, 0)?.reshape((idx.dim(0)?, 1, c))
}

/// Attention from the packed projection `qkv` (b, t, 3c) for one query per sequence, position
/// `rows[i]` of sequence i, over the keys `key_mask` (b, t) keeps (a causal model passes
/// "j ≤ rows[i]"): (b, 1, c), and the rows' flat index. Composed ops on (b, h, 1, t) scores —
/// one query per sequence is too little work for the fused kernels. What a last layer needs
/// when only those positions are read (every position's keys and values, those queries alone).
pub(crate) fn attend_rows(qkv: &Tensor, n_head: usize, key_mask: &Tensor, rows: &[u32]) -> Result<(Tensor, Tensor)> {
    let (b, t, c3) = qkv.dims3()?;
    let (c, d) = (c3 / 3, c3 / 3 / n_head);
    let idx = row_index(b, t, rows, qkv.device())?;
    let q = qkv.reshape((b * t, c3))?.index_select(&idx, 0)?.narrow(1, 0, c)?.reshape((b, 1, n_head, d))?.transpose(1, 2)?.contiguous()?;
    let heads = |j: usize| -> Result<Tensor> { qkv.narrow(2, j * c, c)?.reshape((b, t, n_head, d))?.transpose(1, 2)?.contiguous() };
    let ys = jielong_nn::bidirectional_attention_reference(&q, &heads(1)?, &heads(2)?, key_mask)?; // (b, h, 1, d)
    Ok((ys.transpose(1, 2)?.reshape((b, 1, c))?, idx))
}
