//! The run config: one TOML file with `[data]`, `[model]` and `[train]` tables. Unknown keys are
//! errors (a typo must not silently fall back to a default). `--set train.learning_rate=1e-3`
//! overrides one value; the resolved config is saved as `config.toml` in the run folder, so a
//! run can be reproduced from its folder alone.

use jielong_core::{Error, Result};
use crate::objective::Objective;
use jielong_models::ModelConfig;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Folder written by `jielong data prepare`.
    pub dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Sequences per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer step (gradient accumulation).
    pub grad_accum: usize,
    pub max_steps: u64,
    /// Stop planning steps past this many minutes: before training starts, a few timed steps
    /// set `max_steps` so the cosine schedule ends on time. 0 = no limit.
    pub max_minutes: f64,
    pub learning_rate: f64,
    /// The cosine schedule decays to this.
    pub min_lr: f64,
    pub warmup_steps: u64,
    /// Decoupled weight decay, applied to matrices and embeddings (not biases or norms).
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Clip the global gradient norm to this (0 = no clipping).
    pub grad_clip: f64,
    /// Validation loss every this many steps (and at the end).
    pub eval_interval: u64,
    /// At most this many validation windows of max_seq_len tokens per evaluation.
    pub eval_windows: usize,
    pub checkpoint_interval: u64,
    /// Older checkpoints beyond this many are deleted.
    pub keep_checkpoints: usize,
    pub seed: u64,
    /// Split each micro-batch's sequences into this many shards, each run forward and
    /// backward on its own share of the threads, their gradients summed (data parallelism
    /// inside one process). 1 = off (the default): every op splits its own work over all
    /// threads, which measured faster on a quiet 2-core host (BENCHMARKS.md). 0 = one shard
    /// per thread, at most one per sequence, and no more than 2 GiB of per-shard gradients.
    pub data_parallel: usize,
    /// What the model learns to do (`causal_lm`: predict the next token).
    pub objective: Objective,
    /// Start from the weights of this checkpoint (a run folder, a ckpt-NNNNNN folder, or a
    /// folder `jielong import` wrote) instead of a fresh initialisation; its model config
    /// replaces `[model]`, the optimizer starts afresh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_from: Option<PathBuf>,
    /// Start the token embedding table from these word vectors (a `jielong vectors train`
    /// folder or a vectors file) when the tokenizer is word-level; see `init_embeddings.rs`.
    /// Only a fresh run reads it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_embeddings: Option<PathBuf>,
    /// How training windows are drawn: `random` (independent windows, each from a fresh
    /// state) or `sequential` (recurrent families: the split cut into batch_size streams read
    /// in order, the hidden state carried from batch to batch and detached: truncated
    /// backpropagation through time). Written to config.toml only when not `random`.
    #[serde(skip_serializing_if = "Batching::is_random")]
    pub batching: Batching,    /// `objective = "mlm"`: the share of tokens chosen for prediction (BERT: 0.15).
    #[serde(skip_serializing_if = "is_default_mlm_probability")]
    pub mlm_probability: f64,
    /// `objective = "mlm"`: choose whole words (WordPiece `##` pieces with the piece before
    /// them; jieba words in Chinese) rather than single tokens.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub whole_word_mask: bool,
    /// `objective = "mlm"`: a second objective on `[CLS] A [SEP] B [SEP]` pairs cut from the
    /// windows (`sentence.rs`): `nsp` (BERT, with model.nsp_head), `sop` (ALBERT) or `none`.
    #[serde(skip_serializing_if = "SentenceObjective::is_none")]
    pub sentence_task: SentenceObjective,
}

/// `train.sentence_task`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SentenceObjective {
    #[default]
    None,
    Nsp,
    Sop,
}

impl SentenceObjective {
    pub fn is_none(&self) -> bool {
        *self == SentenceObjective::None
    }
    pub fn task(self) -> Option<jielong_models::SentenceTask> {
        match self {
            SentenceObjective::None => None,
            SentenceObjective::Nsp => Some(jielong_models::SentenceTask::Nsp),
            SentenceObjective::Sop => Some(jielong_models::SentenceTask::Sop),
        }
    }
}

fn is_default_mlm_probability(p: &f64) -> bool {
    *p == 0.15
}

/// `train.batching`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Batching {
    #[default]
    Random,
    Sequential,
}

impl Batching {
    pub fn is_random(&self) -> bool {
        *self == Batching::Random
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            batch_size: 16,
            grad_accum: 1,
            max_steps: 1000,
            max_minutes: 0.0,
            learning_rate: 1e-3,
            min_lr: 1e-4,
            warmup_steps: 50,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            grad_clip: 1.0,
            eval_interval: 100,
            eval_windows: 64,
            checkpoint_interval: 200,
            keep_checkpoints: 2,
            seed: 1337,
            data_parallel: 1,
            objective: Objective::CausalLm,
            init_from: None,
            init_embeddings: None,
            batching: Batching::Random,
            mlm_probability: 0.15,
            whole_word_mask: false,
            sentence_task: SentenceObjective::None,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::input(m.to_string()));
        if self.batch_size == 0 || self.grad_accum == 0 {
            return bad("train.batch_size and train.grad_accum must be at least 1");
        }
        if self.max_steps == 0 {
            return bad("train.max_steps must be at least 1");
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad("train.learning_rate must be a positive number");
        }
        if !(self.min_lr >= 0.0 && self.min_lr <= self.learning_rate) {
            return bad("train.min_lr must be between 0 and train.learning_rate");
        }
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return bad("train.beta1 and train.beta2 must be in [0, 1)");
        }
        if self.eps.is_nan() || self.eps <= 0.0 || self.weight_decay < 0.0 || self.grad_clip < 0.0 || self.max_minutes < 0.0 {
            return bad("train.eps must be positive; weight_decay, grad_clip and max_minutes must not be negative");
        }
        if self.eval_interval == 0 || self.checkpoint_interval == 0 || self.keep_checkpoints == 0 {
            return bad("train.eval_interval, train.checkpoint_interval and train.keep_checkpoints must be at least 1");
        }
        if let Some(task) = self.sentence_task.task() {
            if self.objective != Objective::Mlm {
                return Err(Error::input(format!(
                    "train.sentence_task = \"{}\" is a second objective beside masked LM: set train.objective = \"mlm\" (or sentence_task = \"none\")",
                    task.name()
                )));
            }
            if task == jielong_models::SentenceTask::Nsp && self.batch_size < 2 {
                return bad("train.sentence_task = \"nsp\" draws its random segments from the other windows of a batch: set train.batch_size to at least 2");
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub data: DataConfig,
    /// `[model]`: `family` (default "gpt") and that family's own keys.
    pub model: ModelConfig,
    #[serde(default)]
    pub train: TrainConfig,
}

/// Parse a `--set` value as a TOML literal (number, bool, string, array); bare words are strings.
fn parse_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

/// Apply `key.path=value` overrides to a TOML table.
pub fn apply_overrides(table: &mut toml::Table, sets: &[String]) -> Result<()> {
    for set in sets {
        let Some((key, raw)) = set.split_once('=') else {
            return Err(Error::input(format!("--set {set}: expected key=value, e.g. --set train.learning_rate=3e-4")));
        };
        let parts: Vec<&str> = key.trim().split('.').collect();
        if parts.len() != 2 || !["data", "model", "train"].contains(&parts[0]) {
            return Err(Error::input(format!(
                "--set {set}: keys look like section.name with section data, model or train (e.g. model.n_layer=6)"
            )));
        }
        let section = table
            .entry(parts[0].to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| Error::input(format!("[{}] in the config is not a table", parts[0])))?;
        section.insert(parts[1].to_string(), parse_value(raw.trim()));
    }
    Ok(())
}

impl RunConfig {
    /// Parse TOML text with overrides applied; `origin` names the source in errors.
    pub fn from_toml(text: &str, origin: &Path, sets: &[String]) -> Result<Self> {
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| Error::format(origin, format!("not valid TOML: {}", e.message())))?;
        apply_overrides(&mut table, sets)?;
        let cfg: RunConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| Error::format(origin, format!("bad config: {}", e.message())))?;
        cfg.train.validate()?;
        Ok(cfg)
    }

    pub fn load(path: &Path, sets: &[String]) -> Result<Self> {
        if !path.exists() {
            return Err(Error::input(format!("{}: config file not found", path.display())));
        }
        Self::from_toml(&jielong_core::fs::read_to_string(path)?, path, sets)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[data]\ndir = \"shards\"\n[model]\nn_layer = 2\nn_head = 2\nn_embd = 32\nmax_seq_len = 16\n";

    #[test]
    fn config_overrides_and_round_trips() {
        let sets = vec!["train.learning_rate=3e-4".to_string(), "model.pos_encoding=rope".to_string(), "data.dir=other".into()];
        let cfg = RunConfig::from_toml(BASE, Path::new("c.toml"), &sets).unwrap();
        assert_eq!(cfg.train.learning_rate, 3e-4);
        assert_eq!(cfg.model.get::<jielong_models::GptConfig>().unwrap().pos_encoding, jielong_nn::PositionEncoding::Rope);
        assert_eq!(cfg.data.dir, PathBuf::from("other"));
        let again = RunConfig::from_toml(&cfg.to_toml(), Path::new("c.toml"), &[]).unwrap();
        assert_eq!(again, cfg);
    }

    #[test]
    fn config_rejects_unknown_keys_and_bad_values() {
        let e = RunConfig::from_toml(&format!("{BASE}n_layers = 3\n"), Path::new("c.toml"), &[]).unwrap_err();
        assert!(e.is_user_error() && e.to_string().contains("unknown field `n_layers`"), "{e}");
        let e = RunConfig::from_toml(BASE, Path::new("c.toml"), &["train.lr=1".into()]).unwrap_err();
        assert!(e.to_string().contains("unknown field `lr`"), "{e}");
        let e = RunConfig::from_toml(BASE, Path::new("c.toml"), &["nonsense".into()]).unwrap_err();
        assert!(e.to_string().contains("key=value"), "{e}");
        let e = RunConfig::from_toml(BASE, Path::new("c.toml"), &["train.learning_rate=-1".into()]).unwrap_err();
        assert!(e.to_string().contains("learning_rate"), "{e}");
        let e = RunConfig::from_toml(&BASE.replace("[model]", "[model]\nfamily = \"transformerx\""), Path::new("c.toml"), &[]).unwrap_err();
        assert!(e.is_user_error() && e.to_string().contains("not a family jielong knows"), "{e}");
        let e = RunConfig::from_toml(BASE, Path::new("c.toml"), &["model.family=llama".into(), "model.pos_encoding=rope".into()]).unwrap_err();
        assert!(e.to_string().contains("model.pos_encoding is a setting of family gpt"), "{e}");
        let llama = RunConfig::from_toml(BASE, Path::new("c.toml"), &["model.family=llama".into(), "model.n_kv_head=1".into()]).unwrap();
        assert_eq!(llama.model.family(), "llama");
        let e = RunConfig::from_toml(BASE, Path::new("c.toml"), &["train.sentence_task=sop".into()]).unwrap_err();
        assert!(e.is_user_error() && e.to_string().contains("set train.objective = \"mlm\""), "{e}");
        let e = RunConfig::from_toml(BASE, Path::new("c.toml"), &["train.objective=mlm".into(), "train.sentence_task=nsp".into(), "train.batch_size=1".into()]).unwrap_err();
        assert!(e.to_string().contains("batch_size to at least 2"), "{e}");
        let e = RunConfig::from_toml(BASE, Path::new("c.toml"), &["train.sentence_task=isp".into()]).unwrap_err();
        assert!(e.to_string().contains("unknown variant `isp`"), "{e}");
        let sop = RunConfig::from_toml(BASE, Path::new("c.toml"), &["train.objective=mlm".into(), "train.sentence_task=sop".into()]).unwrap();
        assert!(sop.to_toml().contains("sentence_task = \"sop\""));
        assert!(!RunConfig::from_toml(BASE, Path::new("c.toml"), &[]).unwrap().to_toml().contains("sentence_task"));
        let e = RunConfig::from_toml("[data\n", Path::new("c.toml"), &[]).unwrap_err();
        assert!(e.is_user_error() && e.to_string().contains("not valid TOML"), "{e}");
    }
}
