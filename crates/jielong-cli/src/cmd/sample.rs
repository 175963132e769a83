//! `jielong sample --checkpoint DIR --prompt TEXT`: continue a prompt, streaming the text.

use anyhow::Result;
use clap::Args as ClapArgs;
use jielong_core::Error;
use jielong_generate::{sample, SampleOptions};
use jielong_tokenizer::Tokenizer;
use jielong_train::Checkpoint;
use std::io::Write;
use std::path::PathBuf;

#[derive(ClapArgs)]
pub struct Args {
    /// A run folder (its latest checkpoint) or a ckpt-NNNNNN folder.
    #[arg(long)]
    pub checkpoint: PathBuf,
    #[arg(long)]
    pub prompt: String,
    #[arg(long, default_value_t = 100)]
    pub max_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.8, allow_negative_numbers = true)]
    pub temperature: f64,
    /// Sample among the k most likely tokens (0 = all).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Use this tokenizer instead of the run's own (it must be the same one).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
}

/// Continue `prompt`, printing text as it is produced; returns the continuation.
pub fn stream(model: &dyn jielong_models::CausalLm, tk: &Tokenizer, prompt: &str, opts: &SampleOptions) -> Result<String> {
    let ids = tk.encode(prompt)?;
    if ids.is_empty() {
        return Err(Error::input("the prompt is empty: give some text to continue").into());
    }
    let mut out = std::io::stdout().lock();
    let mut new_ids = Vec::new();
    let mut printed = 0usize;
    let dev = candle_core::Device::Cpu;
    let mut failed = None;
    sample(model, &ids, opts, &dev, &mut |id| {
        new_ids.push(id);
        // Decode everything so far and print what is new, holding back an incomplete UTF-8
        // character (a byte-level token can end mid-character).
        if let Ok(text) = tk.decode(&new_ids) {
            let ready = text.trim_end_matches('\u{FFFD}');
            if ready.len() > printed && ready.is_char_boundary(printed) {
                if let Err(e) = out.write_all(&ready.as_bytes()[printed..]).and_then(|_| out.flush()) {
                    failed = Some(e);
                }
                printed = ready.len();
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    let text = tk.decode(&new_ids)?;
    if text.len() > printed {
        out.write_all(&text.as_bytes()[printed..])?;
    }
    out.flush()?;
    Ok(text)
}

pub fn run(a: Args) -> Result<()> {
    let ckpt = Checkpoint::open(&a.checkpoint)?;
    let tk = ckpt.load_tokenizer(a.tokenizer.as_deref())?;
    let model = ckpt.load_model(&candle_core::Device::Cpu)?;
    let opts = SampleOptions { max_tokens: a.max_tokens, temperature: a.temperature, top_k: a.top_k, seed: a.seed, stop_id: tk.eot_id() };
    opts.validate()?;
    print!("{}", a.prompt);
    stream(&model, &tk, &a.prompt, &opts)?;
    println!();
    Ok(())
}
