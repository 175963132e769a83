//! `jielong sft --checkpoint BASE --data FILE.jsonl --template chatml|llama3|builtin|FILE
//! --regime full|lora|prefix|prompt --out DIR`: supervised fine-tuning on conversations, the loss on the
//! assistant's tokens (see `jielong_train::sft`). `--resume DIR` continues a run.

use crate::progress::{stop_flag, train_bar};
use anyhow::Result;
use clap::{Args as ClapArgs, ValueEnum};
use jielong_core::Error;
use jielong_data::sft::LossOn;
use jielong_nn::LoraConfig;
use jielong_train::{sft, Event, Regime, SftConfig, TrainConfig};
use std::path::PathBuf;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RegimeArg {
    Full,
    Lora,
    Prefix,
    Prompt,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LossOnArg {
    Assistant,
    All,
}

#[derive(ClapArgs)]
pub struct Args {
    /// The base: a run folder or a ckpt-NNNNNN folder.
    #[arg(long, required_unless_present = "resume")]
    pub checkpoint: Option<PathBuf>,
    /// Conversations, one JSON object a line: {"messages": [...]}, {"prompt", "completion"}
    /// or Alpaca's {"instruction", "input", "output"}.
    #[arg(long, required_unless_present = "resume")]
    pub data: Option<PathBuf>,
    /// chatml, llama3, builtin ("User: …" lines ending each reply with <|endoftext|>), or a
    /// .jinja / tokenizer_config.json file.
    #[arg(long, default_value = "builtin")]
    pub template: String,
    /// full: train every weight; lora: train low-rank adapters only; prefix: train per-layer
    /// key/value prefixes only; prompt: train soft-prompt embeddings only (the last three
    /// saved apart from the base, PEFT layout).
    #[arg(long, value_enum, default_value_t = RegimeArg::Full)]
    pub regime: RegimeArg,
    /// Where the run goes (a run folder, or for LoRA the adapter folder).
    #[arg(long, required_unless_present = "resume", conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in this folder (its settings are read from its sft.json).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Which tokens carry loss: the assistant's (with their end-of-turn token), or all.
    #[arg(long, value_enum, default_value_t = LossOnArg::Assistant)]
    pub loss_on: LossOnArg,
    /// Make a bad line of the data (or an example the template cannot render) an error
    /// instead of skipping and counting it.
    #[arg(long)]
    pub strict: bool,
    /// Pack several examples into each context window (none attends to another; positions
    /// restart per example) instead of padding each to the longest of its batch: fewer
    /// positions per step on data of uneven lengths. Not with --regime prompt.
    #[arg(long)]
    pub packing: bool,
    #[arg(long, default_value_t = 200)]
    pub max_steps: u64,
    /// Train for this wall time (30s, 5m, 1h) instead of a step count: a few timed steps fit
    /// the cosine schedule to it (at most --max-steps), and the clock ends the run.
    #[arg(long)]
    pub budget: Option<String>,
    /// Write the run's summary (steps, trainable parameters, losses, tokens/s) as JSON here
    /// (`jielong compare --regimes` reads it).
    #[arg(long, hide = true)]
    pub summary_json: Option<PathBuf>,
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Peak learning rate (cosine decay to a tenth of it after a 10% warmup).
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
    #[arg(long, default_value_t = 8)]
    pub lora_rank: usize,
    #[arg(long, default_value_t = 16.0)]
    pub lora_alpha: f64,
    /// LoRA's input dropout; the fused GPT block and Llama layer run adapters without it, so only 0 is accepted today.
    #[arg(long, default_value_t = 0.0)]
    pub lora_dropout: f32,
    /// Comma-separated module names or endings (all-linear: every projection).
    #[arg(long, default_value = "all-linear")]
    pub lora_targets: String,
    /// Prefix and prompt tuning: how many virtual tokens (they take that much of the context).
    #[arg(long, default_value_t = 20)]
    pub num_virtual_tokens: usize,
    /// Prompt tuning: start the soft prompt from the embeddings of this text's tokens (PEFT's
    /// prompt_tuning_init_text) instead of random vocabulary rows.
    #[arg(long)]
    pub prompt_init_text: Option<String>,
}

/// The peak learning rate of a regime when --lr is not given. Adapters train few parameters
/// from a fresh start and take larger steps than the whole model (PEFT's and TRL's examples:
/// about 2e-5 to 3e-4 for full fine-tuning, 1e-4 to 1e-3 for LoRA); virtual tokens are few
/// parameters far from the loss and larger still (PEFT's examples use 1e-2 to 3e-2).
pub fn default_lr(regime: Regime) -> f64 {
    match regime {
        Regime::Full => 3e-4,
        Regime::Lora => 1e-3,
        Regime::Prefix | Regime::Prompt => 1e-2,
    }
}

fn settings(a: &Args) -> Result<(PathBuf, SftConfig, bool)> {
    if let Some(dir) = &a.resume {
        let path = dir.join("sft.json");
        if !path.is_file() {
            return Err(Error::input(format!("{}: not a fine-tuning run (no sft.json); pass the folder `jielong sft` wrote", dir.display())).into());
        }
        let text = jielong_core::fs::read_to_string(&path)?;
        let mut cfg: SftConfig = serde_json::from_str(&text).map_err(|e| Error::format(&path, format!("not a jielong sft record ({e})")))?;
        cfg.train.max_steps = a.max_steps.max(cfg.train.max_steps);
        return Ok((dir.clone(), cfg, true));
    }
    let regime = match a.regime {
        RegimeArg::Full => Regime::Full,
        RegimeArg::Lora => Regime::Lora,
        RegimeArg::Prefix => Regime::Prefix,
        RegimeArg::Prompt => Regime::Prompt,
    };
    let lr = a.lr.unwrap_or(default_lr(regime));
    let max_minutes = match &a.budget {
        Some(b) => super::compare::parse_budget(b)? / 60.0,
        None => 0.0,
    };
    let train = TrainConfig {
        batch_size: a.batch_size,
        grad_accum: a.grad_accum,
        max_steps: a.max_steps,
        max_minutes,
        learning_rate: lr,
        min_lr: lr / 10.0,
        warmup_steps: a.max_steps / 10,
        weight_decay: 0.0,
        checkpoint_interval: a.max_steps.max(1),
        seed: a.seed,
        ..TrainConfig::default()
    };
    let cfg = SftConfig {
        base: a.checkpoint.clone().expect("clap requires it"),
        data: a.data.clone().expect("clap requires it"),
        template: a.template.clone(),
        regime,
        lora: LoraConfig { rank: a.lora_rank, alpha: a.lora_alpha, dropout: a.lora_dropout, targets: a.lora_targets.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect() },
        soft: jielong_train::SoftPromptSettings { num_virtual_tokens: a.num_virtual_tokens, init_text: a.prompt_init_text.clone() },
        loss_on: match a.loss_on {
            LossOnArg::Assistant => LossOn::Assistant,
            LossOnArg::All => LossOn::All,
        },
        strict: a.strict,
        packing: a.packing,
        train,
    };
    Ok((a.out.clone().expect("clap requires it"), cfg, false))
}

pub fn run(a: Args) -> Result<()> {
    let (out, cfg, resume) = settings(&a)?;
    let summary = run_settings(&out, cfg, resume)?;
    if let Some(path) = &a.summary_json {
        jielong_core::fs::write_json_atomic(path, &summary)?;
    }
    Ok(())
}

/// Fine-tune (or resume) into `out` with a progress bar and the summary lines `jielong sft`
/// prints; `jielong quickstart --chat` runs its instruction-tuning stage through it too.
pub fn run_settings(out: &std::path::Path, cfg: SftConfig, resume: bool) -> Result<jielong_train::SftSummary> {
    let (regime, packing) = (cfg.regime, cfg.packing);
    let stop = stop_flag();
    let mut bar = None;
    let summary = sft(out, cfg, resume, &stop, &mut |e| match e {
        Event::Start { step, max_steps, n_params, model, .. } => {
            println!("fine-tuning {model}: {:.3} M trainable parameters, {max_steps} steps{}", n_params as f64 / 1e6, if step > 0 { format!(" from step {step}") } else { String::new() });
            bar = Some(train_bar(step, max_steps));
        }
        Event::Step { step, loss, tokens_per_s, .. } => {
            if let Some(b) = &bar {
                b.set_position(step);
                b.set_message(format!("loss {loss:.3} · {tokens_per_s:.0} tok/s"));
            }
        }
        _ => {}
    })?;
    if let Some(b) = bar {
        b.finish();
    }
    if let Some(s) = &summary.skipped {
        eprintln!("warning: {s}");
    }
    if !summary.added_tokens.is_empty() {
        println!("added tokens {} (their embeddings start at the mean row)", summary.added_tokens.join(" "));
    }
    println!(
        "{} examples ({} cut to the context) · trainable {} of {} parameters ({:.2}%) · {:.0} tokens/s",
        summary.examples,
        summary.truncated,
        summary.trainable,
        summary.total_params,
        100.0 * summary.trainable as f64 / summary.total_params.max(1) as f64,
        summary.tokens_per_s
    );
    println!("{:.0} positions per step ({})", summary.positions_per_step, if packing { "packed" } else { "padded" });
    println!("loss on the assistant's tokens: {:.4} before → {:.4} after ({} steps, {:.1} s)", summary.loss_before, summary.loss_after, summary.steps, summary.elapsed_s);
    match regime {
        Regime::Full => println!("talk to it: jielong chat --checkpoint {}", out.display()),
        Regime::Lora | Regime::Prefix | Regime::Prompt => println!(
            "adapter (PEFT layout) in {0}; talk to it: jielong chat --checkpoint {1} --adapter {0}",
            out.display(),
            summary_base(out).unwrap_or_else(|| "BASE".into())
        ),
    }
    if summary.interrupted {
        println!("resume with: jielong sft --resume {}", out.display());
        return Err(Error::Interrupted.into());
    }
    Ok(summary)
}

fn summary_base(out: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(out.join("sft.json")).ok()?;
    let cfg: SftConfig = serde_json::from_str(&text).ok()?;
    Some(cfg.base.display().to_string())
}
