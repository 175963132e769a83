//! Task heads on top of a model's hidden states, for fine-tuning (`jielong finetune`):
//!
//! - sequence classification: the sequence pooled to one vector, dropout, then a linear layer
//!   to one logit per label (Hugging Face's `BertForSequenceClassification`: the pooler's
//!   output → `classifier`; `GPT2ForSequenceClassification` / `LlamaForSequenceClassification`:
//!   the last real token's final hidden state → a bias-free `score`);
//! - token classification: the same linear layer on every position's hidden state
//!   (`BertForTokenClassification`: `classifier`);
//! - span extraction (extractive QA): `qa_outputs`, a linear layer to two logits per position,
//!   the answer's start and end (`BertForQuestionAnswering`).
//!
//! A head is family-agnostic: it reads the [`Encoder`] capability (hidden states, and the
//! family's own pooler if it has one), so every family that answers `as_encoder` (BERT, ALBERT,
//! GPT, Llama) takes every head. Its parameters are named as transformers names them
//! (`classifier.weight`, `score.weight`, `qa_outputs.bias`), at the top level beside the
//! body's, so a fine-tuned checkpoint's tensors are the ones `save_pretrained` writes.

use crate::{Encoder, ForwardOpts};
use candle_core::{DType, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use jielong_nn::{linear, Dropout, MaskSource, WeightLayout};

/// What a head predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadKind {
    /// One label per sequence (or sequence pair).
    SequenceClassification,
    /// One label per token (named entities).
    TokenClassification,
    /// A start and an end logit per token (extractive question answering).
    SpanExtraction,
}

impl HeadKind {
    /// The task's name on the command line (`--task`).
    pub fn task_name(self) -> &'static str {
        match self {
            HeadKind::SequenceClassification => "classify",
            HeadKind::TokenClassification => "ner",
            HeadKind::SpanExtraction => "qa",
        }
    }
}

/// How a sequence becomes one vector for sequence classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The first token (`[CLS]`) through the family's pooler when it has one (BERT's
    /// tanh(dense(·))), else the first token's hidden state itself.
    Cls,
    /// The mean of the real tokens' hidden states (padding excluded).
    Mean,
    /// The last real token's hidden state: what a causal model has read everything by.
    Last,
}

impl Pooling {
    /// The default for a family: the last token for causal families, `[CLS]` otherwise.
    pub fn default_for(family: &str) -> Self {
        if is_causal_family(family) {
            Pooling::Last
        } else {
            Pooling::Cls
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Cls => "cls",
            Pooling::Mean => "mean",
            Pooling::Last => "last",
        }
    }
}

impl std::str::FromStr for Pooling {
    type Err = jielong_core::Error;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "cls" => Ok(Pooling::Cls),
            "mean" => Ok(Pooling::Mean),
            "last" => Ok(Pooling::Last),
            _ => Err(jielong_core::Error::input(format!("--pooling {s}: use cls, mean or last"))),
        }
    }
}

fn is_causal_family(family: &str) -> bool {
    matches!(family, "gpt" | "llama")
}

/// The module name transformers gives the head's linear layer in `family`, and whether it has
/// a bias: encoder families `classifier` / `qa_outputs` with biases; causal families a
/// bias-free `score` for sequence classification (GPT-2 and Llama), and `score` with a bias
/// for token classification (Llama's; GPT-2 writes `classifier`, which we follow for gpt).
pub fn head_module(family: &str, kind: HeadKind) -> (&'static str, bool) {
    match (kind, family) {
        (HeadKind::SpanExtraction, _) => ("qa_outputs", true),
        (HeadKind::SequenceClassification, f) if is_causal_family(f) => ("score", false),
        (HeadKind::TokenClassification, "llama") => ("score", true),
        _ => ("classifier", true),
    }
}

/// A task head: a linear layer (out, in) in `nn.Linear`'s layout and its pooling.
pub struct TaskHead {
    pub kind: HeadKind,
    pub pooling: Pooling,
    /// `classifier`, `score` or `qa_outputs` (see [`head_module`]).
    pub module: &'static str,
    pub n_out: usize,
    w: Tensor,
    b: Option<Tensor>,
    dropout: Dropout,
}

impl TaskHead {
    /// A head for `family` with `n_out` outputs (labels; 2 for span extraction), its
    /// parameters created (or fetched) through `vb` at the top level: N(0, 0.02) weights and
    /// zero biases, as transformers initialises them. `dropout`: applied to the head's input
    /// in training (BERT's `hidden_dropout_prob`).
    pub fn new(kind: HeadKind, pooling: Pooling, family: &str, hidden: usize, n_out: usize, dropout: f32, vb: VarBuilder) -> Result<Self> {
        let n_out = if kind == HeadKind::SpanExtraction { 2 } else { n_out };
        if n_out == 0 {
            candle_core::bail!("a classification head needs at least one label");
        }
        let (module, bias) = head_module(family, kind);
        let vb = vb.pp(module);
        let w = vb.get_with_hints((n_out, hidden), "weight", Init::Randn { mean: 0.0, stdev: 0.02 })?;
        let b = if bias { Some(vb.get_with_hints(n_out, "bias", Init::Const(0.0))?) } else { None };
        Ok(Self { kind, pooling, module, n_out, w, b, dropout: Dropout { p: dropout } })
    }

    /// The names of the head's tensors.
    pub fn tensor_names(&self) -> Vec<String> {
        let mut v = vec![format!("{}.weight", self.module)];
        if self.b.is_some() {
            v.push(format!("{}.bias", self.module));
        }
        v
    }

    /// One vector per sequence (b, c) from `hidden` (b, t, c); `mask` (b, t) non-zero at real
    /// tokens (padding on the right).
    pub fn pool(&self, enc: &dyn Encoder, hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
        pool(self.pooling, enc, hidden, mask)
    }

    /// The head's logits: (b, n_labels) for sequence classification, (b, t, n_labels) for
    /// token classification, (b, t, 2) for span extraction (start, end). `opts.dropout_seed`
    /// set: training, with dropout on the head's input.
    pub fn logits(&self, enc: &dyn Encoder, hidden: &Tensor, mask: &Tensor, opts: ForwardOpts) -> Result<Tensor> {
        let src = opts.dropout_seed.filter(|_| self.dropout.p > 0.0).map(|seed| MaskSource { seed, site: HEAD_DROPOUT_SITE, first_row: opts.first_row });
        let x = match self.kind {
            HeadKind::SequenceClassification => self.pool(enc, hidden, mask)?,
            HeadKind::TokenClassification => hidden.clone(),
            HeadKind::SpanExtraction => return linear(hidden, &self.w, self.b.as_ref(), WeightLayout::OutIn),
        };
        let x = self.dropout.forward(&x, src)?;
        linear(&x, &self.w, self.b.as_ref(), WeightLayout::OutIn)
    }

    /// Where sequence classification reads each sequence's vector when it pools one position
    /// ([CLS]: 0; last: the last real token, padding on the right), so the encoder can compute
    /// only those rows in its last layer ([`Encoder::hidden_states_at`]). None when the head
    /// needs every position (mean pooling, token and span heads).
    pub fn pooled_positions(&self, mask: &Tensor) -> Result<Option<Vec<u32>>> {
        if self.kind != HeadKind::SequenceClassification {
            return Ok(None);
        }
        match self.pooling {
            Pooling::Cls => Ok(Some(vec![0; mask.dim(0)?])),
            Pooling::Last => Ok(Some(mask.ne(0u32)?.to_dtype(DType::U32)?.sum(1)?.to_vec1::<u32>()?.into_iter().map(|n| n.max(1) - 1).collect())),
            Pooling::Mean => Ok(None),
        }
    }

    /// [`TaskHead::pool`] from the hidden states at [`TaskHead::pooled_positions`] (b, c):
    /// under [CLS] pooling through the family's pooler when it has one.
    pub fn pool_at(&self, enc: &dyn Encoder, at: &Tensor) -> Result<Tensor> {
        match self.pooling {
            Pooling::Cls => Ok(enc.pooled(&at.unsqueeze(1)?)?.unwrap_or_else(|| at.clone())),
            _ => Ok(at.clone()),
        }
    }

    /// [`TaskHead::logits`] of sequence classification from the hidden states at
    /// [`TaskHead::pooled_positions`] (b, c).
    pub fn logits_at(&self, enc: &dyn Encoder, at: &Tensor, opts: ForwardOpts) -> Result<Tensor> {
        self.logits_from_pooled(&self.pool_at(enc, at)?, opts)
    }

    /// Sequence classification from vectors already pooled (b, c): dropout in training, then
    /// the linear layer. A frozen body's pooled vectors never change, so a trainer can compute
    /// them once and train the head on them alone.
    pub fn logits_from_pooled(&self, pooled: &Tensor, opts: ForwardOpts) -> Result<Tensor> {
        let src = opts.dropout_seed.filter(|_| self.dropout.p > 0.0).map(|seed| MaskSource { seed, site: HEAD_DROPOUT_SITE, first_row: opts.first_row });
        linear(&self.dropout.forward(pooled, src)?, &self.w, self.b.as_ref(), WeightLayout::OutIn)
    }

    /// Span extraction's logits split: start (b, t) and end (b, t).
    pub fn span_logits(&self, enc: &dyn Encoder, hidden: &Tensor, mask: &Tensor) -> Result<(Tensor, Tensor)> {
        let l = self.logits(enc, hidden, mask, ForwardOpts::default())?;
        Ok((l.narrow(2, 0, 1)?.squeeze(2)?, l.narrow(2, 1, 1)?.squeeze(2)?))
    }
}

/// The dropout site of the head (far above any layer's, so its masks are its own).
const HEAD_DROPOUT_SITE: u64 = 1 << 20;

/// See [`TaskHead::pool`].
pub fn pool(pooling: Pooling, enc: &dyn Encoder, hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let (b, t, c) = hidden.dims3()?;
    match pooling {
        Pooling::Cls => match enc.pooled(hidden)? {
            Some(p) => Ok(p),
            None => hidden.narrow(1, 0, 1)?.squeeze(1),
        },
        Pooling::Mean => {
            let m = mask.ne(0u32)?.to_dtype(hidden.dtype())?; // (b, t)
            let n = m.sum_keepdim(1)?.clamp(1.0, f64::MAX)?; // (b, 1)
            hidden.broadcast_mul(&m.unsqueeze(2)?)?.sum(1)?.broadcast_div(&n)
        }
        Pooling::Last => {
            let lens: Vec<u32> = mask.ne(0u32)?.to_dtype(DType::U32)?.sum(1)?.to_vec1()?;
            let rows: Vec<u32> = lens.iter().enumerate().map(|(i, &n)| (i * t) as u32 + n.max(1) - 1).collect();
            hidden.reshape((b * t, c))?.index_select(&Tensor::new(rows.as_slice(), hidden.device())?, 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::FamilyConfig;
    use crate::BertConfig;
    use candle_core::Device;
    use jielong_nn::ParamStore;

    #[test]
    fn pool_mean_and_last_ignore_padding() {
        let cfg = BertConfig { vocab_size: 30, n_layer: 1, n_head: 2, n_embd: 8, n_inner: 16, max_seq_len: 8, dropout: 0.0, pooler: false, mlm_head: false, ..BertConfig::tiny() };
        let params = ParamStore::new(1);
        let model = cfg.build(params.var_builder(&Device::Cpu)).unwrap();
        let enc = model.as_encoder().unwrap();
        let dev = Device::Cpu;
        let h = Tensor::arange(0f32, 24.0, &dev).unwrap().reshape((2, 3, 4)).unwrap();
        let mask = Tensor::new(&[[1u32, 1, 1], [1, 1, 0]], &dev).unwrap();
        let mean: Vec<Vec<f32>> = pool(Pooling::Mean, enc, &h, &mask).unwrap().to_vec2().unwrap();
        assert_eq!(mean[0], vec![4.0, 5.0, 6.0, 7.0]);
        assert_eq!(mean[1], vec![14.0, 15.0, 16.0, 17.0]);
        let last: Vec<Vec<f32>> = pool(Pooling::Last, enc, &h, &mask).unwrap().to_vec2().unwrap();
        assert_eq!(last[0], vec![8.0, 9.0, 10.0, 11.0]);
        assert_eq!(last[1], vec![16.0, 17.0, 18.0, 19.0]);
        // No pooler: [CLS] is the first hidden state itself.
        let cls: Vec<Vec<f32>> = pool(Pooling::Cls, enc, &h, &mask).unwrap().to_vec2().unwrap();
        assert_eq!(cls[1], vec![12.0, 13.0, 14.0, 15.0]);
    }

    #[test]
    fn head_module_names_follow_transformers() {
        assert_eq!(head_module("bert", HeadKind::SequenceClassification), ("classifier", true));
        assert_eq!(head_module("gpt", HeadKind::SequenceClassification), ("score", false));
        assert_eq!(head_module("llama", HeadKind::SequenceClassification), ("score", false));
        assert_eq!(head_module("albert", HeadKind::SpanExtraction), ("qa_outputs", true));
    }
}
