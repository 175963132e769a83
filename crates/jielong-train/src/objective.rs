//! Objectives: how a batch becomes a loss. The trainer knows objectives, not models: an
//! objective asks the model for the capability it needs (`Model::as_causal_lm` for causal
//! language modelling) and fails with a clear message when the family lacks it. Masked LM,
//! span corruption, prefix LM, permuted LM, seq2seq, classification and the preference
//! objectives join here as further variants, each with the batches it reads.

use candle_core::Tensor;
use jielong_core::{Error, Result};
use jielong_models::{ForwardOpts, Model};

/// `train.objective` in a run config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Next-token prediction: mean cross-entropy of every position against the next token.
    #[default]
    CausalLm,
    // ---- seq2seq (issue 15) ----
    /// Encoder-decoder with teacher forcing on `{"source", "target"}` pairs (`seq2seq.rs`
    /// runs it: its batches are pairs, not token windows).
    Seq2seq,
    /// Masked language modelling (BERT): predict the tokens `mlm::MlmMasker` chose from the
    /// whole window around them; the loss is the mean over the chosen tokens.
    Mlm,

    // --- instruction tuning ---
    /// Supervised fine-tuning: next-token cross-entropy on the positions whose target is not
    /// `IGNORE_TARGET` (the assistant's tokens), mean over those.
    Sft,
}

impl Objective {
    pub fn name(&self) -> &'static str {
        match self {
            Objective::CausalLm => "causal_lm",
            Objective::Seq2seq => "seq2seq",
            Objective::Mlm => "mlm",
            // --- instruction tuning ---
            Objective::Sft => "sft",
        }
    }

    /// Check once, before training, that `model` has what this objective needs.
    pub fn check(&self, model: &dyn Model) -> Result<()> {
        match self {
            Objective::CausalLm if model.as_seq2seq().is_some() => Err(Error::input(
                "model.family = \"seq2seq\" trains on source/target pairs: set train.objective = \"seq2seq\"",
            )),
            Objective::CausalLm if model.as_causal_lm().is_none() => Err(Error::input(format!(
                "train.objective = \"causal_lm\" needs a causal language model; family {} is not one",
                model.config().family()
            ))),
            Objective::Seq2seq if model.as_seq2seq().is_none() => Err(Error::input(format!(
                "train.objective = \"seq2seq\" needs an encoder-decoder (model.family = \"seq2seq\"); family {} is not one",
                model.config().family()
            ))),
            Objective::Mlm if model.as_encoder().and_then(|e| e.as_masked_lm()).is_none() => Err(Error::input(format!(
                "train.objective = \"mlm\" needs an encoder with a masked-LM head (family bert with model.mlm_head = true); family {} is not one",
                model.config().family()
            ))),
            // --- instruction tuning ---
            Objective::Sft if model.as_causal_lm().is_none() => Err(Error::input(format!(
                "supervised fine-tuning needs a causal language model; family {} is not one",
                model.config().family()
            ))),
            _ => Ok(()),
        }
    }

    /// The loss of packed rows (`jielong sft --packing`): only supervised fine-tuning packs.
    pub fn packed_loss(&self, model: &dyn Model, ids: &Tensor, targets: &Tensor, packing: &jielong_models::Packing, opts: ForwardOpts) -> Result<Tensor> {
        match self {
            Objective::Sft => {
                let lm = model.as_causal_lm().ok_or_else(|| Error::Other("sft objective without a causal LM".into()))?;
                Ok(lm.packed_loss_on_targets(ids, targets, packing, opts)?)
            }
            other => Err(Error::Other(format!("objective {} takes no packed batches", other.name()))),
        }
    }

    /// The loss of `ids` (b, t) against `targets` (b, t), the mean over the batch's tokens.
    pub fn loss(&self, model: &dyn Model, ids: &Tensor, targets: &Tensor, opts: ForwardOpts) -> Result<Tensor> {
        match self {
            Objective::CausalLm => {
                let lm = model.as_causal_lm().ok_or_else(|| Error::Other("causal_lm objective without a causal LM".into()))?;
                Ok(lm.loss(ids, targets, opts)?)
            }
            Objective::Seq2seq => Err(Error::input(
                "objective seq2seq reads source/target pairs, not token windows: train it with `jielong train` (seq2seq.rs), evaluate it with `jielong eval --pairs FILE.jsonl`",
            )),
            Objective::Mlm => {
                let mlm = model.as_encoder().and_then(|e| e.as_masked_lm()).ok_or_else(|| Error::Other("mlm objective without a masked LM".into()))?;
                // Training windows have no padding: every position is attended to.
                let mask = Tensor::ones(ids.dims2()?, candle_core::DType::U32, ids.device())?;
                Ok(mlm.mlm_loss(ids, None, &mask, targets, opts)?)
            }
            // --- instruction tuning ---
            Objective::Sft => {
                let lm = model.as_causal_lm().ok_or_else(|| Error::Other("sft objective without a causal LM".into()))?;
                Ok(lm.loss_on_targets(ids, targets, opts)?)
            }
        }
    }
}
