//! `jielong data prepare`: documents → cleaned, deduplicated, split, tokenized → shards.
//!
//! The output folder is built under a temporary name and renamed into place at the end, so an
//! interrupted run leaves nothing half-written. It holds `train-NNNNN.bin`, `val-NNNNN.bin`,
//! `meta.json` and a copy of the tokenizer (`tokenizer.json`), so the folder alone says how it
//! was made.

use crate::meta::{DataMeta, PrepareReport, SplitMeta, META_VERSION};
use crate::shard::write_shard;
use jielong_core::fs::AtomicDir;
use jielong_core::{Error, Result};
use jielong_text::{clean, CleanStats, Document, ReadReport};
use jielong_tokenizer::Tokenizer;
use std::collections::HashSet;
use std::path::Path;

#[derive(Debug, Clone)]
pub struct PrepareOptions {
    /// Fraction of the text that goes to validation, in [0, 0.5].
    pub val_fraction: f64,
    /// Tokens per shard file.
    pub shard_tokens: usize,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        Self { val_fraction: 0.1, shard_tokens: 1 << 24 }
    }
}

/// With at least this many documents, whole documents are split by hash; below it, each
/// document's tail is held out (a corpus of a dozen long files must still get validation text
/// from every file).
const DOCUMENT_SPLIT_MIN_DOCS: usize = 200;

fn doc_hash(text: &str) -> u64 {
    let h = jielong_core::sha256_hex(text.as_bytes());
    u64::from_str_radix(&h[..16], 16).expect("hex")
}

/// Cut `text` so that about `val_fraction` of it is the tail, at a line break when there is one.
fn tail_cut(text: &str, val_fraction: f64) -> usize {
    let target = ((text.len() as f64) * (1.0 - val_fraction)) as usize;
    let mut cut = target.min(text.len());
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    match text[cut..].find('\n') {
        Some(off) if off < text.len() / 10 + 200 => cut + off + 1,
        _ => cut,
    }
}

pub fn prepare(
    docs: Vec<Document>,
    read: &ReadReport,
    tokenizer: &Tokenizer,
    out: &Path,
    opts: &PrepareOptions,
) -> Result<DataMeta> {
    if !(0.0..=0.5).contains(&opts.val_fraction) {
        return Err(Error::input(format!("--val-fraction {} must be between 0 and 0.5", opts.val_fraction)));
    }
    let mut report = PrepareReport {
        files_read: read.files,
        documents_in: docs.len() as u64,
        invalid_utf8_replaced: read.invalid_utf8_replaced,
        jsonl_lines_without_text: read.jsonl_lines_without_text,
        ..Default::default()
    };

    // Clean, drop empties and exact duplicates.
    let mut stats = CleanStats::default();
    let mut seen = HashSet::new();
    let mut kept: Vec<String> = Vec::with_capacity(docs.len());
    for doc in docs {
        let (text, st) = clean(&doc.text);
        stats.add(&st);
        if text.trim().is_empty() {
            report.dropped_empty += 1;
            continue;
        }
        if !seen.insert(doc_hash(&text)) {
            report.dropped_duplicate += 1;
            continue;
        }
        kept.push(text);
    }
    report.line_endings_fixed = stats.line_endings_fixed;
    report.control_chars_removed = stats.control_chars_removed;
    report.documents_out = kept.len() as u64;
    if kept.is_empty() {
        return Err(Error::input(format!(
            "the corpus is empty: {} documents read, {} empty and {} duplicates dropped; pass files with text in them",
            report.documents_in, report.dropped_empty, report.dropped_duplicate
        )));
    }

    // Split deterministically.
    let mut train_texts: Vec<&str> = Vec::new();
    let mut val_texts: Vec<&str> = Vec::new();
    if kept.len() >= DOCUMENT_SPLIT_MIN_DOCS && opts.val_fraction > 0.0 {
        report.split_mode = "document".into();
        let threshold = (opts.val_fraction * 1_000_000.0) as u64;
        for t in &kept {
            if doc_hash(t) % 1_000_000 < threshold {
                val_texts.push(t);
            } else {
                train_texts.push(t);
            }
        }
    } else {
        report.split_mode = "tail".into();
        for t in &kept {
            let cut = if opts.val_fraction > 0.0 { tail_cut(t, opts.val_fraction) } else { t.len() };
            if !t[..cut].trim().is_empty() {
                train_texts.push(&t[..cut]);
            }
            if !t[cut..].trim().is_empty() {
                val_texts.push(&t[cut..]);
            }
        }
    }

    let dir = AtomicDir::new(out)?;
    let vocab_size = tokenizer.vocab_size();
    let write_split = |name: &str, texts: &[&str]| -> Result<SplitMeta> {
        let mut meta = SplitMeta { n_documents: texts.len() as u64, ..Default::default() };
        let mut buf: Vec<u32> = Vec::new();
        let flush = |buf: &mut Vec<u32>, meta: &mut SplitMeta| -> Result<()> {
            let file = format!("{name}-{:05}.bin", meta.shards.len());
            write_shard(&dir.path().join(&file), buf, vocab_size, tokenizer.hash())?;
            meta.n_tokens += buf.len() as u64;
            meta.shards.push(file);
            buf.clear();
            Ok(())
        };
        for chunk in texts.chunks(256) {
            let encoded = tokenizer.encode_batch(chunk.to_vec())?;
            for (text, ids) in chunk.iter().zip(encoded) {
                meta.n_bytes += text.len() as u64;
                buf.extend_from_slice(&ids);
                if let Some(eot) = tokenizer.eot_id() {
                    buf.push(eot);
                }
                if buf.len() >= opts.shard_tokens {
                    flush(&mut buf, &mut meta)?;
                }
            }
        }
        if !buf.is_empty() || meta.shards.is_empty() {
            flush(&mut buf, &mut meta)?;
        }
        Ok(meta)
    };
    let train = write_split("train", &train_texts)?;
    let val = write_split("val", &val_texts)?;
    tokenizer.save(dir.path())?;
    let meta = DataMeta {
        format_version: META_VERSION,
        tokenizer_hash: tokenizer.hash().to_string(),
        vocab_size,
        eot_id: tokenizer.eot_id(),
        val_fraction: opts.val_fraction,
        train,
        val,
        report,
    };
    jielong_core::fs::write_json_atomic(&dir.path().join("meta.json"), &meta)?;
    dir.commit()?;
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TokenDataset;
    use jielong_tokenizer::TokenizerKind;

    fn doc(t: &str) -> Document {
        Document { source: "t".into(), text: t.into() }
    }

    #[test]
    fn prepare_cleans_dedups_splits_and_round_trips() {
        let body: String = (0..40).map(|i| format!("Line {i}: the quick brown fox. 狐狸跳过了懒狗。\n")).collect();
        let docs = vec![doc(&body), doc(&body), doc("   \n"), doc(&format!("other\r\n{body}"))];
        let tk = Tokenizer::train(TokenizerKind::Bpe, 300, docs.iter().map(|d| d.text.clone())).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("shards");
        let opts = PrepareOptions { val_fraction: 0.1, shard_tokens: 200 };
        let meta = prepare(docs, &ReadReport::default(), &tk, &out, &opts).unwrap();
        assert_eq!(meta.report.documents_in, 4);
        assert_eq!(meta.report.dropped_duplicate, 1);
        assert_eq!(meta.report.dropped_empty, 1);
        assert_eq!(meta.report.line_endings_fixed, 1);
        assert_eq!(meta.report.split_mode, "tail");
        assert!(meta.train.shards.len() > 1, "small shard size should give several shards");
        assert!(meta.val.n_tokens > 0 && meta.val.n_tokens < meta.train.n_tokens / 4);
        // The stream decodes back to the cleaned text, documents separated by the EOT token.
        let train = TokenDataset::open(&out, "train").unwrap();
        let text = tk.decode(&train.to_vec()).unwrap();
        assert!(text.starts_with("Line 0: the quick brown fox. 狐狸跳过了懒狗。\n"));
        assert!(text.contains("<|endoftext|>other\nLine 0"));
        assert!(out.join("tokenizer.json").exists());
        // Nothing temporary left beside the output.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("shards")]);
    }

    #[test]
    fn prepare_is_deterministic() {
        let docs: Vec<_> = (0..300).map(|i| doc(&format!("document number {i} says hello {}", i * 7))).collect();
        let tk = Tokenizer::train(TokenizerKind::Char, 100, docs.iter().map(|d| d.text.clone())).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let a = prepare(docs.clone(), &ReadReport::default(), &tk, &dir.path().join("a"), &PrepareOptions::default()).unwrap();
        let b = prepare(docs, &ReadReport::default(), &tk, &dir.path().join("b"), &PrepareOptions::default()).unwrap();
        assert_eq!(a.report.split_mode, "document");
        assert_eq!(a.val.n_documents, b.val.n_documents);
        assert!(a.val.n_documents > 10 && a.val.n_documents < 60, "{}", a.val.n_documents);
        for s in ["train-00000.bin", "val-00000.bin"] {
            assert_eq!(std::fs::read(dir.path().join("a").join(s)).unwrap(), std::fs::read(dir.path().join("b").join(s)).unwrap());
        }
    }

    #[test]
    fn prepare_rejects_empty_corpus_and_leaves_nothing() {
        let tk = Tokenizer::train(TokenizerKind::Char, 50, ["abc"].into_iter()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("shards");
        let e = prepare(vec![doc(""), doc(" \n ")], &ReadReport::default(), &tk, &out, &PrepareOptions::default()).unwrap_err();
        assert!(e.is_user_error() && e.to_string().contains("corpus is empty"), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn dataset_rejects_shards_of_another_tokenizer() {
        let docs = vec![doc(&"some text for the shards to hold\n".repeat(30))];
        let tk = Tokenizer::train(TokenizerKind::Char, 50, docs.iter().map(|d| d.text.clone())).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("s");
        prepare(docs, &ReadReport::default(), &tk, &out, &PrepareOptions::default()).unwrap();
        let meta_path = out.join("meta.json");
        let meta = std::fs::read_to_string(&meta_path).unwrap().replace(tk.hash(), &"0".repeat(64));
        std::fs::write(&meta_path, meta).unwrap();
        let e = TokenDataset::open(&out, "train").err().unwrap();
        assert!(e.is_user_error() && e.to_string().contains("different tokenizer"), "{e}");
    }
}
