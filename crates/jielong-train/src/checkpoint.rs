//! Checkpoints: `ckpt-NNNNNN/{model.safetensors, optim.safetensors, meta.json}` inside a run
//! folder (and `carry.safetensors` for a recurrent run with sequential batching). Each is
//! built under a temporary name and renamed, so a crash or a kill mid-write leaves the previous checkpoint intact and never a half-written one.

use crate::config::RunConfig;
use jielong_core::fs::AtomicDir;
use jielong_core::{Error, Result};
use crate::objective::Objective;
use jielong_models::{Model, ModelConfig};
use std::path::{Path, PathBuf};

pub const CKPT_VERSION: u32 = 1;

/// The hidden state a `batching = "sequential"` run carries into its next step,
/// (n_state, batch_size, hidden), saved beside the weights so a resumed run continues from it.
pub const CARRY_FILE: &str = "carry.safetensors";

/// The carried state saved in checkpoint folder `dir`, if there is one.
pub fn load_carry(dir: &Path) -> Result<Option<candle_core::Tensor>> {
    let path = dir.join(CARRY_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let mut tensors = jielong_nn::params::load_tensors(&path)?;
    match tensors.iter().position(|(n, _)| n == "state") {
        Some(i) => Ok(Some(tensors.swap_remove(i).1)),
        None => Err(Error::format(&path, "holds no `state` tensor: the checkpoint is damaged; resume from an earlier one")),
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CheckpointMeta {
    pub format_version: u32,
    /// Model family ("gpt", "llama", …): the registry entry that builds `model`.
    pub family: String,
    /// The family's config (with `family` inside; checkpoints from before families have only
    /// GPT keys there, and load as GPT).
    pub model: ModelConfig,
    /// What the model was trained for (absent in older checkpoints: causal LM).
    #[serde(default)]
    pub objective: Objective,
    pub tokenizer_hash: String,
    /// Optimizer steps completed.
    pub step: u64,
    pub tokens_seen: u64,
    pub seed: u64,
    /// Last validation loss, if one was measured.
    pub val_loss: Option<f64>,
    pub train_loss: Option<f64>,
    pub elapsed_s: f64,
}

pub struct Checkpoint {
    pub dir: PathBuf,
    pub meta: CheckpointMeta,
}

pub fn ckpt_name(step: u64) -> String {
    format!("ckpt-{step:06}")
}

impl Checkpoint {
    /// Open a checkpoint folder, or a run folder (then its latest checkpoint).
    pub fn open(path: &Path) -> Result<Self> {
        let dir = if path.join("meta.json").exists() && path.join("model.safetensors").exists() {
            path.to_path_buf()
        } else if path.is_dir() {
            latest(path)?.ok_or_else(|| {
                Error::input(format!("{}: no checkpoint here (no ckpt-NNNNNN folder); train one with `jielong train`", path.display()))
            })?
        } else {
            return Err(Error::input(format!("{}: checkpoint not found; pass a run folder or one of its ckpt-NNNNNN folders", path.display())));
        };
        let meta_path = dir.join("meta.json");
        let text = jielong_core::fs::read_to_string(&meta_path)?;
        let meta: CheckpointMeta = serde_json::from_str(&text)
            .map_err(|e| Error::format(&meta_path, format!("not a jielong checkpoint meta.json ({e})")))?;
        if meta.format_version != CKPT_VERSION {
            return Err(Error::format(&meta_path, format!("checkpoint format {}, this jielong reads {CKPT_VERSION}", meta.format_version)));
        }
        if meta.family != meta.model.family() {
            return Err(Error::format(&meta_path, format!(
                "names family `{}` but its model settings are of family `{}`: the file was edited by hand; restore it",
                meta.family,
                meta.model.family()
            )));
        }
        Ok(Self { dir, meta })
    }

    /// The run folder holding this checkpoint.
    pub fn run_dir(&self) -> &Path {
        self.dir.parent().unwrap_or(Path::new("."))
    }

    /// The tokenizer saved with the run.
    pub fn tokenizer_path(&self) -> PathBuf {
        self.run_dir().join("tokenizer.json")
    }
}

/// The newest complete checkpoint of a run folder.
pub fn latest(run_dir: &Path) -> Result<Option<PathBuf>> {
    Ok(list(run_dir)?.pop())
}

/// Complete checkpoints of a run, oldest first.
pub fn list(run_dir: &Path) -> Result<Vec<PathBuf>> {
    let Ok(entries) = std::fs::read_dir(run_dir) else { return Ok(Vec::new()) };
    let mut v: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            name.starts_with("ckpt-") && !name.contains('.') && p.join("meta.json").exists()
        })
        .collect();
    v.sort();
    Ok(v)
}

/// Remove half-written checkpoint folders (`.ckpt-NNNNNN.tmp-PID`) left by a process killed
/// while writing one; they are never read, only take space.
pub fn sweep_stale_tmp(run_dir: &Path) {
    jielong_core::fs::sweep_stale_tmp(run_dir, "ckpt-");
}

/// Write a checkpoint atomically and keep only the newest `keep`.
pub fn save(
    run_dir: &Path,
    meta: &CheckpointMeta,
    params: &jielong_nn::ParamStore,
    opt: &crate::AdamW,
    keep: usize,
    carry: Option<&candle_core::Tensor>,
) -> Result<PathBuf> {
    let target = run_dir.join(ckpt_name(meta.step));
    let dir = AtomicDir::new(&target)?;
    params.save(&dir.path().join("model.safetensors"))?;
    opt.save(&dir.path().join("optim.safetensors"))?;
    if let Some(state) = carry {
        jielong_nn::params::save_tensors(&dir.path().join(CARRY_FILE), &[("state".to_string(), state.clone())])?;
    }
    jielong_core::fs::write_json_atomic(&dir.path().join("meta.json"), meta)?;
    let path = dir.commit()?;
    sweep_stale_tmp(run_dir);
    let all = list(run_dir)?;
    if all.len() > keep {
        for old in &all[..all.len() - keep] {
            let _ = std::fs::remove_dir_all(old);
        }
    }
    Ok(path)
}

/// Save the resolved config beside the checkpoints.
pub fn save_config(run_dir: &Path, cfg: &RunConfig) -> Result<()> {
    let text = format!(
        "# Resolved config of this run (written by jielong; `jielong train --resume {}` reads it).\n{}",
        run_dir.display(),
        cfg.to_toml()
    );
    jielong_core::fs::write_atomic(&run_dir.join("config.toml"), text.as_bytes())
}

impl Checkpoint {
    /// Build the model this checkpoint describes and load its weights.
    pub fn load_model(&self, dev: &candle_core::Device) -> Result<Box<dyn Model>> {
        Ok(self.load_params(dev)?.0)
    }

    /// The model and the store holding its parameters (to continue training them).
    pub fn load_params(&self, dev: &candle_core::Device) -> Result<(Box<dyn Model>, jielong_nn::ParamStore)> {
        self.load_params_with(dev, false)
    }

    /// `load_params`, with the model reading its weights detached when `frozen` (a base that
    /// only adapters train on: see `ParamStore::frozen`).
    pub fn load_params_with(&self, dev: &candle_core::Device, frozen: bool) -> Result<(Box<dyn Model>, jielong_nn::ParamStore)> {
        let params = if frozen { jielong_nn::ParamStore::frozen(self.meta.seed) } else { jielong_nn::ParamStore::new(self.meta.seed) };
        let model = self.meta.model.build(params.var_builder(dev))?;
        params.load(&self.dir.join("model.safetensors"), |n| Some(n.to_string()))?;
        Ok((model, params))
    }

    /// The model as a causal language model, or an error saying what `command` needs.
    pub fn load_causal_lm(&self, dev: &candle_core::Device, command: &str) -> Result<Box<dyn Model>> {
        let model = self.load_model(dev)?;
        if model.as_causal_lm().is_none() {
            // issue 15: say where an encoder-decoder is used instead.
            let hint = if model.as_seq2seq().is_some() { " (a seq2seq model: score it with `jielong eval --pairs FILE.jsonl`, draw its attention with `jielong attention`)" } else { "" };
            return Err(Error::input(format!("{command} needs a causal language model; {} holds a {} model{hint}", self.dir.display(), self.meta.family)));
        }
        Ok(model)
    }

    /// Load the run's tokenizer (or `override_path`), refusing one whose hash differs from the
    /// tokenizer the model was trained with.
    pub fn load_tokenizer(&self, override_path: Option<&Path>) -> Result<jielong_tokenizer::Tokenizer> {
        let path = override_path.map(Path::to_path_buf).unwrap_or_else(|| self.tokenizer_path());
        let tk = jielong_tokenizer::Tokenizer::load(&path)?;
        if tk.hash() != self.meta.tokenizer_hash {
            return Err(Error::input(format!(
                "{} is not the tokenizer this model was trained with (hash {} vs {} in {}); use the run's own tokenizer.json",
                path.display(),
                &tk.hash()[..12],
                &self.meta.tokenizer_hash[..12],
                self.dir.join("meta.json").display()
            )));
        }
        Ok(tk)
    }
}

#[cfg(test)]
mod sweep_tests {
    use super::*;

    #[test]
    fn checkpoint_sweep_removes_only_dead_processes_tmp_folders() {
        let d = tempfile::tempdir().unwrap();
        let dead = d.path().join(".ckpt-000003.tmp-4000000000");
        let mine = d.path().join(format!(".ckpt-000004.tmp-{}", std::process::id()));
        let real = d.path().join("ckpt-000002");
        for p in [&dead, &mine, &real] {
            std::fs::create_dir_all(p).unwrap();
        }
        sweep_stale_tmp(d.path());
        assert!(!dead.exists(), "a dead process's folder must go");
        assert!(mine.exists() && real.exists(), "live and complete folders stay");
    }
}

#[cfg(test)]
mod meta_tests {
    use super::*;

    #[test]
    fn checkpoint_meta_from_before_families_loads_as_gpt() {
        // meta.json as jielong wrote it before model families: `family` beside a model table
        // of GPT keys, no `objective`.
        let old = r#"{"format_version":1,"family":"gpt","model":{"vocab_size":320,"n_layer":2,"n_head":2,"n_embd":32,"max_seq_len":32,"dropout":0.1,"bias":true,"tie_embeddings":true,"pos_encoding":"rope","layer_norm_eps":1e-5,"rope_theta":10000.0},"tokenizer_hash":"ab","step":6,"tokens_seen":100,"seed":1337,"val_loss":null,"train_loss":5.1,"elapsed_s":1.0}"#;
        let meta: CheckpointMeta = serde_json::from_str(old).unwrap();
        assert_eq!(meta.model.family(), "gpt");
        assert_eq!(meta.objective, Objective::CausalLm);
        let gpt = meta.model.get::<jielong_models::GptConfig>().unwrap();
        assert_eq!((gpt.n_layer, gpt.pos_encoding), (2, jielong_nn::PositionEncoding::Rope));
        // Written again, the family is inside the model table too.
        let new = serde_json::to_value(&meta).unwrap();
        assert_eq!(new["model"]["family"], "gpt");
        assert_eq!(new["objective"], "causal_lm");
    }
}
