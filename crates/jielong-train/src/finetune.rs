//! Task fine-tuning for sequence classification (`jielong finetune --task classify`): a
//! pretrained checkpoint (BERT, ALBERT, an imported MiniLM, GPT, Llama) gets a new head
//! (`jielong_models::heads`: the pooled sequence → a linear layer, one logit per label) and is
//! trained on labelled text under one of three regimes:
//!
//! - `frozen`: only the head trains; the body's hidden states are detached, so its weights
//!   (the pooler included) stay bit-identical to the base's;
//! - `full`: every weight trains, body and head;
//! - `lora`: LoRA adapters on the body's linear layers and the head train; the base's weights
//!   stay as they are and the adapter is saved in PEFT's layout (`task_type` SEQ_CLS, the head
//!   named in `modules_to_save` and stored beside the adapter's tensors, as PEFT stores it).
//!
//! The loop is the classic fine-tuning recipe (as transformers' `Trainer` runs it): a few
//! epochs over the shuffled examples, AdamW, a linear warmup over the first 10% of the steps
//! then a linear decay to zero, gradients clipped to norm 1, dropout in training. After each
//! epoch the validation set (`--val-data`, or `--val-fraction` of the training file held out)
//! is scored: loss, accuracy and macro-F1, beside the majority-class baseline.
//!
//! Output folder:
//!
//! ```text
//! OUT/task.json            task, labels, regime, pooling, the model config, the base and the
//!                          SHA-256 of its weights, the last validation scores
//! OUT/head.safetensors     the head (`classifier.weight`/`.bias`, or GPT/Llama's `score.weight`)
//! OUT/model.safetensors    the body (frozen and full; a LoRA run keeps the base's)
//! OUT/adapter_config.json, adapter_model.safetensors, jielong_adapter.json   (lora)
//! OUT/tokenizer.json       the base's tokenizer
//! OUT/metrics.jsonl        one line per epoch
//! ```
//!
//! [`Classifier::load`] reads it back for `jielong predict` and `jielong eval`.

use crate::adamw::{AdamW, AdamWParams};
use crate::adapter::{self, AdapterBase};
use crate::checkpoint::Checkpoint;
use crate::classify_data::{label_ids, label_set, read_examples, Example};
use crate::classify_metrics::{majority_baseline, scores, Scores};
use candle_core::{Device, Tensor};
use jielong_core::{Error, Result, Rng};
use jielong_models::{HeadKind, Model, ModelConfig, Pooling, TaskHead};
use jielong_nn::{Lora, LoraConfig, ParamStore};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

pub const TASK_FILE: &str = "task.json";
pub const HEAD_FILE: &str = "head.safetensors";
const BODY_FILE: &str = "model.safetensors";

/// What a fine-tuning run trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FtRegime {
    /// The head only; the body is frozen.
    Frozen,
    /// Every weight.
    Full,
    /// LoRA adapters on the body and the head.
    Lora,
}

impl FtRegime {
    pub fn name(self) -> &'static str {
        match self {
            FtRegime::Frozen => "frozen",
            FtRegime::Full => "full",
            FtRegime::Lora => "lora",
        }
    }
}

/// A classification fine-tuning run's settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FinetuneConfig {
    pub base: PathBuf,
    pub data: PathBuf,
    pub val_data: Option<PathBuf>,
    /// Held out of `data` when there is no `val_data` (0: no validation).
    pub val_fraction: f64,
    pub regime: FtRegime,
    pub lora: LoraConfig,
    /// None: the family's default (`cls` for encoders, `last` for causal models).
    pub pooling: Option<Pooling>,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    /// Longest tokenized input (special tokens included); longer ones are cut.
    pub max_len: usize,
    /// Dropout on the head's input (BERT's `hidden_dropout_prob` is 0.1).
    pub head_dropout: f32,
    pub seed: u64,
}

/// `task.json`: what `predict` and `eval` need to rebuild the classifier.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TaskRecord {
    pub task: String,
    pub labels: Vec<String>,
    pub regime: FtRegime,
    pub pooling: Pooling,
    pub head_module: String,
    pub family: String,
    pub model: ModelConfig,
    pub base: PathBuf,
    /// SHA-256 of the base's `model.safetensors`.
    pub base_hash: String,
    pub tokenizer_hash: String,
    pub max_len: usize,
    pub lora: Option<LoraConfig>,
    pub trainable_params: usize,
    pub total_params: usize,
    pub val: Option<Scores>,
    pub majority: Option<Scores>,
    pub settings: FinetuneConfig,
    /// `qa`: the window and answer settings (`finetune_span`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qa: Option<crate::finetune_span::QaSettings>,
    /// `ner` / `qa`: the last validation scores (entity P/R/F1, or EM/F1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_val: Option<serde_json::Value>,
    /// A LoRA run folded into its base by `jielong lora merge`: `model.safetensors` holds the
    /// merged body and there is no adapter to apply.
    #[serde(default)]
    pub lora_merged: bool,
}

/// One epoch's numbers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EpochRow {
    pub epoch: usize,
    pub step: u64,
    pub train_loss: f64,
    pub val_loss: Option<f64>,
    pub val: Option<Scores>,
    pub examples_per_s: f64,
    pub elapsed_s: f64,
}

#[derive(Debug, Clone)]
pub struct FinetuneSummary {
    pub labels: Vec<String>,
    pub train_examples: usize,
    pub val_examples: usize,
    pub truncated: usize,
    pub trainable: usize,
    pub total_params: usize,
    pub epochs: Vec<EpochRow>,
    pub majority: Option<Scores>,
    pub tokens_per_s: f64,
    pub elapsed_s: f64,
}

/// Inputs tokenized for the model: ids and segment ids, cut to `max_len`.
pub(crate) struct Encoder {
    tk: tokenizers::Tokenizer,
    pad: u32,
}

impl Encoder {
    pub(crate) fn new(tk: &jielong_tokenizer::Tokenizer, max_len: usize) -> Result<Self> {
        let mut t = tk.inner().clone();
        t.with_padding(None);
        let params = tokenizers::TruncationParams { max_length: max_len, strategy: tokenizers::TruncationStrategy::LongestFirst, ..Default::default() };
        t.with_truncation(Some(params)).map_err(|e| Error::input(format!("cannot truncate to {max_len} tokens: {e}")))?;
        let pad = ["[PAD]", "<pad>", "<|endoftext|>"].iter().find_map(|p| t.token_to_id(p)).unwrap_or(0);
        Ok(Self { tk: t, pad })
    }

    /// (ids, segment ids, whether it was cut).
    fn encode(&self, e: &Example) -> Result<(Vec<u32>, Vec<u32>, bool)> {
        let enc = match &e.text_pair {
            Some(p) => self.tk.encode((e.text.as_str(), p.as_str()), true),
            None => self.tk.encode(e.text.as_str(), true),
        }
        .map_err(|err| Error::input(format!("{}: tokenizing: {err}", e.source)))?;
        if enc.get_ids().is_empty() {
            return Err(Error::input(format!("{}: the text gives no tokens", e.source)));
        }
        Ok((enc.get_ids().to_vec(), enc.get_type_ids().to_vec(), !enc.get_overflowing().is_empty()))
    }

    /// Right-padded (ids, segment ids, mask), each (b, t) u32.
    pub(crate) fn batch(&self, rows: &[&(Vec<u32>, Vec<u32>)], dev: &Device) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, t) = (rows.len(), rows.iter().map(|r| r.0.len()).max().unwrap_or(1));
        let (mut ids, mut types, mut mask) = (vec![self.pad; b * t], vec![0u32; b * t], vec![0u32; b * t]);
        for (i, (r, ty)) in rows.iter().map(|r| (&r.0, &r.1)).enumerate() {
            ids[i * t..i * t + r.len()].copy_from_slice(r);
            types[i * t..i * t + ty.len()].copy_from_slice(ty);
            mask[i * t..i * t + r.len()].iter_mut().for_each(|m| *m = 1);
        }
        Ok((Tensor::from_vec(ids, (b, t), dev)?, Tensor::from_vec(types, (b, t), dev)?, Tensor::from_vec(mask, (b, t), dev)?))
    }
}

/// Logits (b, n_labels). `train`: Some(dropout seed) in training; `frozen`: the body's output
/// is detached (no gradient reaches it).
pub(crate) fn forward(model: &dyn Model, head: &TaskHead, ids: &Tensor, types: &Tensor, mask: &Tensor, train: Option<u64>, frozen: bool) -> Result<Tensor> {
    let enc = model.as_encoder().ok_or_else(|| Error::input(format!("family {} gives no hidden states to put a classification head on", model.config().family())))?;
    let opts = jielong_models::ForwardOpts { dropout_seed: train, first_row: 0 };
    let body_train = train.filter(|_| !frozen).map(|_| opts);
    if let Some(positions) = head.pooled_positions(mask)? {
        // One position per sequence is read: the last layer computes only those rows.
        let at = enc.hidden_states_at(ids, Some(types), mask, &positions, body_train)?;
        let at = if body_train.is_some() { at } else { at.detach() };
        return Ok(head.logits_at(enc, &at, opts)?);
    }
    let hidden = match (train, frozen) {
        (Some(_), false) => enc.hidden_states_train(ids, Some(types), mask, opts)?,
        _ => enc.hidden_states(ids, Some(types), mask)?.detach(),
    };
    Ok(head.logits(enc, &hidden, mask, opts)?)
}

/// The pooled vectors (n, c) of `rows` under a frozen body, computed once (no dropout, no
/// gradient): the head trains on them alone.
fn pooled_features(model: &dyn Model, head: &TaskHead, enc: &Encoder, rows: &[(Vec<u32>, Vec<u32>)], batch_size: usize) -> Result<Tensor> {
    let dev = Device::Cpu;
    let e = model.as_encoder().ok_or_else(|| Error::input(format!("family {} gives no hidden states to put a classification head on", model.config().family())))?;
    let mut parts = Vec::new();
    for chunk in rows.chunks(batch_size.max(1)) {
        let refs: Vec<&(Vec<u32>, Vec<u32>)> = chunk.iter().collect();
        let (ids, types, mask) = enc.batch(&refs, &dev)?;
        let pooled = match head.pooled_positions(&mask)? {
            Some(positions) => head.pool_at(e, &e.hidden_states_at(&ids, Some(&types), &mask, &positions, None)?)?,
            None => head.pool(e, &e.hidden_states(&ids, Some(&types), &mask)?, &mask)?,
        };
        parts.push(pooled.detach());
    }
    Ok(Tensor::cat(&parts, 0)?)
}

/// Mean loss and each example's probabilities from pooled vectors `feats` (n, c).
fn score_pooled(head: &TaskHead, feats: &Tensor, labels: &[u32]) -> Result<(Option<f64>, Vec<Vec<f32>>)> {
    let logits = head.logits_from_pooled(feats, Default::default())?;
    let loss = jielong_nn::cross_entropy(&logits, &Tensor::new(labels, feats.device())?)?.to_scalar::<f32>()? as f64;
    Ok((Some(loss), candle_nn::ops::softmax_last_dim(&logits)?.to_vec2::<f32>()?))
}

/// Mean loss and each example's probabilities over `rows` (no dropout, no gradient).
fn score_rows(model: &dyn Model, head: &TaskHead, enc: &Encoder, rows: &[(Vec<u32>, Vec<u32>)], labels: Option<&[u32]>, batch_size: usize) -> Result<(Option<f64>, Vec<Vec<f32>>)> {
    let dev = Device::Cpu;
    let (mut probs, mut loss_sum) = (Vec::with_capacity(rows.len()), 0f64);
    for (k, chunk) in rows.chunks(batch_size.max(1)).enumerate() {
        let refs: Vec<&(Vec<u32>, Vec<u32>)> = chunk.iter().collect();
        let (ids, types, mask) = enc.batch(&refs, &dev)?;
        let logits = forward(model, head, &ids, &types, &mask, None, true)?;
        if let Some(l) = labels {
            let y = Tensor::new(&l[k * batch_size..k * batch_size + chunk.len()], &dev)?;
            loss_sum += jielong_nn::cross_entropy(&logits, &y)?.to_scalar::<f32>()? as f64 * chunk.len() as f64;
        }
        probs.extend(candle_nn::ops::softmax_last_dim(&logits)?.to_vec2::<f32>()?);
    }
    Ok((labels.map(|_| loss_sum / rows.len().max(1) as f64), probs))
}

pub(crate) fn argmax(p: &[f32]) -> u32 {
    p.iter().enumerate().fold((0, f32::MIN), |best, (i, &v)| if v > best.1 { (i, v) } else { best }).0 as u32
}

/// The linear warmup (first 10% of the steps) and linear decay to zero of transformers'
/// `get_linear_schedule_with_warmup`.
pub(crate) fn lr_at(peak: f64, step: u64, total: u64) -> f64 {
    let warmup = (total / 10).max(1);
    if step < warmup {
        peak * (step + 1) as f64 / warmup as f64
    } else {
        peak * (total.saturating_sub(step)) as f64 / (total - warmup).max(1) as f64
    }
}

/// Refuse a run whose settings cannot work, before any loading.
pub(crate) fn check_run(out: &Path, cfg: &FinetuneConfig) -> Result<()> {
    if out.join(TASK_FILE).exists() {
        return Err(Error::input(format!("{} already holds a fine-tuned model: pick another --out", out.display())));
    }
    for (what, v) in [("--epochs", cfg.epochs), ("--batch-size", cfg.batch_size), ("--max-len", cfg.max_len)] {
        if v == 0 {
            return Err(Error::input(format!("{what} must be at least 1")));
        }
    }
    if !(0.0..1.0).contains(&cfg.val_fraction) {
        return Err(Error::input(format!("--val-fraction {} must be in [0, 1)", cfg.val_fraction)));
    }
    Ok(())
}

/// What every fine-tuning task shares: the base opened, a new head on it, the regime's
/// trainable weights (head; + body; or + LoRA) under AdamW, and the saving.
pub(crate) struct Setup {
    pub base: Checkpoint,
    pub tk: jielong_tokenizer::Tokenizer,
    pub model: Box<dyn Model>,
    pub params: ParamStore,
    pub family: String,
    pub max_len: usize,
    pub pooling: Pooling,
    pub head_store: ParamStore,
    pub head: TaskHead,
    pub lora: Option<Arc<Lora>>,
    pub opt: AdamW,
    pub n_trainable: usize,
    pub total_params: usize,
    pub base_hash: String,
}

impl Setup {
    /// Open `cfg.base` and put a `kind` head with `n_out` outputs on it.
    pub(crate) fn open(cfg: &FinetuneConfig, kind: HeadKind, n_out: usize) -> Result<Self> {
        let dev = Device::Cpu;
        let base = Checkpoint::open(&cfg.base)?;
        let tk = base.load_tokenizer(None)?;
        // Frozen and LoRA runs read the body detached: no gradient is computed for it.
        let (mut model, params) = base.load_params_with(&dev, cfg.regime != FtRegime::Full)?;
        let family = model.config().family().to_string();
        let (hidden, max_seq) = {
            let enc = model.as_encoder().ok_or_else(|| Error::input(format!("{}: a {family} model gives no hidden states to put a {} head on", base.dir.display(), kind.task_name())))?;
            (enc.hidden_size(), enc.max_seq_len())
        };
        let max_len = cfg.max_len.min(max_seq);
        let pooling = cfg.pooling.unwrap_or_else(|| Pooling::default_for(&family));
        let head_store = ParamStore::new(cfg.seed ^ 0x6865_6164);
        let head = TaskHead::new(kind, pooling, &family, hidden, n_out, cfg.head_dropout, head_store.var_builder(&dev))?;
        let lora = match cfg.regime {
            FtRegime::Lora => {
                let sites = model.linear_sites();
                if sites.is_empty() {
                    return Err(Error::input(format!("family {family} has no linear layers a LoRA can adapt: use --regime frozen or full")));
                }
                let mut lcfg = cfg.lora.clone();
                lcfg.targets = jielong_models::lora_targets::expand_targets(&family, &cfg.lora.targets, &sites);
                for t in &cfg.lora.targets {
                    let one = LoraConfig { targets: jielong_models::lora_targets::expand_targets(&family, std::slice::from_ref(t), &sites), ..cfg.lora.clone() };
                    if !sites.iter().any(|s| one.targets_module(&s.name)) {
                        return Err(Error::input(format!("--lora-targets: {t:?} names no linear layer of this {family} model (use q,k,v,o,mlp, all-linear, or a module name such as {})", sites[0].name)));
                    }
                }
                let l = Arc::new(Lora::new(&lcfg, &sites, cfg.seed, &dev)?);
                model.set_lora(Some(l.clone()))?;
                Some(l)
            }
            _ => None,
        };
        let mut trainable = head_store.vars();
        match cfg.regime {
            FtRegime::Frozen => {}
            FtRegime::Full => trainable.extend(params.vars()),
            FtRegime::Lora => trainable.extend(lora.as_ref().expect("made above").params().vars()),
        }
        let n_trainable: usize = trainable.iter().map(|(_, v)| v.elem_count()).sum();
        let total_params = params.n_params() + head_store.n_params() + lora.as_ref().map(|l| l.params().n_params()).unwrap_or(0);
        let opt = AdamW::new(trainable, AdamWParams { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: cfg.weight_decay })?;
        let base_hash = adapter::weights_hash(&base.dir)?;
        Ok(Self { base, tk, model, params, family, max_len, pooling, head_store, head, lora, opt, n_trainable, total_params, base_hash })
    }

    /// One optimizer step on `loss`: gradients clipped to norm 1, learning rate `lr`. The
    /// loss's value comes back; a non-finite one is an error.
    pub(crate) fn step(&mut self, loss: &Tensor, lr: f64, step: u64) -> Result<f64> {
        let grads = loss.backward()?;
        let norm = self.opt.grad_norm(&grads)?;
        self.opt.step(&grads, lr, if norm > 1.0 { 1.0 / norm } else { 1.0 })?;
        let l = loss.to_scalar::<f32>()? as f64;
        if !l.is_finite() {
            return Err(Error::Other(format!("loss became {l} at step {step}: lower --lr")));
        }
        Ok(l)
    }

    /// The head, the body (frozen, full) or the adapter in PEFT's layout with `peft_task`
    /// (`SEQ_CLS`, `TOKEN_CLS`, `QUESTION_ANS`), and the tokenizer.
    pub(crate) fn save_weights(&self, out: &Path, peft_task: &str) -> Result<()> {
        self.head_store.save(&out.join(HEAD_FILE))?;
        match &self.lora {
            None => self.params.save(&out.join(BODY_FILE))?,
            Some(l) => {
                let _ = std::fs::remove_file(out.join(BODY_FILE));
                let record = AdapterBase { base_hash: self.base_hash.clone(), base_checkpoint: self.base.dir.clone(), family: self.family.clone(), rank: l.cfg.rank, alpha: l.cfg.alpha, dropout: l.cfg.dropout, targets: l.cfg.targets.clone() };
                adapter::save_for_task(out, l, &record, peft_task, &self.head_store)?;
            }
        }
        self.tk.save(out)
    }

    /// `task.json` without scores.
    pub(crate) fn record(&self, cfg: &FinetuneConfig, task: &str, labels: Vec<String>) -> TaskRecord {
        TaskRecord {
            task: task.into(),
            labels,
            regime: cfg.regime,
            pooling: self.pooling,
            head_module: self.head.module.to_string(),
            family: self.family.clone(),
            model: self.base.meta.model.clone(),
            base: self.base.dir.clone(),
            base_hash: self.base_hash.clone(),
            tokenizer_hash: self.tk.hash().to_string(),
            max_len: self.max_len,
            lora: self.lora.as_ref().map(|l| l.cfg.clone()),
            trainable_params: self.n_trainable,
            total_params: self.total_params,
            val: None,
            majority: None,
            settings: cfg.clone(),
            qa: None,
            span_val: None,
            lora_merged: false,
        }
    }
}

/// A fine-tuned folder read back: its record, the body (with the adapter for LoRA), the head
/// and the tokenizer. `task`: the task the caller runs (a head trained for another is refused).
pub(crate) fn load_task(dir: &Path, task: &str) -> Result<(TaskRecord, Box<dyn Model>, TaskHead, jielong_tokenizer::Tokenizer)> {
    let path = dir.join(TASK_FILE);
    if !path.is_file() {
        return Err(Error::input(format!("{}: no {TASK_FILE} here; pass the folder `jielong finetune` wrote", dir.display())));
    }
    let record = read_record(dir)?;
    if record.task != task {
        return Err(Error::input(format!("{} holds a head for task {:?}, not {task:?}: pass a checkpoint fine-tuned with --task {task}", dir.display(), record.task)));
    }
    let kind = match task {
        "ner" => HeadKind::TokenClassification,
        "qa" => HeadKind::SpanExtraction,
        _ => HeadKind::SequenceClassification,
    };
    let dev = Device::Cpu;
    let tk = jielong_tokenizer::Tokenizer::load(&dir.join("tokenizer.json"))?;
    if tk.hash() != record.tokenizer_hash {
        return Err(Error::format(dir.join("tokenizer.json"), "is not the tokenizer the model was fine-tuned with (hash differs): restore it"));
    }
    // A LoRA run folded into its base by `jielong lora merge` loads as a full one.
    let with_adapter = record.regime == FtRegime::Lora && !record.lora_merged;
    let (mut model, _params) = match with_adapter {
        true => {
            let base = Checkpoint::open(&record.base)?;
            base.load_params(&dev)?
        }
        false => {
            let params = ParamStore::new(0);
            let model = record.model.build(params.var_builder(&dev))?;
            params.load(&dir.join(BODY_FILE), |n| Some(n.to_string()))?;
            (model, params)
        }
    };
    if with_adapter {
        let base = Checkpoint::open(&record.base)?;
        adapter::load(dir, &base.dir, &mut *model)?;
    }
    let head_store = ParamStore::new(0);
    let head = TaskHead::new(kind, record.pooling, &record.family, model.as_encoder().map(|e| e.hidden_size()).unwrap_or(0), record.labels.len().max(1), 0.0, head_store.var_builder(&dev))?;
    head_store.load(&dir.join(HEAD_FILE), |n| Some(n.to_string()))?;
    if let Some(e) = model.as_encoder() {
        if !with_adapter {
            e.prepare_inference()?;
        }
    }
    Ok((record, model, head, tk))
}

/// `task.json` of a fine-tuned folder.
pub fn read_record(dir: &Path) -> Result<TaskRecord> {
    let path = dir.join(TASK_FILE);
    if !path.is_file() {
        return Err(Error::input(format!("{}: no {TASK_FILE} here; pass the folder `jielong finetune` wrote", dir.display())));
    }
    let text = jielong_core::fs::read_to_string(&path)?;
    serde_json::from_str(&text).map_err(|e| Error::format(&path, format!("not a jielong fine-tuning record ({e})")))
}

/// Fine-tune `cfg.base` for classification into `out`; `on_epoch` sees each epoch's row.
pub fn finetune_classify(out: &Path, cfg: &FinetuneConfig, on_epoch: &mut dyn FnMut(&EpochRow)) -> Result<FinetuneSummary> {
    let dev = Device::Cpu;
    check_run(out, cfg)?;
    // The data: labels from the training file; validation labels must be among them.
    let mut train = read_examples(&cfg.data, true)?;
    let val = match &cfg.val_data {
        Some(p) => read_examples(p, true)?,
        None if cfg.val_fraction > 0.0 => {
            let mut rng = Rng::derive(cfg.seed, &[0x0076_616c]);
            for i in (1..train.len()).rev() {
                train.swap(i, rng.below(i as u64 + 1) as usize);
            }
            let n_val = ((train.len() as f64 * cfg.val_fraction).round() as usize).clamp(1, train.len().saturating_sub(1).max(1));
            train.split_off(train.len() - n_val)
        }
        None => Vec::new(),
    };
    let labels = label_set(&train);
    if labels.len() < 2 {
        return Err(Error::input(format!("{}: the training examples have {} label(s); a classifier needs at least two", cfg.data.display(), labels.len())));
    }
    let y_train = label_ids(&train, &labels, "every label of the training data is in the set")?;
    let y_val = label_ids(&val, &labels, "a validation label must occur in the training data")?;
    let mut su = Setup::open(cfg, HeadKind::SequenceClassification, labels.len())?;
    let max_len = su.max_len;
    let enc = Encoder::new(&su.tk, max_len)?;
    let (mut truncated, mut rows) = (0usize, Vec::with_capacity(train.len()));
    for e in &train {
        let (ids, types, cut) = enc.encode(e)?;
        truncated += cut as usize;
        rows.push((ids, types));
    }
    let val_rows: Vec<(Vec<u32>, Vec<u32>)> = val.iter().map(|e| enc.encode(e).map(|(i, t, _)| (i, t))).collect::<Result<_>>()?;
    let majority = (!val.is_empty()).then(|| majority_baseline(&y_train, &y_val));

    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let metrics_path = out.join("metrics.jsonl");
    let _ = std::fs::remove_file(&metrics_path);
    let frozen = cfg.regime == FtRegime::Frozen;
    let steps_per_epoch = train.len().div_ceil(cfg.batch_size) as u64;
    let total_steps = steps_per_epoch * cfg.epochs as u64;
    let started = Instant::now();
    // Frozen: the body's pooled vectors are computed once, with the inference copies of its
    // weights (the same values), and the epochs train the head on them.
    let (feats, val_feats) = if frozen {
        if let Some(e) = su.model.as_encoder() {
            e.prepare_inference()?;
        }
        let f = pooled_features(&*su.model, &su.head, &enc, &rows, cfg.batch_size)?;
        let v = if val_rows.is_empty() { None } else { Some(pooled_features(&*su.model, &su.head, &enc, &val_rows, cfg.batch_size)?) };
        (Some(f), v)
    } else {
        (None, None)
    };
    let (mut step, mut tokens, mut epochs, mut last_val) = (0u64, 0usize, Vec::new(), None);
    for epoch in 1..=cfg.epochs {
        let t0 = Instant::now();
        let mut order: Vec<usize> = (0..train.len()).collect();
        let mut rng = Rng::derive(cfg.seed, &[epoch as u64]);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let mut loss_sum = 0f64;
        for chunk in order.chunks(cfg.batch_size) {
            let refs: Vec<&(Vec<u32>, Vec<u32>)> = chunk.iter().map(|&i| &rows[i]).collect();
            tokens += refs.iter().map(|r| r.0.len()).sum::<usize>();
            let (ids, types, mask) = enc.batch(&refs, &dev)?;
            let y = Tensor::new(chunk.iter().map(|&i| y_train[i]).collect::<Vec<u32>>().as_slice(), &dev)?;
            let seed = Some(cfg.seed.wrapping_add(step));
            let logits = match &feats {
                Some(f) => {
                    let idx = Tensor::new(chunk.iter().map(|&i| i as u32).collect::<Vec<u32>>().as_slice(), &dev)?;
                    su.head.logits_from_pooled(&f.index_select(&idx, 0)?, jielong_models::ForwardOpts { dropout_seed: seed, first_row: 0 })?
                }
                None => forward(&*su.model, &su.head, &ids, &types, &mask, seed, frozen)?,
            };
            let loss = jielong_nn::cross_entropy(&logits, &y)?;
            let l = su.step(&loss, lr_at(cfg.learning_rate, step, total_steps), step)?;
            loss_sum += l * chunk.len() as f64;
            step += 1;
        }
        let (val_loss, val_scores) = if val.is_empty() {
            (None, None)
        } else {
            let (loss, probs) = match &val_feats {
                Some(v) => score_pooled(&su.head, v, &y_val)?,
                None => score_rows(&*su.model, &su.head, &enc, &val_rows, Some(&y_val), cfg.batch_size)?,
            };
            let pred: Vec<u32> = probs.iter().map(|p| argmax(p)).collect();
            (loss, Some(scores(&y_val, &pred)))
        };
        last_val = val_scores;
        let row = EpochRow { epoch, step, train_loss: loss_sum / train.len() as f64, val_loss, val: val_scores, examples_per_s: train.len() as f64 / t0.elapsed().as_secs_f64().max(1e-9), elapsed_s: started.elapsed().as_secs_f64() };
        let mut line = serde_json::to_string(&row).expect("serializes");
        line.push('\n');
        append(&metrics_path, &line)?;
        on_epoch(&row);
        epochs.push(row);
    }
    let elapsed_s = started.elapsed().as_secs_f64();

    // Write: the weights first, task.json last (a folder is a classifier once it is there).
    su.save_weights(out, "SEQ_CLS")?;
    let mut record = su.record(cfg, "classify", labels.clone());
    record.val = last_val;
    record.majority = majority;
    jielong_core::fs::write_json_atomic(&out.join(TASK_FILE), &record)?;
    Ok(FinetuneSummary {
        labels,
        train_examples: train.len(),
        val_examples: val.len(),
        truncated,
        trainable: su.n_trainable,
        total_params: su.total_params,
        epochs,
        majority,
        tokens_per_s: tokens as f64 / elapsed_s.max(1e-9),
        elapsed_s,
    })
}

pub(crate) fn append(path: &Path, line: &str) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| Error::io(path, e))?;
    f.write_all(line.as_bytes()).map_err(|e| Error::io(path, e))
}

/// A fine-tuned classifier, loaded for prediction and evaluation.
pub struct Classifier {
    pub record: TaskRecord,
    model: Box<dyn Model>,
    head: TaskHead,
    enc: Encoder,
}

/// One prediction: the label, its probability, and every label's probability.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Prediction {
    pub label: String,
    pub probability: f32,
    pub probabilities: Vec<(String, f32)>,
}

impl Classifier {
    /// Read the folder `jielong finetune --task classify` wrote. `task`: the task the caller
    /// runs (a head trained for another is refused).
    pub fn load(dir: &Path, task: &str) -> Result<Self> {
        let (record, model, head, tk) = load_task(dir, task)?;
        let enc = Encoder::new(&tk, record.max_len)?;
        Ok(Self { record, model, head, enc })
    }

    /// Every example's label probabilities, in the order of `self.record.labels`.
    pub fn probabilities(&self, examples: &[Example], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        let rows: Vec<(Vec<u32>, Vec<u32>)> = examples.iter().map(|e| self.enc.encode(e).map(|(i, t, _)| (i, t))).collect::<Result<_>>()?;
        Ok(score_rows(&*self.model, &self.head, &self.enc, &rows, None, batch_size)?.1)
    }

    pub fn predict(&self, examples: &[Example], batch_size: usize) -> Result<Vec<Prediction>> {
        let labels = &self.record.labels;
        Ok(self
            .probabilities(examples, batch_size)?
            .into_iter()
            .map(|p| {
                let best = argmax(&p) as usize;
                Prediction { label: labels[best].clone(), probability: p[best], probabilities: labels.iter().cloned().zip(p).collect() }
            })
            .collect())
    }

    /// Accuracy and macro-F1 on labelled `examples`, and the majority baseline's (the label
    /// most frequent in the training data, from `task.json`'s settings).
    pub fn evaluate(&self, examples: &[Example], batch_size: usize) -> Result<(Scores, Option<Scores>)> {
        let gold = label_ids(examples, &self.record.labels, "the classifier cannot score a label it never saw; retrain with it, or drop those lines")?;
        let pred: Vec<u32> = self.probabilities(examples, batch_size)?.iter().map(|p| argmax(p)).collect();
        let majority = read_examples(&self.record.settings.data, true).ok().and_then(|tr| label_ids(&tr, &self.record.labels, "").ok()).map(|y| majority_baseline(&y, &gold));
        Ok((scores(&gold, &pred), majority))
    }
}
