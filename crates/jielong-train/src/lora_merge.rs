//! `jielong lora merge`: fold a LoRA adapter into the weights of the base it was trained on,
//! `W ← W + (α/r)·B·A` for every adapted layer (PEFT's `merge_and_unload`), and write an
//! ordinary checkpoint that `generate`, `eval`, `chat` and `predict` load without `--adapter`.
//!
//! - A causal-LM adapter (`jielong sft --regime lora`) becomes a run folder: `OUT/ckpt-NNNNNN/`
//!   (`model.safetensors`, `meta.json`: the base's step and config) and `OUT/tokenizer.json`
//!   (the base's), plus the adapter's `tokenizer_config.json` (its chat template) when it has one.
//! - A classification adapter (`jielong finetune --regime lora`) becomes a classifier folder:
//!   `model.safetensors` (the merged body), `head.safetensors` (the trained head, as it was),
//!   `tokenizer.json` and `task.json` with `lora_merged: true`, so `predict` and `eval` read
//!   the body from the folder instead of base + adapter.
//!
//! The adapter must come from this base: `jielong_adapter.json` holds the SHA-256 of the base's
//! weights, and another base is refused naming both hashes (exit 2). The output is built under
//! a temporary name and renamed into place.

use crate::adapter;
use crate::checkpoint::{ckpt_name, Checkpoint};
use crate::finetune::{FtRegime, TaskRecord, HEAD_FILE, TASK_FILE};
use jielong_core::fs::AtomicDir;
use jielong_core::{Error, Result};
use std::path::{Path, PathBuf};

/// What a merge wrote.
#[derive(Debug, Clone)]
pub struct MergeSummary {
    /// `causal_lm` or the fine-tuning task (`classify`).
    pub kind: String,
    /// Adapted modules folded in.
    pub modules: usize,
    pub rank: usize,
    pub alpha: f64,
    /// What to pass as `--checkpoint` now: the run folder, or the classifier folder.
    pub out: PathBuf,
}

/// Fold the LoRA adapter in `adapter_dir` into checkpoint `base_path` and write the result to `out`.
pub fn merge(base_path: &Path, adapter_dir: &Path, out: &Path) -> Result<MergeSummary> {
    if !adapter_dir.is_dir() {
        return Err(Error::input(format!("{}: adapter folder not found; pass the folder `jielong sft --regime lora` or `jielong finetune --regime lora` wrote", adapter_dir.display())));
    }
    if !adapter::is_adapter_dir(adapter_dir) {
        return Err(Error::input(format!("{}: no {} here, so no adapter to merge; pass the folder a --regime lora run wrote", adapter_dir.display(), adapter::CONFIG_FILE)));
    }
    if out.exists() && std::fs::read_dir(out).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(Error::input(format!("{} already exists and is not empty: pick another --out", out.display())));
    }
    let base = Checkpoint::open(base_path)?;
    let dev = candle_core::Device::Cpu;
    let (mut model, params) = base.load_params(&dev)?;
    let task_path = adapter_dir.join(TASK_FILE);
    let record: Option<TaskRecord> = if task_path.is_file() {
        let text = jielong_core::fs::read_to_string(&task_path)?;
        let r: TaskRecord = serde_json::from_str(&text).map_err(|e| Error::format(&task_path, format!("not a jielong fine-tuning record ({e})")))?;
        if r.regime != FtRegime::Lora || r.lora_merged {
            return Err(Error::input(format!("{} is a {} classifier that holds its own weights already: nothing to merge", adapter_dir.display(), if r.lora_merged { "merged" } else { r.regime.name() })));
        }
        Some(r)
    } else {
        None
    };
    // Checks the base's hash and the adapter's type, then sets the adapter on the model.
    let lora = adapter::load(adapter_dir, &base.dir, &mut *model)?;
    lora.merge(&params)?;
    let summary = |kind: &str, out: PathBuf| MergeSummary { kind: kind.to_string(), modules: lora.modules().count(), rank: lora.cfg.rank, alpha: lora.cfg.alpha, out };
    let copy = |from: &Path, to: &Path| -> Result<()> { std::fs::copy(from, to).map(|_| ()).map_err(|e| Error::io(from, e)) };
    let staged = AtomicDir::new(out)?;
    let dir = staged.path().to_path_buf();
    match record {
        Some(mut r) => {
            params.save(&dir.join("model.safetensors"))?;
            copy(&adapter_dir.join(HEAD_FILE), &dir.join(HEAD_FILE))?;
            copy(&adapter_dir.join("tokenizer.json"), &dir.join("tokenizer.json"))?;
            if adapter_dir.join("metrics.jsonl").is_file() {
                copy(&adapter_dir.join("metrics.jsonl"), &dir.join("metrics.jsonl"))?;
            }
            r.lora_merged = true;
            jielong_core::fs::write_json_atomic(&dir.join(TASK_FILE), &r)?;
            let task = r.task.clone();
            staged.commit()?;
            Ok(summary(&task, out.to_path_buf()))
        }
        None => {
            let ck = dir.join(ckpt_name(base.meta.step));
            std::fs::create_dir_all(&ck).map_err(|e| Error::io(&ck, e))?;
            params.save(&ck.join("model.safetensors"))?;
            jielong_core::fs::write_json_atomic(&ck.join("meta.json"), &base.meta)?;
            copy(&base.tokenizer_path(), &dir.join("tokenizer.json"))?;
            let tc = adapter_dir.join("tokenizer_config.json");
            if tc.is_file() {
                copy(&tc, &dir.join("tokenizer_config.json"))?;
            }
            staged.commit()?;
            Ok(summary("causal_lm", out.to_path_buf()))
        }
    }
}
