//! The pipeline TOML: an ordered list of `[[stage]]` tables, each naming its `kind` and
//! overriding any of that stage's thresholds, and an optional `[settings]` table.
//!
//! ```toml
//! [settings]
//! shard_docs = 10000     # documents per output shard
//!
//! [[stage]]
//! kind = "language"
//! languages = ["en", "zh"]
//!
//! [[stage]]
//! kind = "gopher_quality"
//! min_doc_words = 50
//!
//! [[stage]]
//! kind = "minhash_dedup"
//! num_buckets = 14
//! hashes_per_bucket = 8
//! ```
//!
//! Unknown stages or keys and thresholds out of range are errors that name the stage.

use crate::c4::C4Lines;
use crate::dedup::{DedupStage, LinesConfig};
use crate::fineweb::FineWeb;
use crate::gopher::{GopherQuality, GopherRepetition};
use crate::langid::{LangId, LangIdConfig};
use crate::minhash::MinHashConfig;
use crate::perplexity::{Perplexity, PerplexityConfig};
use crate::pii::{Pii, PiiConfig};
use crate::stage::DocStage;
use jielong_core::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::path::Path;

/// The stages jielong knows, with one line each for error messages and `--help`.
pub const KINDS: &[(&str, &str)] = &[
    ("language", "language identification (whatlang) with a keep-list and a minimum score"),
    ("gopher_repetition", "Gopher's repetition rules: duplicate lines/paragraphs, top and duplicated n-grams"),
    ("gopher_quality", "Gopher's quality rules: word counts, word length, symbols, bullets, ellipses, stop words"),
    ("c4", "C4's line rules: terminal punctuation, short lines, javascript, policies, lorem ipsum, curly brackets"),
    ("fineweb", "FineWeb's rules: punctuated lines, short lines, duplicated-line characters, list-like pages"),
    ("perplexity", "CCNet's perplexity filter with a `jielong ngram` model"),
    ("pii", "PII scrubbing: e-mails, IPs, phones, Chinese IDs, cards, IBANs, secrets → typed placeholders"),
    ("exact_dedup", "exact deduplication on normalised text"),
    ("minhash_dedup", "near-duplicate removal with MinHash and LSH bands"),
    ("line_dedup", "remove lines already seen in an earlier document"),
];

/// The built-in pipeline (`jielong data clean` without `--pipeline`), in FineWeb's order.
pub const DEFAULT_TOML: &str = r#"# jielong's default cleaning pipeline (FineWeb's order of stages, datatrove's thresholds).
[settings]
shard_docs = 10000

[[stage]]
kind = "language"
languages = ["en", "zh"]
min_score = 0.65

[[stage]]
kind = "gopher_repetition"

[[stage]]
kind = "gopher_quality"

[[stage]]
kind = "c4"

[[stage]]
kind = "fineweb"

[[stage]]
kind = "exact_dedup"

[[stage]]
kind = "minhash_dedup"

[[stage]]
kind = "pii"
"#;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Documents per shard (the unit of parallel work, output files and resume).
    pub shard_docs: usize,
    /// Keep removed documents under `removed/` for `jielong data inspect`.
    pub keep_removed: bool,
    /// Examples kept per rule in the report.
    pub examples_per_rule: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { shard_docs: 10_000, keep_removed: true, examples_per_rule: 3 }
    }
}

/// One stage of a built pipeline.
pub enum Stage {
    Doc(Box<dyn DocStage>),
    Dedup(DedupStage),
}

impl Stage {
    pub fn name(&self) -> &'static str {
        match self {
            Stage::Doc(s) => s.name(),
            Stage::Dedup(d) => d.name(),
        }
    }
}

/// A parsed, validated pipeline.
pub struct Pipeline {
    pub settings: Settings,
    pub stages: Vec<Stage>,
    /// The TOML it was built from, after `--set` overrides (stored with the run, hashed to
    /// recognise the same run on `--resume`).
    pub toml: String,
}

fn parse_part<T: DeserializeOwned>(v: toml::Value, what: &str) -> std::result::Result<T, String> {
    v.try_into::<T>().map_err(|e| format!("{what}: {}", e.message().trim()))
}

impl Pipeline {
    /// Parse a pipeline; `base` resolves relative paths in it (the TOML file's folder);
    /// `overrides` are `--set KIND.KEY=VALUE` (the first stage of that kind) or
    /// `settings.KEY=VALUE`.
    pub fn parse(text: &str, base: &Path, overrides: &[String]) -> Result<Self> {
        let bad = |m: String| Error::input(format!("pipeline: {m}"));
        let mut root: toml::Table = text.parse().map_err(|e: toml::de::Error| bad(format!("not valid TOML: {}", e.message())))?;
        for o in overrides {
            apply_override(&mut root, o).map_err(bad)?;
        }
        for key in root.keys() {
            if key != "stage" && key != "settings" {
                return Err(bad(format!("unknown table `{key}`: a pipeline has [settings] and [[stage]] tables")));
            }
        }
        let settings: Settings = match root.get("settings") {
            Some(v) => parse_part(v.clone(), "[settings]").map_err(bad)?,
            None => Settings::default(),
        };
        if settings.shard_docs == 0 {
            return Err(bad("settings.shard_docs must be at least 1".into()));
        }
        let list = match root.get("stage") {
            Some(toml::Value::Array(a)) => a.clone(),
            Some(_) => return Err(bad("`stage` must be an array of tables: write each as [[stage]]".into())),
            None => return Err(bad("no [[stage]] tables: list the stages to run".into())),
        };
        let mut stages = Vec::new();
        for (i, st) in list.into_iter().enumerate() {
            let toml::Value::Table(mut t) = st else {
                return Err(bad(format!("stage {} is not a table", i + 1)));
            };
            let kind = match t.remove("kind") {
                Some(toml::Value::String(k)) => k,
                _ => return Err(bad(format!("stage {} has no `kind`; use one of: {}", i + 1, kind_names()))),
            };
            let what = format!("stage {} ({kind})", i + 1);
            let v = toml::Value::Table(t);
            let stage = build(&kind, v, base, &what).map_err(bad)?;
            stages.push(stage);
        }
        Ok(Pipeline { settings, stages, toml: toml::to_string(&root).unwrap_or_else(|_| text.to_string()) })
    }

    /// The built-in default pipeline.
    pub fn default_pipeline(overrides: &[String]) -> Result<Self> {
        Self::parse(DEFAULT_TOML, Path::new("."), overrides)
    }
}

fn kind_names() -> String {
    KINDS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
}

fn build(kind: &str, v: toml::Value, base: &Path, what: &str) -> std::result::Result<Stage, String> {
    let doc = |s: Box<dyn DocStage>| Ok(Stage::Doc(s));
    let checked = |r: std::result::Result<(), String>| r.map_err(|e| format!("{what}: {e}"));
    match kind {
        "language" => doc(Box::new(LangId::new(parse_part::<LangIdConfig>(v, what)?).map_err(|e| format!("{what}: {e}"))?)),
        "gopher_quality" => {
            let s: GopherQuality = parse_part(v, what)?;
            checked(s.validate())?;
            doc(Box::new(s))
        }
        "gopher_repetition" => {
            let s: GopherRepetition = parse_part(v, what)?;
            checked(s.validate())?;
            doc(Box::new(s))
        }
        "c4" => {
            let s: C4Lines = parse_part(v, what)?;
            checked(s.validate())?;
            doc(Box::new(s))
        }
        "fineweb" => {
            let s: FineWeb = parse_part(v, what)?;
            checked(s.validate())?;
            doc(Box::new(s))
        }
        "perplexity" => {
            let c: PerplexityConfig = parse_part(v, what)?;
            doc(Box::new(Perplexity::new(&c, base).map_err(|e| format!("{what}: {e}"))?))
        }
        "pii" => doc(Box::new(Pii::new(&parse_part::<PiiConfig>(v, what)?).map_err(|e| format!("{what}: {e}"))?)),
        "exact_dedup" => {
            let t = v.as_table().cloned().unwrap_or_default();
            if let Some(k) = t.keys().next() {
                return Err(format!("{what}: unknown key `{k}` (this stage has no settings)"));
            }
            Ok(Stage::Dedup(DedupStage::Exact))
        }
        "minhash_dedup" => Ok(Stage::Dedup(DedupStage::minhash(parse_part::<MinHashConfig>(v, what)?).map_err(|e| format!("{what}: {e}"))?)),
        "line_dedup" => Ok(Stage::Dedup(DedupStage::Lines(parse_part::<LinesConfig>(v, what)?))),
        other => Err(format!("unknown stage kind `{other}`; use one of: {}", kind_names())),
    }
}

/// `KIND.KEY=VALUE` or `settings.KEY=VALUE`; the value is TOML (`0.5`, `true`, `["en"]`), or
/// a bare string.
fn apply_override(root: &mut toml::Table, o: &str) -> std::result::Result<(), String> {
    let (lhs, rhs) = o.split_once('=').ok_or_else(|| format!("--set {o}: write KIND.KEY=VALUE, e.g. gopher_quality.min_doc_words=30"))?;
    let (head, key) = lhs.trim().split_once('.').ok_or_else(|| format!("--set {o}: write KIND.KEY=VALUE, e.g. gopher_quality.min_doc_words=30"))?;
    let value: toml::Value = format!("v = {}", rhs.trim())
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(rhs.trim().to_string()));
    if head == "settings" {
        let s = root.entry("settings").or_insert_with(|| toml::Value::Table(toml::Table::new()));
        s.as_table_mut().ok_or("settings is not a table")?.insert(key.to_string(), value);
        return Ok(());
    }
    let stages = root.get_mut("stage").and_then(|s| s.as_array_mut()).ok_or_else(|| format!("--set {o}: the pipeline has no stages"))?;
    let st = stages
        .iter_mut()
        .find(|s| s.get("kind").and_then(|k| k.as_str()) == Some(head))
        .ok_or_else(|| format!("--set {o}: the pipeline has no `{head}` stage"))?;
    st.as_table_mut().ok_or("stage is not a table")?.insert(key.to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        match Pipeline::parse(text, Path::new("."), &[]) {
            Ok(_) => panic!("parsed"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn default_pipeline_parses_with_its_stages_in_order() {
        let p = Pipeline::default_pipeline(&[]).unwrap();
        let names: Vec<&str> = p.stages.iter().map(Stage::name).collect();
        assert_eq!(names, ["language", "gopher_repetition", "gopher_quality", "c4", "fineweb", "exact_dedup", "minhash_dedup", "pii"]);
    }

    #[test]
    fn bad_pipelines_name_what_is_wrong() {
        assert!(err("[[stage]]\nkind = \"shiny\"").contains("unknown stage kind `shiny`"));
        assert!(err("[[stage]]\nkind = \"gopher_quality\"\nmin_words = 3").contains("unknown field `min_words`"));
        assert!(err("[[stage]]\nkind = \"fineweb\"\nline_punct_thr = 1.5").contains("out of range"));
        assert!(err("[[stage]]\nkind = \"minhash_dedup\"\nnum_buckets = 0").contains("num_buckets"));
        assert!(err("[[stage]]\nkind = \"pii\"\nkinds = [\"ssn\"]").contains("unknown PII kind"));
        assert!(err("[settings]\nshard_docs = 10").contains("no [[stage]]"));
        assert!(err("[[stage]]\nkind = \"exact_dedup\"\nx = 1").contains("unknown key `x`"));
    }

    #[test]
    fn overrides_change_the_first_stage_of_a_kind() {
        let p = Pipeline::default_pipeline(&["gopher_quality.min_doc_words=7".into(), "settings.shard_docs=5".into()]).unwrap();
        assert_eq!(p.settings.shard_docs, 5);
        assert!(p.toml.contains("min_doc_words = 7"));
        assert!(Pipeline::default_pipeline(&["nothing.x=1".into()]).is_err());
        assert!(Pipeline::default_pipeline(&["gopher_quality.min_doc_words".into()]).is_err());
    }
}
