//! `jielong compare --corpus FILES… --tokenizer TOK --budget 5m [--families …] --out DIR`:
//! the model families side by side, as the notes walk through them: an n-gram model, the
//! recurrent nets (RNN, LSTM, GRU) and the Transformers (GPT, Llama), each sized to about the
//! same number of parameters, each trained for the same wall time on the same token shards
//! and tokenizer, each scored on the same validation split by the evaluator `jielong eval`
//! uses. One table (parameters, training time, tokens/s, validation perplexity, bits per byte)
//! and one plot of validation loss against wall time.
//!
//! Nothing here trains or scores by itself: neural families go through `jielong train`'s
//! trainer (`jielong_train::train`; `jielong_train::seconds_per_step` estimates the steps of
//! each family's share before anything is trained, and the clock ends each run), the n-gram model through `jielong_ngram`, and the
//! scores through `eval::score`. The per-family runs stay in DIR/runs/FAMILY, so every one of
//! them can be opened with `jielong generate / eval / attention` afterwards.

use super::compare_report::{write_report, Row, Series};
use super::{data, eval, tokenizer};
use crate::corpus;
use anyhow::Result;
use clap::Args as ClapArgs;
use jielong_core::Error;
use jielong_data::{PrepareOptions, TokenDataset};
use jielong_models::ModelConfig;
use jielong_tokenizer::{Tokenizer, TokenizerKind};
use jielong_train::config::{DataConfig, RunConfig, TrainConfig};
use jielong_train::Checkpoint;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The families `compare` knows, in the order of the notes.
pub const FAMILIES: [&str; 6] = ["ngram", "rnn", "lstm", "gru", "gpt", "llama"];
/// How far a neural family's parameter count may sit from the target (±25%).
pub const PARAM_TOLERANCE: f64 = 0.25;

#[derive(ClapArgs)]
pub struct Args {
    /// Text files or folders to train and validate on (default: the built-in handbook).
    #[arg(long, num_args = 1..)]
    pub corpus: Vec<PathBuf>,
    /// tokenizer.json (or its folder) every family reads (default: a byte-level BPE trained
    /// on the corpus with --vocab-size ids, written to DIR/tokenizer).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// With no --tokenizer: the vocabulary of the one trained.
    #[arg(long, default_value_t = 2048)]
    pub vocab_size: usize,
    /// Wall time for all the training together, split equally among the neural families:
    /// 30s, 5m, 1h (the n-gram model counts in a moment and takes none of it).
    #[arg(long)]
    pub budget: String,
    /// Comma-separated families, from ngram, rnn, lstm, gru, gpt, llama (default: all).
    #[arg(long)]
    pub families: Option<String>,
    /// Parameters each neural family is sized to (default: GPT's tiny preset at this
    /// vocabulary and context).
    #[arg(long)]
    pub params: Option<usize>,
    /// Tokens per training window (every family the same).
    #[arg(long, default_value_t = 64)]
    pub context: usize,
    /// Windows per training step (every family the same; default 16), or with --regimes
    /// conversations per step (every regime the same; default 8).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Order of the n-gram model (interpolated modified Kneser-Ney).
    #[arg(long, default_value_t = 3)]
    pub ngram_order: usize,
    /// The folder for the table (compare.md, compare.json), the plot (val_loss.svg, or
    /// exact_match.svg with --task), the data and one run folder per family.
    #[arg(long)]
    pub out: PathBuf,
    /// Compare seq2seq attention kinds on a built-in task instead (reverse, numbers-en,
    /// numbers-zh, dates): exact match against source length.
    #[arg(long, conflicts_with_all = ["corpus", "tokenizer", "families", "params"])]
    pub task: Option<String>,
    /// With --task: the attention kinds, from none, additive, dot, general.
    #[arg(long, default_value = "none,additive", requires = "task")]
    pub attention: String,
    /// With --task: training pairs.
    #[arg(long, default_value_t = 20_000, requires = "task")]
    pub n: u64,
    /// With --task: shortest source (letters for reverse, digits for numbers).
    #[arg(long, requires = "task")]
    pub min_len: Option<usize>,
    /// With --task: longest source.
    #[arg(long, requires = "task")]
    pub max_len: Option<usize>,
    /// Compare fine-tuning regimes instead, from full, lora, prefix, prompt: each fine-tunes
    /// --checkpoint on --data for the same share of --budget (`jielong sft` in a child process),
    /// scored on held-out conversations by the assistant-token loss.
    #[arg(long)]
    pub regimes: Option<String>,
    /// With --regimes: the base checkpoint every regime starts from.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// With --regimes: conversations (JSONL, the shapes `jielong sft` reads).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// With --regimes: the chat template (chatml, llama3, builtin, or a file).
    #[arg(long, default_value = "builtin")]
    pub template: String,
    /// With --regimes: held-out conversations (default: every 1/--val-fraction-th line of --data).
    #[arg(long)]
    pub val_data: Option<PathBuf>,
    /// With --regimes and no --val-data: the share of --data held out (default 0.1).
    #[arg(long)]
    pub val_fraction: Option<f64>,
    /// With --regimes: the seed of every run (batches, initial adapters).
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
    /// With --regimes: LoRA's rank (alpha is twice the rank).
    #[arg(long, default_value_t = 8)]
    pub lora_rank: usize,
    /// With --regimes: prefix and prompt tuning's virtual tokens.
    #[arg(long, default_value_t = 20)]
    pub num_virtual_tokens: usize,
}

/// "30s", "5m", "1.5h", "90" (seconds) → seconds.
pub fn parse_budget(s: &str) -> Result<f64, Error> {
    let t = s.trim();
    let (num, unit) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (&t[..i], &t[i..]),
        None => (t, "s"),
    };
    let scale = match unit {
        "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(Error::input(format!("--budget {s}: the unit must be s, m or h (30s, 5m, 1h)"))),
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v * scale),
        _ => Err(Error::input(format!("--budget {s}: give a positive time such as 30s, 5m or 1h"))),
    }
}

/// "ngram,lstm,gpt" → the families, checked and without repeats.
pub fn parse_families(s: &str) -> Result<Vec<String>, Error> {
    let mut out: Vec<String> = Vec::new();
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !FAMILIES.contains(&name) {
            return Err(Error::input(format!("--families: unknown family {name:?}: choose from {}", FAMILIES.join(", "))));
        }
        if !out.iter().any(|f| f == name) {
            out.push(name.to_string());
        }
    }
    if out.is_empty() {
        return Err(Error::input(format!("--families is empty: choose from {}", FAMILIES.join(", "))));
    }
    Ok(out)
}

/// The family's config with its width set to `width` (GPT/Llama: n_embd, Llama's MLP
/// 8/3 as wide; the recurrent families: hidden size = embedding size).
fn with_width(base: &ModelConfig, width: usize) -> Result<ModelConfig, Error> {
    match base.family() {
        "gpt" => base.with_setting("n_embd", width.into()),
        // Llama's own rule (8·n_embd/3 rounded up to 256) is too coarse for small models: the
        // same ratio, rounded up to 8.
        "llama" => base.with_setting("n_embd", width.into())?.with_setting("intermediate_size", (8 * width).div_ceil(3).div_ceil(8).saturating_mul(8).into()),
        _ => base.with_setting("hidden_size", width.into())?.with_setting("n_embd", width.into()),
    }
}

/// The family's tiny preset at this vocabulary and context, without dropout (a budget of
/// minutes is too short to overfit), its width chosen so its parameters come closest to
/// `target`.
pub fn sized(family: &str, vocab_size: usize, context: usize, target: usize) -> Result<ModelConfig, Error> {
    let base = jielong_models::family::preset(family, "tiny")?
        .with_setting("vocab_size", vocab_size.into())?
        .with_setting("max_seq_len", context.into())?
        .with_setting("dropout", 0.0.into())?;
    let mut best: Option<(usize, ModelConfig)> = None;
    // Widths in steps of 8 keep every head size whole and even (4 heads, rotary positions).
    for width in (8..=4096).step_by(8) {
        let cfg = with_width(&base, width)?;
        if cfg.validate().is_err() {
            continue;
        }
        let n = cfg.n_params();
        let gap = n.abs_diff(target);
        if best.as_ref().is_none_or(|(g, _)| gap < *g) {
            best = Some((gap, cfg));
        }
        if n > target {
            break;
        }
    }
    best.map(|(_, c)| c).ok_or_else(|| Error::input(format!("no width of family {family} makes a valid model")))
}

/// A neural family's planned run.
struct Plan {
    family: String,
    model: ModelConfig,
    steps: u64,
}

pub fn run(a: Args) -> Result<()> {
    // Everything a user can get wrong is checked before any work.
    let budget_s = parse_budget(&a.budget)?;
    if a.regimes.is_some() {
        return super::compare_regimes::run(&a, budget_s);
    }
    for (given, flag) in [(a.checkpoint.is_some(), "--checkpoint"), (a.data.is_some(), "--data"), (a.val_data.is_some(), "--val-data"), (a.val_fraction.is_some(), "--val-fraction")] {
        if given {
            return Err(Error::input(format!("{flag} belongs to --regimes (fine-tuning regimes of one checkpoint): add --regimes full,lora,prefix,prompt, or drop {flag}")).into());
        }
    }
    let batch_size = a.batch_size.unwrap_or(16);
    if let Some(task) = &a.task {
        return super::compare_seq2seq::run(super::compare_seq2seq::TaskArgs {
            task,
            budget_s,
            budget: &a.budget,
            attention: &a.attention,
            n: a.n,
            min_len: a.min_len,
            max_len: a.max_len,
            out: &a.out,
        });
    }
    let families = parse_families(a.families.as_deref().unwrap_or("ngram,rnn,lstm,gru,gpt,llama"))?;
    if a.context < 2 || batch_size == 0 {
        return Err(Error::input("--context must be at least 2 and --batch-size at least 1").into());
    }
    if !(1..=6).contains(&a.ngram_order) {
        return Err(Error::input(format!("--ngram-order {}: give 1 to 6", a.ngram_order)).into());
    }
    if a.out.join("runs").exists() {
        return Err(Error::input(format!("{} already holds a comparison (runs/): pick another --out or remove it", a.out.display())).into());
    }
    let started = Instant::now();

    // 1. Corpus, tokenizer, shards: the same for every family.
    let inputs = if a.corpus.is_empty() {
        let dir = corpus::write_handbook(&a.out.join("corpus"))?;
        println!("corpus: the built-in jielong handbook ({} KB) → {}", corpus::handbook_bytes() / 1024, dir.display());
        vec![dir]
    } else {
        a.corpus.clone()
    };
    let (docs, read) = jielong_text::read_corpus(&inputs)?;
    let (tk, tk_path) = match &a.tokenizer {
        Some(p) => (Tokenizer::load(p)?, if p.is_dir() { p.join("tokenizer.json") } else { p.clone() }),
        None => {
            let texts: Vec<String> = docs.iter().map(|d| d.text.clone()).collect();
            let dir = a.out.join("tokenizer");
            let tk = tokenizer::train_on(TokenizerKind::Bpe, a.vocab_size, &texts, &dir)?;
            println!("tokenizer: byte-level BPE, {} ids → {}", tk.vocab_size(), dir.display());
            (tk, dir.join("tokenizer.json"))
        }
    };
    let shards = a.out.join("shards");
    let meta = jielong_data::prepare(docs, &read, &tk, &shards, &PrepareOptions::default())?;
    data::print_report(&meta, &shards);
    let val = TokenDataset::open(&shards, "val")?.to_vec();
    if val.len() <= a.context || meta.val.n_bytes == 0 {
        return Err(Error::input(format!(
            "the validation split holds {} tokens, fewer than one --context {} window: give more text (or a smaller --context)",
            val.len(),
            a.context
        ))
        .into());
    }
    let vocab = tk.vocab_size();

    // 2. Sizes: every neural family near the same parameter count.
    let target = match a.params {
        Some(0) => return Err(Error::input("--params must be positive").into()),
        Some(n) => n,
        None => jielong_models::family::preset("gpt", "tiny")?
            .with_setting("vocab_size", vocab.into())?
            .with_setting("max_seq_len", a.context.into())?
            .n_params(),
    };
    let neural: Vec<&String> = families.iter().filter(|f| *f != "ngram").collect();
    let mut plans = Vec::new();
    for f in &neural {
        plans.push(Plan { family: f.to_string(), model: sized(f, vocab, a.context, target)?, steps: 0 });
    }

    // 3. The budget → steps for each family, from a timed step (nothing trained yet).
    let per_family = if neural.is_empty() { 0.0 } else { budget_s / neural.len() as f64 };
    // `steps` is the estimate from a few timed steps. Each run is given the family's share as
    // `train.max_minutes`: the trainer re-plans its schedule from the pace of its first steps
    // (jielong_train::budget), so the learning rate decays to its minimum as the share runs out,
    // up to HEADROOM times the estimate. The clock still ends each run (a timer sets the
    // trainer's stop flag when the share is spent). Validation runs about eight times within
    // the estimate.
    const HEADROOM: u64 = 4;
    let train_cfg = |steps: u64| TrainConfig {
        batch_size,
        max_steps: (HEADROOM * steps).max(1),
        max_minutes: per_family / 60.0,
        learning_rate: 2e-3,
        min_lr: 2e-4,
        warmup_steps: (steps / 10).min(30),
        eval_interval: (steps / 8).max(1),
        eval_windows: 16,
        checkpoint_interval: (HEADROOM * steps).max(1),
        keep_checkpoints: 1,
        ..Default::default()
    };
    let run_cfg = |model: &ModelConfig, steps: u64| RunConfig { data: DataConfig { dir: shards.clone() }, model: model.clone(), train: train_cfg(steps) };
    println!("\nsizes (target {} parameters ±{:.0}%) and steps for {per_family:.1} s each:", target, PARAM_TOLERANCE * 100.0);
    for p in &mut plans {
        let per_step = jielong_train::seconds_per_step(&run_cfg(&p.model, 1))?;
        p.steps = (per_family / per_step).floor() as u64;
        let n = p.model.n_params();
        println!(
            "  {:<6} {:>10} parameters ({:+.0}%)  ·  {:.3} s/step → about {} steps  ·  {}",
            p.family,
            n,
            (n as f64 / target as f64 - 1.0) * 100.0,
            per_step,
            p.steps,
            p.model.describe()
        );
        if p.steps == 0 {
            return Err(Error::input(format!(
                "--budget {} leaves {per_family:.1} s for {}, whose one step takes {per_step:.2} s: give at least --budget {}s",
                a.budget,
                p.family,
                (per_step * neural.len() as f64).ceil()
            ))
            .into());
        }
    }

    // 4. Train and score each family.
    let runs = a.out.join("runs");
    let mut rows = Vec::new();
    let mut series = Vec::new();
    for f in &families {
        println!("\n── {f} ──");
        if f == "ngram" {
            let (row, lm) = ngram(&shards, &tk, &tk_path, a.ngram_order, &runs)?;
            let (nats, n) = eval::score(&lm, &val, jielong_models::CausalLm::max_seq_len(&lm), 8, &mut |_| {})?;
            let row = finish(row, nats, n, meta.val.n_bytes as usize);
            series.push(Series { family: f.clone(), points: Vec::new(), flat: Some(row.val_loss) });
            rows.push(row);
            continue;
        }
        let p = plans.iter().find(|p| &p.family == f).expect("planned");
        let dir = runs.join(f);
        let summary = train_for(&dir, run_cfg(&p.model, p.steps), per_family)?;
        let ckpt = Checkpoint::open(&summary.checkpoint)?;
        let model = ckpt.load_causal_lm(&candle_core::Device::Cpu, "compare")?;
        let lm = model.as_causal_lm().expect("checked when loading");
        let (nats, n) = eval::score(lm, &val, lm.max_seq_len(), 8, &mut |_| {})?;
        let mut points: Vec<(f64, f64)> = jielong_train::metrics::read(&dir.join("metrics.jsonl")).iter().filter_map(|r| r.val_loss.map(|v| (r.elapsed_s, v))).collect();
        let last = (summary.elapsed_s, nats / n.max(1) as f64); // the full validation split at the end
        let row = Row {
            family: f.clone(),
            params: p.model.n_params(),
            train_s: summary.elapsed_s,
            tokens_per_s: summary.tokens_seen as f64 / summary.elapsed_s.max(1e-9),
            steps: summary.steps,
            val_loss: 0.0,
            perplexity: 0.0,
            bits_per_byte: 0.0,
            run: dir.display().to_string(),
        };
        let row = finish(row, nats, n, meta.val.n_bytes as usize);
        points.push(last);
        series.push(Series { family: f.clone(), points, flat: None });
        println!("  validation perplexity {:.2} · {:.4} bits per byte", row.perplexity, row.bits_per_byte);
        rows.push(row);
    }

    // 5. The table and the plot.
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let context = format!(
        "{} validation tokens ({} bytes) · context {} · batch {} · tokenizer {} ({} ids) · budget {}",
        val.len(),
        meta.val.n_bytes,
        a.context,
        batch_size,
        tk_path.display(),
        vocab,
        a.budget
    );
    let table = write_report(&a.out, &rows, &series, target, &context, &command)?;
    println!("\n{table}");
    println!(
        "wrote {} · {} · {} ({:.1} minutes in all)",
        a.out.join("compare.md").display(),
        a.out.join("compare.json").display(),
        a.out.join("val_loss.svg").display(),
        started.elapsed().as_secs_f64() / 60.0
    );
    Ok(())
}

/// Train `cfg` in `dir` until `seconds` of wall time are spent (or its steps run out), printing
/// the validation losses as they come. Ctrl-C stops it the same way, and the comparison too.
fn train_for(dir: &Path, cfg: RunConfig, seconds: f64) -> Result<jielong_train::TrainSummary> {
    let stop = crate::progress::stop_flag();
    let clock = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let timer = {
        let (stop, clock, done) = (stop.clone(), clock.clone(), done.clone());
        std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs_f64(seconds);
            while Instant::now() < end {
                if done.load(Ordering::SeqCst) {
                    return; // the steps ran out first
                }
                std::thread::sleep(Duration::from_millis(20).min(end.saturating_duration_since(Instant::now())));
            }
            clock.store(true, Ordering::SeqCst);
            stop.store(true, Ordering::SeqCst);
        })
    };
    let summary = jielong_train::train(dir, cfg, false, &stop, &mut |e| match e {
        jielong_train::Event::Start { n_params, model, .. } => println!("training {model} ({:.2} M parameters) for {seconds:.1} s", n_params as f64 / 1e6),
        jielong_train::Event::Eval { step, val_loss } => println!("  step {step:>6}  validation loss {val_loss:.4}"),
        _ => {}
    });
    done.store(true, Ordering::SeqCst);
    let _ = timer.join();
    let summary = summary?;
    if summary.interrupted && !clock.load(Ordering::SeqCst) {
        return Err(Error::Interrupted.into()); // Ctrl-C
    }
    stop.store(false, Ordering::SeqCst); // the next family starts with the flag down
    Ok(summary)
}

/// Perplexity and bits per byte from the evaluator's total.
fn finish(mut row: Row, total_nats: f64, n_tokens: usize, n_bytes: usize) -> Row {
    let r = eval::EvalReport { n_tokens, n_bytes, total_nats };
    row.val_loss = r.cross_entropy();
    row.perplexity = r.perplexity();
    row.bits_per_byte = r.bits_per_byte();
    row
}

/// Count the n-gram model on the training split's documents (split at end-of-text) and save
/// it as DIR/ngram.bin (`jielong eval --checkpoint` reads it).
fn ngram(shards: &Path, tk: &Tokenizer, tk_path: &Path, order: usize, runs: &Path) -> Result<(Row, jielong_ngram::causal::NgramLm)> {
    let train_ids = TokenDataset::open(shards, "train")?.to_vec();
    let eot = tk.eot_id();
    let docs: Vec<Vec<u32>> = train_ids.split(|&t| Some(t) == eot).map(<[u32]>::to_vec).collect();
    let t0 = Instant::now();
    let mut cfg = jielong_ngram::TrainConfig::new(order, jielong_ngram::Smoothing::KneserNey);
    // A small corpus may lack the counts-of-counts the discounts are estimated from.
    cfg.discount_fallback = Some(jielong_ngram::smoothing::FALLBACK);
    let lm = jielong_ngram::causal::NgramLm::train_on_ids(&docs, tk, tk_path, &cfg)?;
    let secs = t0.elapsed().as_secs_f64();
    std::fs::create_dir_all(runs).map_err(|e| Error::io(runs, e))?;
    let path = runs.join("ngram.bin");
    jielong_ngram::binary::write(lm.model(), &path)?;
    let n = jielong_models::Model::config(&lm).n_params();
    println!("  {order}-gram Kneser-Ney: {n} n-grams from {} tokens in {secs:.2} s → {}", train_ids.len(), path.display());
    let row = Row {
        family: "ngram".into(),
        params: n,
        train_s: secs,
        tokens_per_s: train_ids.len() as f64 / secs.max(1e-9),
        steps: 0,
        val_loss: 0.0,
        perplexity: 0.0,
        bits_per_byte: 0.0,
        run: path.display().to_string(),
    };
    Ok((row, lm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_budget_reads_seconds_minutes_hours() {
        assert_eq!(parse_budget("30s").unwrap(), 30.0);
        assert_eq!(parse_budget("5m").unwrap(), 300.0);
        assert_eq!(parse_budget("1.5h").unwrap(), 5400.0);
        assert_eq!(parse_budget("90").unwrap(), 90.0);
        for bad in ["", "0s", "-1m", "5x", "m", "nan"] {
            let e = parse_budget(bad).unwrap_err();
            assert!(e.is_user_error() && !e.to_string().contains('\n'), "{bad}: {e}");
        }
    }

    #[test]
    fn parse_families_keeps_order_and_rejects_unknown_names() {
        assert_eq!(parse_families("gpt, lstm,gpt").unwrap(), vec!["gpt", "lstm"]);
        assert!(parse_families("gpt,transformer").unwrap_err().to_string().contains("transformer"));
        assert!(parse_families(" , ").is_err());
        assert!(parse_families("bert").is_err(), "not a causal language model");
    }

    #[test]
    fn sized_families_land_within_the_tolerance() {
        for target in [60_000, 400_000, 2_000_000] {
            for f in &FAMILIES[1..] {
                let cfg = sized(f, 512, 64, target).unwrap();
                let ratio = cfg.n_params() as f64 / target as f64;
                assert!((ratio - 1.0).abs() <= PARAM_TOLERANCE, "{f} at {target}: {} parameters", cfg.n_params());
                assert_eq!(cfg.max_seq_len(), 64);
            }
        }
    }
}
