//! `jielong compare --regimes full,lora,prefix,prompt --checkpoint BASE --data CHAT.jsonl
//! --budget 2m --out DIR`: the fine-tuning regimes side by side. Every regime fine-tunes the same
//! base on the same conversations with the same batch, seed and share of the wall-time budget,
//! and is scored on the same held-out conversations by the assistant-token loss `jielong eval
//! --chat` reports (the base itself is the "before" row).
//!
//! Nothing here trains: each regime is `jielong sft --budget SHARE` run by this same binary in a
//! child process (`study::child`), so its peak memory is its own (`wait4`'s `ru_maxrss`) and its
//! run folder, DIR/runs/REGIME, can be opened with `chat`, `generate` and `eval` afterwards. The
//! child writes its summary (steps, trainable parameters, tokens/s) as JSON beside its run.
//! One table (compare.md, compare.json) and one plot of the training loss against wall time
//! (train_loss.svg).

use super::compare::Args;
use super::compare_report::{plot_svg, Axes, Series};
use super::generate::ModelArgs;
use anyhow::Result;
use jielong_core::Error;
use jielong_train::{Checkpoint, Regime};
use std::path::Path;
use std::time::Instant;

/// The regimes `compare --regimes` knows.
pub const REGIMES: [&str; 4] = ["full", "lora", "prefix", "prompt"];

/// "full,lora" → the regimes, checked and without repeats.
pub fn parse_regimes(s: &str) -> Result<Vec<Regime>, Error> {
    let mut out = Vec::new();
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let r = match name {
            "full" => Regime::Full,
            "lora" => Regime::Lora,
            "prefix" => Regime::Prefix,
            "prompt" => Regime::Prompt,
            _ => return Err(Error::input(format!("--regimes: unknown regime {name:?}: choose from {}", REGIMES.join(", ")))),
        };
        if !out.contains(&r) {
            out.push(r);
        }
    }
    if out.is_empty() {
        return Err(Error::input(format!("--regimes is empty: choose from {}", REGIMES.join(", "))));
    }
    Ok(out)
}

pub fn regime_name(r: Regime) -> &'static str {
    match r {
        Regime::Full => "full",
        Regime::Lora => "lora",
        Regime::Prefix => "prefix",
        Regime::Prompt => "prompt",
    }
}

/// The non-empty lines of a JSONL file split into (train, held out): line i (from 0) is held
/// out when ⌊(i+1)·f⌋ > ⌊i·f⌋, so the held-out lines are spread evenly over the file.
pub fn split_lines(text: &str, fraction: f64) -> (Vec<&str>, Vec<&str>) {
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        if ((i + 1) as f64 * fraction).floor() > (i as f64 * fraction).floor() {
            val.push(line);
        } else {
            train.push(line);
        }
    }
    (train, val)
}

/// One row of the regimes table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RegimeRow {
    /// full, lora, prefix, prompt, or "base" (the checkpoint before any fine-tuning).
    pub regime: String,
    /// The hyper-parameters it trained with (learning rate, rank, virtual tokens).
    pub settings: String,
    pub learning_rate: f64,
    pub trainable: usize,
    pub total_params: usize,
    /// trainable / total_params, in percent.
    pub trainable_pct: f64,
    /// Peak resident memory of the child process that ran `jielong sft`, MiB.
    pub peak_rss_mib: f64,
    /// Wall time of the training steps (the last step's `elapsed_s` in the run's metrics).
    pub train_s: f64,
    pub steps: u64,
    /// Positions (padding included) per second of training steps.
    pub tokens_per_s: f64,
    /// Held-out assistant-token loss of the base, and of this regime's model.
    pub val_loss_before: f64,
    pub val_loss_after: f64,
    /// Mean assistant-token loss on the training conversations before and after (as sft reports).
    pub train_loss_before: f64,
    pub train_loss_after: f64,
    pub run: String,
}

/// The table as Markdown: the base first, then one row per regime.
pub fn markdown(rows: &[RegimeRow]) -> String {
    let mut s = String::from(
        "| regime | settings | trainable parameters | share | peak RSS | training time | steps | tokens/s | held-out assistant loss |\n|---|---|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for r in rows {
        if r.regime == "base" {
            s.push_str(&format!("| base (before) | — | 0 of {} | 0% | — | — | — | — | {:.4} |\n", r.total_params, r.val_loss_after));
            continue;
        }
        s.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} MiB | {:.1} s | {} | {:.0} | {:.4} → {:.4} |\n",
            r.regime,
            r.settings,
            r.trainable,
            share(r.trainable_pct),
            r.peak_rss_mib,
            r.train_s,
            r.steps,
            r.tokens_per_s,
            r.val_loss_before,
            r.val_loss_after
        ));
    }
    s
}

/// A share in percent, with as many decimals as a small share needs.
fn share(pct: f64) -> String {
    if pct >= 99.995 {
        "100%".into()
    } else if pct >= 1.0 {
        format!("{pct:.2}%")
    } else {
        format!("{pct:.3}%")
    }
}

/// The summary `jielong sft --summary-json` writes (the fields read here).
#[derive(serde::Deserialize)]
struct ChildSummary {
    steps: u64,
    trainable: usize,
    total_params: usize,
    loss_before: f64,
    loss_after: f64,
    tokens_per_s: f64,
    elapsed_s: f64,
}

pub fn run(a: &Args, budget_s: f64) -> Result<()> {
    // Everything a user can get wrong is checked before any work.
    let regimes = parse_regimes(a.regimes.as_deref().unwrap_or_default())?;
    for (given, flag) in [
        (a.families.is_some(), "--families"),
        (a.task.is_some(), "--task"),
        (!a.corpus.is_empty(), "--corpus"),
        (a.tokenizer.is_some(), "--tokenizer"),
        (a.params.is_some(), "--params"),
    ] {
        if given {
            return Err(Error::input(format!("--regimes and {flag} are exclusive: compare fine-tuning regimes of one checkpoint (--regimes) or model families ({flag}), not both")).into());
        }
    }
    let Some(base) = &a.checkpoint else {
        return Err(Error::input("--regimes needs --checkpoint BASE: the checkpoint every regime fine-tunes").into());
    };
    let Some(data) = &a.data else {
        return Err(Error::input("--regimes needs --data FILE.jsonl: the conversations every regime fine-tunes on").into());
    };
    let batch_size = a.batch_size.unwrap_or(8);
    if batch_size == 0 || a.lora_rank == 0 || a.num_virtual_tokens == 0 {
        return Err(Error::input("--batch-size, --lora-rank and --num-virtual-tokens must be at least 1").into());
    }
    let fraction = match (&a.val_data, a.val_fraction) {
        (Some(_), Some(_)) => return Err(Error::input("give --val-data or --val-fraction, not both").into()),
        (_, Some(f)) if !(f > 0.0 && f < 1.0) => return Err(Error::input(format!("--val-fraction {f}: give a share between 0 and 1, such as 0.1")).into()),
        (_, f) => f.unwrap_or(0.1),
    };
    if a.out.join("runs").exists() {
        return Err(Error::input(format!("{} already holds a comparison (runs/): pick another --out or remove it", a.out.display())).into());
    }
    let ckpt = Checkpoint::open(base)?;
    let template = jielong_train::sft::template_by_name_or_file(&a.template)?;
    let tk = ckpt.load_tokenizer(None)?;
    let missing: Vec<String> = template.special_tokens().into_iter().filter(|t| tk.inner().token_to_id(t).is_none()).collect();
    if !missing.is_empty() {
        return Err(Error::input(format!(
            "template {} writes tokens the base's tokenizer lacks ({}): the base and the adapter regimes cannot read them; use --template builtin, or a base that has them",
            template.origin,
            missing.join(" ")
        ))
        .into());
    }
    let started = Instant::now();

    // 1. The data: the same training and held-out conversations for every regime.
    let text = jielong_core::fs::read_to_string(data)?;
    let data_dir = a.out.join("data");
    std::fs::create_dir_all(&data_dir).map_err(|e| Error::io(&data_dir, e))?;
    let (train_path, val_path) = (data_dir.join("train.jsonl"), data_dir.join("val.jsonl"));
    match &a.val_data {
        Some(v) => {
            if !v.is_file() {
                return Err(Error::input(format!("--val-data {}: no such file", v.display())).into());
            }
            jielong_core::fs::write_atomic(&train_path, text.as_bytes())?;
            jielong_core::fs::write_atomic(&val_path, jielong_core::fs::read_to_string(v)?.as_bytes())?;
        }
        None => {
            let (train, val) = split_lines(&text, fraction);
            if val.is_empty() || train.is_empty() {
                return Err(Error::input(format!("{}: {} conversation(s) leave none to hold out at --val-fraction {fraction}: give more data or --val-data", data.display(), train.len() + val.len())).into());
            }
            jielong_core::fs::write_atomic(&train_path, (train.join("\n") + "\n").as_bytes())?;
            jielong_core::fs::write_atomic(&val_path, (val.join("\n") + "\n").as_bytes())?;
            println!("data: {} conversations to train on, {} held out → {}", train.len(), val.len(), data_dir.display());
        }
    }

    // 2. The base on the held-out conversations: the "before" of every regime.
    let base_args = ModelArgs { checkpoint: base.clone(), tokenizer: None, no_cache: false, adapter: None };
    let (before, origin) = super::eval_chat::score(&base_args, &val_path, Some(&a.template), false, batch_size)?;
    println!("held out: {} conversations, {} assistant tokens (template {origin}); the base's loss {:.4}", before.n_examples, before.n_tokens, before.assistant_loss);

    // 3. Each regime: `jielong sft` in a child process for its share of the budget.
    let share_s = budget_s / regimes.len() as f64;
    let runs = a.out.join("runs");
    std::fs::create_dir_all(&runs).map_err(|e| Error::io(&runs, e))?;
    let n_base = ckpt.meta.model.n_params();
    let mut rows = vec![RegimeRow {
        regime: "base".into(),
        settings: String::new(),
        learning_rate: 0.0,
        trainable: 0,
        total_params: n_base,
        trainable_pct: 0.0,
        peak_rss_mib: 0.0,
        train_s: 0.0,
        steps: 0,
        tokens_per_s: 0.0,
        val_loss_before: before.assistant_loss,
        val_loss_after: before.assistant_loss,
        train_loss_before: f64::NAN,
        train_loss_after: f64::NAN,
        run: base.display().to_string(),
    }];
    let mut series = Vec::new();
    for &r in &regimes {
        let name = regime_name(r);
        let dir = runs.join(name);
        let lr = super::sft::default_lr(r);
        let settings = match r {
            Regime::Full => format!("lr {lr:.0e}"),
            Regime::Lora => format!("lr {lr:.0e} · rank {} · alpha {} · all-linear", a.lora_rank, 2 * a.lora_rank),
            Regime::Prefix | Regime::Prompt => format!("lr {lr:.0e} · {} virtual tokens", a.num_virtual_tokens),
        };
        println!("\n── {name} ── {settings} · {share_s:.1} s");
        let summary_path = dir.join("summary.json");
        let p = |x: &Path| x.display().to_string();
        let args: Vec<String> = [
            "sft",
            "--checkpoint",
            &p(base),
            "--data",
            &p(&train_path),
            "--template",
            &a.template,
            "--regime",
            name,
            "--out",
            &p(&dir),
            "--budget",
            &format!("{share_s}s"),
            "--max-steps",
            "1000000",
            "--batch-size",
            &batch_size.to_string(),
            "--seed",
            &a.seed.to_string(),
            "--lr",
            &lr.to_string(),
            "--lora-rank",
            &a.lora_rank.to_string(),
            "--lora-alpha",
            &(2 * a.lora_rank).to_string(),
            "--num-virtual-tokens",
            &a.num_virtual_tokens.to_string(),
            "--summary-json",
            &p(&summary_path),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let log = runs.join(format!("{name}.log"));
        let (_, peak_rss_mib) = super::study::child(&args, Path::new("."), &log)?;
        let text = jielong_core::fs::read_to_string(&summary_path)?;
        let s: ChildSummary = serde_json::from_str(&text).map_err(|e| Error::format(&summary_path, format!("not a jielong sft summary ({e})")))?;
        let model_args = match r {
            Regime::Full => ModelArgs { checkpoint: dir.clone(), tokenizer: None, no_cache: false, adapter: None },
            _ => ModelArgs { checkpoint: base.clone(), tokenizer: None, no_cache: false, adapter: Some(dir.clone()) },
        };
        let (after, _) = super::eval_chat::score(&model_args, &val_path, Some(&a.template), false, batch_size)?;
        let points = smoothed_losses(&dir.join("metrics.jsonl"));
        // Training time: the steps' wall time as the run's metrics record it (the summary's
        // elapsed time also counts saving the adapter and scoring the data after training).
        let train_s = points.last().map_or(s.elapsed_s, |p| p.0);
        println!(
            "  {} steps in {:.1} s · {:.0} tokens/s · trainable {} of {} · peak RSS {peak_rss_mib:.0} MiB · held-out loss {:.4} → {:.4}",
            s.steps, train_s, s.tokens_per_s, s.trainable, s.total_params, before.assistant_loss, after.assistant_loss
        );
        series.push(Series { family: name.into(), points, flat: None });
        rows.push(RegimeRow {
            regime: name.into(),
            settings,
            learning_rate: lr,
            trainable: s.trainable,
            total_params: s.total_params,
            trainable_pct: 100.0 * s.trainable as f64 / s.total_params.max(1) as f64,
            peak_rss_mib,
            train_s,
            steps: s.steps,
            tokens_per_s: s.tokens_per_s,
            val_loss_before: before.assistant_loss,
            val_loss_after: after.assistant_loss,
            train_loss_before: s.loss_before,
            train_loss_after: s.loss_after,
            run: dir.display().to_string(),
        });
    }

    // 4. The table and the plot.
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let setup = format!(
        "base {} · {} conversations held out ({} assistant tokens, template {origin}) · batch {batch_size} · seed {} · budget {} ({share_s:.1} s per regime)",
        base.display(),
        before.n_examples,
        before.n_tokens,
        a.seed,
        a.budget
    );
    let table = markdown(&rows);
    let md = format!(
        "# jielong compare --regimes\n\n{table}\n{setup}.\n\nEach regime is `jielong sft --budget` in a child process of the same binary: the same base, \
training conversations, batch and seed, for the same wall time. Held-out loss: mean cross-entropy (nats) over the assistant's tokens \
of the held-out conversations, as `jielong eval --chat` reports it, the base's before and the tuned model's after. Peak RSS: the \
child process's maximum resident set (`wait4`'s `ru_maxrss`), which includes loading the base and the data and scoring the training \
conversations before and after. Tokens/s: positions (padding included) per second of training steps. Trainable share: trainable \
parameters over the base model's. Full fine-tuning takes a lower learning rate than the adapters, as \
PEFT's and TRL's examples do.\n\n```\n{command}\n```\n\n![training loss against wall time](train_loss.svg)\n"
    );
    jielong_core::fs::write_atomic(&a.out.join("compare.md"), md.as_bytes())?;
    let json = serde_json::json!({ "setup": setup, "command": command, "rows": rows });
    jielong_core::fs::write_json_atomic(&a.out.join("compare.json"), &json)?;
    let axes = Axes { title: "training loss (assistant tokens, EMA 0.9) against wall time", x: "wall time (s)", y: "nats/token", y_range: None };
    jielong_core::fs::write_atomic(&a.out.join("train_loss.svg"), plot_svg(&series, &axes).as_bytes())?;
    println!("\n{table}");
    println!(
        "wrote {} · {} · {} ({:.1} minutes in all)",
        a.out.join("compare.md").display(),
        a.out.join("compare.json").display(),
        a.out.join("train_loss.svg").display(),
        started.elapsed().as_secs_f64() / 60.0
    );
    Ok(())
}

/// (seconds, training loss) of a run's steps, smoothed by an exponential moving average
/// (0.9; one step's batch is noisy), as the plot draws them.
fn smoothed_losses(metrics: &Path) -> Vec<(f64, f64)> {
    let mut ema: Option<f64> = None;
    jielong_train::metrics::read(metrics)
        .iter()
        .filter_map(|m| {
            let l = m.loss?;
            let e = ema.map_or(l, |e| 0.9 * e + 0.1 * l);
            ema = Some(e);
            Some((m.elapsed_s, e))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_regimes_keeps_order_and_rejects_unknown_names() {
        assert_eq!(parse_regimes("lora, full,lora").unwrap(), vec![Regime::Lora, Regime::Full]);
        let e = parse_regimes("full,qlora").unwrap_err();
        assert!(e.is_user_error() && e.to_string().contains("\"qlora\""), "{e}");
        assert!(parse_regimes(" , ").is_err());
    }

    #[test]
    fn split_lines_holds_out_the_fraction_spread_over_the_file() {
        let text: String = (0..20).map(|i| format!("{i}\n\n")).collect();
        let (train, val) = split_lines(&text, 0.1);
        assert_eq!(val, vec!["9", "19"]);
        assert_eq!(train.len(), 18);
        let (train, val) = split_lines(&text, 0.25);
        assert_eq!((train.len(), val), (15, vec!["3", "7", "11", "15", "19"]));
    }

    #[test]
    fn markdown_has_the_base_row_then_one_row_per_regime() {
        let row = |r: &str, t: usize| RegimeRow {
            regime: r.into(),
            settings: "lr 1e-3".into(),
            learning_rate: 1e-3,
            trainable: t,
            total_params: 1000,
            trainable_pct: t as f64 / 10.0,
            peak_rss_mib: 50.0,
            train_s: 2.0,
            steps: 7,
            tokens_per_s: 900.0,
            val_loss_before: 5.0,
            val_loss_after: 4.5,
            train_loss_before: 5.0,
            train_loss_after: 4.0,
            run: String::new(),
        };
        let md = markdown(&[row("base", 0), row("full", 1000), row("lora", 5)]);
        assert_eq!(md.lines().count(), 5);
        assert!(md.contains("| base (before) | — | 0 of 1000 | 0% |"), "{md}");
        assert!(md.contains("| full | lr 1e-3 | 1000 | 100% | 50 MiB | 2.0 s | 7 | 900 | 5.0000 → 4.5000 |"), "{md}");
        assert!(md.contains("| lora | lr 1e-3 | 5 | 0.500% |"), "{md}");
    }
}
