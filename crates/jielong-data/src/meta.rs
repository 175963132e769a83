//! `meta.json` beside the shards: which tokenizer made them, how many tokens and bytes each
//! split holds, and a report of what `data prepare` did to the documents.

use jielong_core::{Error, Result};
use std::path::Path;

pub const META_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SplitMeta {
    pub shards: Vec<String>,
    pub n_tokens: u64,
    /// UTF-8 bytes of the text behind the tokens (for bits per byte).
    pub n_bytes: u64,
    pub n_documents: u64,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct PrepareReport {
    pub files_read: u64,
    pub documents_in: u64,
    pub documents_out: u64,
    pub dropped_empty: u64,
    pub dropped_duplicate: u64,
    pub invalid_utf8_replaced: u64,
    pub jsonl_lines_without_text: u64,
    pub line_endings_fixed: u64,
    pub control_chars_removed: u64,
    /// "document": whole documents go to train or validation by hash; "tail": every document's
    /// last `val_fraction` (cut at a line break) is validation (used for corpora of few documents).
    pub split_mode: String,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DataMeta {
    pub format_version: u32,
    pub tokenizer_hash: String,
    pub vocab_size: usize,
    pub eot_id: Option<u32>,
    pub val_fraction: f64,
    pub train: SplitMeta,
    pub val: SplitMeta,
    pub report: PrepareReport,
}

impl DataMeta {
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("meta.json");
        if !path.exists() {
            return Err(Error::input(format!(
                "{}: no meta.json here; point at a folder written by `jielong data prepare`",
                dir.display()
            )));
        }
        let text = jielong_core::fs::read_to_string(&path)?;
        let meta: Self = serde_json::from_str(&text)
            .map_err(|e| Error::format(&path, format!("not a jielong data meta.json ({e})")))?;
        if meta.format_version != META_VERSION {
            return Err(Error::format(&path, format!(
                "data format version {}, this jielong reads {META_VERSION}; regenerate with `jielong data prepare`",
                meta.format_version
            )));
        }
        Ok(meta)
    }

    pub fn split(&self, name: &str) -> Result<&SplitMeta> {
        match name {
            "train" => Ok(&self.train),
            "val" => Ok(&self.val),
            _ => Err(Error::input(format!("unknown split `{name}`: use train or val"))),
        }
    }
}
