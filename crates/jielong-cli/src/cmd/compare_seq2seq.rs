//! `jielong compare --task reverse --budget 2m [--attention none,additive,dot,general]`: the
//! same encoder-decoder trained once per attention kind, each for the same wall time on the
//! same built-in task, then every validation source decoded greedily and scored: exact match
//! against the source's length, as a table (compare.md, compare.json) and a plot
//! (exact_match.svg). Without attention the fixed context vector breaks down as sources
//! grow; the table shows where.
//!
//! Training is the seq2seq trainer (`jielong_train::train` with objective seq2seq, the model of
//! `configs/seq2seq-tiny.toml`: a bidirectional GRU encoder and a GRU decoder, hidden 64), and
//! scoring is `jielong eval --pairs`'s (`jielong_generate::seq2seq::evaluate_pairs`). The
//! trainer has no wall-time schedule for pairs, so each run is stopped by the clock: it
//! checkpoints after the step in progress when its share of the budget is spent.

use super::compare_report::{plot_svg, Axes, Series};
use anyhow::Result;
use candle_core::Device;
use jielong_core::Error;
use jielong_data::tasks::Task;
use jielong_generate::seq2seq::{evaluate_pairs, Seq2seqDecode};
use jielong_train::config::{DataConfig, RunConfig, TrainConfig};
use jielong_train::seq2seq::read_pairs;
use jielong_train::{Checkpoint, Event, Objective};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The attention kinds of `family = "seq2seq"`.
pub const KINDS: [&str; 4] = ["none", "additive", "dot", "general"];

/// What `--task` mode needs from the command line.
pub struct TaskArgs<'a> {
    pub task: &'a str,
    pub budget_s: f64,
    pub budget: &'a str,
    pub attention: &'a str,
    pub n: u64,
    pub min_len: Option<usize>,
    pub max_len: Option<usize>,
    pub out: &'a Path,
}

/// "none,additive" → the kinds, checked and without repeats.
pub fn parse_kinds(s: &str) -> Result<Vec<String>, Error> {
    let mut out: Vec<String> = Vec::new();
    for k in s.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        if !KINDS.contains(&k) {
            return Err(Error::input(format!("--attention: unknown kind {k:?}: choose from {}", KINDS.join(", "))));
        }
        if !out.iter().any(|o| o == k) {
            out.push(k.to_string());
        }
    }
    if out.is_empty() {
        return Err(Error::input(format!("--attention is empty: choose from {}", KINDS.join(", "))));
    }
    Ok(out)
}

/// One attention kind's result: exact match per source length, and overall.
#[derive(serde::Serialize)]
struct KindResult {
    attention: String,
    steps: u64,
    train_s: f64,
    exact_match: f64,
    /// (source length in tokens, pairs, exact match)
    by_source_length: Vec<(usize, usize, f64)>,
}

pub fn run(a: TaskArgs) -> Result<()> {
    let task = Task::from_name(a.task)?;
    let kinds = parse_kinds(a.attention)?;
    if a.n < 64 {
        return Err(Error::input(format!("--n {}: give at least 64 training pairs", a.n)).into());
    }
    let (min_len, max_len) = match task.default_lengths() {
        Some((lo, hi)) => {
            let (lo, hi) = (a.min_len.unwrap_or(lo), a.max_len.unwrap_or(hi));
            task.check_lengths(lo, hi)?;
            (lo, hi)
        }
        None if a.min_len.is_some() || a.max_len.is_some() => {
            task.check_lengths(0, 0)?;
            (0, 0)
        }
        None => (0, 0),
    };
    if a.out.join("runs").exists() {
        return Err(Error::input(format!("{} already holds a comparison (runs/): pick another --out or remove it", a.out.display())).into());
    }
    let per_kind = a.budget_s / kinds.len() as f64;

    // 1. The task: training pairs and 500 held-out pairs (another seed).
    let data = a.out.join("task");
    jielong_core::fs::write_atomic(&data.join("train.jsonl"), task.make_jsonl(a.n, 0, min_len, max_len).as_bytes())?;
    jielong_core::fs::write_atomic(&data.join("val.jsonl"), task.make_jsonl(500, 1, min_len, max_len).as_bytes())?;
    let val = read_pairs(&data.join("val.jsonl"))?;
    let longest = val.iter().map(|p| p.source.chars().count().max(p.target.chars().count())).max().unwrap_or(0);
    println!("task {}: {} training pairs, {} validation pairs → {}", a.task, a.n, val.len(), data.display());

    // 2. One run per attention kind, each stopped by the clock.
    let mut results = Vec::new();
    for kind in &kinds {
        let model = jielong_models::family::preset("seq2seq", "tiny")?
            .with_setting("cell", "gru".into())?
            .with_setting("n_embd", 32.into())?
            .with_setting("attention", kind.as_str().into())?
            .with_setting("max_seq_len", (longest + 8).max(40).into())?;
        let cfg = RunConfig {
            data: DataConfig { dir: data.clone() },
            model,
            train: TrainConfig {
                objective: Objective::Seq2seq,
                batch_size: 64,
                max_steps: 1_000_000,
                // The schedule is re-planned from the measured pace to decay over the share.
                max_minutes: per_kind / 60.0,
                learning_rate: 1e-2,
                min_lr: 1e-3,
                warmup_steps: 50,
                weight_decay: 0.0,
                eval_interval: 100,
                checkpoint_interval: 1_000_000,
                keep_checkpoints: 1,
                ..Default::default()
            },
        };
        let dir = a.out.join("runs").join(kind);
        let stop = Arc::new(AtomicBool::new(false));
        let timer = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs_f64(per_kind));
                stop.store(true, Ordering::SeqCst);
            })
        };
        println!("\n── attention = {kind} ({per_kind:.0} s) ──");
        let summary = jielong_train::train(&dir, cfg, false, &stop, &mut |e| {
            if let Event::Eval { step, val_loss } = e {
                println!("  step {step:>6}  validation loss {val_loss:.4}");
            }
        })?;
        drop(timer); // it sets a flag nobody reads any more
        let ckpt = Checkpoint::open(&summary.checkpoint)?;
        let loaded = ckpt.load_model(&Device::Cpu)?;
        let s2s = loaded.as_seq2seq().ok_or_else(|| Error::Other("a seq2seq run left another model".into()))?;
        let tk = ckpt.load_tokenizer(None)?;
        let eos = tk.eot_id().ok_or_else(|| Error::Other("the run's tokenizer has no end token".into()))?;
        let sources: Vec<String> = val.iter().map(|p| p.source.clone()).collect();
        let targets: Vec<String> = val.iter().map(|p| p.target.clone()).collect();
        let opts = Seq2seqDecode { bos: eos, eos, max_tokens: ckpt.meta.model.max_seq_len(), beams: 1 };
        let (scores, _) = evaluate_pairs(s2s, &tk, &sources, &targets, &opts)?;
        println!("  {} steps in {:.0} s · exact match {:.1} %", summary.steps, summary.elapsed_s, 100.0 * scores.exact_match);
        results.push(KindResult { attention: kind.clone(), steps: summary.steps, train_s: summary.elapsed_s, exact_match: scores.exact_match, by_source_length: scores.by_source_length });
    }

    // 3. Table (one row per length, one column per kind) and plot.
    let mut lengths: Vec<usize> = results.iter().flat_map(|r| r.by_source_length.iter().map(|b| b.0)).collect();
    lengths.sort_unstable();
    lengths.dedup();
    let mut md = String::from("| source length (tokens) |");
    for r in &results {
        md.push_str(&format!(" {} |", r.attention));
    }
    md.push_str(&format!("\n|---:|{}\n", "---:|".repeat(results.len())));
    for len in &lengths {
        md.push_str(&format!("| {len} |"));
        for r in &results {
            match r.by_source_length.iter().find(|b| b.0 == *len) {
                Some((_, _, em)) => md.push_str(&format!(" {:.1} % |", 100.0 * em)),
                None => md.push_str(" – |"),
            }
        }
        md.push('\n');
    }
    md.push_str("| **all** |");
    for r in &results {
        md.push_str(&format!(" **{:.1} %** ({} steps) |", 100.0 * r.exact_match, r.steps));
    }
    md.push('\n');
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let doc = format!(
        "# jielong compare --task {}\n\nExact match of greedy decoding on 500 held-out pairs, by source length; every kind trained for {per_kind:.0} s \
(budget {}) on {} pairs.\n\n{md}\n```\n{command}\n```\n\n![exact match against source length](exact_match.svg)\n",
        a.task, a.budget, a.n
    );
    jielong_core::fs::write_atomic(&a.out.join("compare.md"), doc.as_bytes())?;
    let json = serde_json::json!({ "task": a.task, "budget_s": a.budget_s, "train_pairs": a.n, "command": command, "results": results });
    jielong_core::fs::write_json_atomic(&a.out.join("compare.json"), &json)?;
    let series: Vec<Series> = results
        .iter()
        .map(|r| Series { family: format!("attention = {}", r.attention), points: r.by_source_length.iter().map(|b| (b.0 as f64, 100.0 * b.2)).collect(), flat: None })
        .collect();
    let axes = Axes { title: "exact match against source length", x: "source length (tokens)", y: "exact match (%)", y_range: Some((0.0, 100.0)) };
    jielong_core::fs::write_atomic(&a.out.join("exact_match.svg"), plot_svg(&series, &axes).as_bytes())?;
    println!("\n{md}");
    println!("wrote {} · {} · {}", a.out.join("compare.md").display(), a.out.join("compare.json").display(), a.out.join("exact_match.svg").display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_kinds_checks_every_name() {
        assert_eq!(parse_kinds("none, additive,none").unwrap(), vec!["none", "additive"]);
        assert!(parse_kinds("bahdanau").unwrap_err().to_string().contains("bahdanau"));
        assert!(parse_kinds("").is_err());
    }
}
