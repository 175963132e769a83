//! `jielong train --config FILE.toml [--set key=value]… [--out DIR] [--resume DIR]`.

use crate::progress::{stop_flag, train_bar};
use anyhow::Result;
use clap::Args as ClapArgs;
use jielong_core::Error;
use jielong_train::{train, Event, RunConfig, TrainSummary};
use std::path::{Path, PathBuf};

#[derive(ClapArgs)]
pub struct Args {
    /// Run config (TOML with [data], [model] and [train] tables).
    #[arg(long, required_unless_present = "resume")]
    pub config: Option<PathBuf>,
    /// Override one config value, e.g. --set train.learning_rate=3e-4 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Run folder (default: runs/<config name>).
    #[arg(long, conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in this folder from its latest checkpoint (its config.toml is used).
    #[arg(long, conflicts_with = "config")]
    pub resume: Option<PathBuf>,
    /// Run every layer through candle's composed ops instead of jielong's fused CPU kernels
    /// (several times slower): a check that the kernels train the same model.
    #[arg(long)]
    pub reference_kernels: bool,
    /// Start from this checkpoint's weights and model config (a run folder, a ckpt-NNNNNN
    /// folder, or what `jielong import` wrote): the config's `train.init_from`.
    #[arg(long, conflicts_with = "resume")]
    pub init_from: Option<PathBuf>,
    /// Start the token embedding table from word vectors (a `jielong vectors train` folder or a
    /// vectors file; their --dim must equal model.n_embd) when the data's tokenizer is
    /// word-level (`jielong tokenizer train --kind word`): the config's `train.init_embeddings`.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["resume", "init_from"])]
    pub init_embeddings: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<()> {
    jielong_nn::use_reference_kernels(a.reference_kernels);
    let (run_dir, cfg, resume) = match (&a.resume, &a.config) {
        (Some(dir), _) => {
            let path = dir.join("config.toml");
            if !path.exists() {
                return Err(Error::input(format!("{}: not a run folder (no config.toml); pass the folder `jielong train` wrote", dir.display())).into());
            }
            (dir.clone(), RunConfig::load(&path, &a.sets)?, true)
        }
        (None, Some(config)) => {
            let mut cfg = RunConfig::load(config, &a.sets)?;
            if let Some(init) = &a.init_from {
                cfg.train.init_from = Some(init.clone());
            }
            if let Some(vectors) = &a.init_embeddings {
                cfg.train.init_embeddings = Some(vectors.clone());
            }
            let stem = config.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into());
            (a.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(stem)), cfg, false)
        }
        (None, None) => unreachable!("clap requires --config or --resume"),
    };
    let summary = run_with_progress(&run_dir, cfg, resume)?;
    print_summary(&summary, &run_dir);
    if summary.interrupted {
        println!("resume with: jielong train --resume {}", run_dir.display());
        return Err(Error::Interrupted.into());
    }
    Ok(())
}

/// Train with a live progress bar (step, loss, tokens/s, ETA) and Ctrl-C → checkpoint.
pub fn run_with_progress(run_dir: &Path, cfg: RunConfig, resume: bool) -> Result<TrainSummary> {
    let stop = stop_flag();
    let mut bar = None;
    let mut loss_ema: Option<f64> = None;
    let mut val = String::new();
    let summary = train(run_dir, cfg, resume, &stop, &mut |e| match e {
        Event::Start { step, max_steps, n_params, tokens_per_step, resumed, model } => {
            println!(
                "{} {model} ({:.2} M parameters) for {} steps of {} tokens{}",
                if resumed { "resuming" } else { "training" },
                n_params as f64 / 1e6,
                max_steps,
                tokens_per_step,
                if resumed { format!(" from step {step}") } else { String::new() }
            );
            bar = Some(train_bar(step, max_steps));
        }
        Event::Step { step, loss, tokens_per_s, .. } => {
            let ema = loss_ema.map_or(loss, |m| 0.9 * m + 0.1 * loss);
            loss_ema = Some(ema);
            if let Some(b) = &bar {
                b.set_position(step);
                b.set_message(format!("loss {ema:.3}{val} · {tokens_per_s:.0} tok/s"));
            }
        }
        Event::Eval { val_loss, .. } => val = format!(" (val {val_loss:.3})"),
        Event::SentenceEval { task, stats, .. } => val = format!("{} · {} acc {:.2})", val.trim_end_matches(')'), task.name(), stats.accuracy()),
        Event::Checkpoint { .. } => {}
        Event::EmbeddingsInitialized(d) => println!(
            "embeddings: {} of {} tokens start from the vectors in {} ({} through their lowercase form; scaled by {:.4}); the rest keep their random init",
            d.covered,
            d.rows,
            d.source.display(),
            d.lowercased,
            d.scale
        ),
    })?;
    if let Some(b) = bar {
        b.finish();
    }
    Ok(summary)
}

pub fn print_summary(s: &TrainSummary, run_dir: &Path) {
    let ppl = |l: f64| l.exp();
    println!("after {} steps ({} tokens, {:.0} s):", s.steps, s.tokens_seen, s.elapsed_s);
    println!("  train loss      {:.3} nats/token (perplexity {:.1})", s.train_loss, ppl(s.train_loss));
    if let Some(v) = s.val_loss {
        println!("  validation loss {:.3} nats/token (perplexity {:.1})", v, ppl(v));
    }
    println!(
        "  unigram baseline {:.3} nats/token (perplexity {:.1}): {}",
        s.baseline_loss,
        ppl(s.baseline_loss),
        match s.val_loss {
            Some(v) if v < s.baseline_loss => format!("the model beats it by {:.3}", s.baseline_loss - v),
            Some(_) => "the model does not beat it yet: train longer".into(),
            None => "no validation split to compare".into(),
        }
    );
    println!("  checkpoint {}  ·  metrics {}  ·  plot {}", s.checkpoint.display(), run_dir.join("metrics.jsonl").display(), run_dir.join("loss.svg").display());
}
