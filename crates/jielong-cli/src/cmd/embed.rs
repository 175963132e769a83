//! `jielong embed --checkpoint DIR INPUT… --out FILE` and `jielong similarity --checkpoint DIR
//! "a" "b"…`: sentence vectors from any checkpoint whose family can encode (BERT; causal
//! families give the mean of their last hidden states), through `jielong_generate::Embedder`.
//!
//! An imported sentence-transformers model keeps its recipe in `sentence.json` (pooling,
//! normalisation, longest input); the flags here override it.

use anyhow::Result;
use candle_core::{Device, Tensor};
use jielong_core::Error;
use jielong_generate::{EmbedOptions, Embedder, Embeddings, Pooling, Truncate};
use jielong_models::Model;
use jielong_tokenizer::Tokenizer;
use jielong_train::Checkpoint;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct EncoderArgs {
    /// A run folder (its latest checkpoint) or a ckpt-NNNNNN folder.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Use this tokenizer instead of the run's own (it must be the same one).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// mean (over the text's tokens, padding excluded) or cls (the first token).
    /// Default: the checkpoint's sentence.json, else mean.
    #[arg(long)]
    pub pooling: Option<String>,
    /// Scale every vector to unit length (on by default when sentence.json says so).
    #[arg(long)]
    pub normalize: bool,
    /// Longest input in tokens, special tokens included (default: sentence.json's
    /// max_seq_length, else the model's max_seq_len).
    #[arg(long)]
    pub max_len: Option<usize>,
    /// What to do with a longer text: cut (keep its first tokens, and say how many were cut)
    /// or error.
    #[arg(long, default_value = "cut")]
    pub truncate: String,
    /// Texts per forward pass (texts are sorted by length first).
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
}

#[derive(clap::Args)]
pub struct EmbedArgs {
    #[command(flatten)]
    pub enc: EncoderArgs,
    /// Text files (one text per non-empty line), .jsonl files (the `text` field of each line)
    /// or folders of them.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// One text per file instead of one per line.
    #[arg(long)]
    pub whole_files: bool,
    /// Where to write the vectors: FILE.safetensors (tensor `embeddings`, n × dim) or FILE.npy
    /// (float32, n × dim); the texts go beside it as FILE.jsonl, in the same order.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(clap::Args)]
pub struct SimilarityArgs {
    #[command(flatten)]
    pub enc: EncoderArgs,
    /// Two or more texts.
    #[arg(required = true, num_args = 2..)]
    pub texts: Vec<String>,
    /// The matrix as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A loaded encoder checkpoint and the options to embed with.
pub struct Loaded {
    pub model: Box<dyn Model>,
    pub tk: Tokenizer,
    pub opts: EmbedOptions,
}

impl EncoderArgs {
    pub fn load(&self) -> Result<Loaded> {
        let ckpt = Checkpoint::open(&self.checkpoint)?;
        let tk = ckpt.load_tokenizer(self.tokenizer.as_deref())?;
        let model = ckpt.load_model(&Device::Cpu)?;
        let family = model.config().family();
        let Some(enc) = model.as_encoder() else {
            return Err(Error::input(format!("{}: a {family} model cannot embed (it gives no hidden states); use a BERT, GPT or Llama checkpoint", self.checkpoint.display())).into());
        };
        let opts = self.options(ckpt.run_dir(), enc)?;
        Ok(Loaded { model, tk, opts })
    }
}

impl EncoderArgs {
    /// These flags for `checkpoint` with nothing else set: what `jielong serve` and `jielong
    /// bench embed` embed with, so their vectors are `jielong embed`'s.
    pub fn defaults(checkpoint: &Path) -> Self {
        Self { checkpoint: checkpoint.to_path_buf(), tokenizer: None, pooling: None, normalize: false, max_len: None, truncate: "cut".into(), batch_size: 32 }
    }

    /// The embedding options: these flags over the run's sentence.json.
    pub fn options(&self, run_dir: &Path, enc: &dyn jielong_models::Encoder) -> Result<EmbedOptions> {
        let recipe = read_recipe(run_dir)?;
        let pooling: Pooling = match (self.pooling.as_deref(), recipe.get("pooling").and_then(|v| v.as_str())) {
            (Some(p), _) | (None, Some(p)) => p.parse()?,
            (None, None) => Pooling::Mean,
        };
        let normalize = self.normalize || recipe.get("normalize").and_then(|v| v.as_bool()) == Some(true);
        let recipe_len = recipe.get("max_seq_length").and_then(|v| v.as_u64()).map(|n| (n as usize).min(enc.max_seq_len()));
        let max_len = self.max_len.or(recipe_len).unwrap_or(enc.max_seq_len());
        let truncate = match self.truncate.as_str() {
            "cut" => Truncate::Cut,
            "error" => Truncate::Error,
            other => return Err(Error::input(format!("--truncate {other}: use cut or error")).into()),
        };
        Ok(EmbedOptions { pooling, normalize, max_len, batch_size: self.batch_size, truncate })
    }
}

impl Loaded {
    pub fn embed(&self, texts: &[&str], progress: impl FnMut(usize)) -> Result<Embeddings> {
        let enc = self.model.as_encoder().expect("checked by load");
        let embedder = Embedder::new(enc, &self.tk, self.opts, &Device::Cpu)?;
        let e = embedder.embed(texts, progress)?;
        if e.truncated > 0 {
            eprintln!("warning: {} of {} texts were longer than {} tokens and were cut (--truncate error refuses them)", e.truncated, texts.len(), self.opts.max_len);
        }
        Ok(e)
    }
}

/// The run folder's sentence.json (written by `jielong import` for a sentence-transformers
/// model), or an empty object.
fn read_recipe(run_dir: &Path) -> Result<serde_json::Value> {
    let path = run_dir.join(jielong_train::interchange::SENTENCE_JSON);
    if !path.is_file() {
        return Ok(serde_json::json!({}));
    }
    let text = jielong_core::fs::read_to_string(&path)?;
    Ok(serde_json::from_str(&text).map_err(|e| Error::format(&path, format!("not valid JSON ({e})")))?)
}

/// The texts of the inputs, each with where it came from.
fn read_texts(inputs: &[PathBuf], whole_files: bool) -> Result<Vec<(String, String)>> {
    let (docs, _) = jielong_text::read_corpus(inputs)?;
    let mut out = Vec::new();
    for d in docs {
        let is_record = d.source.rsplit_once(':').is_some_and(|(p, line)| p.ends_with(".jsonl") && line.parse::<usize>().is_ok());
        if whole_files || is_record {
            if !d.text.trim().is_empty() {
                out.push((d.source, d.text));
            }
            continue;
        }
        for (i, line) in d.text.lines().enumerate() {
            if !line.trim().is_empty() {
                out.push((format!("{}:{}", d.source, i + 1), line.to_string()));
            }
        }
    }
    if out.is_empty() {
        return Err(Error::input("nothing to embed: the inputs hold no non-empty lines").into());
    }
    Ok(out)
}

/// `.npy` (format 1.0, little-endian float32, C order) of an n × dim matrix.
fn npy_bytes(e: &Embeddings) -> Vec<u8> {
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}", e.len(), e.dim);
    // Magic (6) + version (2) + length (2) + header + '\n', padded to a multiple of 64.
    let total = (10 + header.len() + 1).next_multiple_of(64);
    header.push_str(&" ".repeat(total - 10 - header.len() - 1));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend(e.data.iter().flat_map(|x| x.to_le_bytes()));
    out
}

pub fn run_embed(a: EmbedArgs) -> Result<()> {
    let ext = a.out.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext != "safetensors" && ext != "npy" {
        return Err(Error::input(format!("--out {}: name the file .safetensors or .npy", a.out.display())).into());
    }
    let texts = read_texts(&a.inputs, a.whole_files)?;
    let loaded = a.enc.load()?;
    let refs: Vec<&str> = texts.iter().map(|(_, t)| t.as_str()).collect();
    let bar = indicatif::ProgressBar::new(refs.len() as u64);
    bar.set_style(indicatif::ProgressStyle::with_template("{spinner} embedding [{bar:30}] {pos}/{len} texts · {per_sec} · ETA {eta}").expect("valid template").progress_chars("=> "));
    let started = std::time::Instant::now();
    let e = loaded.embed(&refs, |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    if ext == "npy" {
        jielong_core::fs::write_atomic(&a.out, &npy_bytes(&e))?;
    } else {
        let t = Tensor::from_vec(e.data.clone(), (e.len(), e.dim), &Device::Cpu)?;
        jielong_nn::params::save_tensors(&a.out, &[("embeddings".to_string(), t)])?;
    }
    let texts_path = a.out.with_extension("jsonl");
    let mut jsonl = String::new();
    for (i, (source, text)) in texts.iter().enumerate() {
        jsonl.push_str(&serde_json::json!({"i": i, "source": source, "text": text}).to_string());
        jsonl.push('\n');
    }
    jielong_core::fs::write_atomic(&texts_path, jsonl.as_bytes())?;
    let secs = started.elapsed().as_secs_f64();
    let pooling = match loaded.opts.pooling {
        Pooling::Mean => "mean",
        Pooling::Cls => "cls",
    };
    println!(
        "embedded {} texts → {} ({} × {}, {pooling} pooling{}) and {} · {:.1} texts/s",
        e.len(),
        a.out.display(),
        e.len(),
        e.dim,
        if loaded.opts.normalize { ", unit length" } else { "" },
        texts_path.display(),
        e.len() as f64 / secs.max(1e-9)
    );
    Ok(())
}

pub fn run_similarity(a: SimilarityArgs) -> Result<()> {
    if let Some(i) = a.texts.iter().position(|t| t.trim().is_empty()) {
        return Err(Error::input(format!("text {} is empty: give every text some words", i + 1)).into());
    }
    let loaded = a.enc.load()?;
    let refs: Vec<&str> = a.texts.iter().map(String::as_str).collect();
    let m = loaded.embed(&refs, |_| {})?.cosine_matrix();
    if a.json {
        println!("{}", serde_json::json!({"texts": a.texts, "cosine": m}));
        return Ok(());
    }
    for (i, t) in a.texts.iter().enumerate() {
        println!("[{}] {t}", i + 1);
    }
    print!("\n{:>6}", "");
    for j in 0..m.len() {
        print!("{:>8}", format!("[{}]", j + 1));
    }
    println!();
    for (i, row) in m.iter().enumerate() {
        print!("{:>6}", format!("[{}]", i + 1));
        for v in row {
            print!("{v:>8.4}");
        }
        println!();
    }
    Ok(())
}
