//! `jielong quickstart`: the whole spine on built-in defaults. Corpus (the built-in handbook,
//! or --corpus) → byte-level BPE tokenizer → token shards → a small GPT trained for --minutes →
//! losses next to the unigram baseline → three samples. Every stage writes files under --out.
//! Run it again after an interruption and it resumes from the last checkpoint. With `--chat` it
//! goes one stage further: instruction tuning on questions about the handbook answered by its
//! own sentences, then `jielong chat` (or three sample replies when not on a terminal).

use super::{data, generate, tokenizer, train};
use crate::corpus;
use anyhow::Result;
use clap::Args as ClapArgs;
use jielong_data::PrepareOptions;
use jielong_generate::SamplingConfig;
use jielong_data::sft::LossOn;
use jielong_nn::LoraConfig;
use jielong_tokenizer::{ChatTemplate, Message, TokenizerKind};
use jielong_train::sft::{Regime, SftConfig};
use std::io::IsTerminal;
use jielong_train::config::{DataConfig, RunConfig, TrainConfig};
use jielong_train::Checkpoint;
use std::path::PathBuf;
use std::time::Instant;

#[derive(ClapArgs)]
pub struct Args {
    /// Minutes of training (the schedule is fitted to this).
    #[arg(long, default_value_t = 4.0, allow_negative_numbers = true)]
    pub minutes: f64,
    /// Where everything goes.
    #[arg(long, default_value = "jielong-out")]
    pub out: PathBuf,
    /// Train on these files or folders instead of the built-in handbook.
    #[arg(long, num_args = 1..)]
    pub corpus: Vec<PathBuf>,
    /// Tokenizer vocabulary size.
    #[arg(long, default_value_t = 2048)]
    pub vocab_size: usize,
    /// Model family: gpt (GPT-2 layout), llama (RMSNorm, SwiGLU, RoPE, grouped-query
    /// attention), rnn, lstm or gru; its `tiny` preset is trained.
    #[arg(long, default_value = "gpt")]
    pub family: String,
    /// Then fine-tune on the built-in instruction set (questions about each handbook section,
    /// answered by its own sentences) and open `jielong chat` with the result.
    #[arg(long)]
    pub chat: bool,
    /// With --chat: fine-tuning steps.
    #[arg(long, default_value_t = 300, requires = "chat")]
    pub chat_steps: u64,
}

/// The families quickstart can train on plain text.
const CAUSAL_FAMILIES: [&str; 5] = ["gpt", "llama", "rnn", "lstm", "gru"];

const PROMPTS: [&str; 3] = ["A language model", "注意力机制", "To train a tokenizer,"];

pub fn run(a: Args) -> Result<()> {
    if !(a.minutes > 0.0 && a.minutes.is_finite()) {
        return Err(jielong_core::Error::input(format!("--minutes {} must be a positive number", a.minutes)).into());
    }
    // Before any work: quickstart trains a causal language model on text.
    if !CAUSAL_FAMILIES.contains(&a.family.as_str()) && jielong_models::family::family(&a.family).is_ok() {
        let how = match a.family.as_str() {
            "seq2seq" => "a seq2seq model reads source → target pairs: make them with `jielong task make reverse --n 5000 --out pairs.jsonl` and train with model.family = \"seq2seq\" (handbook chapter 04)",
            _ => "train it with `jielong train` and its own objective",
        };
        return Err(jielong_core::Error::input(format!("--family {}: quickstart trains a causal language model on text ({}); {how}", a.family, CAUSAL_FAMILIES.join(", "))).into());
    }
    if a.chat && !a.corpus.is_empty() {
        return Err(jielong_core::Error::input("--chat tunes on questions about the built-in handbook, so it trains on the handbook too: drop --corpus, or fine-tune on your own conversations with `jielong sft`").into());
    }
    if a.chat && a.chat_steps == 0 {
        return Err(jielong_core::Error::input("--chat-steps must be at least 1").into());
    }
    // The family's tiny preset. The handbook is small (tens of thousands of tokens): more
    // dropout than usual holds off overfitting within the few hundred steps of a quickstart.
    let model = jielong_models::family::preset(&a.family, "tiny")?.with_setting("dropout", 0.2.into())?;
    let t_start = Instant::now();
    let run_dir = a.out.join("run");
    let resume = jielong_train::checkpoint::latest(&run_dir)?.is_some();

    // 1. Corpus.
    let inputs = if a.corpus.is_empty() {
        let dir = corpus::write_handbook(&a.out.join("corpus"))?;
        println!("corpus: the built-in jielong handbook ({} KB, English and 简体中文) → {}", corpus::handbook_bytes() / 1024, dir.display());
        vec![dir]
    } else {
        a.corpus.clone()
    };
    let (docs, read) = jielong_text::read_corpus(&inputs)?;
    let texts: Vec<String> = docs.iter().map(|d| d.text.clone()).collect();

    // 2. Tokenizer (reused when resuming: the checkpoint is tied to it).
    let tk_dir = a.out.join("tokenizer");
    let tk = if resume && tk_dir.join("tokenizer.json").exists() {
        jielong_tokenizer::Tokenizer::load(&tk_dir)?
    } else {
        tokenizer::train_on(TokenizerKind::Bpe, a.vocab_size, &texts, &tk_dir)?
    };
    println!("\n[1/4] tokenizer: byte-level BPE, {} ids → {}", tk.vocab_size(), tk_dir.join("tokenizer.json").display());
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    tokenizer::print_compression(&tokenizer::compression(&tk, &refs)?);
    let example = "接龙: the next token";
    let pieces: Vec<String> = tk.encode(example)?.iter().map(|&i| tk.piece_text(&tk.id_to_piece(i).unwrap_or_default())).collect();
    println!("  e.g. {example:?} → [{}]", pieces.join(" | "));

    // 3. Shards.
    let shards = a.out.join("shards");
    println!("\n[2/4] token shards → {}", shards.display());
    let meta = jielong_data::prepare(docs, &read, &tk, &shards, &PrepareOptions::default())?;
    data::print_report(&meta, &shards);

    // 4. Train.
    println!("\n[3/4] training for about {} minute(s) (Ctrl-C stops after a checkpoint; run again to resume)", a.minutes);
    let cfg = RunConfig {
        data: DataConfig { dir: shards.clone() },
        model,
        train: TrainConfig {
            batch_size: 16,
            max_steps: 100_000,
            max_minutes: a.minutes,
            learning_rate: 2e-3,
            min_lr: 2e-4,
            warmup_steps: 30,
            eval_interval: 50,
            eval_windows: 48,
            checkpoint_interval: 50,
            ..Default::default()
        },
    };
    let summary = if resume {
        let saved = RunConfig::load(&run_dir.join("config.toml"), &[])?;
        train::run_with_progress(&run_dir, saved, true)?
    } else {
        train::run_with_progress(&run_dir, cfg, false)?
    };
    train::print_summary(&summary, &run_dir);
    if summary.interrupted {
        println!("interrupted: run `jielong quickstart --out {}` again to resume", a.out.display());
        return Err(jielong_core::Error::Interrupted.into());
    }

    // 5. Samples.
    println!("\n[4/4] three samples (temperature 0.8, top-k 40):");
    let ckpt = Checkpoint::open(&run_dir)?;
    let model = ckpt.load_causal_lm(&candle_core::Device::Cpu, "quickstart")?;
    let lm = model.as_causal_lm().expect("checked when loading");
    let engine = jielong_generate::Engine::new(lm, &candle_core::Device::Cpu);
    for (i, prompt) in PROMPTS.iter().enumerate() {
        let cfg = SamplingConfig { temperature: 0.8, top_k: 40, seed: i as u64, ..SamplingConfig::default() };
        let ids = generate::prompt_ids(&tk, prompt, engine.max_seq_len(), generate::Truncate::Left)?;
        print!("\n  ▶ {prompt}");
        generate::stream_one(&engine, &tk, &ids, cfg.build(&ids, 0)?, 60, &[])?;
        println!();
    }

    println!("\nwhere everything is ({:.1} minutes in all):", t_start.elapsed().as_secs_f64() / 60.0);
    println!("  {:<12} {}", "corpus", inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
    println!("  {:<12} {} (+ vocab.txt)", "tokenizer", tk_dir.join("tokenizer.json").display());
    println!("  {:<12} {} (meta.json has the report)", "shards", shards.display());
    println!("  {:<12} {}", "checkpoint", ckpt.dir.display());
    println!("  {:<12} {} · {}", "metrics", run_dir.join("metrics.jsonl").display(), run_dir.join("loss.svg").display());
    println!("next: jielong generate --checkpoint {} --prompt \"...\"   (also: chat, eval, generate --explain / --compare)", run_dir.display());
    if a.chat {
        instruction_tune(&a, &run_dir)?;
    }
    Ok(())
}

/// Stage 5 of `--chat`: the built-in instruction set → `jielong sft` (full, built-in template)
/// → `jielong chat` on a terminal, three greedy replies otherwise.
fn instruction_tune(a: &Args, run_dir: &std::path::Path) -> Result<()> {
    let conversations = jielong_data::sft::handbook::instructions(corpus::HANDBOOK);
    let data = a.out.join("chat.jsonl");
    jielong_core::fs::write_atomic(&data, super::data_chat::to_jsonl(&conversations, None).as_bytes())?;
    println!("\n[5/5] instruction tuning: {} questions about the handbook, answered by its own sentences → {}", conversations.len(), data.display());
    let out = a.out.join("chat");
    let resume = out.join("sft.json").is_file();
    let steps = a.chat_steps;
    let cfg = SftConfig {
        base: run_dir.to_path_buf(),
        data,
        template: "builtin".into(),
        regime: Regime::Full,
        lora: LoraConfig { rank: 8, alpha: 16.0, dropout: 0.0, targets: vec!["all-linear".into()] },
        soft: Default::default(),
        loss_on: LossOn::Assistant,
        strict: true,
        packing: false,
        train: TrainConfig {
            batch_size: 16,
            max_steps: steps,
            learning_rate: 1e-3,
            min_lr: 1e-4,
            warmup_steps: steps / 10,
            weight_decay: 0.0,
            checkpoint_interval: (steps / 3).max(1),
            ..Default::default()
        },
    };
    super::sft::run_settings(&out, cfg, resume)?;
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        println!();
        #[derive(clap::Parser)]
        struct Chat {
            #[command(flatten)]
            args: super::chat::Args,
        }
        let c = <Chat as clap::Parser>::try_parse_from(["chat", "--checkpoint", &out.display().to_string()])?;
        return super::chat::run(c.args);
    }
    println!("\nthree replies (greedy) from {}:", out.display());
    let model_args = generate::ModelArgs { checkpoint: out.clone(), tokenizer: None, no_cache: false, adapter: None };
    let loaded = model_args.load()?;
    let engine = loaded.engine(&model_args);
    let template = ChatTemplate::for_tokenizer_dir(&loaded.tokenizer_dir)?;
    for q in ["What does the handbook say about LoRA?", "说说注意力。", "Tell me about Beam search."] {
        let text = template.render(&[Message::new("user", q)], true)?;
        let ids = generate::prompt_ids(&loaded.tk, &text, engine.max_seq_len(), generate::Truncate::Left)?;
        let cfg = SamplingConfig { sample: false, ..SamplingConfig::default() };
        print!("\n  ▶ {q}\n    ");
        generate::stream_one(&engine, &loaded.tk, &ids, cfg.build(&ids, 0)?, 60, &template.stop)?;
        println!();
    }
    Ok(())
}
