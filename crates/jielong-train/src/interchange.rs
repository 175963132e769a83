//! Checkpoints to and from Hugging Face folders: `jielong export --format hf` and
//! `jielong import`. The model side (config mapping, tensor names, safetensors) is
//! `jielong_models::hf`; this adds the tokenizer files and jielong's run-folder layout. Both
//! build their output folder under a temporary name and rename it into place, so a failure
//! leaves nothing half-written.

use crate::checkpoint::{ckpt_name, Checkpoint, CheckpointMeta, CKPT_VERSION};
use crate::objective::Objective;
use candle_core::{DType, Device};
use jielong_core::fs::AtomicDir;
use jielong_core::{Error, Result};
use jielong_models::hf::{self, HfMeta};
use jielong_models::ModelConfig;
use jielong_tokenizer::Tokenizer;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

fn refuse_existing(out: &Path) -> Result<()> {
    if out.exists() && std::fs::read_dir(out).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(Error::input(format!("{} already exists and is not empty: pick another --out, or remove it first", out.display())));
    }
    Ok(())
}

/// The `tokenizer_config.json` of a folder, if it has one.
fn tokenizer_config(dir: &Path) -> Result<Option<Map<String, Value>>> {
    let path = dir.join("tokenizer_config.json");
    if !path.is_file() {
        return Ok(None);
    }
    match serde_json::from_str(&jielong_core::fs::read_to_string(&path)?) {
        Ok(Value::Object(m)) => Ok(Some(m)),
        _ => Err(Error::format(&path, "not a JSON object")),
    }
}

/// Write a Hugging Face folder for `ckpt`: config.json, generation_config.json,
/// model.safetensors (in `dtype`), tokenizer.json and tokenizer_config.json (with the run's
/// chat template when it has one), so that `AutoModelForCausalLM.from_pretrained(out)` and
/// `AutoTokenizer.from_pretrained(out)` load it.
pub fn export_hf(ckpt: &Checkpoint, dtype: DType, out: &Path) -> Result<PathBuf> {
    refuse_existing(out)?;
    let tk = ckpt.load_tokenizer(None)?;
    let (_, params) = ckpt.load_params(&Device::Cpu)?;
    let eot = tk.eot_id();
    let meta = HfMeta { bos_token_id: eot, eos_token_id: eot, dtype: hf::dtype_name(dtype)? };
    let dir = AtomicDir::new(out)?;
    hf::export(&ckpt.meta.model, &params, dtype, &meta, dir.path())?;
    let bytes = std::fs::read(ckpt.tokenizer_path()).map_err(|e| Error::io(ckpt.tokenizer_path(), e))?;
    jielong_core::fs::write_atomic(&dir.path().join("tokenizer.json"), &bytes)?;
    let mut tc = Map::new();
    tc.insert("tokenizer_class".into(), "PreTrainedTokenizerFast".into());
    tc.insert("clean_up_tokenization_spaces".into(), false.into());
    tc.insert("model_max_length".into(), ckpt.meta.model.max_seq_len().into());
    if let Some(piece) = eot.and_then(|id| tk.id_to_piece(id)) {
        for key in ["bos_token", "eos_token"] {
            tc.insert(key.into(), piece.clone().into());
        }
    }
    if let Some(saved) = tokenizer_config(ckpt.run_dir())? {
        for key in ["chat_template", "bos_token", "eos_token"] {
            if let Some(v) = saved.get(key) {
                tc.insert(key.into(), v.clone());
            }
        }
    }
    hf::write_sorted_json(&dir.path().join("tokenizer_config.json"), tc)?;
    dir.commit()
}

/// Read a Hugging Face folder of a supported architecture into a new run folder `out`
/// (`tokenizer.json`, `ckpt-000000/{model.safetensors, meta.json}`, and the folder's
/// `tokenizer_config.json` when it has one, for its chat template), ready for `generate`,
/// `chat`, `eval` and `train --init-from`. The tokenizer is the folder's `tokenizer.json`
/// unless `tokenizer` names another.
pub fn import_hf(from: &Path, tokenizer: Option<&Path>, out: &Path) -> Result<(ModelConfig, PathBuf)> {
    refuse_existing(out)?;
    let (cfg, params) = hf::import(from)?;
    let tk_path = tokenizer.map(Path::to_path_buf).unwrap_or_else(|| from.join("tokenizer.json"));
    if !tk_path.exists() {
        return Err(Error::input(format!(
            "{}: no tokenizer.json; jielong keeps the tokenizer with the model: pass --tokenizer FILE",
            from.display()
        )));
    }
    let tk = Tokenizer::load(&tk_path)?;
    if tk.vocab_size() > cfg.vocab_size() {
        return Err(Error::input(format!(
            "{} has {} ids but the model's embedding table has {} rows: ids past it would have no embedding; is it the model's tokenizer?",
            tk_path.display(),
            tk.vocab_size(),
            cfg.vocab_size()
        )));
    }
    let dir = AtomicDir::new(out)?;
    let tk_file = if tk_path.is_dir() { tk_path.join("tokenizer.json") } else { tk_path.clone() };
    let bytes = std::fs::read(&tk_file).map_err(|e| Error::io(&tk_file, e))?;
    jielong_core::fs::write_atomic(&dir.path().join("tokenizer.json"), &bytes)?;
    if let Some(tc) = tokenizer_config(from)? {
        hf::write_sorted_json(&dir.path().join("tokenizer_config.json"), tc)?;
    }
    if let Some(st) = sentence_config(from)? {
        hf::write_sorted_json(&dir.path().join(SENTENCE_JSON), st)?;
    }
    let ckpt = dir.path().join(ckpt_name(0));
    std::fs::create_dir_all(&ckpt).map_err(|e| Error::io(&ckpt, e))?;
    params.save(&ckpt.join("model.safetensors"))?;
    let meta = CheckpointMeta {
        format_version: CKPT_VERSION,
        family: cfg.family().into(),
        model: cfg.clone(),
        // A BERT checkpoint is an encoder: its training objective is masked LM.
        objective: if matches!(cfg.family(), "bert" | "albert") { Objective::Mlm } else { Objective::CausalLm },
        tokenizer_hash: tk.hash().to_string(),
        step: 0,
        tokens_seen: 0,
        seed: 0,
        val_loss: None,
        train_loss: None,
        elapsed_s: 0.0,
    };
    jielong_core::fs::write_json_atomic(&ckpt.join("meta.json"), &meta)?;
    Ok((cfg, dir.commit()?))
}

/// The file of an imported run folder that keeps a sentence-transformers model's embedding
/// recipe: `max_seq_length`, `pooling` ("mean" or "cls") and `normalize`, the defaults of
/// `jielong embed` for that checkpoint.
pub const SENTENCE_JSON: &str = "sentence.json";

/// A sentence-transformers folder's recipe (`sentence_bert_config.json`, `1_Pooling/config.json`,
/// a `Normalize` module in `modules.json`), or None for a plain Hugging Face folder.
fn sentence_config(dir: &Path) -> Result<Option<Map<String, Value>>> {
    let read = |name: &str| -> Result<Option<Value>> {
        let path = dir.join(name);
        if !path.is_file() {
            return Ok(None);
        }
        let text = jielong_core::fs::read_to_string(&path)?;
        serde_json::from_str(&text).map(Some).map_err(|e| Error::format(&path, format!("not valid JSON ({e})")))
    };
    let Some(sb) = read("sentence_bert_config.json")? else { return Ok(None) };
    let mut out = Map::new();
    if let Some(n) = sb.get("max_seq_length").and_then(Value::as_u64) {
        out.insert("max_seq_length".into(), n.into());
    }
    let pooling = match read("1_Pooling/config.json")? {
        Some(p) if p.get("pooling_mode_cls_token").and_then(Value::as_bool) == Some(true) => "cls",
        Some(p) if p.get("pooling_mode_mean_tokens").and_then(Value::as_bool) == Some(true) => "mean",
        Some(_) => return Err(Error::format(dir.join("1_Pooling/config.json"), "jielong embeds with mean or cls pooling only")),
        None => "mean",
    };
    out.insert("pooling".into(), pooling.into());
    let normalize = read("modules.json")?.and_then(|m| m.as_array().cloned()).unwrap_or_default().iter().any(|m| m.get("type").and_then(Value::as_str).is_some_and(|t| t.ends_with(".Normalize")));
    out.insert("normalize".into(), normalize.into());
    Ok(Some(out))
}
