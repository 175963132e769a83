//! Hugging Face folders in and out: `config.json` + `model.safetensors` (or a sharded
//! `model.safetensors.index.json`), the layout `from_pretrained` reads and `save_pretrained`
//! writes. Each family that has a Hugging Face counterpart gives an [`HfCodec`] in its registry
//! entry: which `model_type`s it reads, how its config maps to theirs and back, and how tensor
//! names map (jielong's parameter names are Hugging Face's already, so mostly they do not).
//! The tokenizer files are the caller's: this crate never sees tokenizers.

use crate::family::{FamilyConfig, FAMILIES};
use crate::ModelConfig;
use candle_core::{DType, Device, Tensor};
use jielong_core::{Error, Result};
use jielong_nn::ParamStore;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// What a config conversion needs besides the model's own numbers.
#[derive(Debug, Clone)]
pub struct HfMeta {
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    /// "float32", "float16" or "bfloat16".
    pub dtype: &'static str,
}

/// A `config.json` as parsed.
pub type HfConfig = Map<String, Value>;
/// Reads a family's config from a `config.json`.
pub type ConfigFromHf = fn(&HfConfig) -> std::result::Result<Box<dyn FamilyConfig>, String>;
/// Writes a family's config as a `config.json`.
pub type ConfigToHf = fn(&dyn FamilyConfig, &HfMeta) -> std::result::Result<HfConfig, String>;

/// A family's mapping to and from Hugging Face.
pub struct HfCodec {
    /// The `model_type`s of `config.json` this family reads ("gpt2"; "llama", "qwen2").
    pub model_types: &'static [&'static str],
    /// The family's config from a `config.json`; the error names the field.
    pub config_from_hf: ConfigFromHf,
    /// A `config.json` for the family's config; an error says what Hugging Face cannot express.
    pub config_to_hf: ConfigToHf,
    /// A tensor name of a Hugging Face file → the model's parameter name, or None for a buffer
    /// that is not a parameter (GPT-2's `attn.bias` mask, Llama's `rotary_emb.inv_freq`).
    pub name_from_hf: fn(&str) -> Option<String>,
}

/// A field of `config.json` as an unsigned integer.
pub fn field_usize(cfg: &Map<String, Value>, key: &str) -> std::result::Result<usize, String> {
    cfg.get(key).and_then(Value::as_u64).map(|v| v as usize).ok_or_else(|| format!("`{key}` is missing or not a whole number"))
}

/// An optional number field.
pub fn field_f64(cfg: &Map<String, Value>, key: &str) -> std::result::Result<Option<f64>, String> {
    match cfg.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| format!("`{key}` must be a number, got {v}")),
    }
}

/// Refuse a field whose value changes the model in a way jielong does not implement.
pub fn require(cfg: &Map<String, Value>, key: &str, ok: impl Fn(&Value) -> bool, what: &str) -> std::result::Result<(), String> {
    match cfg.get(key) {
        Some(v) if !ok(v) => Err(format!("`{key}` = {v} is not supported (jielong implements {what})")),
        _ => Ok(()),
    }
}

fn read_json(path: &Path) -> Result<Map<String, Value>> {
    let text = jielong_core::fs::read_to_string(path)?;
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Error::format(path, "expected a JSON object")),
        Err(e) => Err(Error::format(path, format!("not valid JSON ({e})"))),
    }
}

/// The family and model config a Hugging Face folder describes.
pub fn read_config(dir: &Path) -> Result<ModelConfig> {
    let path = dir.join("config.json");
    if !path.is_file() {
        return Err(Error::input(format!("{}: no config.json here; pass a Hugging Face model folder (config.json + model.safetensors)", dir.display())));
    }
    let cfg = read_json(&path)?;
    let model_type = cfg.get("model_type").and_then(Value::as_str).ok_or_else(|| Error::format(&path, "`model_type` is missing"))?;
    let supported: Vec<&str> = FAMILIES.iter().filter_map(|f| f.hf.as_ref()).flat_map(|c| c.model_types.iter().copied()).collect();
    let codec = FAMILIES
        .iter()
        .filter_map(|f| f.hf.as_ref())
        .find(|c| c.model_types.contains(&model_type))
        .ok_or_else(|| Error::format(&path, format!("`model_type` = \"{model_type}\" is not supported; jielong imports {}", supported.join(", "))))?;
    let fc = (codec.config_from_hf)(&cfg).map_err(|m| Error::format(&path, m))?;
    fc.validate().map_err(|e| Error::format(&path, format!("the config does not make a jielong model: {e}")))?;
    Ok(ModelConfig(fc))
}

fn codec_of(cfg: &ModelConfig) -> Result<&'static HfCodec> {
    crate::family::family(cfg.family())?
        .hf
        .as_ref()
        .ok_or_else(|| Error::input(format!("family {} has no Hugging Face counterpart to export to", cfg.family())))
}

/// The safetensors files of a folder: `model.safetensors`, or the shards an index names.
fn weight_files(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let m = read_json(&index)?;
        let map = m.get("weight_map").and_then(Value::as_object).ok_or_else(|| Error::format(&index, "`weight_map` is missing"))?;
        let mut files: Vec<String> = map.values().filter_map(|v| v.as_str().map(String::from)).collect();
        files.sort();
        files.dedup();
        return Ok(files.into_iter().map(|f| dir.join(f)).collect());
    }
    Err(Error::input(format!("{}: no model.safetensors (or model.safetensors.index.json); jielong reads safetensors weights only", dir.display())))
}

/// Read a Hugging Face folder into a jielong model config and a parameter store holding its
/// weights (as f32). Every parameter must be present with its shape; a tensor the model has
/// no place for is an error (a tied `lm_head.weight` is skipped: it is the embedding).
pub fn import(dir: &Path) -> Result<(ModelConfig, ParamStore)> {
    let cfg = read_config(dir)?;
    let codec = codec_of(&cfg)?;
    let params = ParamStore::new(0);
    cfg.build(params.var_builder(&Device::Cpu))?;
    let vars: HashMap<String, candle_core::Var> = params.vars().into_iter().collect();
    let mut seen = std::collections::HashSet::new();
    for file in weight_files(dir)? {
        for (name, t) in jielong_nn::params::load_tensors(&file)? {
            let Some(ours) = (codec.name_from_hf)(&name) else { continue };
            let Some(var) = vars.get(&ours) else {
                if ours == "lm_head.weight" && !vars.contains_key("lm_head.weight") {
                    continue; // tied: the head is the embedding
                }
                return Err(Error::format(&file, format!("holds `{name}`, which a {} model of this config does not have (an unsupported variant of the architecture?)", cfg.family())));
            };
            if var.dims() != t.dims() {
                return Err(Error::format(&file, format!("`{name}` has shape {:?}, but config.json makes it {:?}", t.dims(), var.dims())));
            }
            var.set(&t.to_dtype(DType::F32)?)?;
            seen.insert(ours);
        }
    }
    let mut missing: Vec<&String> = vars.keys().filter(|k| !seen.contains(*k)).collect();
    if !missing.is_empty() {
        missing.sort();
        return Err(Error::format(dir, format!("{} of the model's tensors are missing from the weights, e.g. `{}`", missing.len(), missing[0])));
    }
    Ok((cfg, params))
}

/// Bytes of `t` as `dtype`, little-endian.
fn tensor_bytes(t: &Tensor, dtype: DType) -> Result<Vec<u8>> {
    let flat = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    Ok(match dtype {
        DType::F32 => flat.iter().flat_map(|x| x.to_le_bytes()).collect(),
        DType::F16 => flat.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect(),
        DType::BF16 => flat.iter().flat_map(|&x| half::bf16::from_f32(x).to_le_bytes()).collect(),
        other => return Err(Error::input(format!("--dtype {other:?}: use f32, f16 or bf16"))),
    })
}

/// The dtype names of `config.json` and safetensors.
pub fn dtype_name(dtype: DType) -> Result<&'static str> {
    match dtype {
        DType::F32 => Ok("float32"),
        DType::F16 => Ok("float16"),
        DType::BF16 => Ok("bfloat16"),
        other => Err(Error::input(format!("--dtype {other:?}: use f32, f16 or bf16"))),
    }
}

/// Write `config.json`, `generation_config.json` and `model.safetensors` (tensors by name, as
/// `save_pretrained` writes them: metadata `format: pt`) for the model into `dir`.
pub fn export(cfg: &ModelConfig, params: &ParamStore, dtype: DType, meta: &HfMeta, dir: &Path) -> Result<()> {
    let codec = codec_of(cfg)?;
    let hf = (codec.config_to_hf)(&**cfg, meta).map_err(|m| Error::input(format!("cannot export a {} model to Hugging Face: {m}", cfg.family())))?;
    write_sorted_json(&dir.join("config.json"), hf)?;
    let mut gen = Map::new();
    gen.insert("_from_model_config".into(), true.into());
    if let Some(b) = meta.bos_token_id {
        gen.insert("bos_token_id".into(), b.into());
    }
    if let Some(e) = meta.eos_token_id {
        gen.insert("eos_token_id".into(), e.into());
    }
    gen.insert("use_cache".into(), true.into());
    write_sorted_json(&dir.join("generation_config.json"), gen)?;

    let st_dtype = match dtype {
        DType::F16 => safetensors::Dtype::F16,
        DType::BF16 => safetensors::Dtype::BF16,
        _ => safetensors::Dtype::F32,
    };
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = params
        .vars()
        .into_iter()
        .map(|(name, v)| Ok((name, v.dims().to_vec(), tensor_bytes(v.as_tensor(), dtype)?)))
        .collect::<Result<_>>()?;
    let views = tensors
        .iter()
        .map(|(n, shape, bytes)| Ok((n.clone(), safetensors::tensor::TensorView::new(st_dtype, shape.clone(), bytes).map_err(|e| Error::Other(e.to_string()))?)))
        .collect::<Result<Vec<_>>>()?;
    let info: HashMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    let bytes = safetensors::serialize(views, Some(info)).map_err(|e| Error::Other(format!("writing safetensors: {e}")))?;
    jielong_core::fs::write_atomic(&dir.join("model.safetensors"), &bytes)
}

/// JSON with sorted keys and two-space indents, as transformers writes its configs.
pub fn write_sorted_json(path: &Path, map: Map<String, Value>) -> Result<()> {
    fn sort(v: Value) -> Value {
        match v {
            Value::Object(m) => {
                let sorted: BTreeMap<String, Value> = m.into_iter().map(|(k, v)| (k, sort(v))).collect();
                Value::Object(sorted.into_iter().collect())
            }
            Value::Array(a) => Value::Array(a.into_iter().map(sort).collect()),
            other => other,
        }
    }
    let text = serde_json::to_string_pretty(&sort(Value::Object(map))).expect("JSON serializes") + "\n";
    jielong_core::fs::write_atomic(path, text.as_bytes())
}
