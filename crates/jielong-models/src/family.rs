//! The family registry. A family is a config type (implementing [`FamilyConfig`]), a model type
//! and one [`Family`] entry in [`FAMILIES`]; adding a family touches nothing else.
//!
//! In a run config the family is the `family` key of the `[model]` table (default "gpt", so
//! configs and checkpoints written before families existed keep working), and every other key
//! of the table belongs to that family's config, which rejects keys it does not know:
//!
//! ```toml
//! [model]
//! family = "llama"
//! n_layer = 4
//! n_head = 4
//! n_kv_head = 2
//! n_embd = 192
//! max_seq_len = 128
//! ```

use crate::Model;
use candle_nn::VarBuilder;
use jielong_core::Error;
use std::any::Any;

/// What the spine needs of every family's config.
pub trait FamilyConfig: std::fmt::Debug + Send + Sync + Any {
    /// The registry name ("gpt", "llama", …).
    fn family(&self) -> &'static str;
    fn vocab_size(&self) -> usize;
    fn set_vocab_size(&mut self, vocab_size: usize);
    /// The longest context the model reads.
    fn max_seq_len(&self) -> usize;
    /// Check that the numbers make a model; errors say which `model.` key to change.
    fn validate(&self) -> Result<(), Error>;
    /// Parameters in the model (a tied head counted once).
    fn n_params(&self) -> usize;
    /// Training FLOPs per token (forward + backward) at sequence length `seq_len`.
    fn flops_per_token(&self, seq_len: usize) -> f64;
    /// One line for people: "GPT · 4 layers · 4 heads · n_embd 192 · learned positions".
    fn describe(&self) -> String;
    /// The family's keys and values (without `family`).
    fn to_json(&self) -> serde_json::Value;
    fn clone_box(&self) -> Box<dyn FamilyConfig>;
    /// Build the model, creating (or fetching) its parameters through `vb`.
    fn build(&self, vb: VarBuilder) -> Result<Box<dyn Model>, Error>;
    fn as_any(&self) -> &dyn Any;
    /// The token embedding table: its parameter name and row width (n_embd), for
    /// `jielong train --init-embeddings`. `None`: the family has none to initialise.
    fn token_embedding(&self) -> Option<(&'static str, usize)> {
        None
    }
}

/// One registry entry.
pub struct Family {
    pub name: &'static str,
    /// One line for `--help` and error messages.
    pub about: &'static str,
    /// The family's config from its keys (an object without `family`); the message of an
    /// error is shown after "model: ".
    pub parse: fn(serde_json::Value) -> Result<Box<dyn FamilyConfig>, String>,
    /// A named preset: `tiny` (what `quickstart --family` trains), `small` and `medium` (the
    /// `bench train` models). `None` for a name the family lacks.
    pub preset: fn(&str) -> Option<Box<dyn FamilyConfig>>,
    /// Its Hugging Face counterpart, if it has one (`jielong import` / `export --format hf`).
    pub hf: Option<crate::hf::HfCodec>,
}

/// Every family jielong knows.
pub static FAMILIES: &[Family] = &[
    crate::gpt::FAMILY,
    crate::llama::FAMILY,
    crate::recurrent::RNN_FAMILY,
    crate::recurrent::LSTM_FAMILY,
    crate::recurrent::GRU_FAMILY,
    // issue 15
    crate::seq2seq::FAMILY,
    crate::bert::FAMILY,
    crate::albert::FAMILY,
];

/// The registry entry called `name`, or an error listing the known ones.
pub fn family(name: &str) -> Result<&'static Family, Error> {
    FAMILIES.iter().find(|f| f.name == name).ok_or_else(|| {
        Error::input(format!("model.family = \"{name}\" is not a family jielong knows; use one of: {}", names().join(", ")))
    })
}

/// The names of the known families.
pub fn names() -> Vec<&'static str> {
    FAMILIES.iter().map(|f| f.name).collect()
}

/// A family's preset `name` ("tiny", "small", "medium").
pub fn preset(family_name: &str, name: &str) -> Result<ModelConfig, Error> {
    let f = family(family_name)?;
    (f.preset)(name).map(ModelConfig).ok_or_else(|| Error::input(format!("family {family_name} has no preset `{name}`: use tiny, small or medium")))
}

/// A model config of any family: the `[model]` table of a run config, `model` in a
/// checkpoint's `meta.json`. Serialized as the family's keys with `family` first.
pub struct ModelConfig(pub Box<dyn FamilyConfig>);

impl ModelConfig {
    pub fn new(cfg: impl FamilyConfig) -> Self {
        Self(Box::new(cfg))
    }

    /// Parse a `[model]` table (a JSON object): `family` (default "gpt") picks the registry
    /// entry, which parses the rest.
    pub fn from_json(value: serde_json::Value) -> Result<Self, Error> {
        let serde_json::Value::Object(mut map) = value else {
            return Err(Error::input("model: expected a table of model settings"));
        };
        let name = match map.remove("family") {
            None => "gpt".to_string(),
            Some(serde_json::Value::String(s)) => s,
            Some(other) => return Err(Error::input(format!("model.family must be a string such as \"gpt\", got {other}"))),
        };
        let fam = family(&name)?;
        match (fam.parse)(serde_json::Value::Object(map)) {
            Ok(cfg) => Ok(Self(cfg)),
            Err(msg) => {
                // A key of another family: say which, rather than only "unknown field".
                let unknown = msg.strip_prefix("unknown field `").and_then(|rest| rest.split('`').next());
                if let Some(key) = unknown {
                    if let Some(other) = FAMILIES.iter().find(|f| f.name != name && family_keys(f).iter().any(|k| k == key)) {
                        return Err(Error::input(format!(
                            "model.{key} is a setting of family {}, not of {name}: remove it, or set model.family = \"{}\"",
                            other.name, other.name
                        )));
                    }
                }
                Err(Error::input(format!("model (family {name}): {msg}")))
            }
        }
    }

    pub fn family(&self) -> &'static str {
        self.0.family()
    }

    /// This config with one key set (as `--set model.KEY=VALUE` does), checked by the family.
    pub fn with_setting(&self, key: &str, value: serde_json::Value) -> Result<Self, Error> {
        let mut json = self.to_json();
        json[key] = value;
        Self::from_json(json)
    }

    /// The family's config type, when it is `T`.
    pub fn get<T: FamilyConfig>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref::<T>()
    }

    /// `family` and the family's keys.
    pub fn to_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        map.insert("family".into(), self.family().into());
        if let serde_json::Value::Object(fields) = self.0.to_json() {
            map.extend(fields);
        }
        serde_json::Value::Object(map)
    }

    /// Build the model with parameters from `vb` (checked first).
    pub fn build(&self, vb: VarBuilder) -> Result<Box<dyn Model>, Error> {
        self.0.validate()?;
        self.0.build(vb)
    }
}

/// The keys of a family's config (those of its tiny preset, which serializes every field).
fn family_keys(f: &Family) -> Vec<String> {
    match (f.preset)("tiny").map(|c| c.to_json()) {
        Some(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

impl std::ops::Deref for ModelConfig {
    type Target = dyn FamilyConfig;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl std::ops::DerefMut for ModelConfig {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut *self.0
    }
}

impl Clone for ModelConfig {
    fn clone(&self) -> Self {
        Self(self.0.clone_box())
    }
}

impl std::fmt::Debug for ModelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

impl PartialEq for ModelConfig {
    fn eq(&self, other: &Self) -> bool {
        self.to_json() == other.to_json()
    }
}

impl serde::Serialize for ModelConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for ModelConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        ModelConfig::from_json(value).map_err(serde::de::Error::custom)
    }
}

/// Parse a family's config struct from its keys, with serde's message on failure.
pub fn parse_as<T: FamilyConfig + serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<Box<dyn FamilyConfig>, String> {
    serde_json::from_value::<T>(value).map(|c| Box::new(c) as Box<dyn FamilyConfig>).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_defaults_to_gpt_and_rejects_unknown_and_mixed_keys() {
        let v = serde_json::json!({"n_layer": 2, "n_head": 2, "n_embd": 32, "max_seq_len": 16});
        assert_eq!(ModelConfig::from_json(v.clone()).unwrap().family(), "gpt");
        let e = ModelConfig::from_json(serde_json::json!({"family": "gpt5", "n_layer": 2})).unwrap_err();
        assert!(e.is_user_error() && e.to_string().contains("gpt, llama"), "{e}");
        let mut mixed = v.clone();
        mixed["n_kv_head"] = 1.into();
        let e = ModelConfig::from_json(mixed).unwrap_err().to_string();
        assert!(e.contains("model.n_kv_head is a setting of family llama"), "{e}");
        let mut typo = v;
        typo["n_layers"] = 1.into();
        let e = ModelConfig::from_json(typo).unwrap_err().to_string();
        assert!(e.contains("unknown field `n_layers`"), "{e}");
        let mut llama = serde_json::json!({"family": "llama", "n_layer": 2, "n_head": 4, "n_embd": 32, "max_seq_len": 16});
        llama["pos_encoding"] = "learned".into();
        let e = ModelConfig::from_json(llama).unwrap_err().to_string();
        assert!(e.contains("model.pos_encoding is a setting of family gpt"), "{e}");
    }

    #[test]
    fn model_config_round_trips_through_json_and_toml() {
        for f in FAMILIES {
            let cfg = preset(f.name, "tiny").unwrap();
            let back = ModelConfig::from_json(cfg.to_json()).unwrap();
            assert_eq!(back, cfg);
            let text = toml::to_string(&cfg).unwrap();
            let again: ModelConfig = toml::from_str(&text).unwrap();
            assert_eq!(again, cfg, "{text}");
            assert!(text.starts_with(&format!("family = \"{}\"", f.name)), "{text}");
        }
    }
}
