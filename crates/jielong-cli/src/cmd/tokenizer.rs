//! `jielong tokenizer train | encode | decode | stats`.

use anyhow::{Context, Result};
use clap::{Args as ClapArgs, Subcommand};
use jielong_core::Error;
use jielong_tokenizer::{Tokenizer, TokenizerKind};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum Command {
    /// Train a tokenizer on text files, folders or JSONL; writes tokenizer.json and vocab.txt.
    Train(TrainArgs),
    /// Show the ids and pieces of a text.
    Encode(EncodeArgs),
    /// Turn ids back into text.
    Decode(DecodeArgs),
    /// Compression statistics of a tokenizer on some text.
    Stats(StatsArgs),
}

#[derive(ClapArgs)]
pub struct TrainArgs {
    /// char, bpe (byte-level, GPT-2 style), wordpiece (BERT style), unigram (SentencePiece style)
    /// or word (one token per word as `jielong vectors` cuts them: jieba for Chinese).
    #[arg(long, default_value = "bpe")]
    pub kind: String,
    #[arg(long, default_value_t = 4096)]
    pub vocab_size: usize,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Text files, folders or .jsonl files.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
}

#[derive(ClapArgs)]
pub struct EncodeArgs {
    /// tokenizer.json, a folder holding one, or GPT-2's encoder.json (vocab.bpe beside it).
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// The text (or use --file).
    pub text: Option<String>,
    #[arg(long, conflicts_with = "text")]
    pub file: Option<PathBuf>,
    /// Print JSON: {"ids": [...], "pieces": [...]}.
    #[arg(long)]
    pub json: bool,
}

#[derive(ClapArgs)]
pub struct DecodeArgs {
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// Token ids, separated by spaces or commas.
    #[arg(required = true)]
    pub ids: Vec<String>,
}

#[derive(ClapArgs)]
pub struct StatsArgs {
    #[arg(long)]
    pub tokenizer: PathBuf,
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
}

pub fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::Train(a) => train(a),
        Command::Encode(a) => encode(a),
        Command::Decode(a) => decode(a),
        Command::Stats(a) => stats(a),
    }
}

/// Characters, bytes and tokens of `texts` under `tk`.
pub struct Compression {
    pub chars: usize,
    pub bytes: usize,
    pub tokens: usize,
    pub unknown: usize,
}

pub fn compression(tk: &Tokenizer, texts: &[&str]) -> Result<Compression> {
    let unk: Vec<u32> = ["<unk>", "[UNK]"].iter().filter_map(|u| tk.inner().token_to_id(u)).collect();
    let mut c = Compression { chars: 0, bytes: 0, tokens: 0, unknown: 0 };
    for (text, ids) in texts.iter().zip(tk.encode_batch(texts.to_vec())?) {
        c.chars += text.chars().count();
        c.bytes += text.len();
        c.tokens += ids.len();
        c.unknown += ids.iter().filter(|i| unk.contains(i)).count();
    }
    Ok(c)
}

pub fn print_compression(c: &Compression) {
    println!(
        "  {} characters, {} bytes → {} tokens: {:.2} characters/token, {:.2} bytes/token{}",
        c.chars,
        c.bytes,
        c.tokens,
        c.chars as f64 / c.tokens.max(1) as f64,
        c.bytes as f64 / c.tokens.max(1) as f64,
        if c.unknown > 0 { format!(", {} unknown ({:.2}%)", c.unknown, 100.0 * c.unknown as f64 / c.tokens as f64) } else { String::new() }
    );
}

/// Train and save a tokenizer on already-read documents.
pub fn train_on(kind: TokenizerKind, vocab_size: usize, texts: &[String], out: &Path) -> Result<Tokenizer> {
    let cleaned: Vec<String> = texts.iter().map(|t| jielong_text::clean(t).0).collect();
    let tk = Tokenizer::train(kind, vocab_size, cleaned.iter())?;
    tk.save(out)?;
    Ok(tk)
}

fn train(a: TrainArgs) -> Result<()> {
    let kind: TokenizerKind = a.kind.parse()?;
    let (docs, report) = jielong_text::read_corpus(&a.inputs)?;
    let texts: Vec<String> = docs.into_iter().map(|d| d.text).collect();
    // As `data prepare` does: text that cleans to nothing but whitespace is no text. Checked
    // here, before anything is written, to name the inputs (`Tokenizer::train` refuses too).
    if texts.iter().all(|t| jielong_text::clean(t).0.trim().is_empty()) {
        let names: Vec<String> = a.inputs.iter().map(|p| p.display().to_string()).collect();
        return Err(Error::input(format!(
            "{}: no text to train the tokenizer on: the corpus is empty ({} {} read, all empty or only whitespace); pass files with text in them",
            names.join(", "),
            report.documents,
            if report.documents == 1 { "document" } else { "documents" }
        ))
        .into());
    }
    let tk = train_on(kind, a.vocab_size, &texts, &a.out)?;
    println!(
        "trained a {} tokenizer on {} documents ({} files, {} bytes): {} ids",
        a.kind, report.documents, report.files, report.bytes, tk.vocab_size()
    );
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    print_compression(&compression(&tk, &refs)?);
    println!("wrote {} and {}", a.out.join("tokenizer.json").display(), a.out.join("vocab.txt").display());
    Ok(())
}

fn encode(a: EncodeArgs) -> Result<()> {
    let tk = Tokenizer::load(&a.tokenizer)?;
    let text = match (&a.text, &a.file) {
        (Some(t), _) => t.clone(),
        (None, Some(f)) => {
            let bytes = std::fs::read(f).map_err(|e| Error::io(f, e))?;
            jielong_text::reader::decode_text(f, &bytes)?.0
        }
        (None, None) => return Err(Error::input("give the text to encode, or --file PATH").into()),
    };
    let ids = tk.encode(&text)?;
    let pieces: Vec<String> = ids.iter().map(|&i| tk.piece_text(&tk.id_to_piece(i).unwrap_or_default())).collect();
    if a.json {
        println!("{}", serde_json::json!({ "ids": ids, "pieces": pieces }));
        return Ok(());
    }
    println!("{} tokens for {} characters ({} bytes)", ids.len(), text.chars().count(), text.len());
    for (id, piece) in ids.iter().zip(&pieces) {
        println!("{id:>8}  {piece}");
    }
    Ok(())
}

fn decode(a: DecodeArgs) -> Result<()> {
    let tk = Tokenizer::load(&a.tokenizer)?;
    let mut ids = Vec::new();
    for part in a.ids.iter().flat_map(|s| s.split([',', ' '])).filter(|s| !s.is_empty()) {
        ids.push(part.trim().parse::<u32>().map_err(|_| Error::input(format!("`{part}` is not a token id (a non-negative integer)")))?);
    }
    println!("{}", tk.decode(&ids)?);
    Ok(())
}

fn stats(a: StatsArgs) -> Result<()> {
    let tk = Tokenizer::load(&a.tokenizer)?;
    let (docs, report) = jielong_text::read_corpus(&a.inputs)?;
    let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
    println!("tokenizer {} ({} ids, hash {})", a.tokenizer.display(), tk.vocab_size(), &tk.hash()[..12]);
    println!("{} documents in {} files", report.documents, report.files);
    let c = compression(&tk, &texts).context("encoding")?;
    print_compression(&c);
    let mut counts = std::collections::HashMap::<u32, usize>::new();
    for ids in tk.encode_batch(texts)? {
        for id in ids {
            *counts.entry(id).or_default() += 1;
        }
    }
    let mut top: Vec<_> = counts.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    println!("  {} of {} ids used; most frequent:", top.len(), tk.vocab_size());
    for (id, n) in top.iter().take(15) {
        println!("{id:>8}  {:>8}  {}", n, tk.piece_text(&tk.id_to_piece(*id).unwrap_or_default()));
    }
    Ok(())
}
