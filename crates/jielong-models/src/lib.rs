//! Model families. Models take token ids and return tensors; they never see tokenizers or
//! files. A family is a config type, a model type and one entry in the registry
//! (`family::FAMILIES`): the run config and the checkpoint name the family, the registry
//! builds it, and everything else (training, decoding, evaluation, the CLI) works through the
//! capability traits below, never through a family's own type.
//!
//! - [`Model`]: what every family is: its config, and which capabilities it has.
//! - [`CausalLm`]: next-token logits, a causal-LM training loss, and decoding with a state
//!   of the family's own ([`DecodeState`]: a KV cache for attention, hidden states for a
//!   recurrent net, the last n − 1 tokens for an n-gram model).
//!
//! Later capabilities (encoders, seq2seq) join as further `as_…` methods of [`Model`].

pub mod bert;
pub mod encoder;
pub mod family;
pub mod gpt;
pub mod hf;
pub mod llama;
pub mod recurrent;
pub mod state;

pub use bert::{Bert, BertConfig};
pub use encoder::{Encoder, MaskedLm, IGNORE};
pub use family::{Family, FamilyConfig, ModelConfig, FAMILIES};
pub use gpt::{Gpt, GptConfig};
pub use jielong_nn::KvCache;
pub use llama::{Llama, LlamaConfig};
pub use recurrent::{Cell, Recurrent, RecurrentConfig, RecurrentState};
pub use state::DecodeState;

use candle_core::{Result, Tensor};

/// Per-call options: dropout randomness (training) or none (evaluation).
#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardOpts {
    /// Some(seed) in training: dropout masks come from generators derived from it.
    pub dropout_seed: Option<u64>,
    /// The index of this call's first sequence in the whole batch, when a batch is split into
    /// shards: each sequence draws its dropout masks by its index, so the shards draw the
    /// masks the whole batch would.
    pub first_row: usize,
}

/// Every model of every family.
pub trait Model: Send + Sync {
    /// The config it was built from (its family included).
    fn config(&self) -> ModelConfig;
    /// The model as a causal language model, if it is one.
    fn as_causal_lm(&self) -> Option<&dyn CausalLm>;
    /// The model as a recurrent net whose state can be carried across batches (truncated
    /// backpropagation through time), if it is one.
    fn as_recurrent(&self) -> Option<&dyn RecurrentLm> {
        None
    }

    // ---- encoder capability (BERT-style families; see `encoder.rs`) ----
    /// The model as an encoder: hidden states for every position of a padded batch, the
    /// padding never attended to (`jielong embed`, `similarity`, `fill-mask`, MLM training).
    /// Causal families may answer too (their hidden states before the LM head).
    fn as_encoder(&self) -> Option<&dyn Encoder> {
        None
    }
    // ---- end of the encoder capability ----
}

/// A recurrent language model: training from a given state, returning the state at the end.
pub trait RecurrentLm: Send + Sync {
    /// Shape of the carried state for `batch` sequences: (n_state, batch, hidden).
    fn state_shape(&self, batch: usize) -> (usize, usize, usize);
    /// Mean next-token cross-entropy of `ids` (b, t) against `targets` from state `init`
    /// (None: zeros), and the state after the last token, detached from the graph (so the
    /// next batch's backward stops here: truncated backpropagation through time).
    fn loss_carried(&self, ids: &Tensor, targets: &Tensor, init: Option<&Tensor>, opts: ForwardOpts) -> Result<(Tensor, Tensor)>;
}

/// A model that gives next-token logits for every position of a batch of sequences.
pub trait CausalLm: Send + Sync {
    /// `ids`: (b, t) u32 → logits (b, t, vocab_size).
    fn logits(&self, ids: &Tensor) -> Result<Tensor>;
    /// Training loss: mean next-token cross-entropy of `ids` (b, t) against `targets` (b, t).
    /// Families fuse the LM head with the loss here where they can.
    fn loss(&self, ids: &Tensor, targets: &Tensor, opts: ForwardOpts) -> Result<Tensor>;
    fn vocab_size(&self) -> usize;
    /// Longest sequence the model accepts in one call.
    fn max_seq_len(&self) -> usize;
    /// An empty decoding state for one sequence.
    fn new_state(&self) -> Box<dyn DecodeState>;
    /// Feed sequence `s` the new tokens `chunks[s]` on top of `states[s]` (which grows by them);
    /// returns the logits at each chunk's last token, (n_seq, vocab_size). Sequences may have
    /// different lengths; they share one forward pass. Each state must be one this model made.
    fn forward_cached(&self, chunks: &[&[u32]], states: &mut [&mut dyn DecodeState]) -> Result<Tensor>;
}
