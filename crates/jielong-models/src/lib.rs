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

pub mod albert;
pub mod bert;
pub mod encoder;
pub mod family;
pub mod gpt;
pub mod heads;
pub mod hf;
pub mod llama;
pub mod lora_targets;
pub mod post_ln;
pub mod recurrent;
pub mod rnn_encoder;
pub mod seq2seq;
pub mod soft_prompt;
pub mod state;

pub use albert::{Albert, AlbertConfig};
pub use bert::{Bert, BertConfig};
pub use encoder::{Encoder, MaskedLm, SentenceTask, IGNORE};
pub use family::{Family, FamilyConfig, ModelConfig, FAMILIES};
pub use heads::{HeadKind, Pooling, TaskHead};
pub use gpt::{Gpt, GptConfig};
pub use jielong_nn::KvCache;
pub use llama::{Llama, LlamaConfig};
pub use recurrent::{Cell, Recurrent, RecurrentConfig, RecurrentState};
pub use rnn_encoder::RecurrentEncoder;
pub use seq2seq::{Attention, Seq2seqConfig, Seq2seqModel, Seq2seqState};
pub use state::DecodeState;
pub use soft_prompt::{PrefixedCache, SoftPrompt, SoftPromptKind, SoftPromptShape};

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

/// Packed rows (`jielong sft --packing`): several examples in one row, none attending to
/// another, positions restarting at 0 for each (as TRL's padding-free collator with
/// transformers' packed-sequence mask).
#[derive(Debug, Clone)]
pub struct Packing {
    /// Row-major (b, t): each position's index within its example.
    pub positions: Vec<u32>,
    /// (b, 1, t, t) additive: 0 where query i may see key j (same example, j ≤ i), −∞ elsewhere.
    pub mask: Tensor,
}

impl Packing {
    /// From the segment of each position (row-major (b, t), as `Batch::segments`).
    pub fn from_segments(segments: &[u32], b: usize, t: usize, dev: &candle_core::Device) -> Result<Self> {
        if segments.len() != b * t {
            candle_core::bail!("packing: {} segments for a ({b}, {t}) batch", segments.len());
        }
        // 0, 1, … within each run of one segment (jielong_data::sft::segment_positions).
        let mut positions: Vec<u32> = Vec::with_capacity(b * t);
        for (i, &s) in segments.iter().enumerate() {
            let restart = i % t == 0 || segments[i - 1] != s;
            positions.push(if restart { 0 } else { positions[i - 1] + 1 });
        }
        let mut mask = vec![f32::NEG_INFINITY; b * t * t];
        for r in 0..b {
            let seg = &segments[r * t..(r + 1) * t];
            for i in 0..t {
                let start = i - positions[r * t + i] as usize;
                debug_assert!(seg[start..=i].iter().all(|&s| s == seg[i]));
                mask[(r * t + i) * t + start..=(r * t + i) * t + i].fill(0.0);
            }
        }
        Ok(Self { positions, mask: Tensor::from_vec(mask, (b, 1, t, t), dev)? })
    }

    /// The positions, each plus `offset` (virtual tokens before the text), as a (b·t) tensor.
    pub fn positions_tensor(&self, offset: usize, dev: &candle_core::Device) -> Result<Tensor> {
        let p: Vec<u32> = self.positions.iter().map(|&p| p + offset as u32).collect();
        Tensor::from_vec(p, self.positions.len(), dev)
    }

    /// The mask with `n` always-visible keys before the text (prefix tuning's virtual keys).
    pub fn mask_after(&self, n: usize) -> Result<Tensor> {
        if n == 0 {
            return Ok(self.mask.clone());
        }
        let (b, _, t, _) = self.mask.dims4()?;
        let open = Tensor::zeros((b, 1, t, n), candle_core::DType::F32, self.mask.device())?;
        Tensor::cat(&[&open, &self.mask], 3)
    }
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

    // ---- seq2seq (issue 15): encoder-decoder models ----
    /// The model as an encoder-decoder (`family = "seq2seq"`), if it is one.
    fn as_seq2seq(&self) -> Option<&dyn Seq2seq> {
        None
    }
    // ---- end seq2seq ----
    // ---- encoder capability (BERT-style families; see `encoder.rs`) ----
    /// The model as an encoder: hidden states for every position of a padded batch, the
    /// padding never attended to (`jielong embed`, `similarity`, `fill-mask`, MLM training).
    /// Causal families may answer too (their hidden states before the LM head).
    fn as_encoder(&self) -> Option<&dyn Encoder> {
        None
    }
    // ---- end of the encoder capability ----
    // --- adapters (instruction tuning: LoRA) ---
    /// The linear layers a LoRA can adapt, named as in the model's checkpoints (without
    /// `.weight`). Empty for families without any.
    fn linear_sites(&self) -> Vec<jielong_nn::LinearSite> {
        Vec::new()
    }
    /// Run with LoRA adapters (None: without). The adapters' modules must be this model's.
    fn set_lora(&mut self, _lora: Option<std::sync::Arc<jielong_nn::Lora>>) -> std::result::Result<(), jielong_core::Error> {
        Err(jielong_core::Error::input(format!("family {} cannot take LoRA adapters (gpt, llama, bert and albert can)", self.config().family())))
    }
    // --- adapters (instruction tuning: prompt and prefix tuning, `soft_prompt.rs`) ---
    /// The shapes a prompt- or prefix-tuning table must have for this model; None for families
    /// that cannot take one.
    fn soft_prompt_shape(&self) -> Option<SoftPromptShape> {
        None
    }
    /// Run with virtual tokens (None: without). The table must fit `soft_prompt_shape`.
    fn set_soft_prompt(&mut self, _prompt: Option<std::sync::Arc<SoftPrompt>>) -> std::result::Result<(), jielong_core::Error> {
        Err(jielong_core::Error::input(format!("family {} cannot take prompt or prefix tuning (gpt and llama can)", self.config().family())))
    }
}

/// The target id that carries no loss (a prompt or padding position in supervised
/// fine-tuning): `CausalLm::loss_on_targets` skips it.
pub const IGNORE_TARGET: u32 = u32::MAX;

/// Check that a prompt/prefix table fits a model of `shape` (an adapter made for another model
/// is refused).
pub fn check_soft_prompt(prompt: Option<&SoftPrompt>, shape: SoftPromptShape) -> std::result::Result<(), jielong_core::Error> {
    let Some(p) = prompt else { return Ok(()) };
    if p.shape != shape {
        return Err(jielong_core::Error::input(format!(
            "the {} adapter was made for a model of {} layers, {} key/value heads of {} and width {}; this one has {}, {}, {} and {}: it was made for another model",
            p.kind.peft_type(), p.shape.n_layer, p.shape.n_kv_head, p.shape.head_dim, p.shape.n_embd, shape.n_layer, shape.n_kv_head, shape.head_dim, shape.n_embd
        )));
    }
    soft_prompt::check_length(p.n, shape.max_seq_len)
}

/// Check that a LoRA's modules are among `sites` (an adapter made for another model is refused).
pub fn check_lora(lora: Option<&jielong_nn::Lora>, sites: &[jielong_nn::LinearSite]) -> std::result::Result<(), jielong_core::Error> {
    let Some(lora) = lora else { return Ok(()) };
    if lora.cfg.dropout > 0.0 {
        return Err(jielong_core::Error::input(format!(
            "LoRA dropout {} is not supported: the fused GPT block and Llama layer run the adapters without input dropout; use --lora-dropout 0",
            lora.cfg.dropout
        )));
    }
    for m in lora.modules() {
        let Some(site) = sites.iter().find(|s| s.name == m) else {
            return Err(jielong_core::Error::input(format!("the adapter has a layer {m} that this model does not have: it was made for another model")));
        };
        let a = lora.layer(m).expect("listed").a.as_tensor().dims().to_vec();
        let b = lora.layer(m).expect("listed").b.as_tensor().dims().to_vec();
        if a.get(1) != Some(&site.n_in) || b.first() != Some(&site.n_out) {
            return Err(jielong_core::Error::input(format!("the adapter's {m} is {} → {}, the model's {} → {}: it was made for another model", a.get(1).unwrap_or(&0), b.first().unwrap_or(&0), site.n_in, site.n_out)));
        }
    }
    Ok(())
}

/// Mean cross-entropy of the LM head over the positions of `hidden` (b, t, c) whose target is
/// not [`IGNORE_TARGET`]: only those rows go through the head (fused with the loss).
pub fn masked_head_loss(hidden: &Tensor, head: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (b, t, c) = hidden.dims3()?;
    let flat = targets.flatten_all()?.to_vec1::<u32>()?;
    let keep: Vec<u32> = (0..flat.len() as u32).filter(|&i| flat[i as usize] != IGNORE_TARGET).collect();
    if keep.is_empty() {
        candle_core::bail!("no position of this batch carries loss (every target is ignored)");
    }
    let kept_targets: Vec<u32> = keep.iter().map(|&i| flat[i as usize]).collect();
    let dev = hidden.device();
    let idx = Tensor::new(keep.as_slice(), dev)?;
    let x = hidden.reshape((b * t, c))?.index_select(&idx, 0)?;
    jielong_nn::head_loss::linear_cross_entropy(&x, head, &Tensor::new(kept_targets.as_slice(), dev)?)
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
    /// The causal self-attention weights for the prompt `ids`, one (n_head, t, t) tensor per
    /// layer (`jielong attention`); None for families without self-attention.
    fn attention_maps(&self, _ids: &[u32]) -> Result<Option<Vec<Tensor>>> {
        Ok(None)
    }

    // --- instruction tuning ---
    /// Mean next-token cross-entropy over the positions whose target is not
    /// [`IGNORE_TARGET`] (supervised fine-tuning: the loss on the assistant's tokens only).
    /// The default goes through the full logits; families fuse the head with the loss.
    fn loss_on_targets(&self, ids: &Tensor, targets: &Tensor, _opts: ForwardOpts) -> Result<Tensor> {
        let logits = self.logits(ids)?;
        let (b, t, v) = logits.dims3()?;
        let flat = targets.flatten_all()?.to_vec1::<u32>()?;
        let keep: Vec<u32> = (0..flat.len() as u32).filter(|&i| flat[i as usize] != IGNORE_TARGET).collect();
        if keep.is_empty() {
            candle_core::bail!("no position of this batch carries loss (every target is ignored)");
        }
        let kept: Vec<u32> = keep.iter().map(|&i| flat[i as usize]).collect();
        let dev = logits.device();
        let rows = logits.reshape((b * t, v))?.index_select(&Tensor::new(keep.as_slice(), dev)?, 0)?;
        jielong_nn::cross_entropy(&rows, &Tensor::new(kept.as_slice(), dev)?)
    }

    /// `logits` of packed rows: each example as if it ran alone (`Packing`).
    fn packed_logits(&self, _ids: &Tensor, _packing: &Packing) -> Result<Tensor> {
        candle_core::bail!("this model family cannot run packed sequences (gpt and llama can): train without --packing")
    }
    /// `loss_on_targets` of packed rows (`Packing`).
    fn packed_loss_on_targets(&self, _ids: &Tensor, _targets: &Tensor, _packing: &Packing, _opts: ForwardOpts) -> Result<Tensor> {
        candle_core::bail!("this model family cannot run packed sequences (gpt and llama can): train without --packing")
    }
}

// ---- seq2seq (issue 15): the encoder-decoder capability ----

/// An encoder-decoder: a source sequence in, a target sequence out, one shared vocabulary.
/// Decoding goes through the shared engine: `encode` makes a decoding state that holds the
/// encoded source, and `decoder` is a [`CausalLm`] over such states.
pub trait Seq2seq: Send + Sync {
    /// Teacher-forced training loss: the mean cross-entropy over the real target positions.
    /// `src` (b, S) padded, row r with `src_lens[r]` real tokens; `tgt_in` (b, T) the decoder
    /// input (the target shifted right), `targets` (b, T) what it must predict, row r with
    /// `tgt_lens[r]` real positions.
    fn loss(&self, src: &Tensor, src_lens: &[usize], tgt_in: &Tensor, targets: &Tensor, tgt_lens: &[usize], opts: ForwardOpts) -> Result<Tensor>;
    /// Encode one source: a decoding state holding it, for `decoder().forward_cached`.
    fn encode(&self, src: &[u32]) -> Result<Box<dyn DecodeState>>;
    /// The decoder, as a causal LM over the states `encode` makes.
    fn decoder(&self) -> &dyn CausalLm;
    /// Cross-attention weights (T, S) of decoder input `tgt_in` reading `src` (teacher
    /// forced); None when the model has no attention.
    fn attention_weights(&self, src: &[u32], tgt_in: &[u32]) -> Result<Option<Tensor>>;
}
// ---- end seq2seq ----
