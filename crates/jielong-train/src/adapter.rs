//! LoRA adapters on disk, apart from the base, in PEFT's layout:
//!
//! ```text
//! DIR/adapter_config.json          PEFT's LoraConfig (peft_type LORA, r, lora_alpha, …)
//! DIR/adapter_model.safetensors    base_model.model.{module}.lora_A.weight  (r, in)
//!                                  base_model.model.{module}.lora_B.weight  (out, r)
//! DIR/jielong_adapter.json         the base it was trained on: path and SHA-256 of its weights
//! ```
//!
//! Prefix- and prompt-tuning adapters (`jielong_models::soft_prompt`) take the same three
//! files: `adapter_config.json` is PEFT's `PrefixTuningConfig` / `PromptTuningConfig`
//! (`peft_type` PREFIX_TUNING / PROMPT_TUNING, `num_virtual_tokens`, `token_dim`,
//! `num_layers`, `num_attention_heads`), the weights hold the one table PEFT saves,
//! `prompt_embeddings` ((n, n_embd) for a prompt; (n, num_layers·2·token_dim) for a prefix).
//!
//! PEFT reads the first two as they are (`PeftModel.from_pretrained`) on a model whose module
//! names are the base's (jielong's GPT and Llama names are Hugging Face's). The third is
//! jielong's: an adapter only means something on the weights it was trained against, so
//! loading it on another base is refused with both hashes.

use jielong_core::{Error, Result};
use jielong_models::{Model, SoftPrompt, SoftPromptKind};
use jielong_nn::{Lora, LoraConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const CONFIG_FILE: &str = "adapter_config.json";
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
pub const BASE_FILE: &str = "jielong_adapter.json";
/// PEFT's prefix of every tensor name.
const PREFIX: &str = "base_model.model.";

/// What `jielong_adapter.json` records.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdapterBase {
    /// SHA-256 of the base checkpoint's `model.safetensors`.
    pub base_hash: String,
    /// Where the base was when the adapter was trained (for messages).
    pub base_checkpoint: PathBuf,
    pub family: String,
    pub rank: usize,
    pub alpha: f64,
    pub dropout: f32,
    pub targets: Vec<String>,
}

/// SHA-256 of a checkpoint's weights file.
pub fn weights_hash(checkpoint_dir: &Path) -> Result<String> {
    let path = checkpoint_dir.join("model.safetensors");
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    Ok(jielong_core::sha256_hex(&bytes))
}

/// Whether `dir` holds an adapter (rather than a checkpoint).
pub fn is_adapter_dir(dir: &Path) -> bool {
    dir.join(CONFIG_FILE).is_file()
}

/// Write `lora` into `dir` (created or replaced atomically, other files in it kept).
pub fn save(dir: &Path, lora: &Lora, base: &AdapterBase) -> Result<()> {
    save_inner(dir, lora, base, "CAUSAL_LM", None)
}

/// `save` for a task model (`task_type` SEQ_CLS, TOKEN_CLS, QUESTION_ANS): the new head's
/// tensors (`head`, trained in full) go into the adapter file too, named as PEFT names a
/// module of `modules_to_save` (`base_model.model.classifier.weight`).
pub fn save_for_task(dir: &Path, lora: &Lora, base: &AdapterBase, task_type: &str, head: &jielong_nn::ParamStore) -> Result<()> {
    save_inner(dir, lora, base, task_type, Some(head))
}

fn save_inner(dir: &Path, lora: &Lora, base: &AdapterBase, task_type: &str, head: Option<&jielong_nn::ParamStore>) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let modules_to_save: Option<Vec<String>> = head.map(|h| h.vars().into_iter().filter_map(|(n, _)| n.rsplit_once('.').map(|(m, _)| m.to_string())).collect::<std::collections::BTreeSet<_>>().into_iter().collect());
    let fan_in_fan_out = base.family == "gpt";
    let cfg = serde_json::json!({
        "peft_type": "LORA", "task_type": task_type, "base_model_name_or_path": base.base_checkpoint,
        "r": lora.cfg.rank, "lora_alpha": lora.cfg.alpha, "lora_dropout": lora.cfg.dropout,
        "target_modules": lora.cfg.targets, "fan_in_fan_out": fan_in_fan_out, "bias": "none",
        "inference_mode": true, "init_lora_weights": true, "modules_to_save": modules_to_save, "use_rslora": false,
        "use_dora": false, "layers_to_transform": null, "layers_pattern": null, "rank_pattern": {},
        "alpha_pattern": {}, "revision": null,
    });
    let mut tensors: Vec<(String, candle_core::Tensor)> = lora.params().vars().into_iter().map(|(n, v)| (format!("{PREFIX}{n}"), v.as_tensor().clone())).collect();
    if let Some(h) = head {
        tensors.extend(h.vars().into_iter().map(|(n, v)| (format!("{PREFIX}{n}"), v.as_tensor().clone())));
    }
    jielong_nn::params::save_tensors(&dir.join(WEIGHTS_FILE), &tensors)?;
    jielong_core::fs::write_json_atomic(&dir.join(BASE_FILE), base)?;
    // The config last: a folder is an adapter once it is there.
    jielong_core::fs::write_json_atomic(&dir.join(CONFIG_FILE), &cfg)
}

/// Read the adapter in `dir` for the model of checkpoint `base_dir`, check it was trained on
/// those weights, and set it on `model`. Errors (user errors, exit 2) for a missing or
/// foreign folder and for a hash mismatch.
pub fn load(dir: &Path, base_dir: &Path, model: &mut dyn Model) -> Result<Arc<Lora>> {
    let cfg_path = dir.join(CONFIG_FILE);
    if !cfg_path.is_file() {
        return Err(Error::input(format!("{}: no {CONFIG_FILE} here; pass the folder `jielong sft --regime lora` wrote", dir.display())));
    }
    let base = check_base(dir, base_dir)?;
    let cfg_text = jielong_core::fs::read_to_string(&cfg_path)?;
    let peft: serde_json::Value = serde_json::from_str(&cfg_text).map_err(|e| Error::format(&cfg_path, format!("not JSON ({e})")))?;
    if peft.get("peft_type").and_then(|v| v.as_str()) != Some("LORA") {
        return Err(Error::format(&cfg_path, "is not a LoRA adapter (peft_type must be \"LORA\")"));
    }
    let lcfg = LoraConfig { rank: base.rank, alpha: base.alpha, dropout: base.dropout, targets: base.targets.clone() };
    let lora = Lora::new(&lcfg, &model.linear_sites(), 0, &candle_core::Device::Cpu)?;
    // Only the adapter's own tensors (a task adapter also stores its head: `modules_to_save`).
    lora.params().load(&dir.join(WEIGHTS_FILE), |n| n.contains(".lora_").then(|| n.strip_prefix(PREFIX).unwrap_or(n).to_string()))?;
    let lora = Arc::new(lora);
    model.set_lora(Some(lora.clone()))?;
    Ok(lora)
}

/// Write the virtual tokens `soft` into `dir` (PEFT's prefix- or prompt-tuning layout).
pub fn save_soft(dir: &Path, soft: &SoftPrompt, base: &AdapterBase) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let sh = soft.shape;
    let mut cfg = serde_json::json!({
        "peft_type": soft.kind.peft_type(), "task_type": "CAUSAL_LM", "base_model_name_or_path": base.base_checkpoint,
        "revision": null, "inference_mode": true, "num_virtual_tokens": soft.n, "num_transformer_submodules": 1,
        "num_layers": sh.n_layer, "modules_to_save": null, "auto_mapping": null,
    });
    let extra = match soft.kind {
        // PEFT's prefix for grouped key/value heads: token_dim = n_kv_head·head_dim.
        SoftPromptKind::Prefix => serde_json::json!({
            "token_dim": sh.kv_dim(), "num_attention_heads": sh.n_kv_head, "encoder_hidden_size": sh.kv_dim(),
            "prefix_projection": false,
        }),
        SoftPromptKind::Prompt => serde_json::json!({
            "token_dim": sh.n_embd, "num_attention_heads": sh.n_kv_head, "prompt_tuning_init": "RANDOM",
            "prompt_tuning_init_text": null, "tokenizer_name_or_path": null, "tokenizer_kwargs": null,
        }),
    };
    let map = cfg.as_object_mut().expect("an object");
    map.extend(extra.as_object().expect("an object").clone());
    jielong_nn::params::save_tensors(&dir.join(WEIGHTS_FILE), &[(jielong_models::soft_prompt::TABLE.to_string(), soft.table().clone())])?;
    jielong_core::fs::write_json_atomic(&dir.join(BASE_FILE), base)?;
    jielong_core::fs::write_json_atomic(&dir.join(CONFIG_FILE), &cfg)
}

/// Read the adapter in `dir` if it is a prefix- or prompt-tuning one (None for LoRA), check it
/// was trained on the weights of `base_dir`, and set it on `model`.
pub fn load_soft(dir: &Path, base_dir: &Path, model: &mut dyn Model) -> Result<Option<Arc<SoftPrompt>>> {
    let cfg_path = dir.join(CONFIG_FILE);
    if !cfg_path.is_file() {
        return Ok(None);
    }
    let cfg_text = jielong_core::fs::read_to_string(&cfg_path)?;
    let peft: serde_json::Value = serde_json::from_str(&cfg_text).map_err(|e| Error::format(&cfg_path, format!("not JSON ({e})")))?;
    let kind = match peft.get("peft_type").and_then(|v| v.as_str()) {
        Some("PREFIX_TUNING") => SoftPromptKind::Prefix,
        Some("PROMPT_TUNING") => SoftPromptKind::Prompt,
        _ => return Ok(None),
    };
    if peft.get("prefix_projection").and_then(|v| v.as_bool()) == Some(true) {
        return Err(Error::format(&cfg_path, "has prefix_projection = true: jielong reads the table PEFT saves for it only when it is saved projected; re-save the adapter with PEFT"));
    }
    check_base(dir, base_dir)?;
    let shape = model
        .soft_prompt_shape()
        .ok_or_else(|| Error::input(format!("family {} cannot take prompt or prefix tuning (gpt and llama can)", model.config().family())))?;
    let path = dir.join(WEIGHTS_FILE);
    let tensors = jielong_nn::params::load_tensors(&path)?;
    let table = tensors
        .into_iter()
        .find(|(n, _)| n == jielong_models::soft_prompt::TABLE)
        .map(|(_, t)| t)
        .ok_or_else(|| Error::format(&path, format!("holds no `{}` table", jielong_models::soft_prompt::TABLE)))?;
    let n = table.dim(0).map_err(Error::from)?;
    if let Some(want) = peft.get("num_virtual_tokens").and_then(|v| v.as_u64()) {
        if want as usize != n {
            return Err(Error::format(&path, format!("has {n} virtual tokens, its config says {want}")));
        }
    }
    let soft = Arc::new(SoftPrompt::new(kind, shape, &table)?);
    model.set_soft_prompt(Some(soft.clone()))?;
    Ok(Some(soft))
}

/// The adapter in `dir` was trained on the weights of checkpoint `base_dir`, or a user error
/// naming both hashes.
fn check_base(dir: &Path, base_dir: &Path) -> Result<AdapterBase> {
    let base_path = dir.join(BASE_FILE);
    let text = jielong_core::fs::read_to_string(&base_path)?;
    let base: AdapterBase = serde_json::from_str(&text).map_err(|e| Error::format(&base_path, format!("not a jielong adapter record ({e})")))?;
    let hash = weights_hash(base_dir)?;
    if hash != base.base_hash {
        return Err(Error::input(format!(
            "adapter {} was trained on another base (weights {}…, this checkpoint's are {}…): pass the checkpoint it was made from ({})",
            dir.display(),
            &base.base_hash[..12.min(base.base_hash.len())],
            &hash[..12],
            base.base_checkpoint.display()
        )));
    }
    Ok(base)
}
