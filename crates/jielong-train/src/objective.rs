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

    // --- instruction tuning ---
    /// Supervised fine-tuning: next-token cross-entropy on the positions whose target is not
    /// `IGNORE_TARGET` (the assistant's tokens), mean over those.
    Sft,
}

impl Objective {
    pub fn name(&self) -> &'static str {
        match self {
            Objective::CausalLm => "causal_lm",
            // --- instruction tuning ---
            Objective::Sft => "sft",
        }
    }

    /// Check once, before training, that `model` has what this objective needs.
    pub fn check(&self, model: &dyn Model) -> Result<()> {
        match self {
            Objective::CausalLm if model.as_causal_lm().is_none() => Err(Error::input(format!(
                "train.objective = \"causal_lm\" needs a causal language model; family {} is not one",
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

    /// The loss of `ids` (b, t) against `targets` (b, t), the mean over the batch's tokens.
    pub fn loss(&self, model: &dyn Model, ids: &Tensor, targets: &Tensor, opts: ForwardOpts) -> Result<Tensor> {
        match self {
            Objective::CausalLm => {
                let lm = model.as_causal_lm().ok_or_else(|| Error::Other("causal_lm objective without a causal LM".into()))?;
                Ok(lm.loss(ids, targets, opts)?)
            }
            // --- instruction tuning ---
            Objective::Sft => {
                let lm = model.as_causal_lm().ok_or_else(|| Error::Other("sft objective without a causal LM".into()))?;
                Ok(lm.loss_on_targets(ids, targets, opts)?)
            }
        }
    }
}
