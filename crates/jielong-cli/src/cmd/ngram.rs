//! `jielong ngram train | eval | generate | export | import`: counting language models
//! (crates/jielong-ngram). A model file is jielong's binary format (memory-mapped, loads in
//! milliseconds) unless its name ends in `.arpa`; `eval` and `generate` read either, and any
//! ARPA file (KenLM's, SRILM's) too.
//!
//! Sentences are one per line by default (`--sentences lines`, KenLM's convention, so the same
//! file gives both tools the same sentences); `--sentences unicode` also splits lines at UAX #29
//! sentence boundaries. The model file records its units and sentence mode, and `eval` cuts
//! text the same way.

use super::generate::SamplingArgs;
use anyhow::{Context, Result};
use clap::{Args as ClapArgs, Subcommand, ValueEnum};
use jielong_core::Error;
use jielong_ngram::units::{SentenceMode, Splitter, UnitKind};
use jielong_ngram::vocab::{BOS, EOS, UNK};
use jielong_ngram::{arpa, binary, index_sentences, NgramModel, Score, Smoothing, TrainConfig};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Subcommand)]
pub enum Command {
    /// Count n-grams in text and smooth them into a model.
    Train(TrainArgs),
    /// Cross-entropy, perplexity (with and without OOVs), bits per byte and OOV rate on text.
    Eval(EvalArgs),
    /// Sample or greedily continue a prompt, unit by unit.
    Generate(GenerateArgs),
    /// Write a model as an ARPA file (for KenLM, SRILM).
    Export(ExportArgs),
    /// Read an ARPA file (KenLM's, SRILM's) into jielong's binary format.
    Import(ImportArgs),
}

/// How text becomes units; recorded in the model.
#[derive(ClapArgs, Clone)]
pub struct UnitArgs {
    /// words (Unicode word boundaries, jieba for Chinese), chars, space (split on whitespace
    /// only, as KenLM does) or tokens (a jielong tokenizer's pieces; needs --tokenizer).
    #[arg(long, default_value = "words")]
    pub units: String,
    /// tokenizer.json (or its folder) for --units tokens.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// lines (one sentence per line, KenLM's convention), unicode (also split within lines) or
    /// document (a whole document is one sequence; with --units tokens, the ids `jielong eval`
    /// feeds a neural model).
    #[arg(long, default_value = "lines")]
    pub sentences: String,
}

#[derive(ClapArgs)]
pub struct TrainArgs {
    /// The n of the n-grams, 1 to 6.
    #[arg(long, default_value_t = 3)]
    pub order: usize,
    /// mle, add-k (k = 1: Laplace), interpolated-add-k, kneser-ney or modified-kneser-ney.
    #[arg(long, default_value = "modified-kneser-ney")]
    pub smoothing: String,
    /// k for add-k / interpolated-add-k: one value, or one per order (comma-separated).
    #[arg(long, allow_negative_numbers = true)]
    pub k: Option<String>,
    #[command(flatten)]
    pub units: UnitArgs,
    /// Count thresholds per order, as lmplz's --prune: n-grams seen at most this often are
    /// dropped (non-decreasing; the last value applies to higher orders; a unigram threshold
    /// turns rarer units into <unk>). Comma-separated: --prune 0,0,1 is lmplz's --prune 0 0 1.
    #[arg(long, value_delimiter = ',')]
    pub prune: Vec<u64>,
    /// Use KenLM's fallback discounts (0.5 1 1.5) when Kneser-Ney's cannot be estimated.
    #[arg(long)]
    pub discount_fallback: bool,
    /// The model file (binary; ARPA when the name ends in .arpa).
    #[arg(long)]
    pub out: PathBuf,
    /// Text files, folders or .jsonl files.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
}

#[derive(ClapArgs)]
pub struct EvalArgs {
    /// A model file (binary or ARPA).
    #[arg(long)]
    pub model: PathBuf,
    /// Text files, folders or .jsonl files.
    #[arg(long, num_args = 1.., required = true)]
    pub text: Vec<PathBuf>,
    /// Cut the text into these units instead of the model's own (for an ARPA file from
    /// elsewhere, whose units are whitespace-separated: the default for ARPA).
    #[arg(long)]
    pub units: Option<String>,
    /// One JSON line instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Strategy {
    Greedy,
    Sample,
}

#[derive(ClapArgs)]
pub struct GenerateArgs {
    #[arg(long)]
    pub model: PathBuf,
    /// The start of the sentence (empty: from <s>).
    #[arg(long, default_value = "")]
    pub prompt: String,
    /// Most units to add.
    #[arg(long, default_value_t = 40)]
    pub max_units: usize,
    /// Sentences to generate (each ends at </s> or after --max-units).
    #[arg(long, default_value_t = 1)]
    pub count: usize,
    #[arg(long, value_enum, default_value = "sample")]
    pub strategy: Strategy,
    /// Let <unk> be generated (left out by default).
    #[arg(long)]
    pub allow_unk: bool,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

#[derive(ClapArgs)]
pub struct ExportArgs {
    #[arg(long)]
    pub model: PathBuf,
    /// The ARPA file to write.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(ClapArgs)]
pub struct ImportArgs {
    /// An ARPA file.
    #[arg(long)]
    pub arpa: PathBuf,
    /// How text is cut into this model's units (KenLM's and SRILM's: space).
    #[command(flatten)]
    pub units: UnitArgs,
    /// The binary model file to write.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(c: Command) -> Result<()> {
    match c {
        Command::Train(a) => train(a),
        Command::Eval(a) => eval(a),
        Command::Generate(a) => generate(a),
        Command::Export(a) => export(a),
        Command::Import(a) => import(a),
    }
}

fn is_arpa_name(p: &Path) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case("arpa"))
}

fn save(model: &NgramModel, out: &Path) -> Result<()> {
    if is_arpa_name(out) {
        arpa::write(model, out)?;
    } else {
        binary::write(model, out)?;
    }
    Ok(())
}

/// The splitter and sentence mode of `units`, and the tokenizer's hash for the model file.
fn splitter(u: &UnitArgs) -> Result<(Splitter, SentenceMode)> {
    let kind = UnitKind::parse(&u.units)?;
    let mode = SentenceMode::parse(&u.sentences)?;
    Ok((Splitter::new(kind, u.tokenizer.as_deref())?, mode))
}

fn record_units(model: &mut NgramModel, u: &UnitArgs, splitter: &Splitter, mode: SentenceMode) {
    let meta = model.meta_mut();
    meta.units = splitter.kind().name().to_string();
    meta.sentences = mode.name().to_string();
    meta.tokenizer = u.tokenizer.as_ref().map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()).display().to_string());
    meta.tokenizer_sha256 = splitter.tokenizer().map(|t| t.hash().to_string());
}

fn train(a: TrainArgs) -> Result<()> {
    let started = Instant::now();
    let smoothing = Smoothing::parse(&a.smoothing, a.k.as_deref(), a.order)?;
    let mut cfg = TrainConfig::new(a.order, smoothing);
    cfg.prune = a.prune.clone();
    cfg.discount_fallback = a.discount_fallback.then_some(jielong_ngram::smoothing::FALLBACK);
    cfg.validate()?;
    let (split, mode) = splitter(&a.units)?;
    let (docs, _) = jielong_text::read_corpus(&a.inputs)?;
    let mut sentences: Vec<Vec<String>> = Vec::new();
    for doc in &docs {
        for s in mode.split(&doc.text) {
            let units = split.split(s)?;
            if !units.is_empty() {
                sentences.push(units);
            }
        }
    }
    let (vocab, ids) = index_sentences(&sentences, split.seed_vocab(), cfg.prune_threshold(1));
    drop(sentences);
    let mut model = jielong_ngram::train(&ids, vocab, &cfg)?;
    record_units(&mut model, &a.units, &split, mode);
    save(&model, &a.out)?;
    let m = model.meta();
    let counts: Vec<String> = (1..=model.order()).map(|o| format!("{o}-grams {}", model.count(o))).collect();
    println!(
        "{}-gram {} model · {} sentences · {} units · vocabulary {} · {} · {:.2}s → {}",
        m.order,
        m.smoothing,
        m.training_sentences,
        m.training_tokens,
        model.vocab().len(),
        counts.join(", "),
        started.elapsed().as_secs_f64(),
        a.out.display()
    );
    if !m.discounts.is_empty() {
        let d: Vec<String> = m.discounts.iter().enumerate().map(|(i, d)| format!("{}: {:.4} {:.4} {:.4}", i + 1, d[0], d[1], d[2])).collect();
        println!("  discounts D1 D2 D3+ by order  {}", d.join(" · "));
    }
    Ok(())
}

/// Load a model file, saying which file failed.
fn load(path: &Path) -> Result<NgramModel> {
    Ok(jielong_ngram::load(path)?)
}

/// The splitter a loaded model's text must be cut with.
fn model_splitter(model: &NgramModel, units_override: Option<&str>) -> Result<(Splitter, SentenceMode)> {
    let m = model.meta();
    let kind = UnitKind::parse(units_override.unwrap_or(&m.units))?;
    let tokenizer = if kind == UnitKind::Tokens {
        let p = m.tokenizer.as_ref().ok_or_else(|| Error::input("this model's units are tokens but it names no tokenizer file"))?;
        Some(PathBuf::from(p))
    } else {
        None
    };
    let split = Splitter::new(kind, tokenizer.as_deref()).with_context(|| "loading the model's tokenizer")?;
    if let (Some(t), Some(want)) = (split.tokenizer(), m.tokenizer_sha256.as_deref()) {
        if t.hash() != want {
            return Err(Error::input(format!("the tokenizer {} has changed since this model was trained (its SHA-256 differs)", m.tokenizer.as_deref().unwrap_or("?"))).into());
        }
    }
    Ok((split, SentenceMode::parse(&m.sentences)?))
}

fn eval(a: EvalArgs) -> Result<()> {
    let t0 = Instant::now();
    let model = load(&a.model)?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let (split, mode) = model_splitter(&model, a.units.as_deref())?;
    let (docs, _) = jielong_text::read_corpus(&a.text)?;
    let mut score = Score::default();
    let t1 = Instant::now();
    for doc in &docs {
        score.bytes += doc.text.len() as u64;
        for s in mode.split(&doc.text) {
            let ids = split.ids(s, model.vocab())?;
            if !ids.is_empty() {
                score.add_sentence(&model, &ids);
            }
        }
    }
    if score.tokens == score.sentences || score.bytes == 0 {
        return Err(Error::input("no text to evaluate: the files hold no units").into());
    }
    let secs = t1.elapsed().as_secs_f64();
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "model": a.model.display().to_string(), "order": model.order(), "units": split.kind().name(),
                "sentences": score.sentences, "tokens": score.tokens, "oovs": score.oovs, "oov_rate": score.oov_rate(),
                "bytes": score.bytes, "log10_prob": score.log10_total, "cross_entropy": score.cross_entropy(),
                "perplexity": score.perplexity(), "perplexity_without_oovs": score.perplexity_without_oovs(),
                "bits_per_byte": score.bits_per_byte(), "load_ms": load_ms, "tokens_per_second": score.tokens as f64 / secs,
            })
        );
    } else {
        println!(
            "{} sentences · {} units scored ({} + </s>) · {} OOVs ({:.2}%) · {} bytes",
            score.sentences,
            score.tokens,
            split.kind().name(),
            score.oovs,
            100.0 * score.oov_rate(),
            score.bytes
        );
        println!("  log10 probability          {:.4}", score.log10_total);
        println!("  cross-entropy              {:.4} nats/unit", score.cross_entropy());
        println!("  perplexity (with OOVs)     {:.4}", score.perplexity());
        println!("  perplexity (without OOVs)  {:.4}", score.perplexity_without_oovs());
        println!("  bits per byte              {:.4}", score.bits_per_byte());
        println!("  model loaded in {load_ms:.1} ms · {:.0} units/s", score.tokens as f64 / secs);
    }
    Ok(())
}

fn generate(a: GenerateArgs) -> Result<()> {
    let model = load(&a.model)?;
    let (split, _) = model_splitter(&model, None)?;
    if a.max_units == 0 {
        return Err(Error::input("--max-units must be at least 1").into());
    }
    let prompt: Vec<u32> = model.ids(&split.split(&a.prompt)?);
    let cfg = a.sampling.config(a.strategy == Strategy::Sample);
    for i in 0..a.count {
        let mut cfg = cfg.clone();
        cfg.seed = jielong_core::Rng::derive(cfg.seed, &[i as u64]).next_u64();
        let mut chain = cfg.build(&prompt, 0)?;
        let mut ctx: Vec<u32> = std::iter::once(BOS).chain(prompt.iter().copied()).collect();
        let mut out: Vec<u32> = prompt.clone();
        for _ in 0..a.max_units {
            let ln10 = std::f64::consts::LN_10;
            let mut logits: Vec<f32> = model.distribution(&ctx[ctx.len().saturating_sub(model.order() - 1)..]).iter().map(|lp| (lp * ln10) as f32).collect();
            if !a.allow_unk {
                logits[UNK as usize] = f32::NEG_INFINITY;
            }
            let id = chain.sample(&logits);
            if id == EOS {
                break;
            }
            ctx.push(id);
            out.push(id);
        }
        println!("{}", join(&model, &split, &out)?);
    }
    Ok(())
}

/// Units back into text: tokens are decoded, characters concatenated, words joined by spaces
/// (except between two Chinese/Japanese words).
fn join(model: &NgramModel, split: &Splitter, ids: &[u32]) -> Result<String> {
    let words: Vec<&str> = ids.iter().map(|&i| model.vocab().word(i)).collect();
    Ok(match (split.kind(), split.tokenizer()) {
        (UnitKind::Tokens, Some(tk)) => {
            let tids: Vec<u32> = words.iter().filter_map(|w| tk.inner().token_to_id(w)).collect();
            tk.decode(&tids)?
        }
        (UnitKind::Chars, _) => words.concat(),
        _ => {
            let mut s = String::new();
            for w in words {
                let cjk = |c: Option<char>| c.is_some_and(|c| ('\u{2e80}'..='\u{9fff}').contains(&c) || ('\u{3000}'..='\u{303f}').contains(&c) || ('\u{ff00}'..='\u{ffef}').contains(&c));
                let both_cjk = cjk(s.chars().last()) && cjk(w.chars().next());
                if !s.is_empty() && !both_cjk {
                    s.push(' ');
                }
                s.push_str(w);
            }
            s
        }
    })
}

fn export(a: ExportArgs) -> Result<()> {
    let model = load(&a.model)?;
    arpa::write(&model, &a.out)?;
    println!("{} → {} (ARPA, {}-gram, {} units)", a.model.display(), a.out.display(), model.order(), model.vocab().len());
    Ok(())
}

fn import(a: ImportArgs) -> Result<()> {
    let (split, mode) = splitter(&a.units)?;
    let mut model = arpa::read(&a.arpa)?;
    record_units(&mut model, &a.units, &split, mode);
    if is_arpa_name(&a.out) {
        return Err(Error::input("--out: import writes jielong's binary format; give a name not ending in .arpa").into());
    }
    binary::write(&model, &a.out)?;
    let counts: Vec<String> = (1..=model.order()).map(|o| format!("{o}-grams {}", model.count(o))).collect();
    println!("{} → {} ({}; units {})", a.arpa.display(), a.out.display(), counts.join(", "), split.kind().name());
    Ok(())
}
